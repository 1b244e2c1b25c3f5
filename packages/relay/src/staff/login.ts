/**
 * The staff part of a login (relay with an org key): a revoked device is refused whatever it
 * presents, and a presented credential must verify (root → issuer → device, policy, expiry,
 * revocation) for the identity that signed the answer.
 */
import { ParleyError, toHex, verifyStaffCredential, type PublicIdentity, type StaffRole } from '@parley/protocol/verify';
import { loginRefused } from '../auth.js';
import type { StaffAuthority } from './authority.js';
import { isRevoked } from './authority.js';

/** A verified staff login, kept on the socket. */
export interface StaffLogin {
  readonly roles: readonly StaffRole[];
  readonly personId: string;
  /** Issuer public key, hex. */
  readonly issuer: string;
  readonly expiresAt: number;
}

/**
 * Checks the staff side of a login.
 * @returns the staff login, or `undefined` for a device without a credential.
 * @throws ParleyError `UNAUTHENTICATED` reason `revoked` (a list names the device or the person),
 *   or reason `credential` with `credentialReason` (the verifier's refusal: `expired`,
 *   `issuerPolicy`, `issuerSignature`, `signature`, `identity`…).
 */
export async function checkStaffLogin(
  authority: StaffAuthority, deviceId: string, identity: PublicIdentity, credential: Uint8Array | undefined, now: number,
): Promise<StaffLogin | undefined> {
  const lists = await authority.lists();
  if (isRevoked(lists, deviceId)) throw loginRefused('this device was revoked', { reason: 'revoked' });
  if (credential === undefined) return undefined;
  try {
    const staff = verifyStaffCredential(credential, { orgKey: authority.orgKey, identity, now, revocations: lists });
    return { roles: staff.roles, personId: staff.personId, issuer: toHex(staff.issuerKey), expiresAt: staff.expiresAt };
  } catch (e) {
    if (!(e instanceof ParleyError) || e.code !== 'UNTRUSTED_IDENTITY') throw e;
    const reason = typeof e.details?.['reason'] === 'string' ? e.details['reason'] : 'malformed';
    if (reason === 'revoked') throw loginRefused('this staff device or person was revoked', { reason: 'revoked' }); // ct-ok: public reason
    throw loginRefused(`the staff credential was refused (${reason})`, { reason: 'credential', credentialReason: reason });
  }
}
