/**
 * The issuer's enrolment and admin HTTP API as the console calls it (sign-in is the SDK's
 * `signInStaff`). Same origin: the console server forwards `/v1/` to the issuer, so the page's
 * origin is the issuer's public origin, the WebAuthn origin and the origin the device's proof of
 * possession names.
 *
 * Every failure becomes an {@link IssuerError} with the issuer's stable code and, when it gave
 * one, a short reason word; the issuer's own message is never shown (see `error-text.ts`).
 */
import type { PublicKeyCredentialCreationOptionsJSON, RegistrationResponseJSON } from '@simplewebauthn/browser';
import type { StaffRole } from '@parley/protocol';

/** A refused or failed issuer call: stable code, optional reason word, HTTP status (0: unreachable). */
export class IssuerError extends Error {
  override readonly name = 'IssuerError';
  constructor(
    readonly code: string,
    readonly reason: string,
    readonly status: number,
  ) {
    super(`${code}${reason ? ` (${reason})` : ''}`);
  }
}

/** The issuer's answer to `POST /v1/enrol/start`. */
export interface Invitee {
  readonly personId: string;
  readonly username: string;
  readonly displayName: string;
}

/** One row of `GET /v1/admin/staff`. */
export interface StaffRow {
  readonly personId: string;
  readonly username: string;
  readonly displayName: string;
  readonly roles: readonly StaffRole[];
  readonly disabled?: boolean;
  readonly factors?: readonly string[];
}

const WORD = /^[a-zA-Z]{1,24}$/;

/** Calls the issuer; JSON in, JSON out. */
export async function call<T>(base: string, path: string, body?: unknown, token?: string): Promise<T> {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (token) headers.authorization = `Bearer ${token}`;
  let res: Response;
  try {
    res = await fetch(new URL(path, base), { method: body === undefined ? 'GET' : 'POST', headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  } catch {
    throw new IssuerError('TRANSPORT', 'refused', 0);
  }
  const text = await res.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : {};
  } catch {
    json = undefined;
  }
  if (!res.ok) {
    const j = (json ?? {}) as { code?: unknown; reason?: unknown; details?: { reason?: unknown } };
    const code = typeof j.code === 'string' && /^[A-Z_]{1,32}$/.test(j.code) ? j.code : res.status === 429 ? 'RATE_LIMITED' : res.status === 403 ? 'FORBIDDEN' : res.status === 401 ? 'UNAUTHENTICATED' : 'INTERNAL';
    const r = j.details?.reason ?? j.reason;
    throw new IssuerError(code, typeof r === 'string' && WORD.test(r) ? r : '', res.status);
  }
  if (json === undefined) throw new IssuerError('INTERNAL', 'malformed', res.status);
  return json as T;
}

/** Enrolment from a one-time invitation. */
export const enrol = {
  start: (base: string, invitation: string) => call<Invitee>(base, '/v1/enrol/start', { invitation }),
  password: (base: string, invitation: string, password: string) => call<{ ok: true }>(base, '/v1/enrol/password', { invitation, password }),
  passkeyOptions: (base: string, invitation: string) => call<PublicKeyCredentialCreationOptionsJSON>(base, '/v1/enrol/passkey/options', { invitation }),
  passkeyVerify: (base: string, invitation: string, response: RegistrationResponseJSON) => call<{ ok: true }>(base, '/v1/enrol/passkey/verify', { invitation, response }),
  totpStart: (base: string, invitation: string) => call<{ otpauthUrl: string; secret: string }>(base, '/v1/enrol/totp/start', { invitation }),
  totpVerify: (base: string, invitation: string, code: string) => call<{ ok: true }>(base, '/v1/enrol/totp/verify', { invitation, code }),
};

/** Admin calls (bearer: the session token of a signed-in admin). */
export const admin = {
  list: async (base: string, token: string): Promise<StaffRow[]> => {
    const r = await call<StaffRow[] | { staff: StaffRow[] }>(base, '/v1/admin/staff', undefined, token);
    return Array.isArray(r) ? r : r.staff;
  },
  add: (base: string, token: string, f: { username: string; displayName: string; roles: readonly StaffRole[] }) =>
    call<{ personId: string; invitation: string }>(base, '/v1/admin/staff', f, token),
};
