/**
 * The disclosed compliance archive (docs/threats.md P2, P3): the organisation's signed
 * disclosure, the sealed box to the compliance key, and the hash-chained archive entries.
 *
 * **Disclosure** (format 1), signed offline by the org key (`parley-org disclose`), published by
 * a bot or agent beside its other statements; at most {@link MAX_ARCHIVE_DISCLOSURE_BYTES}:
 * ```
 *  offset  size  field
 *  0       1     format = 0x01
 *  1       32    org Ed25519 public key (the signer)
 *  33      1     label length L (1..64), then the bot/agent label ([A-Za-z0-9._@-])
 *  34+L    32    archive X25519 public key (the compliance key messages are sealed to)
 *  66+L    2     retention in days (u16 BE, 1..3650)
 *  68+L    1     opener count N (1..8), then N × (u8 length || role, [a-z0-9_-]{1,32})
 *  …       8     issuedAt, ms since the epoch (u64 BE)
 *  …       8     expiresAt, ms since the epoch (u64 BE); 0 = no end
 *  …       64    Ed25519 signature by the org key over
 *                "parley/v1/archive-disclosure" || 0x00 || every byte before it
 * ```
 *
 * **Sealed box** ({@link sealToArchiveKey}): an ephemeral X25519 key pair, ECDH with the archive
 * key, HKDF-SHA256 (salt = ephemeral public || archive public, info `parley/v1/archive-seal`) to
 * a 32-byte key, XChaCha20-Poly1305 with a random 24-byte nonce. Layout:
 * `0x01 || ephemeral public (32) || nonce (24) || ciphertext+tag`. Only the provider's
 * primitives are used; the associated data binds the box to its conversation ref and sender.
 *
 * **Entries.** The chain is ordered by the relay, because several members append to the same
 * conversation's archive and no sender sees the others' appends in time: a sender submits a
 * signed {@link ArchiveSubmission} (conversation ref, its own per-device sequence number, the
 * sealed payload; signed by its identity key under `parley/v1/archive-entry`), and the relay
 * stores it as an {@link ArchiveEntry} `format || index (u32) || previous entry hash (32) ||
 * submission`, the index and the previous hash assigned by the relay from the last stored entry
 * of that ref. The entry hash is SHA-256 of the whole encoded entry; entry 0 names
 * {@link archiveGenesisHash}(ref). What the chain proves: a later change to the stored archive
 * (an entry deleted, two swapped, one replaced) is named by {@link verifyArchiveChain}; a
 * relay that rewrites the chain from some point on is caught by the senders' signatures and
 * sequence numbers (a gap in one sender's numbers), but a truncated tail is not (compare the
 * count with an external record).
 */
import { concatBytes, constantTimeEqual, fromBase64, toBase64, toHex, utf8 } from './bytes.js';
import { ByteReader as Reader, ByteWriter as Writer } from './codec.js';
import { contextMessage } from './contexts.js';
import { getCrypto } from './crypto/index.js';
import { ParleyError } from './errors.js';
import { ORG_LABEL_PATTERN } from './org-cert.js';

export const ARCHIVE_DISCLOSURE_FORMAT = 0x01;
export const ARCHIVE_ENTRY_FORMAT = 0x01;
export const ARCHIVE_SEAL_FORMAT = 0x01;
/** Largest encoded disclosure accepted. */
export const MAX_ARCHIVE_DISCLOSURE_BYTES = 1024;
/** Largest sealed payload in one entry (a message's archived plaintext is far smaller). */
export const MAX_ARCHIVE_PAYLOAD_BYTES = 256 * 1024;
/** Longest retention a disclosure may state. */
export const MAX_ARCHIVE_RETENTION_DAYS = 3650;
/** Most opener roles a disclosure names. */
export const MAX_ARCHIVE_OPENERS = 8;
/** Opener roles: short lower-case names (`compliance`, `legal`). */
export const ARCHIVE_OPENER_PATTERN = /^[a-z0-9_-]{1,32}$/;
/** Conversation refs: an opaque public name of the archived conversation. */
export const ARCHIVE_REF_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;

const SEAL_INFO = utf8('parley/v1/archive-seal');
const REF_PREFIX = utf8('parley/v1/archive-ref');

/**
 * The archive ref a conversation's members append under: opaque, so the relay (and anyone
 * reading its store) cannot link archive chains to conversation ids. base64url (no padding) of
 * SHA-256(`parley/v1/archive-ref` || conversation id), first 22 characters (132 bits). The
 * sealed payload still names the conversation for the compliance officer; anyone who knows a
 * conversation id can compute its ref (`parley-compliance --conversation`).
 * @throws ParleyError `USAGE` for an empty or non-string id.
 */
export function archiveRef(conversationId: string): string {
  if (typeof conversationId !== 'string' || conversationId.length === 0) throw new ParleyError('USAGE', 'conversation id must be a non-empty string');
  const digest = getCrypto().sha256(concatBytes(REF_PREFIX, utf8(conversationId)));
  return toBase64(digest).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '').slice(0, 22);
}
const GENESIS_PREFIX = utf8('parley/v1/archive-genesis');

/** The signed disclosure's fields. */
export interface ArchiveDisclosureFields {
  /** The bot or agent label (as in its org certificate) whose conversations are archived. */
  readonly label: string;
  /** The org's compliance X25519 public key (32 bytes). */
  readonly archiveKey: Uint8Array;
  /** How long entries are kept. */
  readonly retentionDays: number;
  /** Who may open the archive (staff roles, e.g. `['compliance']`). */
  readonly openers: readonly string[];
  /** ms since the epoch. */
  readonly issuedAt: number;
  /** ms since the epoch; refused from then on. Absent: no end. */
  readonly expiresAt?: number;
}

/** A decoded disclosure. */
export interface ArchiveDisclosure extends ArchiveDisclosureFields {
  readonly format: number;
  /** The org public key that signed it. */
  readonly orgKey: Uint8Array;
  readonly signature: Uint8Array;
}

/** Why a disclosure was refused (`details.why` of `FORBIDDEN` reason `archiveNotDisclosed`). */
export type ArchiveDisclosureRefusal = 'malformed' | 'orgKey' | 'signature' | 'label' | 'expired' | 'notYetValid';

function refuseDisclosure(why: ArchiveDisclosureRefusal, message: string): never {
  throw new ParleyError('FORBIDDEN', `archive disclosure refused: ${message}`, { details: { reason: 'archiveNotDisclosed', why } });
}

function assertDisclosureFields(f: ArchiveDisclosureFields): void {
  if (typeof f.label !== 'string' || !ORG_LABEL_PATTERN.test(f.label)) throw new ParleyError('USAGE', 'label must be 1-64 chars of [A-Za-z0-9._@-]');
  if (!(f.archiveKey instanceof Uint8Array) || f.archiveKey.length !== 32) throw new ParleyError('USAGE', 'archive key must be 32 bytes (X25519 public)');
  if (!Number.isSafeInteger(f.retentionDays) || f.retentionDays < 1 || f.retentionDays > MAX_ARCHIVE_RETENTION_DAYS) {
    throw new ParleyError('USAGE', `retention must be 1-${MAX_ARCHIVE_RETENTION_DAYS} days`);
  }
  if (!Array.isArray(f.openers) || f.openers.length < 1 || f.openers.length > MAX_ARCHIVE_OPENERS || !f.openers.every((o) => ARCHIVE_OPENER_PATTERN.test(o))) {
    throw new ParleyError('USAGE', `openers: 1-${MAX_ARCHIVE_OPENERS} roles of [a-z0-9_-]`);
  }
  if (!Number.isSafeInteger(f.issuedAt) || f.issuedAt < 0) throw new ParleyError('USAGE', 'issuedAt must be an integer ≥ 0 (ms)');
  if (f.expiresAt !== undefined && (!Number.isSafeInteger(f.expiresAt) || f.expiresAt <= f.issuedAt)) {
    throw new ParleyError('USAGE', 'expiresAt must be an integer (ms) after issuedAt');
  }
}

/** The bytes the org key signs (before the context prefix). */
export function archiveDisclosurePayload(orgKey: Uint8Array, f: ArchiveDisclosureFields): Uint8Array {
  assertDisclosureFields(f);
  if (!(orgKey instanceof Uint8Array) || orgKey.length !== 32) throw new ParleyError('USAGE', 'orgKey must be 32 bytes');
  const w = new Writer().u8(ARCHIVE_DISCLOSURE_FORMAT).fixed(orgKey).shortString(f.label).fixed(f.archiveKey).u16(f.retentionDays).u8(f.openers.length);
  for (const o of f.openers) w.shortString(o);
  return w.u64(f.issuedAt).u64(f.expiresAt ?? 0).finish();
}

/**
 * Signs an archive disclosure with the organisation's seed (offline: `parley-org disclose`).
 * @throws ParleyError `USAGE` for bad fields or a seed that is not 32 bytes.
 */
export function signArchiveDisclosure(orgSeed: Uint8Array, f: ArchiveDisclosureFields): Uint8Array {
  if (!(orgSeed instanceof Uint8Array) || orgSeed.length !== 32) throw new ParleyError('USAGE', 'org seed must be 32 bytes');
  const c = getCrypto();
  const payload = archiveDisclosurePayload(c.ed25519PublicKey(orgSeed), f);
  return concatBytes(payload, c.ed25519Sign(orgSeed, contextMessage('archiveDisclosure', payload)));
}

/**
 * Decodes without verifying (for display).
 * @throws ParleyError `FORBIDDEN` reason `archiveNotDisclosed`, `why: 'malformed'`.
 */
export function decodeArchiveDisclosure(bytes: Uint8Array): ArchiveDisclosure {
  if (!(bytes instanceof Uint8Array) || bytes.length > MAX_ARCHIVE_DISCLOSURE_BYTES) refuseDisclosure('malformed', 'not an archive disclosure');
  try {
    const r = new Reader(bytes, 'MALFORMED_MESSAGE');
    const format = r.u8();
    if (format !== ARCHIVE_DISCLOSURE_FORMAT) refuseDisclosure('malformed', 'unsupported format');
    const orgKey = r.fixed(32);
    const label = r.shortString();
    const archiveKey = r.fixed(32);
    const retentionDays = r.u16();
    const n = r.u8();
    if (n < 1 || n > MAX_ARCHIVE_OPENERS) refuseDisclosure('malformed', 'bad opener count');
    const openers: string[] = [];
    for (let i = 0; i < n; i++) openers.push(r.shortString());
    const issuedAt = r.u64();
    const until = r.u64();
    const signature = r.fixed(64);
    r.end();
    const d: ArchiveDisclosure = { format, orgKey, label, archiveKey, retentionDays, openers, issuedAt, ...(until !== 0 ? { expiresAt: until } : {}), signature };
    try {
      assertDisclosureFields(d);
    } catch {
      refuseDisclosure('malformed', 'invalid field');
    }
    return d;
  } catch (e) {
    if (e instanceof ParleyError && e.code === 'FORBIDDEN') throw e;
    return refuseDisclosure('malformed', 'truncated or trailing bytes');
  }
}

/** What {@link verifyArchiveDisclosure} expects. */
export interface ArchiveDisclosureCheck {
  /** The pinned organisation public key (32 bytes). */
  readonly orgKey: Uint8Array;
  /** If given, the disclosure must name exactly this label (the member's certified label). */
  readonly label?: string;
  /** Current time, ms since the epoch. */
  readonly now: number;
}

/**
 * Verifies a disclosure against the pinned org key, the member's label and the clock.
 * @throws ParleyError `FORBIDDEN` reason `archiveNotDisclosed` with `details.why` one of
 *   {@link ArchiveDisclosureRefusal}; `USAGE` for a malformed `orgKey`.
 */
export function verifyArchiveDisclosure(bytes: Uint8Array, check: ArchiveDisclosureCheck): ArchiveDisclosure {
  const d = decodeArchiveDisclosure(bytes);
  if (!(check.orgKey instanceof Uint8Array) || check.orgKey.length !== 32) throw new ParleyError('USAGE', 'orgKey must be 32 bytes');
  if (!constantTimeEqual(d.orgKey, check.orgKey)) refuseDisclosure('orgKey', 'signed by another organisation key');
  if (!getCrypto().ed25519Verify(check.orgKey, contextMessage('archiveDisclosure', bytes.subarray(0, bytes.length - 64)), d.signature)) {
    refuseDisclosure('signature', 'signature does not verify under the pinned organisation key');
  }
  if (check.label !== undefined && d.label !== check.label) refuseDisclosure('label', 'made for another label'); // ct-ok: public labels
  if (check.now < d.issuedAt) refuseDisclosure('notYetValid', 'issued in the future');
  if (d.expiresAt !== undefined && check.now >= d.expiresAt) refuseDisclosure('expired', 'expired');
  return d;
}

/** Text form: base64 of the binary disclosure. */
export function archiveDisclosureToBase64(bytes: Uint8Array): string {
  return toBase64(bytes);
}

/** @throws ParleyError `USAGE` for bad base64. */
export function archiveDisclosureFromBase64(text: string): Uint8Array {
  return fromBase64(text);
}

/** A JSON view for people (public data only). */
export function describeArchiveDisclosure(d: ArchiveDisclosure): Record<string, string | number> {
  return {
    format: d.format,
    orgKey: toHex(d.orgKey),
    label: d.label,
    archiveKey: toHex(d.archiveKey),
    retentionDays: d.retentionDays,
    openers: d.openers.join(','),
    issuedAt: new Date(d.issuedAt).toISOString(),
    ...(d.expiresAt !== undefined ? { expiresAt: new Date(d.expiresAt).toISOString() } : {}),
  };
}

// ---------------------------------------------------------------------------------------------
// Sealed box

function sealKey(shared: Uint8Array, ephemeral: Uint8Array, archiveKey: Uint8Array): Uint8Array {
  return getCrypto().hkdfSha256(shared, concatBytes(ephemeral, archiveKey), SEAL_INFO, 32);
}

/**
 * Seals `plaintext` to the archive key: only the compliance private key opens it.
 * @param ad associated data bound to the box (callers pass the conversation ref and sender).
 * @throws ParleyError `USAGE` for a key that is not 32 bytes; `INVALID_KEY` for a low-order key.
 */
export function sealToArchiveKey(archiveKey: Uint8Array, plaintext: Uint8Array, ad: Uint8Array): Uint8Array {
  if (!(archiveKey instanceof Uint8Array) || archiveKey.length !== 32) throw new ParleyError('USAGE', 'archive key must be 32 bytes');
  const c = getCrypto();
  const eph = c.x25519Generate();
  const shared = c.x25519(eph.privateKey, archiveKey);
  const key = sealKey(shared, eph.publicKey, archiveKey);
  const nonce = c.randomBytes(24);
  try {
    return concatBytes(new Uint8Array([ARCHIVE_SEAL_FORMAT]), eph.publicKey, nonce, c.xchachaEncrypt(key, nonce, plaintext, ad));
  } finally {
    eph.privateKey.fill(0);
    shared.fill(0);
    key.fill(0);
  }
}

/**
 * Opens a box made by {@link sealToArchiveKey} with the compliance private key.
 * @throws ParleyError `AUTH_FAILED` for a wrong key, altered bytes or other `ad`;
 *   `MALFORMED_MESSAGE` for a box that is too short or of another format.
 */
export function openArchiveSeal(archivePrivateKey: Uint8Array, sealed: Uint8Array, ad: Uint8Array): Uint8Array {
  if (!(sealed instanceof Uint8Array) || sealed.length < 1 + 32 + 24 + 16 || sealed[0] !== ARCHIVE_SEAL_FORMAT) {
    throw new ParleyError('MALFORMED_MESSAGE', 'not an archive sealed box');
  }
  const c = getCrypto();
  const eph = sealed.subarray(1, 33);
  const nonce = sealed.subarray(33, 57);
  const shared = c.x25519(archivePrivateKey, eph);
  const key = sealKey(shared, eph, c.x25519PublicKey(archivePrivateKey));
  try {
    return c.xchachaDecrypt(key, nonce, sealed.subarray(57), ad);
  } finally {
    shared.fill(0);
    key.fill(0);
  }
}

/** The associated data of an archived message's box: its ref and its sender's signing key. */
export function archiveSealAd(ref: string, senderKey: Uint8Array): Uint8Array {
  return new Writer().shortString(ref).fixed(senderKey).finish();
}

// ---------------------------------------------------------------------------------------------
// Entries and the chain

/** What a member submits to the relay for one archived message. */
export interface ArchiveSubmission {
  /** The conversation's archive ref. */
  readonly ref: string;
  /** The sender's Ed25519 identity key (32 bytes). */
  readonly senderKey: Uint8Array;
  /** The sender's own counter for this ref, from 0, +1 per submission. */
  readonly senderSeq: number;
  /** {@link sealToArchiveKey} output. */
  readonly sealed: Uint8Array;
  /** Ed25519 signature under `parley/v1/archive-entry` over {@link archiveSubmissionPayload}. */
  readonly signature: Uint8Array;
}

/** A stored entry: the relay-assigned place in the chain and the submission. */
export interface ArchiveEntry {
  readonly index: number;
  /** SHA-256 of the previous encoded entry; entry 0: {@link archiveGenesisHash}. */
  readonly prevHash: Uint8Array;
  readonly submission: ArchiveSubmission;
}

function assertRef(ref: string): void {
  if (typeof ref !== 'string' || !ARCHIVE_REF_PATTERN.test(ref)) throw new ParleyError('USAGE', 'archive ref must be 1-128 chars of [A-Za-z0-9._:-]');
}

/** The bytes a sender signs (before the context prefix). */
export function archiveSubmissionPayload(s: Omit<ArchiveSubmission, 'signature'>): Uint8Array {
  assertRef(s.ref);
  if (!(s.senderKey instanceof Uint8Array) || s.senderKey.length !== 32) throw new ParleyError('USAGE', 'sender key must be 32 bytes');
  if (!Number.isSafeInteger(s.senderSeq) || s.senderSeq < 0 || s.senderSeq > 0xffffffff) throw new ParleyError('USAGE', 'senderSeq must be a u32');
  if (!(s.sealed instanceof Uint8Array) || s.sealed.length === 0 || s.sealed.length > MAX_ARCHIVE_PAYLOAD_BYTES) {
    throw new ParleyError('PAYLOAD_TOO_LARGE', 'archived payload too large', { details: { max: MAX_ARCHIVE_PAYLOAD_BYTES } });
  }
  return new Writer().shortString(s.ref).fixed(s.senderKey).u32(s.senderSeq).bytes(s.sealed).finish();
}

/**
 * Builds a signed submission. `sign` signs under the `archiveEntry` context, e.g.
 * `(payload) => identity.sign('archiveEntry', payload)` (the engine keeps the key).
 */
export function makeArchiveSubmission(fields: Omit<ArchiveSubmission, 'signature'>, sign: (payload: Uint8Array) => Uint8Array): ArchiveSubmission {
  return { ...fields, signature: sign(archiveSubmissionPayload(fields)) };
}

/** Encodes a submission (payload || signature). */
export function encodeArchiveSubmission(s: ArchiveSubmission): Uint8Array {
  return concatBytes(archiveSubmissionPayload(s), s.signature);
}

/**
 * Decodes a submission (framing only).
 * @throws ParleyError `MALFORMED_MESSAGE`.
 */
export function decodeArchiveSubmission(bytes: Uint8Array): ArchiveSubmission {
  const r = new Reader(bytes, 'MALFORMED_MESSAGE');
  const ref = r.shortString();
  if (!ARCHIVE_REF_PATTERN.test(ref)) r.fail('bad archive ref');
  const senderKey = r.fixed(32);
  const senderSeq = r.u32();
  const sealed = r.bytes(MAX_ARCHIVE_PAYLOAD_BYTES);
  const signature = r.fixed(64);
  r.end();
  return { ref, senderKey, senderSeq, sealed, signature };
}

/** Whether the submission's signature verifies under its sender key. */
export function verifyArchiveSubmission(s: ArchiveSubmission): boolean {
  try {
    return getCrypto().ed25519Verify(s.senderKey, contextMessage('archiveEntry', archiveSubmissionPayload(s)), s.signature);
  } catch {
    return false;
  }
}

/** The `prevHash` of entry 0 of `ref`'s chain. */
export function archiveGenesisHash(ref: string): Uint8Array {
  assertRef(ref);
  return getCrypto().sha256(concatBytes(GENESIS_PREFIX, new Uint8Array([0]), utf8(ref)));
}

/** Encodes a stored entry. */
export function encodeArchiveEntry(e: ArchiveEntry): Uint8Array {
  if (!Number.isSafeInteger(e.index) || e.index < 0 || e.index > 0xffffffff) throw new ParleyError('USAGE', 'index must be a u32');
  if (!(e.prevHash instanceof Uint8Array) || e.prevHash.length !== 32) throw new ParleyError('USAGE', 'prevHash must be 32 bytes');
  return new Writer().u8(ARCHIVE_ENTRY_FORMAT).u32(e.index).fixed(e.prevHash).fixed(encodeArchiveSubmission(e.submission)).finish();
}

/** @throws ParleyError `MALFORMED_MESSAGE`. */
export function decodeArchiveEntry(bytes: Uint8Array): ArchiveEntry {
  const r = new Reader(bytes, 'MALFORMED_MESSAGE');
  if (r.u8() !== ARCHIVE_ENTRY_FORMAT) r.fail('unsupported archive entry format');
  const index = r.u32();
  const prevHash = r.fixed(32);
  return { index, prevHash, submission: decodeArchiveSubmission(r.rest()) };
}

/** SHA-256 of an encoded entry (what the next entry names). */
export function archiveEntryHash(encoded: Uint8Array): Uint8Array {
  return getCrypto().sha256(encoded);
}

/**
 * The relay's append: the next entry of a chain whose last stored entry is `last` (encoded), or
 * entry 0 when there is none. Checks the submission's signature.
 * @throws ParleyError `INVALID_SIGNATURE` for a submission whose signature does not verify.
 */
export function chainArchiveEntry(submission: ArchiveSubmission, last: Uint8Array | undefined): Uint8Array {
  if (!verifyArchiveSubmission(submission)) throw new ParleyError('INVALID_SIGNATURE', 'archive submission signature does not verify');
  if (last === undefined) return encodeArchiveEntry({ index: 0, prevHash: archiveGenesisHash(submission.ref), submission });
  const prev = decodeArchiveEntry(last);
  return encodeArchiveEntry({ index: prev.index + 1, prevHash: archiveEntryHash(last), submission });
}

/** One break in a chain, as {@link verifyArchiveChain} names it. Indices are the entries' own. */
export type ArchiveBreak =
  | { readonly kind: 'deleted'; readonly index: number }
  | { readonly kind: 'reordered'; readonly index: number; readonly with: number }
  | { readonly kind: 'replaced'; readonly index: number; readonly why: 'malformed' | 'signature' | 'hash' | 'ref' | 'duplicate' }
  | { readonly kind: 'senderGap'; readonly index: number; readonly sender: string; readonly expected: number; readonly got: number };

/** The verdict over one chain. */
export interface ArchiveChainReport {
  readonly ref: string;
  readonly entries: number;
  readonly ok: boolean;
  readonly breaks: readonly ArchiveBreak[];
}

/** A break in people's words: "entry 3 deleted", "entries 2 and 5 reordered", "entry 4 replaced". */
export function describeArchiveBreak(b: ArchiveBreak): string {
  switch (b.kind) {
    case 'deleted':
      return `entry ${b.index} deleted`;
    case 'reordered':
      return `entries ${b.index} and ${b.with} reordered`;
    case 'replaced':
      return `entry ${b.index} replaced (${b.why})`;
    case 'senderGap':
      return `entry ${b.index}: sender ${b.sender.slice(0, 16)} sequence ${b.got}, expected ${b.expected} (an entry was removed and the chain rewritten)`;
  }
}

/**
 * Verifies one conversation's chain as stored, in storage order, and names every break: an
 * entry missing from the sequence (`deleted`), two entries stored in each other's place
 * (`reordered`), an entry whose bytes changed (`replaced`: bad signature, undecodable, another
 * ref, or not the entry the next one names), and a gap in one sender's sequence numbers.
 */
export function verifyArchiveChain(ref: string, stored: readonly Uint8Array[]): ArchiveChainReport {
  const breaks: ArchiveBreak[] = [];
  interface Slot { readonly pos: number; readonly bytes: Uint8Array; readonly entry?: ArchiveEntry }
  const slots: Slot[] = stored.map((bytes, pos) => {
    try {
      return { pos, bytes, entry: decodeArchiveEntry(bytes) };
    } catch {
      return { pos, bytes };
    }
  });
  // Storage order vs. the entries' own indices: where the stored order differs from the sorted
  // order, the entries at those places were stored in each other's place.
  const stored_ = slots.flatMap((s) => (s.entry === undefined ? [] : [s.entry.index]));
  const sorted = [...stored_].sort((a, b) => a - b);
  const reported = new Set<number>();
  for (let p = 0; p < stored_.length; p++) {
    const a = stored_[p]!;
    const b = sorted[p]!;
    if (a === b || reported.has(a) || reported.has(b)) continue; // ct-ok: public indices
    breaks.push({ kind: 'reordered', index: Math.min(a, b), with: Math.max(a, b) });
    reported.add(a).add(b);
  }
  // The chain in index order.
  const byIndex = new Map<number, Slot>();
  for (const s of slots) {
    if (s.entry === undefined) {
      breaks.push({ kind: 'replaced', index: s.pos, why: 'malformed' });
      continue;
    }
    if (byIndex.has(s.entry.index)) {
      breaks.push({ kind: 'replaced', index: s.entry.index, why: 'duplicate' });
      continue;
    }
    byIndex.set(s.entry.index, s);
  }
  const max = slots.reduce((m, s) => Math.max(m, s.entry?.index ?? s.pos), -1);
  const seqs = new Map<string, number>();
  let prevHash: Uint8Array | undefined = archiveGenesisHash(ref);
  for (let i = 0; i <= max; i++) {
    const s = byIndex.get(i);
    if (s === undefined || s.entry === undefined) {
      if (!slots.some((o) => o.entry === undefined && o.pos === i)) breaks.push({ kind: 'deleted', index: i }); // ct-ok: public indices
      prevHash = undefined;
      continue;
    }
    const e = s.entry;
    if (e.submission.ref !== ref) breaks.push({ kind: 'replaced', index: i, why: 'ref' }); // ct-ok: public refs
    else if (!verifyArchiveSubmission(e.submission)) breaks.push({ kind: 'replaced', index: i, why: 'signature' });
    else if (prevHash !== undefined && !constantTimeEqual(prevHash, e.prevHash)) {
      // This entry names another predecessor: the one before it was replaced.
      if (i > 0 && !breaks.some((b) => b.kind === 'replaced' && b.index === i - 1)) breaks.push({ kind: 'replaced', index: i - 1, why: 'hash' }); // ct-ok: public indices
    }
    const sender = toHex(e.submission.senderKey);
    const expected = seqs.get(sender) ?? 0;
    if (e.submission.senderSeq !== expected && !breaks.some((b) => b.kind === 'deleted' || b.kind === 'replaced')) { // ct-ok: public counters
      breaks.push({ kind: 'senderGap', index: i, sender, expected, got: e.submission.senderSeq });
    }
    seqs.set(sender, e.submission.senderSeq + 1);
    prevHash = archiveEntryHash(s.bytes);
  }
  return { ref, entries: stored.length, ok: breaks.length === 0, breaks };
}

/** The plaintext of one archived message (JSON inside the sealed box). */
export interface ArchivedMessage {
  /** The conversation id (engine). */
  readonly conversation: string;
  /** Message id. */
  readonly id: string;
  /** Sender device id. */
  readonly from: string;
  /** ms since the epoch. */
  readonly at: number;
  /** The message text (or content type and body for other content). */
  readonly body: string;
}

/** Encodes an archived message for {@link sealToArchiveKey}. */
export function encodeArchivedMessage(m: ArchivedMessage): Uint8Array {
  return utf8(JSON.stringify({ conversation: m.conversation, id: m.id, from: m.from, at: m.at, body: m.body }));
}

/** @throws ParleyError `MALFORMED_MESSAGE`. */
export function decodeArchivedMessage(bytes: Uint8Array): ArchivedMessage {
  try {
    const v = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes)) as Record<string, unknown>;
    if (typeof v.conversation !== 'string' || typeof v.id !== 'string' || typeof v.from !== 'string' || typeof v.at !== 'number' || typeof v.body !== 'string') {
      throw new Error('shape');
    }
    return { conversation: v.conversation, id: v.id, from: v.from, at: v.at, body: v.body };
  } catch {
    throw new ParleyError('MALFORMED_MESSAGE', 'not an archived message');
  }
}
