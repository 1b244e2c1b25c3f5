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
