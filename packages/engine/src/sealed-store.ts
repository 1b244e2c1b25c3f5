/**
 * The one sealing format of records at rest (device stores and the bot enclave's sealed state):
 * every value is encrypted with XChaCha20-Poly1305 under a
 * storage key, with the record's key as associated data (docs/threats.md ST1). A flipped byte, a
 * record copied under another key (e.g. two peers' sessions swapped) or a value sealed under
 * another storage key all fail with `STORAGE_INTEGRITY`, for that record only.
 *
 * Record layout:
 * ```
 *  offset  size  field
 *  0       1     format = 0x01
 *  1       24    nonce (random)
 *  25      n+16  XChaCha20-Poly1305(storageKey, nonce, value, AD = "parley/v1/record" || 0x00 || key)
 * ```
 * What sealing does not stop: a whole-store rollback to an older consistent copy (the protocol's
 * rollback detection, requirement 6, covers sessions), nor someone who holds the storage key.
 */
import { ParleyError, concatBytes, getCrypto, utf8 } from '@parley/protocol';
import type { KeyValueStore } from './store.js';

const RECORD_FORMAT = 0x01;
const NONCE_BYTES = 24;
const TAG_BYTES = 16;
const RECORD_AD_PREFIX = utf8('parley/v1/record\u0000');
const STORAGE_KEY_INFO = utf8('parley/v1/storage-key');

/** Bytes of a storage key. */
export const STORAGE_KEY_BYTES = 32;

/**
 * Derives a storage key from an application secret with HKDF-SHA256. The secret must be
 * high-entropy (at least 32 random bytes, e.g. from a KMS or the OS keychain): HKDF does not
 * slow down guessing, so a human password is not a suitable secret.
 * @throws ParleyError `USAGE` for a secret shorter than 16 bytes.
 */
export function deriveStorageKey(secret: Uint8Array | string, salt: Uint8Array): Uint8Array {
  const ikm = typeof secret === 'string' ? utf8(secret) : secret;
  if (ikm.length < 16) throw new ParleyError('USAGE', 'storageSecret must be at least 16 bytes', { details: { length: ikm.length } });
  return getCrypto().hkdfSha256(ikm, salt, STORAGE_KEY_INFO, STORAGE_KEY_BYTES);
}

function ad(key: string): Uint8Array {
  return concatBytes(RECORD_AD_PREFIX, utf8(key));
}

/** Seals one value for `key`. */
export function sealRecord(storageKey: Uint8Array, key: string, value: Uint8Array): Uint8Array {
  const c = getCrypto();
  const nonce = c.randomBytes(NONCE_BYTES);
  return concatBytes(new Uint8Array([RECORD_FORMAT]), nonce, c.xchachaEncrypt(storageKey, nonce, value, ad(key)));
}

/**
 * Opens one sealed value.
 * @throws ParleyError `STORAGE_INTEGRITY` when the record is truncated or does not authenticate for `key`;
 *   `UNSUPPORTED_VERSION` for an unknown format byte.
 */
export function openRecord(storageKey: Uint8Array, key: string, sealed: Uint8Array): Uint8Array {
  if (sealed.length < 1 + NONCE_BYTES + TAG_BYTES) {
    throw new ParleyError('STORAGE_INTEGRITY', 'stored record is truncated', { details: { key: publicKeyName(key) } });
  }
  if (sealed[0] !== RECORD_FORMAT) {
    throw new ParleyError('UNSUPPORTED_VERSION', 'stored record has an unknown format; was it written by a newer Parley?', {
      details: { key: publicKeyName(key), format: sealed[0]! },
    });
  }
  try {
    return getCrypto().xchachaDecrypt(storageKey, sealed.subarray(1, 1 + NONCE_BYTES), sealed.subarray(1 + NONCE_BYTES), ad(key));
  } catch (cause) {
    throw new ParleyError('STORAGE_INTEGRITY', 'stored record failed authentication', { details: { key: publicKeyName(key) }, cause });
  }
}

/** Record keys hold device and message ids only; still, report just the record kind. */
function publicKeyName(key: string): string {
  return key.split('/')[0] ?? '';
}

/**
 * Wraps a store so every value is sealed at rest.
 * @example
 * const store = new SealedStore(new MemoryStore(), deriveStorageKey(secret, salt));
 */
export class SealedStore implements KeyValueStore {
  readonly #inner: KeyValueStore;
  readonly #key: Uint8Array;

  constructor(inner: KeyValueStore, storageKey: Uint8Array) {
    if (!(storageKey instanceof Uint8Array) || storageKey.length !== STORAGE_KEY_BYTES) {
      throw new ParleyError('USAGE', 'storageKey must be 32 bytes');
    }
    this.#inner = inner;
    this.#key = storageKey.slice();
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    const sealed = await this.#inner.get(key);
    return sealed === undefined ? undefined : openRecord(this.#key, key, sealed);
  }
  setMany(entries: [string, Uint8Array][]): Promise<void> {
    return this.#inner.setMany(entries.map(([k, v]) => [k, sealRecord(this.#key, k, v)]));
  }
  delMany(keys: string[]): Promise<void> {
    return this.#inner.delMany(keys);
  }
  keys(prefix: string): Promise<string[]> {
    return this.#inner.keys(prefix);
  }
  toJSON(): { sealed: true } {
    return { sealed: true };
  }
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return 'SealedStore { storageKey: [redacted] }';
  }
}
