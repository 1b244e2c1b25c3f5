/**
 * `signInStaff`: a staff member signs a device in at the organisation's issuer service
 * (`@parley/issuer`) and the device gets its short-lived staff credential. Works in browsers and
 * Node (uses `fetch`). The issuer checks the password, the second factor (a passkey or a TOTP
 * code) and the device's proof that it holds its identity key (`staffProof`: the issuer's
 * challenge and origin, signed with the identity key under its own context), then certifies the
 * device's identity keys; the device presents the credential at every relay login and publishes
 * it for customers to verify (`setStaffCredential`).
 */
import { ERROR_CODES, ParleyError, fromBase64, fromHex, toHex, type ParleyErrorCode, type PublicIdentity, type StaffRole } from '@parley/protocol';
import type { IssuedCredential } from '@parley/protocol/wire';

/** The WebAuthn request options the issuer sends (`PublicKeyCredentialRequestOptionsJSON`). */
export interface StaffPasskeyRequestOptions {
  readonly challenge: string;
  readonly rpId?: string;
  readonly timeout?: number;
  readonly userVerification?: string;
  readonly allowCredentials?: readonly { readonly id: string; readonly type: string; readonly transports?: readonly string[] }[];
}

/** The WebAuthn assertion sent back (`AuthenticationResponseJSON`, e.g. from `@simplewebauthn/browser`). */
export interface StaffPasskeyResponse {
  readonly id: string;
  readonly rawId: string;
  readonly type: string;
  readonly response: object;
}

/** The device being signed in: a {@link ParleyClient}, or anything that holds an identity key the same way. */
export interface StaffDevice {
  readonly publicIdentity: Pick<PublicIdentity, 'signingKey' | 'dhKey'>;
  staffProof(challenge: Uint8Array, issuerOrigin: string): Uint8Array;
  setStaffCredential(credential: Uint8Array): Promise<void> | void;
}

/** Options of {@link signInStaff}. */
export interface StaffSignInOptions {
  /** The issuer service, e.g. `https://issuer.example.com`. Its origin is what the device proof names. */
  readonly issuerUrl: string;
  readonly username: string;
  readonly password: string;
  /**
   * Passkey second factor: given the issuer's WebAuthn request options, return the assertion
   * (in a browser: `(o) => startAuthentication({ optionsJSON: o })` from `@simplewebauthn/browser`).
   */
  passkey?(options: StaffPasskeyRequestOptions): Promise<StaffPasskeyResponse>;
  /** TOTP second factor: the current 6-digit code of the staff member's authenticator app. */
  readonly totp?: string;
  /** Per request. Default 15,000 ms. */
  readonly timeoutMs?: number;
}

/** What {@link signInStaff} returns. */
export interface StaffSignInResult {
  readonly personId: string;
  readonly displayName: string;
  readonly roles: readonly StaffRole[];
  /** When the credential expires, ms since the epoch: sign in again before. */
  readonly expiresAt: number;
  /** Bearer token for the issuer's admin API (admins); a secret: never log it. */
  readonly sessionToken: string;
}

interface SignInStart {
  readonly signinId: string;
  readonly challenge: string;
  readonly factors: readonly string[];
  readonly passkeyOptions?: StaffPasskeyRequestOptions;
}


const KNOWN_CODES = new Set<string>(ERROR_CODES);

/** The issuer's error answer as a ParleyError: its code (when one of ours) and its message. */
function issuerError(status: number, body: unknown): ParleyError {
  const j = (typeof body === 'object' && body !== null ? body : {}) as { code?: unknown; message?: unknown; details?: { reason?: unknown } };
  const fallback: ParleyErrorCode = status === 401 ? 'UNAUTHENTICATED' : status === 403 ? 'FORBIDDEN' : status === 429 ? 'RATE_LIMITED' : status === 400 ? 'USAGE' : 'INTERNAL';
  const code = typeof j.code === 'string' && KNOWN_CODES.has(j.code) ? (j.code as ParleyErrorCode) : fallback;
  const message = typeof j.message === 'string' ? j.message.slice(0, 300) : `HTTP ${status}`;
  const reason = typeof j.details?.reason === 'string' ? j.details.reason.slice(0, 40) : undefined;
  return new ParleyError(code, `the issuer refused: ${message}`, { details: { status, ...(reason ? { reason } : {}) } });
}

async function post<T>(url: URL, body: unknown, timeoutMs: number): Promise<T> {
  let res: Response;
  try {
    res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(timeoutMs) });
  } catch (cause) {
    const timeout = cause instanceof Error && (cause.name === 'TimeoutError' || cause.name === 'AbortError');
    throw new ParleyError('TRANSPORT', `the issuer ${url.origin} cannot be reached`, { details: { reason: timeout ? 'timeout' : 'refused' }, cause });
  }
  const text = await res.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  if (!res.ok) throw issuerError(res.status, json);
  if (typeof json !== 'object' || json === null) throw new ParleyError('MALFORMED_MESSAGE', 'the issuer answered something that is not JSON');
  return json as T;
}

/**
 * Signs `device` in as a staff member at the issuer: password, then a second factor (`totp`, or
 * `passkey` when the issuer offers it), with the device's proof of its identity key; the issued
 * credential is handed to `device.setStaffCredential` (a `ParleyClient` checks that it
 * certifies this device, verifies it against `trust.orgKey` when pinned, presents it at relay
 * login and publishes it).
 * @returns who was signed in, the roles and the credential's expiry.
 * @throws ParleyError `UNAUTHENTICATED` (wrong username or password, or second factor; the issuer
 *   tells no more), `RATE_LIMITED` (too many attempts: locked out for a while), `FORBIDDEN`
 *   (account disabled), `USAGE` (no second factor given that the issuer accepts), `TRANSPORT`,
 *   `UNTRUSTED_IDENTITY` (the credential issued does not verify for this device).
 * @example
 * const me = await signInStaff(client, { issuerUrl: 'https://issuer.example.com', username: 'ada', password, totp: '123456' });
 * console.log(`${me.displayName} (${me.roles.join(', ')}) until ${new Date(me.expiresAt).toISOString()}`);
 */
export async function signInStaff(device: StaffDevice, options: StaffSignInOptions): Promise<StaffSignInResult> {
  let base: URL;
  try {
    base = new URL(options.issuerUrl);
  } catch {
    throw new ParleyError('USAGE', 'issuerUrl must be an absolute URL');
  }
  if (typeof options.username !== 'string' || typeof options.password !== 'string') throw new ParleyError('USAGE', 'username and password are required');
  if (options.totp === undefined && options.passkey === undefined) throw new ParleyError('USAGE', 'give a second factor: passkey or totp');
  const timeoutMs = options.timeoutMs ?? 15_000;
  const { signingKey, dhKey } = device.publicIdentity;
  const start = await post<SignInStart>(new URL('/v1/signin/start', base), {
    username: options.username,
    password: options.password,
    identity: { signingKey: toHex(signingKey), dhKey: toHex(dhKey) },
  }, timeoutMs);
  if (typeof start.signinId !== 'string' || typeof start.challenge !== 'string' || !/^[0-9a-f]{64}$/i.test(start.challenge) || !Array.isArray(start.factors)) {
    throw new ParleyError('MALFORMED_MESSAGE', 'the issuer sent a malformed sign-in challenge');
  }
  const proof = toHex(device.staffProof(fromHex(start.challenge.toLowerCase()), base.origin));
  const finish: Record<string, unknown> = { signinId: start.signinId, proof };
  if (options.totp !== undefined && start.factors.includes('totp')) {
    finish.totp = options.totp;
  } else if (options.passkey && start.factors.includes('passkey') && start.passkeyOptions) {
    finish.passkey = await options.passkey(start.passkeyOptions);
  } else {
    throw new ParleyError('USAGE', `the issuer accepts ${start.factors.join(' or ') || 'no'} second factor for this account; give that one`, { details: { reason: 'factor' } });
  }
  const done = await post<IssuedCredential>(new URL('/v1/signin/finish', base), finish, timeoutMs);
  if (typeof done.credential !== 'string' || typeof done.personId !== 'string' || typeof done.displayName !== 'string' || !Array.isArray(done.roles) || !Number.isSafeInteger(done.expiresAt)) {
    throw new ParleyError('MALFORMED_MESSAGE', 'the issuer sent a malformed credential answer');
  }
  await device.setStaffCredential(fromBase64(done.credential));
  return { personId: done.personId, displayName: done.displayName, roles: done.roles, expiresAt: done.expiresAt, sessionToken: String(done.sessionToken ?? '') };
}
