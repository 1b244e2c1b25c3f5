/**
 * The identity-key login (docs/architecture.md "Relay protocol" 1, docs/threats.md R1/R2/C14/C17b).
 *
 * The relay issues a fresh 32-byte nonce per connection; the device signs, under the
 * `relayAuth` context, the server nonce, its own nonce, the origin it dialled, its clock and its
 * device id. The device id is derived from the presented identity, never read from the payload,
 * so a device id cannot be claimed without its signing key.
 *
 * Every refusal is `UNAUTHENTICATED` with `details.reason` (`ErrorDetailsByCode.UNAUTHENTICATED`),
 * so an operator and a developer can tell a wrong origin from a wrong clock or a bad key.
 */
import { randomBytes } from 'node:crypto';
import { ParleyError, deviceIdOf, verifyContextSignature, verifyIdentity, type ErrorDetailsByCode, type PublicIdentity } from '@parley/protocol/verify';
import { relayAuthPayload } from '@parley/protocol/wire';

/** A parsed auth answer (schema-checked already). */
export interface AuthAnswerInput {
  identity: PublicIdentity;
  clientNonce: Uint8Array;
  timestamp: number;
  signature: Uint8Array;
  /** The origin the device says it signed (optional: older clients do not send it). */
  origin?: string;
}

/** What the relay knows when checking an answer. */
export interface AuthContext {
  serverNonce: Uint8Array;
  origin: string;
  now: number;
  maxSkewMs: number;
}

/** `details` of a login refusal. */
export type LoginRefusalDetails = ErrorDetailsByCode['UNAUTHENTICATED'];

/** A fresh server nonce. */
export function newServerNonce(): Uint8Array {
  return new Uint8Array(randomBytes(32));
}

/** A login refusal: `UNAUTHENTICATED` with a reason. The message never quotes secret input. */
export function loginRefused(message: string, details: LoginRefusalDetails): ParleyError {
  return new ParleyError('UNAUTHENTICATED', `authentication failed: ${message}`, { details });
}

/** The refusal of an answer signed for another origin; the message says how to fix it. */
export function originMismatch(expectedOrigin: string, signedOrigin: string): ParleyError {
  return loginRefused(
    `the device dialled ${signedOrigin} but this relay's origin is ${expectedOrigin}: dial the relay's origin, ` +
      `or start the relay with --origin ${signedOrigin} if that is the public address (behind a proxy: the URL clients dial)`,
    { reason: 'origin', expectedOrigin, signedOrigin },
  );
}

/**
 * Checks an answer and returns the device id it proves. Order: the origin the device says it
 * signed (cheap, and the most common setup mistake), the clock, the identity binding, the
 * signature over this connection's nonce and this relay's origin.
 * @throws ParleyError `UNAUTHENTICATED` with `details.reason` `origin` (with `expectedOrigin`
 *   and `signedOrigin`), `clockSkew` (with `skewMs`), `identity` or `signature`.
 */
export function verifyAuthAnswer(answer: AuthAnswerInput, ctx: AuthContext): string {
  // Both are public; this only names the mistake early. The signature below decides.
  if (answer.origin !== undefined && answer.origin !== ctx.origin) throw originMismatch(ctx.origin, answer.origin); // ct-ok: public origins
  const skewMs = answer.timestamp - ctx.now;
  if (Math.abs(skewMs) > ctx.maxSkewMs) {
    throw loginRefused(`the device clock is ${Math.round(skewMs / 1000)} s off the relay's (at most ±${Math.round(ctx.maxSkewMs / 1000)} s): fix the clock`, {
      reason: 'clockSkew', skewMs,
    });
  }
  try {
    verifyIdentity(answer.identity);
  } catch {
    throw loginRefused('identity binding does not verify', { reason: 'identity' });
  }
  const deviceId = deviceIdOf(answer.identity);
  const payload = relayAuthPayload({
    serverNonce: ctx.serverNonce,
    clientNonce: answer.clientNonce,
    origin: ctx.origin,
    timestamp: answer.timestamp,
    deviceId,
  });
  if (!verifyContextSignature(answer.identity.signingKey, 'relayAuth', payload, answer.signature)) {
    throw loginRefused(
      answer.origin === undefined
        ? `signature does not verify (if the device dialled another origin than ${ctx.origin}, that is the cause)`
        : 'signature does not verify',
      { reason: 'signature' },
    );
  }
  return deviceId;
}
