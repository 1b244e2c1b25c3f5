/**
 * `@parley/protocol`: the pure protocol core. Keys, X3DH, Double Ratchet with header
 * encryption, wire format, safety numbers. No I/O.
 *
 * @example
 * import { initCrypto, Account } from '@parley/protocol';
 * await initCrypto();
 * const alice = Account.create(), bob = Account.create();
 * bob.generateOneTimePrekeys(10);
 * const outbound = alice.createOutboundSession(bob.bundle());
 * const { session: inbound, plaintext } = bob.createInboundSession(outbound.encrypt(new TextEncoder().encode('hi')));
 */
export { initCrypto, getCrypto, loadBackend, defaultBackend, type BackendName, type CryptoProvider, type KeyPair } from './crypto/index.js';
export { ParleyError, isParleyError, ERROR_CODES, type ParleyErrorCode, type SerializedParleyError, type ParleyErrorOf, type DetailsOf, type ErrorDetailsByCode, type ErrorDetails } from './errors.js';
export { Account, type InboundSessionResult } from './account.js';
export { Session, type SessionRole } from './session.js';
export { IdentityKeyPair, deviceIdOf, verifyIdentity, verifyContextSignature, sameIdentity, type PublicIdentity } from './identity.js';
export { SIGNATURE_CONTEXTS, contextMessage, type SignatureContext } from './contexts.js';
export { signedPrekeyPayload, assertBundleShape, type PrekeyBundle, type PrekeyUpload, type SignedPrekeyPublic, type OneTimePrekeyPublic } from './bundle.js';
export { verifyBundle, associatedData } from './x3dh.js';
export { safetyNumber, formatSafetyNumber } from './fingerprint.js';
export { parseMessage, MESSAGE_TYPE, WIRE_VERSION, PADDING_BUCKET, type WireMessage, type PrekeyMessage, type RatchetMessage } from './wire/message.js';
export {
  encodeSessionReset,
  openSessionReset,
  isSessionReset,
  RESET_REASONS,
  type SessionResetReason,
  type SessionResetRequest,
} from './wire/reset.js';
export * as limits from './limits.js';
export {
  checkConsentRequest,
  checkConsentReceipt,
  consentRequestHash,
  consentReceiptPayload,
  consentReceiptFor,
  withConsentSignature,
  verifyConsentReceipt,
  CONSENT_FORMAT,
  CONSENT_ID_PATTERN,
  CONSENT_FIELD_PATTERN,
  MAX_CONSENT_FIELDS,
  type ConsentRequestBody,
  type ConsentDecision,
  type ConsentReceipt,
  type UnsignedConsentReceipt,
  type ConsentReceiptExpectation,
} from './consent.js';
export {
  erasureRequestPayload,
  erasureRequestHash,
  deletionReceiptPayload,
  verifyErasureRequest,
  verifyDeletionReceipt,
  type ErasureRequest,
  type DeletionReceipt,
} from './erasure.js';
export { toHex, fromHex, toBase64, fromBase64, constantTimeEqual, concatBytes, utf8 } from './bytes.js';
export { ByteWriter, ByteReader } from './codec.js';
export {
  verifyAttestation,
  attestationPayload,
  encodeAttestation,
  decodeAttestation,
  measurementHex,
  measurementBytes,
  ATTESTATION_VERSION,
  ATTESTATION_ENCODED_BYTES,
  DEFAULT_ATTESTATION_MAX_AGE_MS,
  ATTESTATION_MAX_FUTURE_SKEW_MS,
  type BotAttestation,
  type VerifyAttestationOptions,
} from './attestation.js';
export {
  signOrgCertificate,
  verifyOrgCertificate,
  decodeOrgCertificate,
  describeOrgCertificate,
  generateOrgKey,
  orgCertificatePayload,
  orgCertificateToBase64,
  orgCertificateFromBase64,
  ORG_CERT_VERSION,
  ORG_LABEL_PATTERN,
  type OrgCertificate,
  type OrgCertificateCheck,
  type OrgCertificateFields,
  type OrgCertRefusal,
  type OrgRole,
} from './org-cert.js';
export {
  signReleaseManifest,
  verifyReleaseManifest,
  selectReleaseManifest,
  decodeReleaseManifest,
  describeReleaseManifest,
  releaseManifestPayload,
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
  generateIssuerKey,
  signIssuerCertificate,
  signStaffCertificate,
  signRevocationList,
  encodeStaffCredential,
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
  MAX_ISSUER_POLICY_LIFETIME_MS,
  MIN_ISSUER_POLICY_LIFETIME_MS,
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
export {
  signArchiveDisclosure,
  verifyArchiveDisclosure,
  decodeArchiveDisclosure,
  describeArchiveDisclosure,
  archiveDisclosurePayload,
  archiveDisclosureToBase64,
  archiveDisclosureFromBase64,
  sealToArchiveKey,
  openArchiveSeal,
  archiveSealAd,
  archiveSubmissionPayload,
  makeArchiveSubmission,
  encodeArchiveSubmission,
  decodeArchiveSubmission,
  verifyArchiveSubmission,
  archiveGenesisHash,
  archiveRef,
  encodeArchiveEntry,
  decodeArchiveEntry,
  archiveEntryHash,
  chainArchiveEntry,
  verifyArchiveChain,
  describeArchiveBreak,
  encodeArchivedMessage,
  decodeArchivedMessage,
  ARCHIVE_REF_PATTERN,
  ARCHIVE_OPENER_PATTERN,
  MAX_ARCHIVE_DISCLOSURE_BYTES,
  MAX_ARCHIVE_PAYLOAD_BYTES,
  MAX_ARCHIVE_RETENTION_DAYS,
  type ArchiveDisclosure,
  type ArchiveDisclosureFields,
  type ArchiveDisclosureCheck,
  type ArchiveDisclosureRefusal,
  type ArchiveSubmission,
  type ArchiveEntry,
  type ArchiveBreak,
  type ArchiveChainReport,
  type ArchivedMessage,
} from './archive.js';
export { encodeContent, decodeContent, type ContentType, type MessageContent, type OutgoingContent } from './content.js';
