/**
 * The identity-key login (docs/architecture.md "Relay protocol" 1, docs/threats.md R1/R2/C14/C17b).
 *
 * The relay issues a fresh 32-byte nonce per connection; the device signs, under the
 * `relayAuth` context, the server nonce, its own nonce, the origin it dialled, its clock and its
 * device id. The device id is derived from the presented identity, never read from the payload,
 * so a device id cannot be claimed without its signing key.
 */
import { randomBytes } from 'node:crypto';
import { ParleyError, deviceIdOf, verifyContextSignature, verifyIdentity, type PublicIdentity } from '@parley/protocol/verify';
import { relayAuthPayload } from '@parley/protocol/wire';

/** A parsed auth answer (schema-checked already). */
export interface AuthAnswerInput {
  identity: PublicIdentity;
  clientNonce: Uint8Array;
  timestamp: number;
  signature: Uint8Array;
}

/** What the relay knows when checking an answer. */
export interface AuthContext {
  serverNonce: Uint8Array;
  origin: string;
  now: number;
  maxSkewMs: number;
}

/** A fresh server nonce. */
export function newServerNonce(): Uint8Array {
  return new Uint8Array(randomBytes(32));
}

function fail(reason: string): never {
  // Every failure has the same code; the reason is a fixed phrase (no payload echoed).
  throw new ParleyError('UNAUTHENTICATED', `authentication failed: ${reason}`);
}

/**
 * Checks an answer and returns the device id it proves.
 * @throws ParleyError `UNAUTHENTICATED` for a stale timestamp, a bad identity binding or a
 *   signature that does not verify over this connection's nonce and this relay's origin.
 */
export function verifyAuthAnswer(answer: AuthAnswerInput, ctx: AuthContext): string {
  if (Math.abs(ctx.now - answer.timestamp) > ctx.maxSkewMs) fail('timestamp outside the accepted window');
  try {
    verifyIdentity(answer.identity);
  } catch {
    fail('identity binding does not verify');
  }
  const deviceId = deviceIdOf(answer.identity);
  const payload = relayAuthPayload({
    serverNonce: ctx.serverNonce,
    clientNonce: answer.clientNonce,
    origin: ctx.origin,
    timestamp: answer.timestamp,
    deviceId,
  });
  if (!verifyContextSignature(answer.identity.signingKey, 'relayAuth', payload, answer.signature)) fail('signature does not verify');
  return deviceId;
}
