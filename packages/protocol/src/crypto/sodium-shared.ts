/**
 * The libsodium pieces both the `sodium` and the `node` backend use: the two AEADs and strict
 * Ed25519 verification (libsodium's verdicts are the SDK's policy on every backend).
 *
 * They go through {@link wasmCalls}, not the wrappers' functions: the wrappers leave every key
 * and plaintext they copy into the WASM heap behind when they free it (see wasm-heap.ts).
 */
import { ParleyError } from '../errors.js';
import type { CryptoProvider } from './provider.js';
import { checkBytes, checkLength } from './common.js';
import type { WasmCalls } from './wasm-heap.js';

/** XChaCha20-Poly1305 and ChaCha20-Poly1305 (IETF) plus Ed25519 verification from libsodium. */
export function sodiumAeadAndVerify(
  calls: WasmCalls,
): Pick<CryptoProvider, 'xchachaEncrypt' | 'xchachaDecrypt' | 'chachaEncrypt' | 'chachaDecrypt' | 'ed25519Verify'> {
  const aead = (kind: 'xchacha' | 'chacha', key: Uint8Array, nonce: Uint8Array, input: Uint8Array, ad: Uint8Array, decrypt: boolean): Uint8Array => {
    // Sizes first: a wrong nonce size is a caller bug, refused before touching the ciphertext.
    checkLength('key', key, 32);
    checkLength('nonce', nonce, kind === 'xchacha' ? 24 : 12);
    // Copied byte by byte into the heap: anything but bytes would be copied as zeros, silently.
    checkBytes(decrypt ? 'ciphertext' : 'plaintext', input);
    checkBytes('ad', ad);
    if (!decrypt) return calls.aeadEncrypt(kind, key, nonce, input, ad);
    if (input.length < 16) throw new ParleyError('AUTH_FAILED', 'ciphertext shorter than the tag');
    // libsodium verifies the Poly1305 tag in constant time before decrypting anything.
    const plaintext = calls.aeadDecrypt(kind, key, nonce, input, ad);
    if (plaintext === undefined) throw new ParleyError('AUTH_FAILED', 'authentication tag did not verify');
    return plaintext;
  };
  return {
    xchachaEncrypt: (k, n, p, ad) => aead('xchacha', k, n, p, ad, false),
    xchachaDecrypt: (k, n, c, ad) => aead('xchacha', k, n, c, ad, true),
    chachaEncrypt: (k, n, p, ad) => aead('chacha', k, n, p, ad, false),
    chachaDecrypt: (k, n, c, ad) => aead('chacha', k, n, c, ad, true),
    ed25519Verify(publicKey, message, signature) {
      if (!(publicKey instanceof Uint8Array) || !(message instanceof Uint8Array) || !(signature instanceof Uint8Array)) return false;
      if (publicKey.length !== 32 || signature.length !== 64) return false;
      return calls.ed25519Verify(publicKey, message, signature);
    },
  };
}
