/**
 * The enclave's sealing keys and the formats of its two bookkeeping records (README "Sealing
 * secret", "Measurement binding", "Rollback"; docs/threats.md B5, B9, B10, B11). Runs only inside the
 * enclave.
 *
 * Records leave the enclave in the engine's one sealing format (`sealRecord`/`openRecord` of
 * `@parley/engine`: XChaCha20-Poly1305, the record key bound in the associated data), under the
 * *state key*: 32 random bytes made when the state is created, stored only wrapped under a key
 * that depends on the sealing secret AND the enclave's measurement.
 *
 * ```
 *  wrapping key(M)  = HKDF-SHA256(ikm = sealing secret, salt = measurement M (32 B), info = "parley/v2/enclave-seal-wrap", 32)
 *  enclave:key      = "PEK2" || M || sealRecord(wrapping key(M), "enclave:key", state id (16) || state key (32))
 *  every record     = sealRecord(state key, record key, value)
 *  enclave:version  = sealRecord(state key, "enclave:version", "PEV2" || state id (16) || u64 version || digest (32) || u8 flags)
 *  digest           = XOR, over every record but enclave:version, of
 *                     HMAC-SHA256(digest key, u16 key length || record key || last 16 bytes of its blob (the AEAD tag))
 *  digest key       = HKDF-SHA256(state key, salt = empty, info = "parley/v2/enclave-state-digest", 32)
 *  anchor key       = HKDF-SHA256(sealing secret, salt = empty, info = "parley/v2/enclave-anchor", 32)
 *  flags            = bit 0: records sealed under the v1 key are still being re-sealed (a migration from an unbound state)
 *  v1 key           = HKDF-SHA256(sealing secret, salt = empty, info = "parley/v1/enclave-seal", 32)   (states before issue 10)
 * ```
 * `M` is in the clear in `enclave:key` so that an enclave running other code can say which
 * measurement the state is sealed to (and an operator can migrate it deliberately); changing it
 * makes the wrapping fail to open. The version counts commits; the digest covers which records
 * exist and which sealed version of each (the AEAD tag is unique per seal, and a blob's tag
 * authenticates its ciphertext), so a record removed, added or swapped for an older copy by the
 * host no longer matches. The host can't compute the digest: it never has the state key.
 */
import { getCrypto, utf8, concatBytes, ParleyError } from '@parley/protocol';
import { openRecord, sealRecord } from '@parley/engine';

/** HKDF info of the v1 (unbound) sealing key: states written before issue 10. */
export const SEAL_INFO = 'parley/v1/enclave-seal';
const WRAP_INFO = utf8('parley/v2/enclave-seal-wrap');
const DIGEST_INFO = utf8('parley/v2/enclave-state-digest');
const ANCHOR_INFO = utf8('parley/v2/enclave-anchor');
/** The record holding the wrapped state key. */
export const KEY_RECORD = 'enclave:key';
/** The record holding the state's version and digest; rewritten by every commit. */
export const VERSION_RECORD = 'enclave:version';
const KEY_MAGIC = utf8('PEK2');
const VERSION_MAGIC = utf8('PEV2');
export const STATE_ID_BYTES = 16;
const TAG_BYTES = 16;
/** `flags` bit: some records are still sealed under the v1 key. */
export const FLAG_RESEALING = 1;

function checkSecret(secret: Uint8Array): void {
  if (secret.length !== 32) throw new ParleyError('USAGE', 'sealing secret must be 32 bytes', { details: { got: secret.length } });
}

/** The v1 sealing key: every record of a state written before issue 10 (not bound to the measurement). */
export function deriveSealingKey(secret: Uint8Array): Uint8Array {
  checkSecret(secret);
  return getCrypto().hkdfSha256(secret, new Uint8Array(0), utf8(SEAL_INFO), 32);
}

/** The key that wraps the state key for code with measurement `measurement`. */
export function deriveWrappingKey(secret: Uint8Array, measurement: Uint8Array): Uint8Array {
  checkSecret(secret);
  if (measurement.length !== 32) throw new ParleyError('USAGE', 'a measurement is 32 bytes');
  return getCrypto().hkdfSha256(secret, measurement, WRAP_INFO, 32);
}

/** The key of the rollback anchor's MACs (not bound to the measurement: a migration keeps the anchor). */
export function deriveAnchorKey(secret: Uint8Array): Uint8Array {
  checkSecret(secret);
  return getCrypto().hkdfSha256(secret, new Uint8Array(0), ANCHOR_INFO, 32);
}

export function deriveDigestKey(stateKey: Uint8Array): Uint8Array {
  return getCrypto().hkdfSha256(stateKey, new Uint8Array(0), DIGEST_INFO, 32);
}

/** `enclave:key` for state `stateId`/`stateKey`, wrapped for measurement `measurement`. */
export function wrapStateKey(secret: Uint8Array, measurement: Uint8Array, stateId: Uint8Array, stateKey: Uint8Array): Uint8Array {
  const wrapped = sealRecord(deriveWrappingKey(secret, measurement), KEY_RECORD, concatBytes(stateId, stateKey));
  return concatBytes(KEY_MAGIC, measurement, wrapped);
}

/** The measurement an `enclave:key` blob says the state is sealed to (not yet authenticated). */
export function sealedMeasurement(blob: Uint8Array): Uint8Array {
  if (blob.length < 4 + 32 + 1 || !KEY_MAGIC.every((b, i) => blob[i] === b)) {
    throw new ParleyError('STORAGE_INTEGRITY', 'the sealed state key record has the wrong format', { details: { reason: 'damaged' } });
  }
  return blob.slice(4, 36);
}

/**
 * Opens `enclave:key` with the wrapping key of `measurement`.
 * @throws ParleyError `STORAGE_INTEGRITY` when it does not open (another sealing secret, or altered).
 */
export function unwrapStateKey(secret: Uint8Array, measurement: Uint8Array, blob: Uint8Array): { stateId: Uint8Array; stateKey: Uint8Array } {
  sealedMeasurement(blob);
  let inner: Uint8Array;
  try {
    inner = openRecord(deriveWrappingKey(secret, measurement), KEY_RECORD, blob.subarray(36));
  } catch (cause) {
    throw new ParleyError('STORAGE_INTEGRITY', 'the sealed state does not open with this sealing secret (another secret, or the state was altered)', {
      details: { reason: 'wrongSecret' },
      cause,
    });
  }
  if (inner.length !== STATE_ID_BYTES + 32) throw new ParleyError('STORAGE_INTEGRITY', 'the sealed state key record is malformed', { details: { reason: 'damaged' } });
  const out = { stateId: inner.slice(0, STATE_ID_BYTES), stateKey: inner.slice(STATE_ID_BYTES) };
  inner.fill(0);
  return out;
}

export interface StateVersion {
  readonly stateId: Uint8Array;
  readonly version: number;
  readonly digest: Uint8Array;
  readonly flags: number;
}

export function sealVersion(stateKey: Uint8Array, v: StateVersion): Uint8Array {
  const body = new Uint8Array(4 + STATE_ID_BYTES + 8 + 32 + 1);
  body.set(VERSION_MAGIC, 0);
  body.set(v.stateId, 4);
  new DataView(body.buffer).setBigUint64(4 + STATE_ID_BYTES, BigInt(v.version));
  body.set(v.digest, 4 + STATE_ID_BYTES + 8);
  body[body.length - 1] = v.flags;
  return sealRecord(stateKey, VERSION_RECORD, body);
}

/** @throws ParleyError `STORAGE_INTEGRITY` when it does not open or is malformed. */
export function openVersion(stateKey: Uint8Array, blob: Uint8Array): StateVersion {
  const body = openRecord(stateKey, VERSION_RECORD, blob);
  if (body.length !== 4 + STATE_ID_BYTES + 8 + 32 + 1 || !VERSION_MAGIC.every((b, i) => body[i] === b)) {
    throw new ParleyError('STORAGE_INTEGRITY', 'the sealed state version record is malformed', { details: { reason: 'damaged' } });
  }
  const version = new DataView(body.buffer, body.byteOffset).getBigUint64(4 + STATE_ID_BYTES);
  if (version > BigInt(Number.MAX_SAFE_INTEGER)) throw new ParleyError('STORAGE_INTEGRITY', 'the sealed state version is out of range', { details: { reason: 'damaged' } });
  return {
    stateId: body.slice(4, 4 + STATE_ID_BYTES),
    version: Number(version),
    digest: body.slice(4 + STATE_ID_BYTES + 8, 4 + STATE_ID_BYTES + 8 + 32),
    flags: body[body.length - 1]!,
  };
}

/** What a record contributes to the digest: its key and its blob's AEAD tag, under the digest key. */
export function recordDigest(digestKey: Uint8Array, key: string, tag: Uint8Array): Uint8Array {
  const k = utf8(key);
  return getCrypto().hmacSha256(digestKey, concatBytes(new Uint8Array([k.length >> 8, k.length & 0xff]), k, tag));
}

/** The AEAD tag at the end of a sealed blob (a copy). */
export function tagOf(blob: Uint8Array): Uint8Array {
  return blob.slice(Math.max(0, blob.length - TAG_BYTES));
}

/** `into ^= x`, in place. */
export function xorInto(into: Uint8Array, x: Uint8Array): void {
  for (let i = 0; i < into.length; i++) into[i]! ^= x[i]!;
}
