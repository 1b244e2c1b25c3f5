/**
 * The compliance archive's disclosure on the customer's side (docs/threats.md P2): the engine
 * verifies each peer's published archive disclosure (protocol archive.ts) against the pinned org
 * key, remembers **when** it first verified it, and decides whether a conversation may have an
 * archive recipient: only when every non-customer member's disclosure was verified before the
 * conversation's first message, all naming the same archive key. A disclosure that appears later,
 * is removed from the statements, or does not verify makes the archive refused
 * (`FORBIDDEN`, reason `archiveNotDisclosed`); no disclosure at all means the archive is off.
 */
import { ParleyError, constantTimeEqual, fromHex, toHex, verifyArchiveDisclosure } from '@parley/protocol';
import type { PeerRecord } from './records.js';

/** A verified disclosure as the engine keeps it in the peer record. */
export interface StoredDisclosure {
  /** The disclosure's bytes (hex), to tell a re-publication from a new disclosure. */
  readonly bytes: string;
  readonly label: string;
  /** The compliance X25519 public key (hex). */
  readonly archiveKey: string;
  readonly retentionDays: number;
  readonly openers: readonly string[];
  readonly expiresAt?: number;
  /** When this device first verified it (ms): the gate compares it with the first message. */
  readonly firstVerifiedAt: number;
}

/** What a conversation's archive is, as the widget shows it (`conversation.archive`). */
export interface ArchiveStatus {
  /** True when the archive is on and was disclosed by every non-customer member in time. */
  readonly disclosed: boolean;
  readonly retentionDays?: number;
  readonly openers?: readonly string[];
  /** The compliance key messages are sealed to (hex), when disclosed. */
  readonly archiveKey?: string;
  /** Members whose disclosure is missing, late or different (when some member has one). */
  readonly undisclosed: readonly string[];
}

/**
 * Records `bytes` (a peer's published disclosure) on `rec`: verified against the pinned org key;
 * the first verification time is kept while the same disclosure is published again. Absent,
 * empty or refused: the record's disclosure is dropped (the gate then refuses the archive).
 */
export function applyDisclosure(rec: PeerRecord, bytes: Uint8Array | undefined, check: { orgKey: Uint8Array | undefined; now: number }): void {
  const r = rec;
  if (!bytes || bytes.length === 0 || !check.orgKey) {
    delete r.disclosure;
    return;
  }
  let d;
  try {
    d = verifyArchiveDisclosure(bytes, { orgKey: check.orgKey, now: check.now, ...(rec.cert ? { label: rec.cert.label } : {}) });
  } catch (e) {
    if (!(e instanceof ParleyError)) throw e;
    delete r.disclosure;
    return;
  }
  const hex = toHex(bytes);
  if (r.disclosure?.bytes === hex) return; // ct-ok: public statement bytes
  r.disclosure = {
    bytes: hex,
    label: d.label,
    archiveKey: toHex(d.archiveKey),
    retentionDays: d.retentionDays,
    openers: [...d.openers],
    ...(d.expiresAt !== undefined ? { expiresAt: d.expiresAt } : {}),
    firstVerifiedAt: check.now,
  };
}

/** The disclosure recorded on `rec`, if any. */
export function disclosureOf(rec: PeerRecord | undefined): StoredDisclosure | undefined {
  return rec?.disclosure;
}

/**
 * The archive status of a conversation: `members` are its non-customer members with their
 * recorded disclosures; `firstMessageAt` the time of its first message (undefined: none yet).
 */
export function archiveStatus(members: readonly { readonly peer: string; readonly disclosure?: StoredDisclosure }[], firstMessageAt: number | undefined, now: number): ArchiveStatus {
  const before = firstMessageAt ?? now;
  const withOne = members.filter((m) => m.disclosure !== undefined);
  if (withOne.length === 0) return { disclosed: false, undisclosed: [] };
  const key = withOne[0]!.disclosure!.archiveKey;
  const undisclosed = members
    .filter((m) => {
      const d = m.disclosure;
      if (!d) return true;
      if (d.firstVerifiedAt > before) return true;
      if (d.expiresAt !== undefined && now >= d.expiresAt) return true;
      return !constantTimeEqual(fromHex(d.archiveKey), fromHex(key));
    })
    .map((m) => m.peer);
  if (undisclosed.length > 0) return { disclosed: false, undisclosed };
  return {
    disclosed: true,
    archiveKey: key,
    retentionDays: Math.max(...withOne.map((m) => m.disclosure!.retentionDays)),
    openers: [...new Set(withOne.flatMap((m) => m.disclosure!.openers))],
    undisclosed: [],
  };
}

/**
 * The archive key a conversation may seal to.
 * @throws ParleyError `FORBIDDEN` reason `archiveNotDisclosed` (with `details.undisclosed`, the
 *   count of members not disclosed in time) when the archive was not disclosed before the first
 *   message by every non-customer member.
 */
export function requireArchive(status: ArchiveStatus): { archiveKey: Uint8Array; retentionDays: number; openers: readonly string[] } {
  if (!status.disclosed || status.archiveKey === undefined) {
    throw new ParleyError('FORBIDDEN', 'the archive was not disclosed before the first message', {
      details: { reason: 'archiveNotDisclosed', undisclosed: status.undisclosed.length },
    });
  }
  return { archiveKey: fromHex(status.archiveKey), retentionDays: status.retentionDays ?? 0, openers: status.openers ?? [] };
}
