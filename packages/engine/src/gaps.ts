/**
 * Message gaps (docs/threats.md C25): every message carries its sender's per-peer sequence
 * number inside the encrypted payload, so the relay cannot withhold or drop one unnoticed. A
 * number skipped over is remembered as missing, with the time it went missing; one still
 * missing after the app's timeout is a gap to report (once), and it is closed when the message
 * arrives after all. Pure functions over a sequence record: the engine's per-peer record
 * (`records.ts`) and the per-sender records of conversations (`conversations/`), each persisted
 * with its owner.
 */

/** Missing sequence numbers remembered per peer; a longer hole keeps its newest numbers. */
export const MAX_TRACKED_GAPS = 1_000;

/** One missing sequence number: [seq, missing since (ms), reported (1) or not (0)]. */
export type MissingSeq = [number, number, 0 | 1];

/** What the gap functions read and update: the highest number received and the ones skipped. */
export interface SeqRecord {
  /** Highest sequence number received so far (0: none). */
  recvSeq: number;
  /** Numbers skipped over and not received yet. */
  missing?: MissingSeq[];
}

/** True when `seq` was received already: at or below the highest one and not missing. */
export function alreadyReceived(rec: Readonly<SeqRecord>, seq: number): boolean {
  return seq <= rec.recvSeq && !(rec.missing ?? []).some((m) => m[0] === seq); // ct-ok: public sequence numbers
}

/**
 * Notes that `seq` arrived (on a copy of the record): the numbers it skips over go missing as of
 * `now`, and it leaves the missing list if it was there.
 * @returns whether it closed a gap the app was told of.
 */
export function noteReceived(rec: SeqRecord, seq: number, now: number): { closedReported: boolean } {
  const missing = rec.missing ?? [];
  let closedReported = false;
  const at = missing.findIndex((m) => m[0] === seq);
  if (at >= 0) {
    closedReported = missing[at]![2] === 1;
    missing.splice(at, 1);
  } else if (seq > rec.recvSeq + 1) {
    const from = Math.max(rec.recvSeq + 1, seq - MAX_TRACKED_GAPS);
    for (let s = from; s < seq; s++) missing.push([s, now, 0]);
  }
  if (missing.length > MAX_TRACKED_GAPS) missing.splice(0, missing.length - MAX_TRACKED_GAPS);
  rec.missing = missing;
  if (missing.length === 0) delete rec.missing;
  rec.recvSeq = Math.max(rec.recvSeq, seq);
  return { closedReported };
}

/** The numbers missing since `dueBefore` or earlier and not reported yet, ascending. */
export function dueGaps(rec: Readonly<SeqRecord>, dueBefore: number): { seqs: number[]; since: number } | undefined {
  const due = (rec.missing ?? []).filter((m) => m[2] === 0 && m[1] <= dueBefore);
  if (due.length === 0) return undefined;
  return { seqs: due.map((m) => m[0]).sort((a, b) => a - b), since: Math.min(...due.map((m) => m[1])) };
}

/** Marks `seqs` reported (on a copy of the record). */
export function markReported(rec: SeqRecord, seqs: readonly number[]): void {
  const set = new Set(seqs);
  for (const m of rec.missing ?? []) if (set.has(m[0])) m[2] = 1;
}

/** True when `value` is a well-formed missing list (for the record decoder). */
export function isMissingList(value: unknown): value is MissingSeq[] {
  return (
    Array.isArray(value) &&
    value.length <= MAX_TRACKED_GAPS &&
    value.every((m) => Array.isArray(m) && m.length === 3 && Number.isSafeInteger(m[0]) && Number.isSafeInteger(m[1]) && (m[2] === 0 || m[2] === 1))
  );
}
