/**
 * The bot's release manifests as the host handles them (bot README "Release manifests"): parsed
 * from what the operator gives (`parley-org manifest` output), kept when they name the measurement
 * the enclave computed for itself, and published with the prekeys as one list. Their signature,
 * label and dates are the customers' business (they hold the pinned org key); the host only warns
 * about what would make customers refuse them.
 */
import {
  MAX_RELEASE_MANIFESTS,
  MAX_RELEASE_MANIFEST_BYTES,
  ParleyError,
  constantTimeEqual,
  decodeReleaseManifest,
  encodeReleaseManifestList,
  releaseManifestFromBase64,
  toHex,
} from '@parley/protocol/verify';
import type { BotLogger } from './supervisor.js';
import { parseStatementInput } from './statement-input.js';

/**
 * Parses one manifest: bytes, base64 (`parley-org manifest`), or the JSON that
 * `parley-org manifest --json` prints (its `manifest` field).
 * @throws ParleyError `USAGE` when it is not a well-formed release manifest.
 */
export function parseManifest(value: Uint8Array | string): Uint8Array {
  const bytes = parseStatementInput(value, 'release manifest', 'manifest', releaseManifestFromBase64);
  if (bytes.length > MAX_RELEASE_MANIFEST_BYTES) throw new ParleyError('USAGE', 'release manifest is too large');
  try {
    decodeReleaseManifest(bytes);
  } catch {
    throw new ParleyError('USAGE', 'not a parley release manifest (make one with `parley-org manifest`)');
  }
  return bytes;
}

/**
 * The manifests to publish: those naming `measurement` (the enclave's own), at most
 * {@link MAX_RELEASE_MANIFESTS}. Each one made for other code is left out with a warning naming
 * the measurement it is for; one whose validity ended is kept (customers refuse it) with a warning.
 * @throws ParleyError `USAGE` for a malformed manifest or more than 8 matching ones.
 */
export function manifestsFor(values: readonly (Uint8Array | string)[], measurement: Uint8Array, logger: BotLogger, now = Date.now()): Uint8Array[] {
  if (!Array.isArray(values)) throw new ParleyError('USAGE', 'manifests must be an array of release manifests');
  const kept: Uint8Array[] = [];
  for (const value of values) {
    const bytes = parseManifest(value);
    const m = decodeReleaseManifest(bytes);
    if (!constantTimeEqual(m.measurement, measurement)) {
      logger.warn(
        { event: 'manifest.otherMeasurement', releaseVersion: m.releaseVersion, manifestMeasurement: toHex(m.measurement), measurement: toHex(measurement) },
        `release manifest ${m.releaseVersion} is for measurement ${toHex(m.measurement)}, not this bot's ${toHex(measurement)}: not published`,
      );
      continue;
    }
    if (m.validUntil !== undefined && m.validUntil <= now) {
      logger.warn({ event: 'manifest.expired', releaseVersion: m.releaseVersion, validUntil: new Date(m.validUntil).toISOString() }, `release manifest ${m.releaseVersion} has expired: customers will refuse it`);
    } else if (m.validFrom > now) {
      logger.warn({ event: 'manifest.notYetValid', releaseVersion: m.releaseVersion, validFrom: new Date(m.validFrom).toISOString() }, `release manifest ${m.releaseVersion} is not valid yet`);
    }
    kept.push(bytes);
  }
  if (kept.length > MAX_RELEASE_MANIFESTS) throw new ParleyError('USAGE', `at most ${MAX_RELEASE_MANIFESTS} release manifests for one measurement`);
  return kept;
}

/** The list as published (`encodeReleaseManifestList`); an empty list removes the relay's copy. */
export function encodeManifests(manifests: readonly Uint8Array[]): Uint8Array {
  return encodeReleaseManifestList(manifests);
}
