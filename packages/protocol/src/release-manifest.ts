/**
 * Release manifests: the organisation, offline, allows a bot label to run a measurement
 * ("bot `support` may run measurement M, release 2.4.0, from date D"). A client that pins only
 * the org key (trust `releaseManifests: true`) then accepts a bot whose attested measurement a
 * valid manifest covers, so a bot deploy no longer needs a client release. The bot publishes
 * the manifests it runs under beside its prekeys (wire `DeviceStatements.manifests`); the relay
 * stores them unread, like the certificate and the attestation.
 *
 * Layout (format 1), at most {@link MAX_RELEASE_MANIFEST_BYTES}:
 * ```
 *  offset  size  field
 *  0       1     format = 0x01
 *  1       32    org Ed25519 public key (the signer)
 *  33      1     label length L (1..64)
 *  34      L     bot label, UTF-8, [A-Za-z0-9._@-] (as in the bot's org certificate)
 *  34+L    32    measurement (the enclave's code measurement)
 *  66+L    1     release version length V (1..64)
 *  67+L    V     release version, [A-Za-z0-9._+-] (e.g. "2.4.0+build.17")
 *  67+L+V  8     validFrom, ms since the epoch (u64 BE)
 *  75+L+V  8     validUntil, ms since the epoch (u64 BE); 0 = no end
 *  83+L+V  64    Ed25519 signature by the org key over
 *                "parley/v1/release-manifest" || 0x00 || bytes[0 .. 83+L+V)
 * ```
 * The signature covers every other byte under its own context (contexts.ts), so it can't be
 * replayed as an org certificate, and no certificate or other signature verifies as a manifest.
 *
 * A bot publishes a list of them ({@link encodeReleaseManifestList}):
 * `count (u8, 0..8) || count × (length u16 BE || manifest)`.
 *
 * What it proves: the org key allowed this label to run this code. Like the attestation it
 * relies on, it says nothing the bot's own key could not claim (bot README "What the enclave
 * is, and what it isn't"); it replaces the client-side pin, not the attestation.
 */
import { constantTimeEqual, fromBase64, toBase64, toHex } from './bytes.js';
import { ByteReader as Reader, ByteWriter as Writer } from './codec.js';
import { contextMessage } from './contexts.js';
import { getCrypto } from './crypto/index.js';
import { ParleyError } from './errors.js';
import { ORG_LABEL_PATTERN } from './org-cert.js';

export const RELEASE_MANIFEST_FORMAT = 0x01;
/** Largest encoded manifest accepted (format 1 needs at most 275 bytes). */
export const MAX_RELEASE_MANIFEST_BYTES = 1024;
/** Most manifests a bot publishes at once (e.g. the running release and the next one). */
export const MAX_RELEASE_MANIFESTS = 8;
/** Largest encoded manifest list: the count byte, and per manifest a u16 length and its bytes. */
export const MAX_RELEASE_MANIFEST_LIST_BYTES = 1 + MAX_RELEASE_MANIFESTS * (2 + MAX_RELEASE_MANIFEST_BYTES);
/** Release versions are short public names, safe to show in a UI: semver-like characters. */
export const RELEASE_VERSION_PATTERN = /^[A-Za-z0-9._+-]{1,64}$/;

/** The signed statement. */
export interface ReleaseManifestFields {
  /** The bot label (as in its org certificate) allowed to run `measurement`. */
  readonly label: string;
  /** The 32-byte enclave measurement (`parley-bot measure`, `computeMeasurement`). */
  readonly measurement: Uint8Array;
  /** The release version shown to users, e.g. `2.4.0`. */
  readonly releaseVersion: string;
  /** ms since the epoch; the manifest is refused before this instant. */
  readonly validFrom: number;
  /** ms since the epoch; the manifest is refused from this instant on. Absent: no end. */
  readonly validUntil?: number;
}

/** A decoded manifest. */
export interface ReleaseManifest extends ReleaseManifestFields {
  readonly format: number;
  /** The org public key that signed it (32 bytes). */
  readonly orgKey: Uint8Array;
  readonly signature: Uint8Array;
}

/**
 * Why a manifest was refused (`details.refusal` of the `ATTESTATION_INVALID` error with reason
 * `manifest`).
 */
export type ReleaseManifestRefusal = 'malformed' | 'signature' | 'orgKey' | 'label' | 'measurement' | 'notYetValid' | 'expired';

function refuse(refusal: ReleaseManifestRefusal, message: string): never {
  throw new ParleyError('ATTESTATION_INVALID', `release manifest refused: ${message}`, { details: { reason: 'manifest', refusal } });
}

function assertFields(f: ReleaseManifestFields): void {
  if (typeof f.label !== 'string' || !ORG_LABEL_PATTERN.test(f.label)) throw new ParleyError('USAGE', 'label must be 1-64 chars of [A-Za-z0-9._@-]');
  if (!(f.measurement instanceof Uint8Array) || f.measurement.length !== 32) throw new ParleyError('USAGE', 'measurement must be 32 bytes');
  if (typeof f.releaseVersion !== 'string' || !RELEASE_VERSION_PATTERN.test(f.releaseVersion)) {
    throw new ParleyError('USAGE', 'release version must be 1-64 chars of [A-Za-z0-9._+-]');
  }
  if (!Number.isSafeInteger(f.validFrom) || f.validFrom < 0) throw new ParleyError('USAGE', 'validFrom must be an integer ≥ 0 (ms)');
  if (f.validUntil !== undefined && (!Number.isSafeInteger(f.validUntil) || f.validUntil <= f.validFrom)) {
    throw new ParleyError('USAGE', 'validUntil must be an integer (ms) after validFrom');
  }
}

/** The bytes the org key signs (before the context prefix). */
export function releaseManifestPayload(orgKey: Uint8Array, f: ReleaseManifestFields): Uint8Array {
  assertFields(f);
  if (!(orgKey instanceof Uint8Array) || orgKey.length !== 32) throw new ParleyError('USAGE', 'orgKey must be 32 bytes');
  return new Writer()
    .u8(RELEASE_MANIFEST_FORMAT)
    .fixed(orgKey)
    .shortString(f.label)
    .fixed(f.measurement)
    .shortString(f.releaseVersion)
    .u64(f.validFrom)
    .u64(f.validUntil ?? 0)
    .finish();
}

/**
 * Signs a release manifest with the organisation's seed. Run this offline (`parley-org manifest`).
 * @throws ParleyError `USAGE` for bad fields or a seed that is not 32 bytes.
 * @example
 * const manifest = signReleaseManifest(org.seed, { label: 'support', measurement, releaseVersion: '2.4.0', validFrom: Date.now() });
 */
export function signReleaseManifest(orgSeed: Uint8Array, f: ReleaseManifestFields): Uint8Array {
  if (!(orgSeed instanceof Uint8Array) || orgSeed.length !== 32) throw new ParleyError('USAGE', 'org seed must be 32 bytes');
  const c = getCrypto();
  const payload = releaseManifestPayload(c.ed25519PublicKey(orgSeed), f);
  const signature = c.ed25519Sign(orgSeed, contextMessage('releaseManifest', payload));
  return new Writer().fixed(payload).fixed(signature).finish();
}

/**
 * Decodes without verifying (for display). Use {@link verifyReleaseManifest} to trust one.
 * @throws ParleyError `ATTESTATION_INVALID` (reason `manifest`, refusal `malformed`).
 */
export function decodeReleaseManifest(bytes: Uint8Array): ReleaseManifest {
  if (!(bytes instanceof Uint8Array) || bytes.length > MAX_RELEASE_MANIFEST_BYTES) refuse('malformed', 'not a release manifest');
  try {
    const r = new Reader(bytes, 'MALFORMED_MESSAGE');
    const format = r.u8();
    if (format !== RELEASE_MANIFEST_FORMAT) refuse('malformed', 'unsupported format');
    const orgKey = r.fixed(32);
    const label = r.shortString();
    if (!ORG_LABEL_PATTERN.test(label)) refuse('malformed', 'invalid label');
    const measurement = r.fixed(32);
    const releaseVersion = r.shortString();
    if (!RELEASE_VERSION_PATTERN.test(releaseVersion)) refuse('malformed', 'invalid release version');
    const validFrom = r.u64();
    const until = r.u64();
    const signature = r.fixed(64);
    r.end();
    if (until !== 0 && until <= validFrom) refuse('malformed', 'validUntil is not after validFrom');
    return { format, orgKey, label, measurement, releaseVersion, validFrom, ...(until !== 0 ? { validUntil: until } : {}), signature };
  } catch (e) {
    if (e instanceof ParleyError && e.code === 'ATTESTATION_INVALID') throw e;
    return refuse('malformed', 'truncated or trailing bytes');
  }
}

/** What {@link verifyReleaseManifest} expects. */
export interface ReleaseManifestCheck {
  /** The pinned organisation public key (32 bytes). */
  readonly orgKey: Uint8Array;
  /** The bot's certified label (from its verified org certificate). */
  readonly label: string;
  /** If given, the manifest must name exactly this measurement (the bot's attested one). */
  readonly measurement?: Uint8Array;
  /** Current time, ms since the epoch. */
  readonly now: number;
}

/**
 * Verifies a manifest against the pinned org key, the bot's certified label, its attested
 * measurement and the clock (`validFrom ≤ now < validUntil`).
 * @returns the decoded manifest.
 * @throws ParleyError `ATTESTATION_INVALID` with `details.reason` `manifest` and
 *   `details.refusal` one of {@link ReleaseManifestRefusal}; `USAGE` for a malformed `orgKey`.
 */
export function verifyReleaseManifest(bytes: Uint8Array, check: ReleaseManifestCheck): ReleaseManifest {
  const m = decodeReleaseManifest(bytes);
  if (!(check.orgKey instanceof Uint8Array) || check.orgKey.length !== 32) throw new ParleyError('USAGE', 'orgKey must be 32 bytes');
  if (!constantTimeEqual(m.orgKey, check.orgKey)) refuse('orgKey', 'signed by another organisation key');
  const payload = bytes.subarray(0, bytes.length - 64);
  if (!getCrypto().ed25519Verify(check.orgKey, contextMessage('releaseManifest', payload), m.signature)) {
    refuse('signature', 'signature does not verify under the pinned organisation key');
  }
  if (m.label !== check.label) refuse('label', 'made for another bot label'); // ct-ok: public labels
  if (check.measurement !== undefined && !constantTimeEqual(m.measurement, check.measurement)) refuse('measurement', 'made for another measurement');
  if (check.now < m.validFrom) refuse('notYetValid', 'not valid yet');
  if (m.validUntil !== undefined && check.now >= m.validUntil) refuse('expired', 'expired');
  return m;
}

/** The later a check refused a manifest, the more it tells (the error names the most telling refusal). */
const REFUSAL_RANK: Record<ReleaseManifestRefusal, number> = {
  malformed: 0, orgKey: 1, signature: 2, label: 3, measurement: 4, notYetValid: 5, expired: 6,
};

/**
 * Among a bot's published manifests, the one that allows `check.measurement` for `check.label`
 * now (the latest `validFrom` when several do).
 * @throws ParleyError `ATTESTATION_INVALID`: reason `measurement` when no manifest names the
 *   measurement; reason `manifest` (with `refusal`) when some do but none is valid.
 */
export function selectReleaseManifest(manifests: readonly Uint8Array[], check: ReleaseManifestCheck & { readonly measurement: Uint8Array }): ReleaseManifest {
  let best: ReleaseManifest | undefined;
  let refusal: ReleaseManifestRefusal | undefined;
  for (const bytes of manifests.slice(0, MAX_RELEASE_MANIFESTS)) {
    try {
      const m = verifyReleaseManifest(bytes, check);
      if (!best || m.validFrom > best.validFrom) best = m;
    } catch (e) {
      if (!(e instanceof ParleyError) || e.code !== 'ATTESTATION_INVALID') throw e;
      const r = e.details?.refusal as ReleaseManifestRefusal | undefined;
      // A manifest for other code says nothing about this one.
      if (r === undefined || r === 'measurement') continue;
      // A forged or foreign manifest only counts when it names this measurement.
      if (r !== 'malformed' && !namesMeasurement(bytes, check.measurement)) continue;
      if (refusal === undefined || REFUSAL_RANK[r] > REFUSAL_RANK[refusal]) refusal = r;
    }
  }
  if (best) return best;
  if (refusal === undefined) {
    throw new ParleyError('ATTESTATION_INVALID', 'no release manifest allows the attested measurement', { details: { reason: 'measurement' } });
  }
  return refuse(refusal, 'none of the release manifests for the attested measurement is valid');
}

function namesMeasurement(bytes: Uint8Array, measurement: Uint8Array): boolean {
  try {
    return constantTimeEqual(decodeReleaseManifest(bytes).measurement, measurement);
  } catch {
    return false;
  }
}

/**
 * The list a bot publishes beside its prekeys: `count || (u16 length || manifest)*`.
 * @throws ParleyError `USAGE` for more than {@link MAX_RELEASE_MANIFESTS} manifests or one
 *   larger than {@link MAX_RELEASE_MANIFEST_BYTES}.
 */
export function encodeReleaseManifestList(manifests: readonly Uint8Array[]): Uint8Array {
  if (manifests.length > MAX_RELEASE_MANIFESTS) throw new ParleyError('USAGE', `at most ${MAX_RELEASE_MANIFESTS} release manifests`);
  const w = new Writer().u8(manifests.length);
  for (const m of manifests) {
    if (!(m instanceof Uint8Array) || m.length === 0 || m.length > MAX_RELEASE_MANIFEST_BYTES) {
      throw new ParleyError('USAGE', `a release manifest is 1-${MAX_RELEASE_MANIFEST_BYTES} bytes`);
    }
    w.u16(m.length).fixed(m);
  }
  return w.finish();
}

/**
 * Splits {@link encodeReleaseManifestList}'s bytes (framing only: the manifests are not decoded
 * or verified; the relay uses this to refuse a malformed list).
 * @throws ParleyError `MALFORMED_MESSAGE` for a bad count, length or trailing bytes.
 */
export function decodeReleaseManifestList(bytes: Uint8Array): Uint8Array[] {
  if (!(bytes instanceof Uint8Array) || bytes.length > MAX_RELEASE_MANIFEST_LIST_BYTES) {
    throw new ParleyError('MALFORMED_MESSAGE', 'release manifest list is too large');
  }
  const r = new Reader(bytes, 'MALFORMED_MESSAGE');
  const count = r.u8();
  if (count > MAX_RELEASE_MANIFESTS) r.fail('too many release manifests');
  const out: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const n = r.u16();
    if (n === 0 || n > MAX_RELEASE_MANIFEST_BYTES) r.fail('bad release manifest length');
    out.push(r.fixed(n));
  }
  r.end();
  return out;
}

/** Text form for configuration files and CLIs: base64 of the binary manifest. */
export function releaseManifestToBase64(bytes: Uint8Array): string {
  return toBase64(bytes);
}

/** @throws ParleyError `USAGE` for bad base64. */
export function releaseManifestFromBase64(text: string): Uint8Array {
  return fromBase64(text);
}

/** A JSON view for people (public data only). */
export function describeReleaseManifest(m: ReleaseManifest): Record<string, string | number> {
  return {
    format: m.format,
    orgKey: toHex(m.orgKey),
    label: m.label,
    measurement: toHex(m.measurement),
    releaseVersion: m.releaseVersion,
    validFrom: new Date(m.validFrom).toISOString(),
    ...(m.validUntil !== undefined ? { validUntil: new Date(m.validUntil).toISOString() } : {}),
  };
}
