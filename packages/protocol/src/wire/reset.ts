/**
 * Session reset request (message type 0x03), the decryption-error signal of self-healing
 * sessions (libsignal's `DecryptionErrorMessage` is the model). A device that cannot decrypt a
 * peer's message for a *session* reason (no session, a fork, a rolled-back or lost state) asks
 * that peer to archive its sessions, start a fresh one from a new bundle and resend what was not
 * acknowledged. It carries no key material, no plaintext and no ratchet counter; the requester
 * signs it with its identity key, so only a peer that already holds the requester's identity
 * acts on it, and a relay can neither forge nor retarget one.
 *
 * ```
 *  offset  size  field
 *  0       1     version = 0x01
 *  1       1     type    = 0x03
 *  2       8     sentAt, ms since the epoch (u64 BE), the requester's clock
 *  10      1     reason (see RESET_REASONS)
 *  11      1+n   request id: the relay message id this request travels under (1..64 chars)
 *  12+n    1+m   failed id: the relay id of the message that did not decrypt (0..64 chars)
 *  ...     64    Ed25519 signature, context sessionReset, over
 *                to device id (16) || from device id (16) || every byte before the signature
 * ```
 */
import { ParleyError } from '../errors.js';
import { ByteReader, ByteWriter } from '../codec.js';
import { concatBytes, fromHex } from '../bytes.js';
import { verifyContextSignature, type PublicIdentity } from '../identity-public.js';
import { MESSAGE_TYPE, WIRE_VERSION } from './message.js';
import { MESSAGE_ID_PATTERN } from './relay.js';

/** Why a device asks for a new session; each maps to the error that the failed decrypt raised. */
export const RESET_REASONS = ['SESSION_NOT_FOUND', 'SESSION_FORK_DETECTED', 'SENDER_STATE_ROLLBACK', 'AUTH_FAILED', 'INVALID_PREKEY'] as const;
export type SessionResetReason = (typeof RESET_REASONS)[number];

/** A decoded, not yet verified, reset request. */
export interface SessionResetRequest {
  readonly sentAt: number;
  readonly reason: SessionResetReason;
  /** The relay id this request travels under (bound by the signature). */
  readonly requestId: string;
  /** The relay id of the message that could not be decrypted; '' when unknown. */
  readonly failedId: string;
}

const SIGNATURE_BYTES = 64;

function signedBytes(to: string, from: string, unsigned: Uint8Array): Uint8Array {
  return concatBytes(fromHex(to), fromHex(from), unsigned);
}

function encodeUnsigned(r: SessionResetRequest): Uint8Array {
  const reason = RESET_REASONS.indexOf(r.reason);
  if (reason < 0) throw new ParleyError('USAGE', 'unknown session reset reason');
  if (!MESSAGE_ID_PATTERN.test(r.requestId)) throw new ParleyError('USAGE', 'requestId must be 1-64 chars of [A-Za-z0-9_-]');
  if (r.failedId !== '' && !MESSAGE_ID_PATTERN.test(r.failedId)) throw new ParleyError('USAGE', 'failedId must be empty or a message id');
  return new ByteWriter(96).u8(WIRE_VERSION).u8(MESSAGE_TYPE.sessionReset).u64(r.sentAt).u8(reason).shortString(r.requestId).shortString(r.failedId).finish();
}

/**
 * Encodes and signs a reset request from device `from` to device `to`.
 * @param sign signs with the requester's identity key under context `sessionReset`
 *   (`Account.sign('sessionReset', payload)`).
 */
export function encodeSessionReset(
  request: SessionResetRequest,
  ids: { readonly from: string; readonly to: string },
  sign: (payload: Uint8Array) => Uint8Array,
): Uint8Array {
  const unsigned = encodeUnsigned(request);
  return concatBytes(unsigned, sign(signedBytes(ids.to, ids.from, unsigned)));
}

/** True when `envelope` is a reset request (type 0x03), by its first two bytes. */
export function isSessionReset(envelope: Uint8Array): boolean {
  return envelope.length >= 2 && envelope[0] === WIRE_VERSION && envelope[1] === MESSAGE_TYPE.sessionReset;
}

/**
 * Parses a reset request and checks its signature against the requester's identity.
 * @throws ParleyError `MALFORMED_MESSAGE` (bad layout), `AUTH_FAILED` (the signature does not
 *   verify for this sender and recipient).
 */
export function openSessionReset(
  envelope: Uint8Array,
  ids: { readonly from: string; readonly to: string },
  requester: PublicIdentity,
): SessionResetRequest {
  if (!isSessionReset(envelope)) throw new ParleyError('MALFORMED_MESSAGE', 'not a session reset request');
  const r = new ByteReader(envelope, 'MALFORMED_MESSAGE');
  r.fixed(2);
  const sentAt = r.u64();
  const reason = RESET_REASONS[r.u8()] ?? r.fail('unknown session reset reason');
  const requestId = r.shortString();
  const failedId = r.shortString();
  if (!MESSAGE_ID_PATTERN.test(requestId) || (failedId !== '' && !MESSAGE_ID_PATTERN.test(failedId))) r.fail('invalid message id');
  const unsignedLength = envelope.length - SIGNATURE_BYTES;
  if (r.remaining !== SIGNATURE_BYTES) r.fail('session reset request has trailing or missing bytes');
  const signature = envelope.subarray(unsignedLength);
  if (!verifyContextSignature(requester.signingKey, 'sessionReset', signedBytes(ids.to, ids.from, envelope.subarray(0, unsignedLength)), signature)) {
    throw new ParleyError('AUTH_FAILED', 'session reset request signature does not verify');
  }
  return { sentAt, reason, requestId, failedId };
}
