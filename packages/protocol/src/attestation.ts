/**
 * Bot attestations: the format, its byte encoding for the relay, and the verifier. Pure (no
 * I/O, no Node APIs), so the client SDK, a browser widget and the bot SDK all import this one
 * file (`@parley/protocol/attestation`; `@parley/bot/attestation` re-exports it).
 *
 * ```
 *  signed = "parley/v1/bot-attest" || 0x00 || payload          (contexts.ts, context botAttestation)
 *
 *  payload layout (version 1), 57 bytes
 *  offset  size  field
 *  0       1     version = 0x01
 *  1       32    measurement: SHA-256 manifest of the enclave's code and the handler (bot measurement.ts)
 *  33      16    device id (the 16 bytes behind its 32 hex chars)
 *  49      8     issuedAt, ms since the epoch (u64 BE)
 *
 *  encoded form (what a bot publishes with its prekeys, {@link encodeAttestation}), 121 bytes
 *  0       57    payload
 *  57      64    Ed25519 signature by the bot identity over the signed bytes above
 * ```
 * What it proves, and what it doesn't: the bot identity key (certified by the organisation's
 * key, which the client checks separately) signed that it runs code with this measurement. The
 * measurement is computed by the enclave worker itself, so this defeats a third party who
 * doesn't have the bot's key (THREATS B3 a–d), not a hostile bot host: the host starts the
 * worker and could start different code that signs the same claim. Only a hardware TEE's quote
 * could prove that (bot README "What the enclave is, and what it isn't").
 */
import { constantTimeEqual, fromHex, toHex } from './bytes.js';
import { ParleyError } from './errors.js';
import { deviceIdOf, verifyContextSignature, type PublicIdentity } from './identity-public.js';

export const ATTESTATION_VERSION = 1;
/** Default longest accepted age of an attestation: the enclave re-attests every 12 h. */
export const DEFAULT_ATTESTATION_MAX_AGE_MS = 24 * 60 * 60 * 1000;
/** Accepted clock skew for an `issuedAt` in the future. */
export const ATTESTATION_MAX_FUTURE_SKEW_MS = 5 * 60 * 1000;
/** Bytes of the signed payload. */
export const ATTESTATION_PAYLOAD_BYTES = 57;
/** Bytes of an encoded attestation (payload and signature). */
export const ATTESTATION_ENCODED_BYTES = ATTESTATION_PAYLOAD_BYTES + 64;

/** A signed claim that the bot's enclave runs code with `measurement`. */
export interface BotAttestation {
  readonly version: 1;
  /** The bot's device id (hash of its identity keys). */
  readonly deviceId: string;
  /** 32-byte code measurement. */
  readonly measurement: Uint8Array;
  /** When the enclave signed it, ms since the epoch. */
  readonly issuedAt: number;
  /** Ed25519 by the bot identity, context `botAttestation`, over {@link attestationPayload}. */
  readonly signature: Uint8Array;
}

/** The bytes signed (after the context prefix) for an attestation. */
export function attestationPayload(a: Pick<BotAttestation, 'measurement' | 'deviceId' | 'issuedAt'>): Uint8Array {
  if (!(a.measurement instanceof Uint8Array) || a.measurement.length !== 32) throw new ParleyError('ATTESTATION_INVALID', 'measurement must be 32 bytes');
  if (typeof a.deviceId !== 'string' || !/^[0-9a-f]{32}$/.test(a.deviceId)) throw new ParleyError('ATTESTATION_INVALID', 'bad device id');
  if (!Number.isSafeInteger(a.issuedAt) || a.issuedAt < 0) throw new ParleyError('ATTESTATION_INVALID', 'bad issuedAt');
  const out = new Uint8Array(ATTESTATION_PAYLOAD_BYTES);
  out[0] = ATTESTATION_VERSION;
  out.set(a.measurement, 1);
  out.set(fromHex(a.deviceId), 33);
  new DataView(out.buffer).setBigUint64(49, BigInt(a.issuedAt));
  return out;
}

/**
 * The attestation as bytes (payload || signature, 121 bytes): what a bot uploads next to its
 * prekeys and the relay hands out, unread, beside its bundle.
 * @throws ParleyError `ATTESTATION_INVALID` for a malformed attestation.
 */
export function encodeAttestation(a: BotAttestation): Uint8Array {
  if (typeof a !== 'object' || a === null || a.version !== ATTESTATION_VERSION) throw new ParleyError('ATTESTATION_INVALID', 'unsupported attestation');
  if (!(a.signature instanceof Uint8Array) || a.signature.length !== 64) throw new ParleyError('ATTESTATION_INVALID', 'signature must be 64 bytes');
  const out = new Uint8Array(ATTESTATION_ENCODED_BYTES);
  out.set(attestationPayload(a), 0);
  out.set(a.signature, ATTESTATION_PAYLOAD_BYTES);
  return out;
}

/**
 * Parses {@link encodeAttestation}'s bytes. Does not verify anything: use {@link verifyAttestation}.
 * @throws ParleyError `ATTESTATION_INVALID` for a wrong length, version or issuedAt.
 */
export function decodeAttestation(bytes: Uint8Array): BotAttestation {
  if (!(bytes instanceof Uint8Array) || bytes.length !== ATTESTATION_ENCODED_BYTES) throw new ParleyError('ATTESTATION_INVALID', 'malformed attestation');
  if (bytes[0] !== ATTESTATION_VERSION) throw new ParleyError('ATTESTATION_INVALID', 'unsupported attestation');
  const issued = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getBigUint64(49);
  if (issued > BigInt(Number.MAX_SAFE_INTEGER)) throw new ParleyError('ATTESTATION_INVALID', 'bad issuedAt');
  return {
    version: ATTESTATION_VERSION,
    measurement: bytes.slice(1, 33),
    deviceId: toHex(bytes.subarray(33, 49)),
    issuedAt: Number(issued),
    signature: bytes.slice(ATTESTATION_PAYLOAD_BYTES),
  };
}

/** Lower-case hex of a measurement (the form to pin in configuration). */
export function measurementHex(measurement: Uint8Array): string {
  return toHex(measurement);
}

/**
 * A pinned measurement as bytes: 32 bytes, or 64 hex chars.
 * @throws ParleyError `USAGE` otherwise.
 */
export function measurementBytes(m: Uint8Array | string): Uint8Array {
  if (m instanceof Uint8Array) {
    if (m.length !== 32) throw new ParleyError('USAGE', 'expectedMeasurement must be 32 bytes');
    return m;
  }
  if (typeof m !== 'string' || !/^[0-9a-fA-F]{64}$/.test(m)) throw new ParleyError('USAGE', 'expectedMeasurement must be 32 bytes or 64 hex chars');
  return fromHex(m.toLowerCase());
}

/** Options of {@link verifyAttestation}. */
export interface VerifyAttestationOptions {
  /** Current time, ms (default `Date.now()`). */
  now?: number;
  /** Oldest accepted attestation (default 24 h). */
  maxAgeMs?: number;
}

/**
 * Checks a bot attestation against the pinned measurement and the bot identity the client
 * already trusts (certified by the org key). Call it before sending the bot anything.
 *
 * Needs an active crypto backend (`initCrypto()`).
 * @param attestation the object, or its encoded bytes (as carried by the relay).
 * @returns the decoded attestation.
 * @throws ParleyError `ATTESTATION_INVALID` when the signature doesn't verify under `identity`
 *   in context `botAttestation` (B3 a, c), the device id isn't `identity`'s, the attestation is
 *   older than `maxAgeMs` or too far in the future (B3 b), the measurement differs from the
 *   pinned one (B3 d), or the bytes are malformed. `USAGE` for a malformed `expectedMeasurement`.
 * @example
 * verifyAttestation(bundleAttestation, PINNED_BOT_MEASUREMENT, botIdentity);
 */
export function verifyAttestation(
  attestation: BotAttestation | Uint8Array,
  expectedMeasurement: Uint8Array | string,
  identity: PublicIdentity,
  options: VerifyAttestationOptions = {},
): BotAttestation {
  const expected = measurementBytes(expectedMeasurement);
  const att = attestation instanceof Uint8Array ? decodeAttestation(attestation) : attestation;
  if (typeof att !== 'object' || att === null || att.version !== ATTESTATION_VERSION) {
    throw new ParleyError('ATTESTATION_INVALID', 'unsupported attestation');
  }
  const payload = attestationPayload(att);
  if (!(att.signature instanceof Uint8Array) || att.signature.length !== 64) {
    throw new ParleyError('ATTESTATION_INVALID', 'signature must be 64 bytes');
  }
  if (deviceIdOf(identity) !== att.deviceId) throw new ParleyError('ATTESTATION_INVALID', 'attestation names another device');
  if (!verifyContextSignature(identity.signingKey, 'botAttestation', payload, att.signature)) {
    throw new ParleyError('ATTESTATION_INVALID', 'attestation signature does not verify under the bot identity');
  }
  const now = options.now ?? Date.now();
  const maxAge = options.maxAgeMs ?? DEFAULT_ATTESTATION_MAX_AGE_MS;
  if (att.issuedAt > now + ATTESTATION_MAX_FUTURE_SKEW_MS) {
    throw new ParleyError('ATTESTATION_INVALID', 'attestation is from the future', { details: { skewMs: att.issuedAt - now } });
  }
  if (now - att.issuedAt > maxAge) {
    throw new ParleyError('ATTESTATION_INVALID', 'attestation is stale', { details: { ageMs: now - att.issuedAt, maxAgeMs: maxAge } });
  }
  if (!constantTimeEqual(att.measurement, expected)) {
    throw new ParleyError('ATTESTATION_INVALID', 'measurement does not match the pinned value');
  }
  return att;
}
