/**
 * The plaintext inside every ratchet message: a small versioned envelope, so the message id,
 * its kind, the send time and a per-conversation sequence number are authenticated end to end.
 * The relay's `id` must equal the inner id, or the message is rejected (docs/threats.md R4), and the
 * sequence number lets a receiver notice withheld messages later (C25).
 *
 * Layout (version 1):
 * ```
 *  offset  size  field
 *  0       1     version = 0x01
 *  1       1     kind: 1 text, 2 json, 3 receipt, 4 binary, 5 conversation
 *  2       8     sentAt, ms since the epoch (u64 BE), sender's clock
 *  10      4     seq: the sender's message counter in this conversation, from 1 (u32 BE)
 *  14      1     id length n (1..64)
 *  15      n     id, ASCII [A-Za-z0-9_-]
 *  15+n    ...   body: text = UTF-8, json = UTF-8 JSON text, receipt = ids joined by ",", binary = bytes,
 *                conversation = a conversation frame (UTF-8 JSON, `conversations/frame.ts`)
 * ```
 * Never compressed (docs/threats.md C23); the ratchet pads the whole plaintext to 256-byte buckets.
 */
import { ParleyError } from '@parley/protocol';
import { MESSAGE_ID_PATTERN } from '@parley/protocol/wire';
import { ByteReader as Reader, ByteWriter as Writer } from '@parley/protocol';

export const PAYLOAD_VERSION = 0x01;

/**
 * What a message carries. `conversation`: a frame of a conversation with several members
 * (`ConversationBook`; the body is decoded and validated there, not here).
 */
export type PayloadType = 'text' | 'json' | 'receipt' | 'binary' | 'conversation';

const KIND_CODES: Record<PayloadType, number> = { text: 1, json: 2, receipt: 3, binary: 4, conversation: 5 };
const KIND_NAMES: Record<number, PayloadType> = { 1: 'text', 2: 'json', 3: 'receipt', 4: 'binary', 5: 'conversation' };

/** Most message ids one receipt acknowledges. */
export const MAX_RECEIPT_IDS = 100;

/** A decoded inner payload. */
export interface InnerPayload {
  readonly id: string;
  readonly type: PayloadType;
  readonly sentAt: number;
  readonly seq: number;
  readonly body: Uint8Array;
}

/** Checks a message id against the relay contract's pattern. */
export function assertMessageId(id: unknown, name = 'messageId'): asserts id is string {
  if (typeof id !== 'string' || !MESSAGE_ID_PATTERN.test(id)) {
    throw new ParleyError('USAGE', `${name} must be 1-64 chars of [A-Za-z0-9_-]`);
  }
}

/** Encodes an inner payload. @throws ParleyError `USAGE` for a bad id, kind or seq. */
export function encodePayload(p: InnerPayload): Uint8Array {
  assertMessageId(p.id, 'id');
  const kind = KIND_CODES[p.type];
  if (kind === undefined) throw new ParleyError('USAGE', 'unknown payload type');
  if (!Number.isInteger(p.seq) || p.seq < 0 || p.seq > 0xffffffff) throw new ParleyError('USAGE', 'seq must be a u32');
  return new Writer().u8(PAYLOAD_VERSION).u8(kind).u64(p.sentAt).u32(p.seq).shortString(p.id).fixed(p.body).finish();
}

/**
 * Decodes an inner payload (already authenticated by the ratchet, but still parsed defensively).
 * @throws ParleyError `UNSUPPORTED_VERSION` for another version, `MALFORMED_MESSAGE` otherwise.
 */
export function decodePayload(bytes: Uint8Array): InnerPayload {
  const r = new Reader(bytes, 'MALFORMED_MESSAGE');
  const version = r.u8();
  if (version !== PAYLOAD_VERSION) throw new ParleyError('UNSUPPORTED_VERSION', 'unsupported payload version', { details: { version } });
  const type = KIND_NAMES[r.u8()] ?? r.fail('unknown payload kind');
  const sentAt = r.u64();
  const seq = r.u32();
  const id = r.shortString();
  if (!MESSAGE_ID_PATTERN.test(id)) r.fail('invalid message id');
  const body = r.rest();
  return { id, type, sentAt, seq, body };
}

/** Body of a `receipt` payload. */
export function encodeReceiptBody(ids: readonly string[]): Uint8Array {
  if (ids.length === 0 || ids.length > MAX_RECEIPT_IDS) throw new ParleyError('USAGE', `a receipt acknowledges 1-${MAX_RECEIPT_IDS} ids`);
  for (const id of ids) assertMessageId(id, 'receipt id');
  return new TextEncoder().encode(ids.join(','));
}

/** @throws ParleyError `MALFORMED_MESSAGE` for a bad receipt body. */
export function decodeReceiptBody(body: Uint8Array): string[] {
  const r = new Reader(body, 'MALFORMED_MESSAGE');
  const ids = r.utf8(r.rest()).split(',');
  if (ids.length > MAX_RECEIPT_IDS || !ids.every((id) => MESSAGE_ID_PATTERN.test(id))) {
    throw new ParleyError('MALFORMED_MESSAGE', 'malformed receipt');
  }
  return ids;
}
