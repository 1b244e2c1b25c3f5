/**
 * The enclave's sealing key. Records leave the enclave in the engine's one sealing format
 * (`sealRecord`/`openRecord` of `@parley/engine`: XChaCha20-Poly1305, the record key bound in the
 * associated data), under a key derived here from the sealing secret:
 *
 * ```
 *  sealing key = HKDF-SHA256(ikm = sealing secret (32 B), salt = empty, info = "parley/v1/enclave-seal", 32)
 * ```
 * The record key is bound in the AD, so the host can't move a blob to another key (e.g. swap
 * two peers' sessions). What sealing does not stop: the host can drop a record, or hand back an
 * older blob for the same key (rollback); see README "Residual risks". Runs only inside the enclave.
 */
import { getCrypto, utf8, ParleyError } from '@parley/protocol';

/** HKDF info of the sealing key (docs/architecture.md "Bot enclave"). */
export const SEAL_INFO = 'parley/v1/enclave-seal';

/** Derives the sealing key from the 32-byte secret. The caller wipes the secret afterwards. */
export function deriveSealingKey(secret: Uint8Array): Uint8Array {
  if (secret.length !== 32) throw new ParleyError('USAGE', 'sealing secret must be 32 bytes', { details: { got: secret.length } });
  return getCrypto().hkdfSha256(secret, new Uint8Array(0), utf8(SEAL_INFO), 32);
}
