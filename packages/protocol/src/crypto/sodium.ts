/**
 * libsodium-wrappers backend (WASM): X25519, Ed25519 and XChaCha20-Poly1305 from libsodium.
 * libsodium's standard build has no HMAC-SHA256 or HKDF, so those come from @noble/hashes.
 * Runs in browsers and Node.
 *
 * Every call goes to the raw WASM exports through wasm-heap.ts, which zeroes the heap slots of
 * each call's arguments and results when it returns; the wrappers' own functions would leave
 * keys, seeds and plaintexts behind in freed heap memory.
 */
import sodiumModule from 'libsodium-wrappers';
import { ParleyError } from '../errors.js';
import type { CryptoProvider, KeyPair } from './provider.js';
import { sodiumAeadAndVerify } from './sodium-shared.js';
import { nobleHashes, webRandomBytes, checkBytes, checkLength, isAllZero } from './common.js';
import { sodiumWasm, wasmCalls, type WasmCalls } from './wasm-heap.js';

/** Loads libsodium's WASM and returns the backend. */
export async function createSodiumProvider(): Promise<CryptoProvider> {
  await sodiumModule.ready;
  return sodiumProvider(wasmCalls(sodiumWasm(sodiumModule)));
}

function sodiumProvider(calls: WasmCalls): CryptoProvider {
  return {
    name: 'sodium',
    randomBytes: webRandomBytes,
    x25519Generate(): KeyPair {
      const privateKey = webRandomBytes(32);
      return { privateKey, publicKey: calls.scalarmultBase(privateKey) };
    },
    x25519PublicKey(privateKey) {
      checkLength('privateKey', privateKey, 32);
      return calls.scalarmultBase(privateKey);
    },
    x25519(privateKey, publicKey) {
      checkLength('privateKey', privateKey, 32);
      checkLength('publicKey', publicKey, 32);
      // libsodium refuses an all-zero result (low-order public key).
      const out = calls.scalarmult(privateKey, publicKey);
      if (out === undefined || isAllZero(out)) throw new ParleyError('INVALID_KEY', 'X25519 produced an all-zero shared secret');
      return out;
    },
    ed25519Generate(): KeyPair {
      const seed = webRandomBytes(32);
      return { privateKey: seed, publicKey: calls.ed25519PublicKey(seed) };
    },
    ed25519PublicKey(seed) {
      checkLength('seed', seed, 32);
      return calls.ed25519PublicKey(seed);
    },
    ed25519Sign(seed, message) {
      checkLength('seed', seed, 32);
      checkBytes('message', message);
      // The 64-byte secret key is expanded from the seed and wiped inside the WASM heap.
      return calls.ed25519Sign(seed, message);
    },
    ...sodiumAeadAndVerify(calls),
    ...nobleHashes,
  };
}
