/**
 * Erasure of a conversation (docs/threats.md P4): the `erase` and `deletionReceipt` frames'
 * fields, the signed statements they carry (`@parley/protocol` erasure.ts), and the tombstone the
 * owner keeps (conversation id, members, the request, the receipts) once everything else of the
 * conversation was deleted. Used by the {@link ConversationBook}; no state of its own.
 *
 * Store layout: `erasure/<id>` JSON {@link Tombstone} (outside `conv/`, so nothing of the
 * conversation is loaded again).
 */
import {
  ParleyError,
  deletionReceiptPayload,
  erasureRequestHash,
  erasureRequestPayload,
  fromBase64,
  toBase64,
  verifyDeletionReceipt,
  verifyErasureRequest,
  type DeletionReceipt,
  type ErasureRequest,
} from '@parley/protocol';
import { DEVICE_ID_PATTERN } from '@parley/protocol/wire';
import type { KeyValueStore } from '../store.js';
import type { Member } from './types.js';

/** What the book needs to sign and verify erasure statements (the engine's identity key and its peers' keys). */
export interface ErasureSigner {
  /** Signs `payload` under the `erasure` context with this device's identity key (`engine.signErasure`). */
  sign(payload: Uint8Array): Uint8Array;
  /** The Ed25519 identity key of `peer`, when known (`engine.peerIdentity(peer)?.signingKey`). */
  signingKey(peer: string): Uint8Array | undefined;
}

/** One deletion receipt the owner holds. */
export interface ErasureReceipt {
  /** The member's device id. */
  readonly member: string;
  /** When it deleted (its clock), ms since the epoch. */
  readonly at: number;
  /** Its Ed25519 signature over the receipt (standard base64). */
  readonly signature: string;
}

/** Where an erasure stands: receipts received and members whose receipt is missing. */
export interface ErasureStatus {
  readonly conversation: string;
  /** When the owner asked. */
  readonly requestedAt: number;
  /** SHA-256 (hex) of the signed request. */
  readonly request: string;
  readonly members: Member[];
  readonly receipts: ErasureReceipt[];
  /** Device ids of members that sent no valid receipt yet. */
  readonly missing: string[];
}

/** What stays of an erased conversation on the owner's device. */
export interface Tombstone {
  v: 1;
  id: string;
  owner: string;
  members: Member[];
  request: ErasureRequest;
  hash: string;
  /** The owner's signature over the request (base64). */
  signature: string;
  receipts: ErasureReceipt[];
}

/** Store key of a tombstone. */
export const tombKey = (id: string): string => `erasure/${id}`;

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const B64 = /^[A-Za-z0-9+/]*={0,2}$/;
const HEX64 = /^[0-9a-f]{64}$/;

function bad(what: string): never {
  throw new ParleyError('MALFORMED_MESSAGE', `conversation frame refused: ${what}; the frame was dropped (the sender runs an incompatible or faulty client)`);
}

/** Validates the fields of an `erase` or `deletionReceipt` frame (called by `checkFrame`). */
export function checkErasureFields(k: 'erase' | 'deletionReceipt', v: Record<string, unknown>): { at: number; sig: string; to?: string[]; req?: string } {
  if (!Number.isSafeInteger(v.at) || (v.at as number) < 0) bad('erasure time');
  if (typeof v.sig !== 'string' || v.sig.length > 100 || !B64.test(v.sig)) bad('erasure signature');
  if (k === 'erase') {
    if (!Array.isArray(v.to) || v.to.length > 20 || !v.to.every((d) => typeof d === 'string' && DEVICE_ID_PATTERN.test(d))) bad('erasure members');
    return { at: v.at as number, sig: v.sig, to: [...(v.to as string[])] };
  }
  if (typeof v.req !== 'string' || !HEX64.test(v.req)) bad('erasure request hash');
  return { at: v.at as number, sig: v.sig, req: v.req };
}

/** Owner side: the signed request for the conversation's other members. */
export function signRequest(signer: ErasureSigner, id: string, owner: string, members: readonly Member[], at: number): { request: ErasureRequest; hash: string; signature: string } {
  const request: ErasureRequest = { conversation: id, owner, members: members.map((m) => m.deviceId).filter((d) => d !== owner), at }; // ct-ok: public ids
  return { request, hash: erasureRequestHash(request), signature: toBase64(signer.sign(erasureRequestPayload(request))) };
}

function key(signer: ErasureSigner, peer: string): Uint8Array {
  const k = signer.signingKey(peer);
  if (!k) throw new ParleyError('INVALID_SIGNATURE', 'erasure statement refused: the signer\'s identity is not known to this device; it was ignored');
  return k;
}

/**
 * Member side: checks an `erase` frame's request, signed by `owner`, that names `self`.
 * @throws ParleyError `INVALID_SIGNATURE`, `FORBIDDEN` `notMember` when it does not name this device.
 */
export function checkRequest(signer: ErasureSigner, id: string, owner: string, self: string, to: readonly string[], at: number, sig: string): ErasureRequest {
  const request: ErasureRequest = { conversation: id, owner, members: to, at };
  verifyErasureRequest(key(signer, owner), request, fromBase64(sig));
  if (!to.includes(self)) throw new ParleyError('FORBIDDEN', 'erasure request refused: it does not name this device', { details: { reason: 'notMember', peer: owner } });
  return request;
}

/** Member side: this device's signed receipt for `request`. */
export function signReceipt(signer: ErasureSigner, request: ErasureRequest, self: string, at: number): { receipt: DeletionReceipt; signature: string } {
  const receipt: DeletionReceipt = { conversation: request.conversation, request: erasureRequestHash(request), member: self, at };
  return { receipt, signature: toBase64(signer.sign(deletionReceiptPayload(receipt))) };
}

/**
 * Owner side: adds a receipt from `member` to the tombstone (a copy), after checking it.
 * @throws ParleyError `INVALID_SIGNATURE`, `FORBIDDEN` `notMember` (not asked), `UNTRUSTED_SOURCE` `wrongConversation` (another request).
 */
export function addReceipt(signer: ErasureSigner, tomb: Tombstone, member: string, req: string, at: number, sig: string): Tombstone {
  if (!tomb.request.members.includes(member)) {
    throw new ParleyError('FORBIDDEN', 'deletion receipt refused: the sender was not asked to erase this conversation', { details: { reason: 'notMember', peer: member } });
  }
  if (req !== tomb.hash) { // ct-ok: public hash
    throw new ParleyError('UNTRUSTED_SOURCE', 'deletion receipt refused: it names another erasure request', { details: { reason: 'wrongConversation', peer: member } });
  }
  verifyDeletionReceipt(key(signer, member), { conversation: tomb.id, request: req, member, at }, fromBase64(sig));
  const next = structuredClone(tomb);
  next.receipts = [...next.receipts.filter((r) => r.member !== member), { member, at, signature: sig }]; // ct-ok: public ids
  return next;
}

/** The status of an erasure from its tombstone. */
export function statusOf(t: Tombstone): ErasureStatus {
  const got = new Set(t.receipts.map((r) => r.member));
  return {
    conversation: t.id,
    requestedAt: t.request.at,
    request: t.hash,
    members: t.members.map((m) => ({ ...m })),
    receipts: t.receipts.map((r) => ({ ...r })),
    missing: t.request.members.filter((m) => !got.has(m)),
  };
}

/** JSON bytes of a tombstone. */
export function tombBytes(t: Tombstone): Uint8Array {
  return encoder.encode(JSON.stringify(t));
}

/** Loads every tombstone. @throws ParleyError `STORAGE_INTEGRITY` for one that does not parse. */
export async function loadTombstones(store: KeyValueStore): Promise<Map<string, Tombstone>> {
  const out = new Map<string, Tombstone>();
  for (const k of await store.keys('erasure/')) {
    const bytes = await store.get(k);
    if (!bytes) continue;
    let t: Tombstone;
    try {
      t = JSON.parse(decoder.decode(bytes)) as Tombstone;
      if (t.v !== 1 || typeof t.id !== 'string' || !Array.isArray(t.receipts) || !Array.isArray(t.request?.members)) throw new Error('shape');
    } catch {
      throw new ParleyError('STORAGE_INTEGRITY', 'stored erasure record is not valid: the store was altered or written by another version');
    }
    out.set(t.id, t);
  }
  return out;
}

/** Longest retention, in days (10 years). */
export const MAX_RETENTION_DAYS = 3650;

/** Validates a `members` frame's retention (whole days, 1..{@link MAX_RETENTION_DAYS}). */
export function checkRetention(v: unknown): number {
  if (!Number.isSafeInteger(v) || (v as number) < 1 || (v as number) > MAX_RETENTION_DAYS) bad('retention');
  return v as number;
}

/** The same for the owner's own option. @throws ParleyError `USAGE`. */
export function retentionOrUsage(v: number): number {
  if (!Number.isSafeInteger(v) || v < 1 || v > MAX_RETENTION_DAYS) throw new ParleyError('USAGE', `retentionDays must be a whole number of days, 1-${MAX_RETENTION_DAYS}`);
  return v;
}
