/**
 * The binary wire format of 1:1 messages, version 1.
 *
 * Every message starts with a version byte and a type byte; the parser checks every length
 * against the buffer before reading and rejects unknown versions (`UNSUPPORTED_VERSION`) and
 * types or bad lengths (`MALFORMED_MESSAGE`). Integers are big-endian.
 *
 * Message (type 0x02), a Double Ratchet message with header encryption:
 * ```
 *  offset  size  field
 *  0       1     version = 0x01
 *  1       1     type    = 0x02
 *  2       24    header nonce (random)
 *  26      56    encrypted header: XChaCha20-Poly1305(HK, header nonce, header, AD || bytes[0..2])
 *                header = ratchet public key (32) || PN (u32) || N (u32)
 *  82      24    body nonce (random)
 *  106     n     body: XChaCha20-Poly1305(MK, body nonce, padded plaintext, AD || bytes[0..82])
 *                n >= 16 + 256 (one padding bucket plus the tag)
 * ```
 *
 * Prekey message (type 0x01), sent by the initiator until it hears back:
 * ```
 *  offset  size  field
 *  0       1     version = 0x01
 *  1       1     type    = 0x01
 *  2       32    initiator Ed25519 identity key
 *  34      32    initiator X25519 identity key
 *  66      64    identity binding signature (context identityBinding)
 *  130     32    base key (the initiator's X3DH ephemeral key EK_A)
 *  162     4     signed prekey id
 *  166     1     flags: bit 0 set = a one-time prekey was used; other bits must be 0
 *  167     4     one-time prekey id (0 when flag bit 0 is clear)
 *  171     ...   a complete type-0x02 message
 * ```
 */
import { ParleyError } from '../errors.js';
import { ByteReader, ByteWriter } from '../codec.js';
import type { PublicIdentity } from '../identity-public.js';

export const WIRE_VERSION = 0x01;
/** Message types; 0x03 is the signed session reset request (`./reset.ts`), never a ratchet message. */
export const MESSAGE_TYPE = { prekey: 0x01, message: 0x02, sessionReset: 0x03 } as const;

export const NONCE_BYTES = 24;
export const TAG_BYTES = 16;
/** Plaintext header: ratchet key (32) + PN (4) + N (4). */
export const HEADER_BYTES = 40;
export const ENCRYPTED_HEADER_BYTES = HEADER_BYTES + TAG_BYTES;
/** Plaintext is padded to a multiple of this (THREATS C23: lengths leak only the bucket). */
export const PADDING_BUCKET = 256;
/** Offset of the body nonce; bytes [0, BODY_AD_END) are authenticated with the body. */
export const BODY_AD_END = 2 + NONCE_BYTES + ENCRYPTED_HEADER_BYTES;
const MESSAGE_MIN = BODY_AD_END + NONCE_BYTES + PADDING_BUCKET + TAG_BYTES;
const PREKEY_PREFIX = 171;

/** A parsed type-0x02 message. Fields are views into the original buffer. */
export interface RatchetMessage {
  readonly type: typeof MESSAGE_TYPE.message;
  readonly headerNonce: Uint8Array;
  readonly encryptedHeader: Uint8Array;
  readonly bodyNonce: Uint8Array;
  readonly body: Uint8Array;
  /** Bytes [0, 82) of this message, authenticated together with the body. */
  readonly authenticatedPrefix: Uint8Array;
  /** The whole encoded message. */
  readonly bytes: Uint8Array;
}

/** A parsed type-0x01 message. */
export interface PrekeyMessage {
  readonly type: typeof MESSAGE_TYPE.prekey;
  readonly identity: PublicIdentity;
  readonly baseKey: Uint8Array;
  readonly signedPrekeyId: number;
  readonly oneTimePrekeyId: number | null;
  readonly message: RatchetMessage;
}

export type WireMessage = RatchetMessage | PrekeyMessage;

function checkVersion(bytes: Uint8Array): void {
  if (!(bytes instanceof Uint8Array) || bytes.length < 2) {
    throw new ParleyError('MALFORMED_MESSAGE', 'message is too short', { details: { length: bytes?.length ?? 0 } });
  }
  if (bytes[0] !== WIRE_VERSION) {
    throw new ParleyError('UNSUPPORTED_VERSION', 'unsupported message version', { details: { version: bytes[0]! } });
  }
}

function parseRatchet(bytes: Uint8Array): RatchetMessage {
  checkVersion(bytes);
  if (bytes[1] !== MESSAGE_TYPE.message) {
    throw new ParleyError('MALFORMED_MESSAGE', 'expected a ratchet message', { details: { type: bytes[1]! } });
  }
  if (bytes.length < MESSAGE_MIN || (bytes.length - BODY_AD_END - NONCE_BYTES - TAG_BYTES) % PADDING_BUCKET !== 0) {
    throw new ParleyError('MALFORMED_MESSAGE', 'message has an invalid length', { details: { length: bytes.length } });
  }
  return {
    type: MESSAGE_TYPE.message,
    headerNonce: bytes.subarray(2, 26),
    encryptedHeader: bytes.subarray(26, BODY_AD_END),
    bodyNonce: bytes.subarray(BODY_AD_END, BODY_AD_END + NONCE_BYTES),
    body: bytes.subarray(BODY_AD_END + NONCE_BYTES),
    authenticatedPrefix: bytes.subarray(0, BODY_AD_END),
    bytes,
  };
}

/**
 * Parses any version-1 message.
 * @throws ParleyError `UNSUPPORTED_VERSION` or `MALFORMED_MESSAGE`.
 */
export function parseMessage(bytes: Uint8Array): WireMessage {
  checkVersion(bytes);
  const type = bytes[1];
  if (type === MESSAGE_TYPE.message) return parseRatchet(bytes);
  if (type !== MESSAGE_TYPE.prekey) {
    throw new ParleyError('MALFORMED_MESSAGE', 'unknown message type', { details: { type: type! } });
  }
  const r = new ByteReader(bytes, 'MALFORMED_MESSAGE');
  r.fixed(2);
  const signingKey = r.fixed(32);
  const dhKey = r.fixed(32);
  const binding = r.fixed(64);
  const baseKey = r.fixed(32);
  const signedPrekeyId = r.u32();
  const flags = r.u8();
  if ((flags & ~1) !== 0) r.fail('unknown prekey message flags');
  const opkId = r.u32();
  if ((flags & 1) === 0 && opkId !== 0) r.fail('one-time prekey id without flag');
  const message = parseRatchet(bytes.subarray(PREKEY_PREFIX));
  return {
    type: MESSAGE_TYPE.prekey,
    identity: { signingKey, dhKey, binding },
    baseKey,
    signedPrekeyId,
    oneTimePrekeyId: (flags & 1) === 1 ? opkId : null,
    message,
  };
}

/** Encodes the fixed prefix [0, 82) of a ratchet message: version, type, header nonce, encrypted header. */
export function encodeRatchetPrefix(headerNonce: Uint8Array, encryptedHeader: Uint8Array): Uint8Array {
  return encodeRatchetPrefixInto(new Uint8Array(BODY_AD_END), headerNonce, encryptedHeader);
}

/**
 * Writes {@link encodeRatchetPrefix}'s bytes into `out[0, 82)` (the start of the message being
 * assembled) and returns `out`.
 * @throws ParleyError `USAGE` for a nonce or encrypted header of the wrong size.
 */
export function encodeRatchetPrefixInto<T extends Uint8Array>(out: T, headerNonce: Uint8Array, encryptedHeader: Uint8Array): T {
  if (headerNonce.length !== NONCE_BYTES || encryptedHeader.length !== ENCRYPTED_HEADER_BYTES || out.length < BODY_AD_END) {
    throw new ParleyError('USAGE', 'ratchet message prefix fields have the wrong size');
  }
  out[0] = WIRE_VERSION;
  out[1] = MESSAGE_TYPE.message;
  out.set(headerNonce, 2);
  out.set(encryptedHeader, 2 + NONCE_BYTES);
  return out;
}

/** Wraps a ratchet message into a prekey message. */
export function encodePrekeyMessage(p: Omit<PrekeyMessage, 'type' | 'message'>, ratchetMessage: Uint8Array): Uint8Array {
  return new ByteWriter(PREKEY_PREFIX + ratchetMessage.length)
    .u8(WIRE_VERSION)
    .u8(MESSAGE_TYPE.prekey)
    .fixed(p.identity.signingKey)
    .fixed(p.identity.dhKey)
    .fixed(p.identity.binding)
    .fixed(p.baseKey)
    .u32(p.signedPrekeyId)
    .u8(p.oneTimePrekeyId === null ? 0 : 1)
    .u32(p.oneTimePrekeyId ?? 0)
    .fixed(ratchetMessage)
    .finish();
}

/** Encodes the 40-byte plaintext header. */
export function encodeHeader(ratchetKey: Uint8Array, pn: number, n: number): Uint8Array {
  // Once per message: written directly rather than through a ByteWriter (same bytes).
  if (ratchetKey.length !== 32) throw new ParleyError('USAGE', 'ratchet key must be 32 bytes');
  const out = new Uint8Array(HEADER_BYTES);
  out.set(ratchetKey, 0);
  writeU32(out, 32, pn);
  writeU32(out, 36, n);
  return out;
}

/** Decodes a 40-byte plaintext header (only ever called on authenticated bytes). */
export function decodeHeader(bytes: Uint8Array): { ratchetKey: Uint8Array; pn: number; n: number } {
  if (bytes.length !== HEADER_BYTES) {
    // The ByteReader's verdict for a short or long header, kept for the one caller that could see it.
    const r = new ByteReader(bytes, 'MALFORMED_MESSAGE');
    r.fixed(32);
    r.u32();
    r.u32();
    r.end();
  }
  return { ratchetKey: bytes.slice(0, 32), pn: readU32(bytes, 32), n: readU32(bytes, 36) };
}

/** Big-endian u32 at `at` (bounds checked by the callers). */
function readU32(b: Uint8Array, at: number): number {
  return ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
}

function writeU32(b: Uint8Array, at: number, v: number): void {
  const x = v >>> 0;
  b[at] = x >>> 24;
  b[at + 1] = (x >>> 16) & 0xff;
  b[at + 2] = (x >>> 8) & 0xff;
  b[at + 3] = x & 0xff;
}

/** Pads `plaintext` as u32 length || plaintext || zeros, to a multiple of {@link PADDING_BUCKET}. */
export function pad(plaintext: Uint8Array): Uint8Array {
  const total = Math.ceil((plaintext.length + 4) / PADDING_BUCKET) * PADDING_BUCKET;
  const out = new Uint8Array(total);
  writeU32(out, 0, plaintext.length);
  out.set(plaintext, 4);
  return out;
}

/** Removes {@link pad}'s padding; the padding must be all zeros. */
export function unpad(padded: Uint8Array): Uint8Array {
  const r = new ByteReader(padded, 'MALFORMED_MESSAGE');
  const length = r.u32();
  if (length > padded.length - 4) r.fail('padded length out of range');
  // OR the padding together and test once (a failure names no position anyway).
  let acc = 0;
  for (let i = 4 + length; i < padded.length; i++) acc |= padded[i]!;
  if (acc !== 0) r.fail('non-zero padding');
  return padded.slice(4, 4 + length);
}
