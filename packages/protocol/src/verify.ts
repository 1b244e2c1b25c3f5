/**
 * The key-free view of the protocol (the relay, the bot host): public types, device ids,
 * signature, certificate and attestation checks, byte helpers.
 * No private-key or session code is reachable from here (a test checks the import graph).
 */
export { initCrypto, getCrypto, defaultBackend, type BackendName } from './crypto/index.js';
export { deviceIdOf, verifyIdentity, verifyContextSignature, type PublicIdentity } from './identity-public.js';
export { SIGNATURE_CONTEXTS, contextMessage, type SignatureContext } from './contexts.js';
export { signedPrekeyPayload, assertBundleShape, type PrekeyBundle, type PrekeyUpload, type SignedPrekeyPublic, type OneTimePrekeyPublic } from './bundle.js';
export { ParleyError, isParleyError, ERROR_CODES, type ParleyErrorCode, type SerializedParleyError, type ParleyErrorOf, type DetailsOf, type ErrorDetailsByCode } from './errors.js';
export { toHex, fromHex, toBase64, fromBase64, constantTimeEqual, concatBytes, utf8 } from './bytes.js';
export {
  verifyOrgCertificate,
  decodeOrgCertificate,
  describeOrgCertificate,
  orgCertificateToBase64,
  orgCertificateFromBase64,
  ORG_CERT_VERSION,
  type OrgCertificate,
  type OrgCertificateCheck,
  type OrgCertificateFields,
  type OrgCertRefusal,
  type OrgRole,
} from './org-cert.js';
export {
  verifyReleaseManifest,
  selectReleaseManifest,
  decodeReleaseManifest,
  describeReleaseManifest,
  releaseManifestToBase64,
  releaseManifestFromBase64,
  encodeReleaseManifestList,
  decodeReleaseManifestList,
  RELEASE_MANIFEST_FORMAT,
  RELEASE_VERSION_PATTERN,
  MAX_RELEASE_MANIFEST_BYTES,
  MAX_RELEASE_MANIFESTS,
  MAX_RELEASE_MANIFEST_LIST_BYTES,
  type ReleaseManifest,
  type ReleaseManifestCheck,
  type ReleaseManifestFields,
  type ReleaseManifestRefusal,
} from './release-manifest.js';
export {
  verifyStaffCredential,
  verifyIssuerCertificate,
  verifyRevocationList,
  verifyStaffSignInProof,
  decodeStaffCredential,
  decodeIssuerCertificate,
  decodeRevocationList,
  describeStaffCredential,
  describeIssuerCertificate,
  isStaffCredential,
  parseStaffRoles,
  staffSignInPayload,
  STAFF_ROLES,
  STAFF_CREDENTIAL_TAG,
  MAX_STAFF_CREDENTIAL_BYTES,
  MAX_REVOCATION_LIST_BYTES,
  MAX_REVOKED_ENTRIES,
  PERSON_ID_PATTERN,
  STAFF_CLOCK_SKEW_MS,
  STAFF_SIGNIN_CHALLENGE_BYTES,
  type IssuerCertificate,
  type IssuerPolicy,
  type RevocationList,
  type DecodedRevocationList,
  type StaffCertificate,
  type StaffCertificateFields,
  type StaffCredential,
  type StaffCredentialCheck,
  type StaffCredentialRefusal,
  type StaffRole,
  type VerifiedStaff,
} from './staff-cert.js';
