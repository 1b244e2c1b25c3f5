/**
 * Domain separation for every Ed25519 signature the identity key makes (docs/threats.md C14).
 *
 * What is signed is always `context || 0x00 || payload`, where `context` is one of the fixed
 * ASCII strings below. No context is a prefix of another, and none contains 0x00, so a
 * signature made for one purpose never verifies for another, whatever bytes a relay chooses.
 */
import { concatBytes, utf8 } from './bytes.js';

export const SIGNATURE_CONTEXTS = {
  /** The Ed25519 identity key vouches for the X25519 identity key. */
  identityBinding: 'parley/v1/identity-binding',
  /** A signed prekey record (id, creation time, public key). */
  signedPrekey: 'parley/v1/spk',
  /** A relay login answer (server nonce, client nonce, origin, time, device id). */
  relayAuth: 'parley/v1/relay-auth',
  /** A bot enclave's code measurement. */
  botAttestation: 'parley/v1/bot-attest',
  /** An organisation key certifying a bot or agent identity. */
  orgCertificate: 'parley/v1/org-cert',
  /** An organisation key allowing a bot label to run a measurement (a release manifest). */
  releaseManifest: 'parley/v1/release-manifest',
  /** A statement that a device's identity key changed. */
  keyChange: 'parley/v1/key-change',
  /** A request to start a fresh session after a decrypt failed for a session reason. */
  sessionReset: 'parley/v1/session-reset',
  /** An organisation key certifying an issuer key and its policy (staff-cert.ts). */
  issuerCertificate: 'parley/v1/issuer-cert',
  /** An issuer key certifying a staff device's identity, person, roles and lifetime. */
  staffCertificate: 'parley/v1/staff-cert',
  /** An issuer's list of revoked persons and devices. */
  revocationList: 'parley/v1/revocation-list',
  /** A staff device proving it holds its identity key at sign-in (challenge and issuer origin). */
  staffSignIn: 'parley/v1/staff-signin',
  /** An organisation key disclosing a compliance archive (key, retention, openers) for a label. */
  archiveDisclosure: 'parley/v1/archive-disclosure',
  /** A member's archived-message submission (conversation ref, sequence, sealed payload). */
  archiveEntry: 'parley/v1/archive-entry',
  /** An owner's erasure request and a member's deletion receipt (erasure.ts). */
  erasure: 'parley/v1/erasure',
  /** A customer's answer to a consent request, or its withdrawal (consent.ts). */
  consentReceipt: 'parley/v1/consent-receipt',
} as const;

export type SignatureContext = keyof typeof SIGNATURE_CONTEXTS;

/** The exact bytes signed for `context` over `payload`. */
export function contextMessage(context: SignatureContext, payload: Uint8Array): Uint8Array {
  return concatBytes(utf8(SIGNATURE_CONTEXTS[context]), new Uint8Array([0]), payload);
}
