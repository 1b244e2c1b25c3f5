/**
 * The widget's own words for every error code. An error's `message` can carry text a relay
 * chose (issue 10, finding 14: a relay could phish in the chat or in the red verification
 * banner), so the page never shows `error.message`: only these fixed sentences, the stable code,
 * and (where the caller adds it) a `details.reason` that is one short lower-case word.
 */
import type { ParleyError, ParleyErrorCode } from '@parley/protocol';

const TEXT: Record<ParleyErrorCode, string> = {
  AUTH_FAILED: 'A message did not authenticate and was dropped.',
  DUPLICATE_MESSAGE: 'A message arrived twice; the copy was dropped.',
  TOO_MANY_SKIPPED: 'A message skipped too far ahead and could not be opened.',
  MESSAGE_KEY_EXPIRED: 'A late message could no longer be opened.',
  INVALID_KEY: 'A key was not valid.',
  INVALID_SIGNATURE: 'A signature did not verify.',
  INVALID_PREKEY: 'A session could not start from the keys given; a fresh one is needed.',
  IDENTITY_CHANGED: 'The other side has a new device; it must be verified again.',
  UNTRUSTED_IDENTITY: 'The other side is not certified by the organisation this page trusts.',
  MALFORMED_MESSAGE: 'A malformed message was dropped.',
  UNSUPPORTED_VERSION: 'A message or record uses a version this page does not support.',
  SESSION_NOT_FOUND: 'There is no session with the other side yet.',
  SENDER_STATE_ROLLBACK: "The other side's state was rolled back; the session is being renewed.",
  SESSION_FORK_DETECTED: "The other side's state was copied; the session is being renewed.",
  STORAGE_INTEGRITY: 'Stored data failed its integrity check.',
  STORAGE_QUOTA: 'The browser storage for this page is full.',
  UNAUTHENTICATED: 'The relay did not accept this device.',
  FORBIDDEN: 'The relay refused the request.',
  RATE_LIMITED: 'Too many requests; trying again shortly.',
  PAYLOAD_TOO_LARGE: 'The message is too large.',
  ENCLAVE_UNAVAILABLE: 'The bot is not available.',
  CONFLICT: 'Another agent took this conversation first.',
  UNTRUSTED_SOURCE: 'Shared history was refused: it did not come from the customer of this conversation.',
  ATTESTATION_INVALID: "The bot's enclave attestation does not match the code this page trusts.",
  TRANSPORT: 'The relay cannot be reached.',
  USAGE: 'The page made an invalid request.',
  INTERNAL: 'Something went wrong inside the SDK.',
};

/** A short reason the SDK put in `details.reason`, or '' for anything else. */
export function errorReason(e: ParleyError | undefined): string {
  const reason = e?.details?.reason;
  return typeof reason === 'string' && /^[a-z]{1,24}$/.test(reason) ? reason : '';
}

/** `CODE<after code>: our sentence`, never the error's own message. */
export function errorText(e: ParleyError | undefined, afterCode = ''): string {
  if (!e) return `INTERNAL${afterCode}: ${TEXT.INTERNAL}`;
  return `${e.code}${afterCode}: ${TEXT[e.code] ?? TEXT.INTERNAL}`;
}
