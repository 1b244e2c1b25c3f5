/**
 * `@parley/bot/attestation`: the bot attestation format and its verifier, for clients.
 * No Node-only imports: a browser widget can import this file alone.
 *
 * ```
 *  signed = "parley/v1/bot-attest" || 0x00 || payload          (contexts.ts, context botAttestation)
 *
 *  payload layout (version 1), 57 bytes
 *  offset  size  field
 *  0       1     version = 0x01
 *  1       32    measurement: SHA-256 manifest of the enclave's code and the handler (see measurement.ts)
 *  33      16    device id (the 16 bytes behind its 32 hex chars)
 *  49      8     issuedAt, ms since the epoch (u64 BE)
 * ```
 * What it proves, and what it doesn't: the bot identity key (certified by the organisation's
 * key, which the client checks separately) signed that it runs code with this measurement. The
 * measurement is computed by the enclave worker itself, so this defeats a third party who
 * doesn't have the bot's key (B3 a–d), not a hostile bot host: the host starts the worker and
 * could start different code that signs the same claim. Only a hardware TEE's quote could
 * prove that (README "What the enclave is and isn't").
 */
import { ParleyError, verifyContextSignature, deviceIdOf, type PublicIdentity } from '@parley/protocol/verify';

export const ATTESTATION_VERSION = 1;
/** Default longest accepted age of an attestation: the enclave re-attests every 12 h. */
export const DEFAULT_ATTESTATION_MAX_AGE_MS = 24 * 60 * 60 * 1000;
/** Accepted clock skew for an `issuedAt` in the future. */
export const ATTESTATION_MAX_FUTURE_SKEW_MS = 5 * 60 * 1000;

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
  const out = new Uint8Array(57);
  out[0] = ATTESTATION_VERSION;
  out.set(a.measurement, 1);
  for (let i = 0; i < 16; i++) out[33 + i] = parseInt(a.deviceId.slice(i * 2, i * 2 + 2), 16);
  new DataView(out.buffer).setBigUint64(49, BigInt(a.issuedAt));
  return out;
}

function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

/** Lower-case hex of a measurement (the form to pin in configuration). */
export function measurementHex(measurement: Uint8Array): string {
  return Array.from(measurement, (b) => b.toString(16).padStart(2, '0')).join('');
}

function measurementBytes(m: Uint8Array | string): Uint8Array {
  if (m instanceof Uint8Array) return m;
  if (typeof m !== 'string' || !/^[0-9a-fA-F]{64}$/.test(m)) throw new ParleyError('USAGE', 'expectedMeasurement must be 32 bytes or 64 hex chars');
  return Uint8Array.from({ length: 32 }, (_, i) => parseInt(m.slice(i * 2, i * 2 + 2), 16));
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
 * @throws ParleyError `ATTESTATION_INVALID` when the signature doesn't verify under `identity`
 *   in context `botAttestation` (B3 a, c), the device id isn't `identity`'s, the attestation is
 *   older than `maxAgeMs` or too far in the future (B3 b), or the measurement differs from the
 *   pinned one (B3 d). `USAGE` for a malformed `expectedMeasurement`.
 * @example
 * verifyAttestation(bundleAttestation, PINNED_BOT_MEASUREMENT, botIdentity);
 */
export function verifyAttestation(
  attestation: BotAttestation,
  expectedMeasurement: Uint8Array | string,
  identity: PublicIdentity,
  options: VerifyAttestationOptions = {},
): void {
  const expected = measurementBytes(expectedMeasurement);
  if (expected.length !== 32) throw new ParleyError('USAGE', 'expectedMeasurement must be 32 bytes');
  if (typeof attestation !== 'object' || attestation === null || attestation.version !== ATTESTATION_VERSION) {
    throw new ParleyError('ATTESTATION_INVALID', 'unsupported attestation');
  }
  const payload = attestationPayload(attestation);
  if (!(attestation.signature instanceof Uint8Array) || attestation.signature.length !== 64) {
    throw new ParleyError('ATTESTATION_INVALID', 'signature must be 64 bytes');
  }
  if (deviceIdOf(identity) !== attestation.deviceId) throw new ParleyError('ATTESTATION_INVALID', 'attestation names another device');
  if (!verifyContextSignature(identity.signingKey, 'botAttestation', payload, attestation.signature)) {
    throw new ParleyError('ATTESTATION_INVALID', 'attestation signature does not verify under the bot identity');
  }
  const now = options.now ?? Date.now();
  const maxAge = options.maxAgeMs ?? DEFAULT_ATTESTATION_MAX_AGE_MS;
  if (attestation.issuedAt > now + ATTESTATION_MAX_FUTURE_SKEW_MS) {
    throw new ParleyError('ATTESTATION_INVALID', 'attestation is from the future', { details: { skewMs: attestation.issuedAt - now } });
  }
  if (now - attestation.issuedAt > maxAge) {
    throw new ParleyError('ATTESTATION_INVALID', 'attestation is stale', { details: { ageMs: now - attestation.issuedAt, maxAgeMs: maxAge } });
  }
  if (!constantTimeEqual(attestation.measurement, expected)) {
    throw new ParleyError('ATTESTATION_INVALID', 'measurement does not match the pinned value');
  }
}
