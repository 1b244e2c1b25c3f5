/**
 * The console's own words for every failure. Like the widget (`examples/web/src/error-text.ts`),
 * it never shows an error's `message` (a relay or a proxy could choose it): only these fixed
 * sentences, the stable code, and a reason word when there is one.
 */
import { isParleyError } from '@parley/protocol';
import { IssuerError } from './issuer-api.js';

const BY_CODE: Record<string, string> = {
  UNAUTHENTICATED: 'The username, password or second factor was not accepted.',
  FORBIDDEN: 'Your roles do not allow this.',
  RATE_LIMITED: 'Too many attempts. Wait a few minutes, then try again.',
  USAGE: 'That request was not valid. Check the form and try again.',
  NOT_FOUND: 'That link or account does not exist.',
  TRANSPORT: 'The sign-in service cannot be reached. Check your connection and try again.',
  UNTRUSTED_IDENTITY: 'The certificate is not trusted by the organisation.',
  CONFLICT: 'Another agent took this conversation first.',
  UNTRUSTED_SOURCE: 'Shared history was refused: it did not come from the customer of this conversation.',
  ENCLAVE_UNAVAILABLE: 'The bot is not available.',
  STORAGE_INTEGRITY: "This browser's stored data failed its integrity check.",
  STORAGE_QUOTA: "This browser's storage for the console is full.",
  INTERNAL: 'Something went wrong. Try again, or ask your administrator.',
};

/** Reasons that change what a person should do, in their words. */
const BY_REASON: Record<string, string> = {
  origin: 'This page is not your organisation\'s sign-in page (wrong address). Nothing was sent.',
  challenge: 'This sign-in attempt was already used or has expired. Please sign in again.',
  expired: 'This link or sign-in attempt has expired. Ask for a new one.',
  invitation: 'This invitation link is not valid any more. Ask your administrator for a new one.',
  locked: 'This account is locked after too many failed attempts. Try again later or ask your administrator.',
  revoked: 'This device or account has been revoked. Ask your administrator.',
  factor: 'A second factor is needed: use your passkey or type the code from your authenticator app.',
  passkey: 'The passkey was not accepted.',
  totp: 'The code was not accepted. Type the current code from your authenticator app.',
  password: 'The password does not meet the rules: use at least 12 characters.',
  weakPassword: 'The password does not meet the rules: use at least 12 characters.',
  refused: 'The sign-in service cannot be reached. Check your connection and try again.',
  claimed: 'Another agent took this conversation first.',
  notMember: 'You are not a member of this conversation (any more).',
  notClaimant: 'You do not hold this ticket any more.',
  noSuchTicket: 'This ticket no longer exists.',
  noConsent: "The customer's consent does not cover this: nothing was sent.",
};

/** `CODE (reason): sentence` for anything thrown by the console's calls. */
export function describeError(e: unknown): { code: string; reason: string; text: string } {
  if (e instanceof IssuerError) {
    const text = BY_REASON[e.reason] ?? BY_CODE[e.code] ?? BY_CODE.INTERNAL!;
    return { code: e.code, reason: e.reason, text: `${e.code}${e.reason ? ` (${e.reason})` : ''}: ${text}` };
  }
  if (isParleyError(e)) {
    const reason = typeof e.details?.reason === 'string' && /^[a-zA-Z]{1,24}$/.test(e.details.reason) ? e.details.reason : '';
    const text = BY_REASON[reason] ?? BY_CODE[e.code] ?? BY_CODE.INTERNAL!;
    return { code: e.code, reason, text: `${e.code}${reason ? ` (${reason})` : ''}: ${text}` };
  }
  // WebAuthn failures from the browser: the person cancelled, or no passkey fits.
  if (e instanceof Error && (e.name === 'NotAllowedError' || e.name === 'AbortError')) {
    return { code: 'PASSKEY', reason: 'cancelled', text: 'PASSKEY: The passkey request was cancelled or timed out. Try again.' };
  }
  if (e instanceof Error && (e.name === 'InvalidStateError')) {
    return { code: 'PASSKEY', reason: 'exists', text: 'PASSKEY: This authenticator already holds a passkey for this account.' };
  }
  if (e instanceof Error && (e.name === 'SecurityError' || e.name === 'NotSupportedError')) {
    return { code: 'PASSKEY', reason: 'unsupported', text: 'PASSKEY: This browser cannot use a passkey on this page. Use an authenticator-app code instead.' };
  }
  return { code: 'INTERNAL', reason: '', text: `INTERNAL: ${BY_CODE.INTERNAL}` };
}
