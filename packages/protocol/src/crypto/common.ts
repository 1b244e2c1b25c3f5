/** Pieces shared by the backends: argument checks, WebCrypto randomness, noble hashes. */
import { hmac } from '@noble/hashes/hmac.js';
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256, sha512 } from '@noble/hashes/sha2.js';
import { ParleyError } from '../errors.js';
import type { CryptoProvider } from './provider.js';

/** Throws `USAGE` naming the argument when `bytes` is not exactly `length` long. */
export function checkLength(name: string, bytes: Uint8Array, length: number): void {
  if (!(bytes instanceof Uint8Array) || bytes.length !== length) {
    throw new ParleyError('USAGE', `${name} must be ${length} bytes`, {
      details: { expected: length, got: bytes instanceof Uint8Array ? bytes.length : -1 },
    });
  }
}

/** Throws `USAGE` naming the argument when `bytes` is not a `Uint8Array`. */
export function checkBytes(name: string, bytes: Uint8Array): void {
  if (!(bytes instanceof Uint8Array)) throw new ParleyError('USAGE', `${name} must be a Uint8Array`);
}

/** True if every byte is zero (constant time in the length). */
export function isAllZero(bytes: Uint8Array): boolean {
  let acc = 0;
  for (let i = 0; i < bytes.length; i++) acc |= bytes[i]!;
  return acc === 0;
}

/**
 * Random bytes from WebCrypto (browsers and Node 20), drawn from the CSPRNG at the moment they
 * are needed, never from a pool filled in advance: a memory snapshot then holds no key or nonce
 * made after it, and a restored VM snapshot repeats none (docs/threats.md C1). libsodium's
 * randombytes_buf is ~25x slower here because of the wrapper's per-call overhead.
 */
export function webRandomBytes(length: number): Uint8Array {
  return fillRandom(new Uint8Array(length));
}

function fillRandom<T extends Uint8Array>(out: T): T {
  // getRandomValues fills at most 65,536 bytes per call. The common case (a key, nonces) in
  // one call on the array itself: a subarray view per draw costs about a tenth of the draw.
  if (out.length <= 65536) {
    globalThis.crypto.getRandomValues(out);
    return out;
  }
  for (let i = 0; i < out.length; i += 65536) globalThis.crypto.getRandomValues(out.subarray(i, Math.min(out.length, i + 65536)));
  return out;
}

/** HKDF output cap of RFC 5869 §2.3 for SHA-256. */
export const HKDF_SHA256_MAX = 255 * 32;

/**
 * HMAC/HKDF/SHA-2 from @noble/hashes, for backends without their own. noble wipes its own
 * intermediates (HMAC pads and hash states, the HKDF PRK and the tail of the last output block).
 */
export const nobleHashes: Pick<CryptoProvider, 'hmacSha256' | 'hkdfSha256' | 'sha256' | 'sha512'> = {
  hmacSha256: (key, data) => hmac(sha256, key, data),
  hkdfSha256(ikm, salt, info, length) {
    if (!Number.isInteger(length) || length < 0 || length > HKDF_SHA256_MAX) {
      throw new ParleyError('USAGE', `HKDF-SHA256 output length must be 0..${HKDF_SHA256_MAX}`, {
        details: { length },
      });
    }
    return hkdf(sha256, ikm, salt, info, length);
  },
  sha256: (data) => sha256(data),
  sha512: (data) => sha512(data),
};
