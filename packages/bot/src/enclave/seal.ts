/**
 * Sealing: how the enclave's state leaves it. Runs only inside the enclave.
 *
 * ```
 *  sealing key = HKDF-SHA256(ikm = sealing secret (32 B), salt = empty, info = "parley/v1/enclave-seal", 32)
 *
 *  blob layout (version 1)
 *  offset  size  field
 *  0       1     version = 0x01
 *  1       24    nonce (fresh random per seal)
 *  25      n+16  XChaCha20-Poly1305(sealing key, nonce, record value, AD) = ciphertext || tag
 *
 *  AD = "parley/v1/sealed-record" || 0x00 || version || UTF-8(record key)
 * ```
 * The record key is bound in the AD, so the host can't move a blob to another key (e.g. swap
 * two peers' sessions). What sealing does not stop: the host can drop a record, or hand back an
 * older blob for the same key (rollback); see README "Residual risks".
 */
import { getCrypto, concatBytes, utf8, ParleyError } from '@parley/protocol';

/** HKDF info of the sealing key (DESIGN.md "Bot enclave"). */
export const SEAL_INFO = 'parley/v1/enclave-seal';
const SEAL_AD_PREFIX = 'parley/v1/sealed-record';
const SEAL_VERSION = 1;
const NONCE_BYTES = 24;
const TAG_BYTES = 16;

/** Derives the sealing key from the 32-byte secret. The caller wipes the secret afterwards. */
export function deriveSealingKey(secret: Uint8Array): Uint8Array {
  if (secret.length !== 32) throw new ParleyError('USAGE', 'sealing secret must be 32 bytes', { details: { got: secret.length } });
  return getCrypto().hkdfSha256(secret, new Uint8Array(0), utf8(SEAL_INFO), 32);
}

function ad(key: string): Uint8Array {
  return concatBytes(utf8(SEAL_AD_PREFIX), new Uint8Array([0, SEAL_VERSION]), utf8(key));
}

/** Seals one record value under its key. */
export function seal(sealingKey: Uint8Array, key: string, value: Uint8Array): Uint8Array {
  const c = getCrypto();
  const nonce = c.randomBytes(NONCE_BYTES);
  return concatBytes(new Uint8Array([SEAL_VERSION]), nonce, c.xchachaEncrypt(sealingKey, nonce, value, ad(key)));
}

/**
 * Opens one sealed record.
 * @throws ParleyError `STORAGE_INTEGRITY` when the blob was altered, truncated, sealed under
 *   another key or another record key; `UNSUPPORTED_VERSION` for an unknown blob version.
 */
export function unseal(sealingKey: Uint8Array, key: string, blob: Uint8Array): Uint8Array {
  if (blob.length < 1 + NONCE_BYTES + TAG_BYTES) throw new ParleyError('STORAGE_INTEGRITY', 'sealed record is truncated', { details: { key } });
  if (blob[0] !== SEAL_VERSION) throw new ParleyError('UNSUPPORTED_VERSION', 'unknown sealed record version', { details: { version: blob[0]! } });
  try {
    return getCrypto().xchachaDecrypt(sealingKey, blob.subarray(1, 1 + NONCE_BYTES), blob.subarray(1 + NONCE_BYTES), ad(key));
  } catch (e) {
    throw new ParleyError('STORAGE_INTEGRITY', 'sealed record failed authentication', { details: { key }, cause: e });
  }
}
