/**
 * The one interface through which the protocol reaches cryptographic primitives.
 *
 * Implementations (backends) live next to this file and are the only modules that import
 * libsodium-wrappers, @noble/* or node:crypto. All keys are raw `Uint8Array`s:
 * X25519 keys are 32 bytes, Ed25519 private keys are 32-byte seeds (RFC 8032 §5.1.5).
 */
export type BackendName = 'node' | 'sodium' | 'noble';

export interface KeyPair {
  readonly publicKey: Uint8Array;
  readonly privateKey: Uint8Array;
}

export interface CryptoProvider {
  readonly name: BackendName;
  /** Cryptographically secure random bytes. */
  randomBytes(length: number): Uint8Array;

  /** A fresh X25519 key pair. */
  x25519Generate(): KeyPair;
  /** X25519 public key for a 32-byte private key. */
  x25519PublicKey(privateKey: Uint8Array): Uint8Array;
  /**
   * RFC 7748 X25519. Throws `INVALID_KEY` when the output is all zero (low-order or
   * non-contributory public key), the same on every backend.
   */
  x25519(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array;

  /** A fresh Ed25519 key pair; `privateKey` is the 32-byte seed. */
  ed25519Generate(): KeyPair;
  /** Ed25519 public key for a 32-byte seed. */
  ed25519PublicKey(seed: Uint8Array): Uint8Array;
  /** RFC 8032 Ed25519 signature (64 bytes). */
  ed25519Sign(seed: Uint8Array, message: Uint8Array): Uint8Array;
  /**
   * Strict RFC 8032 verification with libsodium's verdicts: canonical S and A, small-order
   * A and R rejected. Returns false (never throws) for any bad input.
   */
  ed25519Verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean;

  /** XChaCha20-Poly1305 (IETF), 24-byte nonce. Output is ciphertext || 16-byte tag. */
  xchachaEncrypt(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, ad: Uint8Array): Uint8Array;
  /** Throws `AUTH_FAILED` when the tag does not verify; `USAGE` for wrong key/nonce sizes. */
  xchachaDecrypt(key: Uint8Array, nonce: Uint8Array, ciphertext: Uint8Array, ad: Uint8Array): Uint8Array;
  /** ChaCha20-Poly1305 (IETF, 12-byte nonce). Not used by the protocol; kept for conformance tests. */
  chachaEncrypt(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, ad: Uint8Array): Uint8Array;
  /** Throws `AUTH_FAILED` when the tag does not verify; `USAGE` for wrong key/nonce sizes. */
  chachaDecrypt(key: Uint8Array, nonce: Uint8Array, ciphertext: Uint8Array, ad: Uint8Array): Uint8Array;

  /** HMAC-SHA256, full 32-byte output. */
  hmacSha256(key: Uint8Array, data: Uint8Array): Uint8Array;
  /** HKDF-SHA256 (RFC 5869). Throws `USAGE` when `length` > 255*32. */
  hkdfSha256(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Uint8Array;
  /** SHA-256. */
  sha256(data: Uint8Array): Uint8Array;
  /** SHA-512. */
  sha512(data: Uint8Array): Uint8Array;
}
