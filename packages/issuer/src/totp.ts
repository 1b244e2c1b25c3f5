/**
 * TOTP second factor (RFC 6238 via `otpauth`): SHA-1, 6 digits, 30 s steps, accepted one step
 * either side. A code is accepted once: the step it matched is recorded, and a code for that step
 * or an earlier one is refused as a replay.
 */
import { Secret, TOTP } from 'otpauth';

/** Seconds per step. */
export const TOTP_PERIOD = 30;

/** A new random secret (20 bytes) as base32. */
export function newTotpSecret(): string {
  return new Secret({ size: 20 }).base32;
}

/** The otpauth:// URL an authenticator app scans. */
export function totpUrl(secretBase32: string, issuer: string, account: string): string {
  return new TOTP({ issuer, label: account, algorithm: 'SHA1', digits: 6, period: TOTP_PERIOD, secret: Secret.fromBase32(secretBase32) }).toString();
}

/** The code for `time` (tests and enrolment tools). */
export function totpCode(secretBase32: string, time = Date.now()): string {
  return new TOTP({ algorithm: 'SHA1', digits: 6, period: TOTP_PERIOD, secret: Secret.fromBase32(secretBase32) }).generate({ timestamp: time });
}

/**
 * The time step `code` matches (window 1), or undefined. Checks only the code's shape and value,
 * not replays (the caller compares the step with the last accepted one).
 */
export function totpStep(secretBase32: string, code: string, time = Date.now()): number | undefined {
  if (!/^[0-9]{6}$/.test(code)) return undefined;
  const totp = new TOTP({ algorithm: 'SHA1', digits: 6, period: TOTP_PERIOD, secret: Secret.fromBase32(secretBase32) });
  const delta = totp.validate({ token: code, timestamp: time, window: 1 });
  if (delta === null) return undefined;
  return Math.floor(time / 1000 / TOTP_PERIOD) + delta;
}
