/**
 * Pure-JS backend: @noble/curves (X25519, Ed25519), @noble/ciphers (ChaCha20-Poly1305,
 * XChaCha20-Poly1305) and @noble/hashes (SHA-2, HMAC, HKDF). For pages whose CSP forbids
 * WASM; it must give the same bytes and the same verdicts as the libsodium backend, which
 * `test/vectors/` checks on every Wycheproof and speccheck case and on random inputs.
 *
 * noble is "algorithmically constant time" only (no guarantees against the JIT); that is the
 * price of running without WASM.
 *
 * Zeroization: this module allocates no buffer for a secret of its own (inputs and outputs are
 * the caller's). @noble/ciphers and @noble/hashes zero their internal buffers (ChaCha subkeys,
 * Poly1305 state, HMAC pads, the HKDF PRK and output blocks). @noble/curves holds scalars, the
 * expanded Ed25519 key and intermediate points as BigInts, which are immutable: nothing can
 * overwrite them, they go when the GC collects them.
 */
import { ed25519, x25519 } from '@noble/curves/ed25519.js';
import { bytesToNumberLE, numberToBytesLE } from '@noble/curves/utils.js';
import { chacha20poly1305, xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { sha512 } from '@noble/hashes/sha2.js';
import { ParleyError } from '../errors.js';
import { constantTimeEqual } from '../bytes.js';
import type { CryptoProvider, KeyPair } from './provider.js';
import { checkLength, isAllZero, nobleHashes, webRandomBytes } from './common.js';

const Point = ed25519.Point;
/** Order of the prime subgroup, RFC 8032 §5.1 ("L"). */
const L = Point.Fn.ORDER;
/** The field prime 2^255 - 19, RFC 8032 §5.1 ("p"). */
const P = Point.Fp.ORDER;
const Y_MASK = (1n << 255n) - 1n;

/**
 * Creates the noble backend. Synchronous: there is nothing to load.
 *
 * @example
 * ```ts
 * const c = createNobleProvider();
 * const sig = c.ed25519Sign(seed, message);
 * ```
 */
export function createNobleProvider(): CryptoProvider {
  return {
    name: 'noble',
    randomBytes: webRandomBytes,

    x25519Generate(): KeyPair {
      const privateKey = webRandomBytes(32);
      return { privateKey, publicKey: x25519.getPublicKey(privateKey) };
    },
    x25519PublicKey(privateKey) {
      checkLength('privateKey', privateKey, 32);
      return x25519.getPublicKey(privateKey);
    },
    x25519(privateKey, publicKey) {
      checkLength('privateKey', privateKey, 32);
      checkLength('publicKey', publicKey, 32);
      let out: Uint8Array;
      try {
        // noble refuses low-order public keys (the same set whose output is all zero) before
        // running the ladder; the only other cause of a throw, wrong lengths, is excluded above.
        out = x25519.getSharedSecret(privateKey, publicKey);
      } catch (cause) {
        throw new ParleyError('INVALID_KEY', 'X25519 produced an all-zero shared secret', { cause });
      }
      // RFC 7748 §6.1: "check ... whether K is the all-zero value and abort if so". Checked
      // again here so the rule does not rest on a library default.
      if (isAllZero(out)) throw new ParleyError('INVALID_KEY', 'X25519 produced an all-zero shared secret');
      return out;
    },

    ed25519Generate(): KeyPair {
      const seed = webRandomBytes(32);
      return { privateKey: seed, publicKey: ed25519.getPublicKey(seed) };
    },
    ed25519PublicKey(seed) {
      checkLength('seed', seed, 32);
      return ed25519.getPublicKey(seed);
    },
    ed25519Sign(seed, message) {
      checkLength('seed', seed, 32);
      // RFC 8032 signatures are deterministic, so this is byte-identical to libsodium's.
      return ed25519.sign(message, seed);
    },
    ed25519Verify: verifyLikeLibsodium,

    xchachaEncrypt: (k, n, p, ad) => aead('xchacha', k, n, p, ad, false),
    xchachaDecrypt: (k, n, c, ad) => aead('xchacha', k, n, c, ad, true),
    chachaEncrypt: (k, n, p, ad) => aead('chacha', k, n, p, ad, false),
    chachaDecrypt: (k, n, c, ad) => aead('chacha', k, n, c, ad, true),

    ...nobleHashes,
  };
}

/**
 * Ed25519 verification that gives libsodium's verdict (`crypto_sign_verify_detached`,
 * libsodium 1.0.22) on every input.
 *
 * noble's own `ed25519.verify(sig, msg, pk, { zip215: false })` is strict RFC 8032 but not
 * libsodium: it checks the *cofactored* equation [8][S]B = [8]R + [8][k]A (RFC 8032 §5.1.7
 * allows either) and does not reject small-order R, so it accepts speccheck case 2 (small-order
 * R) and cases 4 and 5 (which pass only the cofactored equation), all rejected by libsodium.
 * So this runs libsodium's rules with noble's strict point decoding and arithmetic:
 *
 * 1. S must be canonical, 0 <= S < L (RFC 8032 §5.1.7 step 1; stops malleability).
 * 2. R must not encode a small-order point (libsodium's `ge25519_has_small_order` blocklist:
 *    the y coordinate, sign bit ignored, reduced mod p, is 0, 1, -1 or ±y of an order-8 point).
 * 3. A must be a canonical encoding (y < p; noble `fromBytes(…, zip215 = false)`), decode, and
 *    not be small order.
 * 4. Cofactorless check: encode([S]B - [k]A) must equal the 32 bytes of R, with
 *    k = SHA-512(R || A || M) mod L. Comparing encodings also rejects a non-canonical R.
 *
 * Returns false, never throws, for any bad input.
 */
function verifyLikeLibsodium(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (!(publicKey instanceof Uint8Array) || !(signature instanceof Uint8Array) || !(message instanceof Uint8Array)) {
    return false;
  }
  if (publicKey.length !== 32 || signature.length !== 64) return false;
  const r = signature.subarray(0, 32);
  const s = bytesToNumberLE(signature.subarray(32, 64));
  if (s >= L) return false; // rule 1
  if (hasSmallOrderEncoding(r)) return false; // rule 2
  let A: typeof Point.BASE;
  try {
    A = Point.fromBytes(publicKey, false); // rule 3: canonical and on the curve
  } catch {
    return false;
  }
  if (A.isSmallOrder()) return false; // rule 3
  const k = bytesToNumberLE(sha512(concat3(r, publicKey, message))) % L;
  // Public data only, so the variable-time multiplications are fine here.
  const rCheck = Point.BASE.multiplyUnsafe(s).subtract(A.multiplyUnsafe(k)).toBytes();
  return constantTimeEqual(rCheck, r); // rule 4
}

/**
 * True when a 32-byte point encoding is one libsodium's `ge25519_has_small_order` rejects:
 * libsodium compares against 7 fixed encodings with the sign bit ignored, which are exactly the
 * y values (mod p) of the 8 small-order points, including the two non-canonical ones (p, p+1)
 * that fit in 255 bits. Deriving it from the curve avoids copying a table.
 */
function hasSmallOrderEncoding(encoding: Uint8Array): boolean {
  const y = (bytesToNumberLE(encoding) & Y_MASK) % P;
  try {
    // Sign bit 0: whether a point with this y exists does not depend on the sign of x.
    return Point.fromBytes(numberToBytesLE(y, 32), false).isSmallOrder();
  } catch {
    return false; // not on the curve, so not a small-order point
  }
}

function concat3(a: Uint8Array, b: Uint8Array, c: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length + c.length);
  out.set(a, 0);
  out.set(b, a.length);
  out.set(c, a.length + b.length);
  return out;
}

/** RFC 8439 §2.8 AEAD (12-byte nonce), or its XChaCha extension (24-byte nonce, HChaCha20 subkey). */
function aead(
  kind: 'xchacha' | 'chacha',
  key: Uint8Array,
  nonce: Uint8Array,
  input: Uint8Array,
  ad: Uint8Array,
  decrypt: boolean,
): Uint8Array {
  // Sizes first: a wrong nonce size is a caller bug, refused before touching the ciphertext.
  checkLength('key', key, 32);
  checkLength('nonce', nonce, kind === 'xchacha' ? 24 : 12);
  const cipher = kind === 'xchacha' ? xchacha20poly1305(key, nonce, ad) : chacha20poly1305(key, nonce, ad);
  if (!decrypt) return cipher.encrypt(input);
  if (input.length < 16) throw new ParleyError('AUTH_FAILED', 'ciphertext shorter than the tag');
  try {
    // noble compares the Poly1305 tag in constant time (equalBytes) before decrypting.
    return cipher.decrypt(input);
  } catch (cause) {
    throw new ParleyError('AUTH_FAILED', 'authentication tag did not verify', { cause });
  }
}
