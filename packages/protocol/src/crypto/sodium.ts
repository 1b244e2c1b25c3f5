/**
 * libsodium-wrappers backend (WASM): X25519, Ed25519 and XChaCha20-Poly1305 from libsodium.
 * libsodium's standard build has no HMAC-SHA256 or HKDF, so those come from @noble/hashes.
 * Runs in browsers and Node.
 */
import sodiumModule from 'libsodium-wrappers';
import { ParleyError } from '../errors.js';
import type { CryptoProvider, KeyPair } from './provider.js';
import { nobleHashes, webRandomBytes, checkLength, isAllZero } from './common.js';

type Sodium = typeof sodiumModule;

/** Loads libsodium's WASM and returns the backend. */
export async function createSodiumProvider(): Promise<CryptoProvider> {
  await sodiumModule.ready;
  return sodiumProvider(sodiumModule);
}

function sodiumProvider(s: Sodium): CryptoProvider {
  const aead = (
    kind: 'xchacha' | 'chacha',
    key: Uint8Array,
    nonce: Uint8Array,
    input: Uint8Array,
    ad: Uint8Array,
    decrypt: boolean,
  ): Uint8Array => {
    checkLength('key', key, 32);
    checkLength('nonce', nonce, kind === 'xchacha' ? 24 : 12);
    if (!decrypt) {
      return kind === 'xchacha'
        ? s.crypto_aead_xchacha20poly1305_ietf_encrypt(input, ad, null, nonce, key)
        : s.crypto_aead_chacha20poly1305_ietf_encrypt(input, ad, null, nonce, key);
    }
    if (input.length < 16) throw new ParleyError('AUTH_FAILED', 'ciphertext shorter than the tag');
    try {
      return kind === 'xchacha'
        ? s.crypto_aead_xchacha20poly1305_ietf_decrypt(null, input, ad, nonce, key)
        : s.crypto_aead_chacha20poly1305_ietf_decrypt(null, input, ad, nonce, key);
    } catch {
      throw new ParleyError('AUTH_FAILED', 'authentication tag did not verify');
    }
  };

  return {
    name: 'sodium',
    randomBytes: webRandomBytes,
    x25519Generate(): KeyPair {
      const privateKey = webRandomBytes(32);
      return { privateKey, publicKey: s.crypto_scalarmult_base(privateKey) };
    },
    x25519PublicKey(privateKey) {
      checkLength('privateKey', privateKey, 32);
      return s.crypto_scalarmult_base(privateKey);
    },
    x25519(privateKey, publicKey) {
      checkLength('privateKey', privateKey, 32);
      checkLength('publicKey', publicKey, 32);
      let out: Uint8Array;
      try {
        out = s.crypto_scalarmult(privateKey, publicKey);
      } catch {
        // libsodium refuses an all-zero result (low-order public key).
        throw new ParleyError('INVALID_KEY', 'X25519 produced an all-zero shared secret');
      }
      if (isAllZero(out)) throw new ParleyError('INVALID_KEY', 'X25519 produced an all-zero shared secret');
      return out;
    },
    ed25519Generate(): KeyPair {
      const seed = webRandomBytes(32);
      return { privateKey: seed, publicKey: s.crypto_sign_seed_keypair(seed).publicKey };
    },
    ed25519PublicKey(seed) {
      checkLength('seed', seed, 32);
      return s.crypto_sign_seed_keypair(seed).publicKey;
    },
    ed25519Sign(seed, message) {
      checkLength('seed', seed, 32);
      const kp = s.crypto_sign_seed_keypair(seed);
      const sig = s.crypto_sign_detached(message, kp.privateKey);
      kp.privateKey.fill(0);
      return sig;
    },
    ed25519Verify(publicKey, message, signature) {
      if (publicKey.length !== 32 || signature.length !== 64) return false;
      try {
        return s.crypto_sign_verify_detached(signature, message, publicKey);
      } catch {
        return false;
      }
    },
    xchachaEncrypt: (k, n, p, ad) => aead('xchacha', k, n, p, ad, false),
    xchachaDecrypt: (k, n, c, ad) => aead('xchacha', k, n, c, ad, true),
    chachaEncrypt: (k, n, p, ad) => aead('chacha', k, n, p, ad, false),
    chachaDecrypt: (k, n, c, ad) => aead('chacha', k, n, c, ad, true),
    ...nobleHashes,
  };
}
