/**
 * The libsodium pieces both the `sodium` and the `node` backend use: the two AEADs and strict
 * Ed25519 verification (libsodium's verdicts are the SDK's policy on every backend).
 */
import type sodiumModule from 'libsodium-wrappers';
import { ParleyError } from '../errors.js';
import type { CryptoProvider } from './provider.js';
import { checkLength } from './common.js';

type Sodium = typeof sodiumModule;

/** XChaCha20-Poly1305 and ChaCha20-Poly1305 (IETF) plus Ed25519 verification from libsodium. */
export function sodiumAeadAndVerify(
  s: Sodium,
): Pick<CryptoProvider, 'xchachaEncrypt' | 'xchachaDecrypt' | 'chachaEncrypt' | 'chachaDecrypt' | 'ed25519Verify'> {
  const aead = (kind: 'xchacha' | 'chacha', key: Uint8Array, nonce: Uint8Array, input: Uint8Array, ad: Uint8Array, decrypt: boolean): Uint8Array => {
    // Sizes first: a wrong nonce size is a caller bug, refused before touching the ciphertext.
    checkLength('key', key, 32);
    checkLength('nonce', nonce, kind === 'xchacha' ? 24 : 12);
    if (!decrypt) {
      return kind === 'xchacha'
        ? s.crypto_aead_xchacha20poly1305_ietf_encrypt(input, ad, null, nonce, key)
        : s.crypto_aead_chacha20poly1305_ietf_encrypt(input, ad, null, nonce, key);
    }
    if (input.length < 16) throw new ParleyError('AUTH_FAILED', 'ciphertext shorter than the tag');
    try {
      // libsodium verifies the Poly1305 tag in constant time before decrypting anything.
      return kind === 'xchacha'
        ? s.crypto_aead_xchacha20poly1305_ietf_decrypt(null, input, ad, nonce, key)
        : s.crypto_aead_chacha20poly1305_ietf_decrypt(null, input, ad, nonce, key);
    } catch {
      throw new ParleyError('AUTH_FAILED', 'authentication tag did not verify');
    }
  };
  return {
    xchachaEncrypt: (k, n, p, ad) => aead('xchacha', k, n, p, ad, false),
    xchachaDecrypt: (k, n, c, ad) => aead('xchacha', k, n, c, ad, true),
    chachaEncrypt: (k, n, p, ad) => aead('chacha', k, n, p, ad, false),
    chachaDecrypt: (k, n, c, ad) => aead('chacha', k, n, c, ad, true),
    ed25519Verify(publicKey, message, signature) {
      if (publicKey.length !== 32 || signature.length !== 64) return false;
      try {
        return s.crypto_sign_verify_detached(signature, message, publicKey);
      } catch {
        return false;
      }
    },
  };
}
