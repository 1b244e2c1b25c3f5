/**
 * The issuer's HTTP answers that both sides read (`@parley/issuer` writes them, `signInStaff` in
 * `@parley/client` reads them): one definition of the contract.
 */
import type { StaffRole } from '../staff-cert.js';

/** `POST /v1/signin/finish`: what a successful sign-in returns. */
export interface IssuedCredential {
  /** The staff credential (issuer certificate + staff certificate), base64. */
  readonly credential: string;
  readonly personId: string;
  readonly displayName: string;
  readonly roles: readonly StaffRole[];
  readonly expiresAt: number;
  /** Bearer token for the admin API (meaningful when roles include `admin`), valid until `expiresAt`. */
  readonly sessionToken: string;
}
