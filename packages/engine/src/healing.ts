/**
 * Self-healing sessions (docs/threats.md C3, issue 9 "Recovery"). When a device cannot decrypt
 * a peer's message for a *session* reason (no session, a fork, a rolled-back or lost state), it
 * sends the peer a signed session reset request (`@parley/protocol/wire` reset.ts). The peer
 * archives its sessions with the requester, starts a fresh one from a new bundle and resends
 * every message the requester has not receipted, under the same message ids, so the
 * requester's dedupe shows each message to the app once.
 *
 * This module holds the bookkeeping: which errors ask for a reset, the messages kept for
 * resending, archiving, and the bounds that keep two broken peers from looping.
 */
import { isParleyError, RESET_REASONS, type SessionResetReason } from '@parley/protocol';
import { K, type PeerRecord, type UnconfirmedEntry } from './records.js';

/**
 * Messages kept per peer until its receipt lists them. Below the receiver's dedupe window
 * (1,024 ids, mailbox.ts), so a resend of a message that did arrive is always recognised. When
 * full, the oldest is forgotten: a peer that never sends receipts gets nothing resent from
 * beyond the last 128 messages.
 */
export const MAX_UNCONFIRMED_PER_PEER = 128;
/** Times one message is resent after resets; then it is reported as failed. */
export const MAX_RESENDS = 3;
/** Archived sessions kept per peer (tried for messages in flight, never used to send). */
export const MAX_ARCHIVED_SESSIONS = 4;
/** The requester asks one peer at most once per this interval. */
export const RESET_REQUEST_INTERVAL_MS = 10_000;
/** And asks peers it has no record of, together, at most this many times per minute. */
export const MAX_RESET_REQUESTS_PER_MINUTE = 30;
/**
 * The sender applies at most one reset per peer per this interval: a second request (for
 * messages still in flight under the archived session) finds the fresh session already there.
 */
export const RESET_APPLY_INTERVAL_MS = 10_000;

const RESET_ERRORS: ReadonlySet<string> = new Set(RESET_REASONS);

/**
 * The reset reason for an error `ConversationEngine.receive` threw, or undefined when a new
 * session would not help (expired keys, trust refusals, malformed input).
 *
 * `DUPLICATE_MESSAGE` counts as `SENDER_STATE_ROLLBACK`: `receive` answers a relay id it has seen
 * with `kind: 'duplicate'` and never throws for it, so a thrown one means the ratchet holds no key
 * for a counter under a *new* id. A sender restored from a backup reusing counters past the end of
 * an older chain looks exactly like that (the chain does not record its length), and its message
 * would otherwise stay unconfirmed unreported. A relay replaying an old envelope under a new id
 * can make a device ask once per interval; it could do as much with junk.
 */
export function resetReasonOf(error: unknown): SessionResetReason | undefined {
  if (!isParleyError(error)) return undefined;
  if (error.code === 'DUPLICATE_MESSAGE') return 'SENDER_STATE_ROLLBACK';
  return RESET_ERRORS.has(error.code) ? (error.code as SessionResetReason) : undefined;
}

/** The relay id of the `k`-th resend (1..MAX_RESENDS) of message `id`: unique while the original may still be queued. */
export function resendRelayId(id: string, k: number): string {
  return `${id.slice(0, 61)}-r${k}`;
}

/** True when a relay id names message `innerId`: itself, or one of its resends. */
export function relayIdNames(relayId: string, innerId: string): boolean {
  if (relayId === innerId) return true;
  for (let k = 1; k <= MAX_RESENDS; k++) if (relayId === resendRelayId(innerId, k)) return true;
  return false;
}

/**
 * Records a message just sent to `peer` as unconfirmed (on a copy of its record). Returns the
 * write of its payload and the keys of entries that fell out of the bound (delete after the commit).
 */
export function planUnconfirmed(rec: PeerRecord, peer: string, id: string, inner: Uint8Array, now: number): { write: [string, Uint8Array]; drop: string[] } {
  const list = (rec.unconfirmed ?? []).filter((e) => e.id !== id);
  list.push({ id, at: now, resent: 0 });
  const over = list.length > MAX_UNCONFIRMED_PER_PEER ? list.splice(0, list.length - MAX_UNCONFIRMED_PER_PEER) : [];
  rec.unconfirmed = list;
  return { write: [K.unconfirmed(peer, id), inner], drop: over.map((e) => K.unconfirmed(peer, e.id)) };
}

/** The peer receipted `ids`: forget them (on a copy of its record). Returns the payload keys to delete after the commit. */
export function planConfirmed(rec: PeerRecord, peer: string, ids: readonly string[]): string[] {
  if (!rec.unconfirmed?.length) return [];
  const done = new Set(ids);
  const keep: UnconfirmedEntry[] = [];
  const drop: string[] = [];
  for (const e of rec.unconfirmed) {
    if (done.has(e.id)) drop.push(K.unconfirmed(peer, e.id));
    else keep.push(e);
  }
  if (drop.length === 0) return [];
  if (keep.length > 0) rec.unconfirmed = keep;
  else delete rec.unconfirmed;
  return drop;
}

/**
 * Archives every session with the peer (on a copy of its record): the next send needs a fresh
 * bundle. Returns the session ids that fell out of the archive (drop their records after the commit).
 */
export function planArchive(rec: PeerRecord): string[] {
  const archived = [...rec.sessions, ...(rec.archived ?? []).filter((s) => !rec.sessions.includes(s))];
  rec.sessions = [];
  const evicted = archived.length > MAX_ARCHIVED_SESSIONS ? archived.splice(MAX_ARCHIVED_SESSIONS) : [];
  rec.archived = archived;
  return evicted;
}

/**
 * Bounds the reset requests one device sends: per peer, and in total for peers it has no record
 * of (a device whose state was rolled back may not remember a real peer, so it still asks; but
 * junk from many fresh device ids must not use up what known peers need). In memory: a restart
 * only re-allows one request per peer.
 */
export class ResetRequestLimiter {
  readonly #lastByPeer = new Map<string, number>();
  #recentUnknown: number[] = [];

  /** True (and counted) when a request to `peer` may go out at `now`. */
  allow(peer: string, known: boolean, now: number): boolean {
    const last = this.#lastByPeer.get(peer);
    if (last !== undefined && now - last < RESET_REQUEST_INTERVAL_MS) return false;
    if (!known) {
      this.#recentUnknown = this.#recentUnknown.filter((t) => now - t < 60_000);
      if (this.#recentUnknown.length >= MAX_RESET_REQUESTS_PER_MINUTE) return false;
      this.#recentUnknown.push(now);
    }
    this.#lastByPeer.set(peer, now);
    if (this.#lastByPeer.size > 10_000) this.#lastByPeer.delete(this.#lastByPeer.keys().next().value!);
    return true;
  }
}
