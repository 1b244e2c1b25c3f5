/**
 * libsodium-wrappers backend (WASM): X25519, Ed25519 and XChaCha20-Poly1305 from libsodium.
 * libsodium's standard build has no HMAC-SHA256 or HKDF, so those come from @noble/hashes.
 * Runs in browsers and Node.
 */
import sodiumModule from 'libsodium-wrappers';
import { ParleyError } from '../errors.js';
import type { CryptoProvider, KeyPair } from './provider.js';
import { sodiumAeadAndVerify } from './sodium-shared.js';
import { nobleHashes, webRandomBytes, checkLength, isAllZero } from './common.js';

type Sodium = typeof sodiumModule;

/** Loads libsodium's WASM and returns the backend. */
export async function createSodiumProvider(): Promise<CryptoProvider> {
  await sodiumModule.ready;
  return sodiumProvider(sodiumModule);
}

function sodiumProvider(s: Sodium): CryptoProvider {
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
    ...sodiumAeadAndVerify(s),
    ...nobleHashes,
  };
}
