/**
 * The engine's stored records and their encodings. Key layout:
 * ```
 *  account                      Account pickle (identity, prekeys)
 *  meta                         JSON { format, version, deviceId }
 *  peer/<device>                JSON PeerRecord (identity, session order, counters, certificate, block)
 *  session/<device>/<sessionId> Session pickle
 *  seen/<device>/<bucket>       message ids already received from <device>, "\n"-joined
 *  label/<label>                device id the label points at
 *  outbox/<n>                   an encrypted envelope not yet acked by the relay
 *  inbox/<n>                    a decrypted message not yet consumed by the app
 *  receipts/<device>            ids received from <device> whose receipt is not encrypted yet, "\n"-joined
 *  revocations                  JSON: the newest verified staff revocation list per issuer (hex)
 * ```
 * Every record is written together with the records it depends on in one atomic `setMany`.
 */
import { ParleyError, fromHex, toHex, type PublicIdentity } from '@parley/protocol';
import { ByteReader as Reader, ByteWriter as Writer } from '@parley/protocol';
import type { OrgRole, VerifiedStaff } from '@parley/protocol';
import type { PayloadType } from './payload.js';
import type { StoredDisclosure } from './archive-disclosure.js';
import { isMissingList, type MissingSeq } from './gaps.js';

export const STORE_FORMAT = 'parley-client-engine';
export const STORE_VERSION = 1;

export const K = {
  account: 'account',
  meta: 'meta',
  peer: (peer: string) => `peer/${peer}`,
  session: (peer: string, sessionId: string) => `session/${peer}/${sessionId}`,
  seen: (peer: string, bucket: number) => `seen/${peer}/${bucket}`,
  label: (label: string) => `label/${label}`,
  outbox: (n: number) => `outbox/${String(n).padStart(12, '0')}`,
  inbox: (n: number) => `inbox/${String(n).padStart(12, '0')}`,
  receipts: (peer: string) => `receipts/${peer}`,
  /** The inner payload of a message sent to `peer` and not yet receipted (`healing.ts`). */
  unconfirmed: (peer: string, id: string) => `unconfirmed/${peer}/${id}`,
  /** The newest verified staff revocation list per issuer (`peer-trust.ts`). */
  revocations: 'revocations',
} as const;

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

export function jsonBytes(value: unknown): Uint8Array {
  return encoder.encode(JSON.stringify(value));
}

export function parseJsonRecord<T>(bytes: Uint8Array, what: string): T {
  try {
    return JSON.parse(decoder.decode(bytes)) as T;
  } catch (cause) {
    throw new ParleyError('STORAGE_INTEGRITY', `stored ${what} is not valid`, { cause });
  }
}

/** A verified org certificate, as remembered for a peer. */
export interface StoredCertificate {
  readonly role: OrgRole;
  readonly label: string;
  readonly expiresAt: number;
  /** The certificate bytes, hex. */
  readonly bytes: string;
}

/**
 * A verified staff credential (org key → issuer → device), as remembered for a peer: what the
 * verifier returned ({@link VerifiedStaff}), with the issuer key as hex, and the credential.
 */
export interface StoredStaff extends Omit<VerifiedStaff, 'issuerKey'> {
  /** The issuer key, hex. */
  readonly issuerKey: string;
  /** The credential bytes, hex. */
  readonly bytes: string;
}

/** A verified bot attestation, as remembered for a peer. */
export interface StoredAttestation {
  /** The attested measurement, hex (equal to the pin when it was verified). */
  readonly measurement: string;
  /** When the bot's enclave signed it, ms since the epoch. */
  readonly issuedAt: number;
  /** The encoded attestation, hex. */
  readonly bytes: string;
  /** When an org-signed release manifest allowed the measurement (trust `releaseManifests`). */
  readonly release?: StoredRelease;
}

/** The release manifest that allowed a peer's attested measurement, as remembered. */
export interface StoredRelease {
  readonly version: string;
  /** The bot label it was made for (the peer's certified label when verified). */
  readonly label: string;
  /** The org key that signed it, hex. */
  readonly orgKey: string;
  readonly validFrom: number;
  readonly validUntil?: number;
}

/** What the engine knows about one peer device. */
export interface PeerRecord {
  readonly v: 1;
  /** Identity keys (hex), recorded on first contact (TOFU). */
  identity?: { readonly signingKey: string; readonly dhKey: string; readonly binding: string };
  /** Session ids, most recently used first. */
  sessions: string[];
  /** Last conversation seq sent to this peer. */
  sendSeq: number;
  /** Highest conversation seq received from this peer. */
  recvSeq: number;
  /** Current seen-id bucket. */
  seenBucket: number;
  cert?: StoredCertificate;
  /** A verified staff credential, when the peer's certificate statement is one. */
  staff?: StoredStaff;
  /** A verified bot attestation (THREATS B3), when the trust policy asked for one. */
  att?: StoredAttestation;
  /** Set while an identity change waits for `acceptIdentityChange`. */
  blocked?: { readonly label: string; readonly previous: string };
  /** Sequence numbers skipped over and not received yet (`gaps.ts`). */
  missing?: MissingSeq[];
  /**
   * Sessions archived by a session reset (`healing.ts`): still tried when a message arrives (it
   * may have been in flight), never used to send. Most recently archived first.
   */
  archived?: string[];
  /** Messages sent to this peer and not receipted yet, oldest first (their payloads: `K.unconfirmed`). */
  unconfirmed?: UnconfirmedEntry[];
  /** The last session reset this device applied at the peer's request. */
  lastReset?: { readonly at: number; readonly requestSentAt: number };
  /** A verified compliance archive disclosure and when it was first verified (archive-disclosure.ts). */
  disclosure?: StoredDisclosure;
}

/** A message kept for resending until the peer's receipt lists it. */
export interface UnconfirmedEntry {
  readonly id: string;
  /** When it was first sent, ms. */
  readonly at: number;
  /** How many times it was resent after a session reset. */
  readonly resent: number;
}

function isUnconfirmedList(v: unknown): v is UnconfirmedEntry[] {
  return Array.isArray(v) && v.every((e: UnconfirmedEntry) => typeof e?.id === 'string' && Number.isSafeInteger(e.at) && Number.isSafeInteger(e.resent));
}

export function newPeerRecord(): PeerRecord {
  return { v: 1, sessions: [], sendSeq: 0, recvSeq: 0, seenBucket: 0 };
}

/**
 * A copy of `p` to change and persist: its lists are copied (they are changed in place), its
 * nested objects are shared — they are values, replaced whole and never changed in place (their
 * types are read-only), which also lets {@link encodePeerRecord} reuse their JSON.
 */
export function clonePeer(p: PeerRecord): PeerRecord {
  const c: PeerRecord = { ...p, sessions: [...p.sessions] };
  if (p.missing) c.missing = p.missing.map((m): MissingSeq => [m[0], m[1], m[2]]);
  if (p.archived) c.archived = [...p.archived];
  if (p.unconfirmed) c.unconfirmed = [...p.unconfirmed];
  return c;
}

/** The JSON of a peer record's nested value objects (never changed in place, see {@link clonePeer}). */
const valueJson = new WeakMap<object, string>();

function objectJson(v: object): string {
  let json = valueJson.get(v);
  if (json === undefined) {
    json = JSON.stringify(v);
    valueJson.set(v, json);
  }
  return json;
}

/**
 * `jsonBytes(p)`, reusing the JSON of the nested value objects (identity, certificate,
 * attestation, disclosure, the unconfirmed entries…) from the last encode of a record sharing
 * them: a peer record is written with every message, and those parts never change.
 */
export function encodePeerRecord(p: PeerRecord): Uint8Array {
  let json = '';
  for (const [k, v] of Object.entries(p)) {
    if (v === undefined) continue;
    let part: string;
    if (k === 'unconfirmed') part = `[${(v as UnconfirmedEntry[]).map(objectJson).join(',')}]`;
    else if (typeof v === 'object' && v !== null && !Array.isArray(v)) part = objectJson(v);
    else part = JSON.stringify(v);
    json += `${json === '' ? '{' : ','}${JSON.stringify(k)}:${part}`;
  }
  return encoder.encode(json === '' ? '{}' : `${json}}`);
}

export function decodePeerRecord(bytes: Uint8Array): PeerRecord {
  const p = parseJsonRecord<PeerRecord>(bytes, 'peer record');
  const ok =
    typeof p === 'object' && p !== null && p.v === 1 && Array.isArray(p.sessions) &&
    p.sessions.every((s) => typeof s === 'string' && /^[0-9a-f]{32}$/.test(s)) &&
    Number.isSafeInteger(p.sendSeq) && Number.isSafeInteger(p.recvSeq) && Number.isSafeInteger(p.seenBucket) &&
    (p.missing === undefined || isMissingList(p.missing)) &&
    (p.archived === undefined || (Array.isArray(p.archived) && p.archived.every((s) => typeof s === 'string' && /^[0-9a-f]{32}$/.test(s)))) &&
    (p.unconfirmed === undefined || isUnconfirmedList(p.unconfirmed)) &&
    (p.lastReset === undefined || (Number.isSafeInteger(p.lastReset.at) && Number.isSafeInteger(p.lastReset.requestSentAt)));
  if (!ok) throw new ParleyError('STORAGE_INTEGRITY', 'stored peer record is not valid');
  return p;
}

export function identityToRecord(id: PublicIdentity): NonNullable<PeerRecord['identity']> {
  return { signingKey: toHex(id.signingKey), dhKey: toHex(id.dhKey), binding: toHex(id.binding) };
}

export function identityFromRecord(r: NonNullable<PeerRecord['identity']>): PublicIdentity {
  try {
    return { signingKey: fromHex(r.signingKey), dhKey: fromHex(r.dhKey), binding: fromHex(r.binding) };
  } catch (cause) {
    throw new ParleyError('STORAGE_INTEGRITY', 'stored identity is not valid', { cause });
  }
}

/** An encrypted envelope ready for the relay's `send`. */
export interface OutgoingEnvelope {
  readonly to: string;
  readonly id: string;
  readonly envelope: Uint8Array;
}

export function encodeOutbox(e: OutgoingEnvelope, createdAt: number): Uint8Array {
  return new Writer().shortString(e.to).shortString(e.id).u64(createdAt).bytes(e.envelope).finish();
}

export function decodeOutbox(bytes: Uint8Array): OutgoingEnvelope & { createdAt: number } {
  const r = new Reader(bytes, 'STORAGE_INTEGRITY');
  const to = r.shortString();
  const id = r.shortString();
  const createdAt = r.u64();
  const envelope = r.bytes(1 << 20);
  r.end();
  return { to, id, envelope, createdAt };
}

/** A decrypted message kept until the app has consumed it. */
export interface ReceivedMessage {
  readonly from: string;
  readonly id: string;
  readonly type: PayloadType;
  readonly payload: Uint8Array;
  readonly sentAt: number;
  readonly seq: number;
  readonly sessionId: string;
  readonly receivedAt: number;
}

/** Index = stored code: append only (stored inbox records keep their codes). */
const TYPES: PayloadType[] = ['text', 'json', 'receipt', 'binary', 'conversation'];

export function encodeInbox(m: ReceivedMessage): Uint8Array {
  return new Writer()
    .shortString(m.from).shortString(m.id).u8(TYPES.indexOf(m.type)).u64(m.sentAt).u32(m.seq)
    .shortString(m.sessionId).u64(m.receivedAt).bytes(m.payload)
    .finish();
}

export function decodeInbox(bytes: Uint8Array): ReceivedMessage {
  const r = new Reader(bytes, 'STORAGE_INTEGRITY');
  const from = r.shortString();
  const id = r.shortString();
  const type = TYPES[r.u8()] ?? r.fail('unknown payload type');
  const sentAt = r.u64();
  const seq = r.u32();
  const sessionId = r.shortString();
  const receivedAt = r.u64();
  const payload = r.bytes(1 << 20);
  r.end();
  return { from, id, type, sentAt, seq, sessionId, receivedAt, payload };
}

export function encodeSeen(ids: readonly string[]): Uint8Array {
  return encoder.encode(ids.join('\n'));
}

export function decodeSeen(bytes: Uint8Array): string[] {
  try {
    const text = decoder.decode(bytes);
    return text === '' ? [] : text.split('\n');
  } catch (cause) {
    throw new ParleyError('STORAGE_INTEGRITY', 'stored seen-id record is not valid', { cause });
  }
}

/** Parses the trailing counter of `outbox/<n>` / `inbox/<n>` keys. */
export function counterOf(key: string): number {
  const n = Number(key.slice(key.lastIndexOf('/') + 1));
  if (!Number.isSafeInteger(n) || n < 0) throw new ParleyError('STORAGE_INTEGRITY', 'stored key is not valid');
  return n;
}
