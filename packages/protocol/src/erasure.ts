/**
 * Erasure requests and deletion receipts (docs/threats.md P4). Pure, no I/O.
 *
 * The owner of a conversation (the customer's device) signs an **erasure request** naming the
 * conversation, its members and the time; each member, once it deleted the conversation's
 * records, answers a **deletion receipt** naming the conversation, the SHA-256 of the request's
 * signed bytes, itself and the time. Both are signed by the device's Ed25519 identity key under
 * the `erasure` context over canonical JSON (fixed key order, a `t` field telling the two apart),
 * so a receipt never verifies as a request or as any other statement.
 */
import { ParleyError } from './errors.js';
import { getCrypto } from './crypto/index.js';
import { toHex } from './bytes.js';
import { verifyContextSignature } from './identity-public.js';

/** An owner's request that every member deletes a conversation. */
export interface ErasureRequest {
  /** Conversation id. */
  readonly conversation: string;
  /** The owner's device id (the signer). */
  readonly owner: string;
  /** Device ids of the members asked (the owner excluded), sorted on encoding. */
  readonly members: readonly string[];
  /** When the owner asked, ms since the epoch. */
  readonly at: number;
}

/** A member's statement that it deleted a conversation. */
export interface DeletionReceipt {
  /** Conversation id. */
  readonly conversation: string;
  /** SHA-256 (hex) of the erasure request's signed payload ({@link erasureRequestHash}). */
  readonly request: string;
  /** The member's device id (the signer). */
  readonly member: string;
  /** When the member deleted, ms since the epoch. */
  readonly at: number;
}

const encoder = new TextEncoder();
const HEX32 = /^[0-9a-f]{32}$/;
const HEX64 = /^[0-9a-f]{64}$/;
const CONVERSATION = /^[A-Za-z0-9_-]{22}$/;

function usage(what: string): never {
  throw new ParleyError('USAGE', `erasure statement: ${what}`);
}

function checkTime(at: number): void {
  if (!Number.isSafeInteger(at) || at < 0) usage('time must be a whole number of ms ≥ 0');
}

/** The signed bytes of an erasure request (canonical JSON). @throws ParleyError `USAGE` for a bad field. */
export function erasureRequestPayload(r: ErasureRequest): Uint8Array {
  if (!CONVERSATION.test(r.conversation)) usage('bad conversation id');
  if (!HEX32.test(r.owner)) usage('bad owner device id');
  if (!Array.isArray(r.members) || r.members.length > 20 || !r.members.every((m) => HEX32.test(m))) usage('bad member list');
  checkTime(r.at);
  const members = [...new Set(r.members)].sort();
  return encoder.encode(JSON.stringify({ t: 'erasureRequest', conversation: r.conversation, owner: r.owner, members, at: r.at }));
}

/** SHA-256 (hex) of an erasure request's signed bytes: what deletion receipts name. */
export function erasureRequestHash(r: ErasureRequest): string {
  return toHex(getCrypto().sha256(erasureRequestPayload(r)));
}

/** The signed bytes of a deletion receipt (canonical JSON). @throws ParleyError `USAGE` for a bad field. */
export function deletionReceiptPayload(r: DeletionReceipt): Uint8Array {
  if (!CONVERSATION.test(r.conversation)) usage('bad conversation id');
  if (!HEX64.test(r.request)) usage('bad request hash');
  if (!HEX32.test(r.member)) usage('bad member device id');
  checkTime(r.at);
  return encoder.encode(JSON.stringify({ t: 'deletionReceipt', conversation: r.conversation, request: r.request, member: r.member, at: r.at }));
}

function check(ok: boolean, what: string): void {
  if (!ok) throw new ParleyError('INVALID_SIGNATURE', `${what} signature does not verify: it was altered or signed by another key; it was ignored`);
}

/**
 * Verifies an erasure request signed by `signingKey` (the owner's Ed25519 identity key).
 * @throws ParleyError `INVALID_SIGNATURE`, `USAGE` for a bad field.
 */
export function verifyErasureRequest(signingKey: Uint8Array, r: ErasureRequest, signature: Uint8Array): void {
  check(verifyContextSignature(signingKey, 'erasure', erasureRequestPayload(r), signature), 'erasure request');
}

/**
 * Verifies a deletion receipt signed by `signingKey` (the member's Ed25519 identity key).
 * @throws ParleyError `INVALID_SIGNATURE`, `USAGE` for a bad field.
 */
export function verifyDeletionReceipt(signingKey: Uint8Array, r: DeletionReceipt, signature: Uint8Array): void {
  check(verifyContextSignature(signingKey, 'erasure', deletionReceiptPayload(r), signature), 'deletion receipt');
}
