/**
 * `@parley/bot/attestation`: the bot attestation format and its verifier, for clients.
 * No Node-only imports: a browser widget can import this file alone.
 *
 * The implementation lives in `@parley/protocol/attestation` (pure, shared with the client SDK,
 * which checks attestations before it sends; `@parley/client` cannot depend on `@parley/bot`,
 * which depends on it). This file re-exports it, so there is one format and one verifier.
 *
 * ```
 *  signed = "parley/v1/bot-attest" || 0x00 || payload          (context botAttestation)
 *  payload = 0x01 || measurement (32) || device id (16 bytes) || issuedAt (u64 BE, ms)   57 bytes
 *  encoded = payload || signature (64)                                                  121 bytes
 * ```
 * What it proves, and what it doesn't: see README "What the enclave is, and what it isn't".
 */
export {
  verifyAttestation,
  attestationPayload,
  encodeAttestation,
  decodeAttestation,
  measurementHex,
  ATTESTATION_VERSION,
  ATTESTATION_ENCODED_BYTES,
  DEFAULT_ATTESTATION_MAX_AGE_MS,
  ATTESTATION_MAX_FUTURE_SKEW_MS,
  type BotAttestation,
  type VerifyAttestationOptions,
} from '@parley/protocol/attestation';
