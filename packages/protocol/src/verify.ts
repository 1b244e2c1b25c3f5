/**
 * The relay's whole view of the protocol: public types, device ids and signature checks.
 * No private-key or session code is reachable from here (a test checks the import graph).
 */
export { initCrypto, getCrypto, defaultBackend, type BackendName } from './crypto/index.js';
export { deviceIdOf, verifyIdentity, verifyContextSignature, type PublicIdentity } from './identity-public.js';
export { SIGNATURE_CONTEXTS, contextMessage, type SignatureContext } from './contexts.js';
export { signedPrekeyPayload, type PrekeyBundle, type PrekeyUpload, type SignedPrekeyPublic, type OneTimePrekeyPublic } from './bundle.js';
export { ParleyError, isParleyError, ERROR_CODES, type ParleyErrorCode, type SerializedParleyError } from './errors.js';
