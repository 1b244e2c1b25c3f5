/**
 * Node.js backend, the default in Node because it is the fastest: X25519, Ed25519 signing,
 * HMAC-SHA256, HKDF-SHA256 and SHA-2 from node:crypto (OpenSSL); XChaCha20-Poly1305,
 * ChaCha20-Poly1305, Ed25519 *verification* and public-key derivation from libsodium-wrappers.
 *
 * - node:crypto has no XChaCha20-Poly1305, so both AEADs come from libsodium (one AEAD code
 *   path for both nonce sizes, and the same as the `sodium` backend).
 * - Ed25519 verification is libsodium's, not OpenSSL's: on the speccheck vectors OpenSSL
 *   accepts cases 0, 1, 2 and 11 (small-order A or R), libsodium only case 3. The SDK documents
 *   libsodium's strict verdicts, and every verifier must agree (THREATS.md C21), so Node's
 *   `crypto.verify` is not used.
 * - node:crypto works on KeyObjects, and importing a raw key costs about as much as the
 *   X25519 operation itself, so imported keys are cached per caller-owned `Uint8Array`
 *   (see {@link KeyObjectCache}).
 * - Public keys come from libsodium, which is faster than node:crypto's
 *   import + `createPublicKey` + DER export.
 *
 * Never exports an X25519 KeyObject as JWK: Node 20.20.2 hangs forever on that for keys from
 * `generateKeyPairSync('x25519')`. Keys are generated as 32 random bytes instead.
 */
import {
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  hkdfSync,
  sign as nodeSign,
  type KeyObject,
} from 'node:crypto';
import sodiumModule from 'libsodium-wrappers';
import { ParleyError } from '../errors.js';
import { constantTimeEqual } from '../bytes.js';
import type { CryptoProvider, KeyPair } from './provider.js';
import { sodiumAeadAndVerify } from './sodium-shared.js';
import { HKDF_SHA256_MAX, checkLength, isAllZero, webRandomBytes } from './common.js';

type Sodium = typeof sodiumModule;

/** Node's `hkdfSync` refuses `info` longer than this (`ERR_OUT_OF_RANGE`). */
const NODE_HKDF_MAX_INFO = 1024;
/** A syntactically valid 32-byte `x` for private-key JWKs: Node ignores it and derives the public key. */
const DUMMY_X = b64url(new Uint8Array(32));
/**
 * Up to this output length HKDF spelled out over `createHmac` (1 + ceil(L/32) HMAC calls,
 * ~4.8 µs for 32 bytes, ~7.3 µs for 64) beats `hkdfSync` (~10 µs flat: it builds a KeyObject
 * per call); above it `hkdfSync` wins (96 bytes: about even; 8,160 bytes: 8x).
 */
const HMAC_HKDF_MAX_LENGTH = 64;

/**
 * Loads libsodium (for the AEADs and Ed25519 verification) and returns the backend.
 *
 * @example
 * ```ts
 * const c = await createNodeProvider();
 * const shared = c.x25519(myPrivate, theirPublic);
 * ```
 */
export async function createNodeProvider(): Promise<CryptoProvider> {
  await sodiumModule.ready;
  return nodeProvider(sodiumModule);
}

/**
 * Imported KeyObjects, keyed by the caller's byte array.
 *
 * Private keys live long in session state and cost ~45 µs to import, more than a cached
 * X25519 operation (~45 µs), so caching halves the cost of a DH. Each entry keeps a copy of the
 * bytes it was imported from and is used only while the array still holds those bytes, so an
 * array that the caller overwrites (reused buffer, `wipe()`) is never served a stale key.
 *
 * What JS cannot wipe: the copy and the KeyObject (OpenSSL memory) live until the caller's
 * array is garbage-collected, not until the caller zero-fills it.
 */
class KeyObjectCache {
  readonly #entries = new WeakMap<Uint8Array, { readonly bytes: Uint8Array; readonly key: KeyObject }>();
  readonly #importKey: (bytes: Uint8Array) => KeyObject;

  constructor(importKey: (bytes: Uint8Array) => KeyObject) {
    this.#importKey = importKey;
  }

  get(bytes: Uint8Array): KeyObject {
    const hit = this.#entries.get(bytes);
    if (hit !== undefined && constantTimeEqual(hit.bytes, bytes)) return hit.key;
    const key = this.#importKey(bytes);
    this.#entries.set(bytes, { bytes: bytes.slice(), key });
    return key;
  }
}

function nodeProvider(s: Sodium): CryptoProvider {
  // JWK import is ~14x cheaper than wrapping the raw bytes in PKCS#8/SPKI DER.
  const x25519Private = new KeyObjectCache((d) =>
    createPrivateKey({ key: { kty: 'OKP', crv: 'X25519', d: b64url(d), x: DUMMY_X }, format: 'jwk' }),
  );
  const x25519Public = new KeyObjectCache((x) =>
    createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: b64url(x) }, format: 'jwk' }),
  );
  const ed25519Private = new KeyObjectCache((d) =>
    createPrivateKey({ key: { kty: 'OKP', crv: 'Ed25519', d: b64url(d), x: DUMMY_X }, format: 'jwk' }),
  );
  // Public keys from libsodium: ~44 µs against ~120 µs for import + createPublicKey + DER
  // export in node:crypto. The private KeyObject is imported lazily, on first use.
  const x25519PublicOf = (privateKey: Uint8Array): Uint8Array => s.crypto_scalarmult_base(privateKey);
  const ed25519PublicOf = (seed: Uint8Array): Uint8Array => {
    const kp = s.crypto_sign_seed_keypair(seed);
    kp.privateKey.fill(0); // libsodium's 64-byte secret key holds a copy of the seed
    return kp.publicKey;
  };

  return {
    name: 'node',
    randomBytes: webRandomBytes,

    x25519Generate(): KeyPair {
      const privateKey = webRandomBytes(32);
      return { privateKey, publicKey: x25519PublicOf(privateKey) };
    },
    x25519PublicKey(privateKey) {
      checkLength('privateKey', privateKey, 32);
      return x25519PublicOf(privateKey);
    },
    x25519(privateKey, publicKey) {
      checkLength('privateKey', privateKey, 32);
      checkLength('publicKey', publicKey, 32);
      let out: Uint8Array;
      try {
        out = copy(diffieHellman({ privateKey: x25519Private.get(privateKey), publicKey: x25519Public.get(publicKey) }));
      } catch (cause) {
        // OpenSSL's X25519 fails the derivation when the output is all zero (RFC 7748 §6.1);
        // key import cannot fail for 32-byte inputs.
        throw new ParleyError('INVALID_KEY', 'X25519 produced an all-zero shared secret', { cause });
      }
      if (isAllZero(out)) throw new ParleyError('INVALID_KEY', 'X25519 produced an all-zero shared secret');
      return out;
    },

    ed25519Generate(): KeyPair {
      const seed = webRandomBytes(32);
      return { privateKey: seed, publicKey: ed25519PublicOf(seed) };
    },
    ed25519PublicKey(seed) {
      checkLength('seed', seed, 32);
      return ed25519PublicOf(seed);
    },
    ed25519Sign(seed, message) {
      checkLength('seed', seed, 32);
      // Pure Ed25519 (RFC 8032 §5.1.6) is deterministic: byte-identical to libsodium's.
      return copy(nodeSign(null, message, ed25519Private.get(seed)));
    },
    // AEADs and verification from libsodium: see the module comment.
    ...sodiumAeadAndVerify(s),

    hmacSha256: (key, data) => copy(createHmac('sha256', key).update(data).digest()),
    hkdfSha256(ikm, salt, info, length) {
      // RFC 5869 §2.3: L <= 255*HashLen.
      if (!Number.isInteger(length) || length < 0 || length > HKDF_SHA256_MAX) {
        throw new ParleyError('USAGE', `HKDF-SHA256 output length must be 0..${HKDF_SHA256_MAX}`, {
          details: { length },
        });
      }
      if (length <= HMAC_HKDF_MAX_LENGTH || info.length > NODE_HKDF_MAX_INFO) return hkdfWithHmac(ikm, salt, info, length);
      return new Uint8Array(hkdfSync('sha256', ikm, salt, info, length));
    },
    sha256: (data) => copy(createHash('sha256').update(data).digest()),
    sha512: (data) => copy(createHash('sha512').update(data).digest()),
  };
}

/**
 * RFC 5869 §2.2 (extract) and §2.3 (expand) spelled out over node's HMAC: faster than
 * `hkdfSync` for the short outputs the ratchet asks for, and free of its 1,024-byte `info` cap.
 */
function hkdfWithHmac(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Uint8Array {
  // §2.2: "if not provided, [salt] is set to a string of HashLen zeros"; an empty HMAC key is
  // padded with zeros to the block size, so the two are the same.
  const prk = createHmac('sha256', salt).update(ikm).digest();
  const okm = new Uint8Array(length);
  let t: Uint8Array = new Uint8Array(0);
  for (let i = 1, offset = 0; offset < length; i++) {
    t = createHmac('sha256', prk).update(t).update(info).update(Uint8Array.of(i)).digest();
    okm.set(t.subarray(0, Math.min(32, length - offset)), offset);
    offset += 32;
  }
  prk.fill(0);
  t.fill(0);
  return okm;
}

/**
 * A plain `Uint8Array` copy of a Buffer: callers compare with deepStrictEqual and keep results
 * in session state, and a small Buffer may be a view into Node's shared allocation pool.
 */
function copy(buf: Uint8Array): Uint8Array {
  return new Uint8Array(buf);
}

function b64url(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('base64url');
}
