/**
 * Release manifests (release-manifest.ts): the org key allows a bot label to run a measurement.
 * A fixed vector pins the byte layout; every signed field, when changed, makes the manifest
 * refused; so do another org key, another label or measurement, and the validity window.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  MAX_RELEASE_MANIFESTS,
  ParleyError,
  contextMessage,
  decodeReleaseManifest,
  decodeReleaseManifestList,
  describeReleaseManifest,
  encodeReleaseManifestList,
  fromHex,
  getCrypto,
  initCrypto,
  isParleyError,
  selectReleaseManifest,
  signOrgCertificate,
  signReleaseManifest,
  toHex,
  verifyReleaseManifest,
  type ReleaseManifestFields,
} from '../../src/index.js';

await initCrypto();

const SEED = new Uint8Array(32).fill(7);
const OTHER_SEED = new Uint8Array(32).fill(8);
const ORG_KEY = getCrypto().ed25519PublicKey(SEED);
const MEASUREMENT = new Uint8Array(32).fill(0xab);
const T0 = Date.UTC(2030, 0, 1);
const DAY = 24 * 3600 * 1000;
const FIELDS: ReleaseManifestFields = { label: 'support', measurement: MEASUREMENT, releaseVersion: '2.4.0', validFrom: T0, validUntil: T0 + 90 * DAY };
const check = { orgKey: ORG_KEY, label: 'support', measurement: MEASUREMENT, now: T0 + DAY };

function refusedWith(refusal: string, reason = 'manifest') {
  return (e: unknown) => {
    assert.ok(isParleyError(e, 'ATTESTATION_INVALID'), `ATTESTATION_INVALID, got ${String(e)}`);
    assert.equal(e.details?.reason, reason);
    if (reason === 'manifest') assert.equal(e.details?.refusal, refusal);
    return true;
  };
}

describe('release manifest format', () => {
  test('fixed vector: layout, context and signature', () => {
    const bytes = signReleaseManifest(SEED, FIELDS);
    // format || org key || label || measurement || version || validFrom || validUntil || signature
    const payloadHex =
      '01' + toHex(ORG_KEY) + '07' + toHex(new TextEncoder().encode('support')) + 'ab'.repeat(32) + '05' + toHex(new TextEncoder().encode('2.4.0'))
      + T0.toString(16).padStart(16, '0') + (T0 + 90 * DAY).toString(16).padStart(16, '0');
    assert.equal(toHex(bytes.subarray(0, bytes.length - 64)), payloadHex);
    assert.equal(bytes.length, payloadHex.length / 2 + 64);
    // The signature is over the release-manifest context, checked here with the raw primitive.
    const payload = fromHex(payloadHex);
    const sig = bytes.subarray(bytes.length - 64);
    assert.ok(getCrypto().ed25519Verify(ORG_KEY, contextMessage('releaseManifest', payload), sig));
    assert.ok(!getCrypto().ed25519Verify(ORG_KEY, contextMessage('orgCertificate', payload), sig));
    // Ed25519 is deterministic: the same fields give the same bytes.
    assert.equal(toHex(signReleaseManifest(SEED, FIELDS)), toHex(bytes));
    const m = verifyReleaseManifest(bytes, check);
    assert.deepEqual(
      { label: m.label, releaseVersion: m.releaseVersion, validFrom: m.validFrom, validUntil: m.validUntil, orgKey: toHex(m.orgKey), measurement: toHex(m.measurement) },
      { label: 'support', releaseVersion: '2.4.0', validFrom: T0, validUntil: T0 + 90 * DAY, orgKey: toHex(ORG_KEY), measurement: toHex(MEASUREMENT) },
    );
    assert.equal(describeReleaseManifest(m).validUntil, new Date(T0 + 90 * DAY).toISOString());
    // No validUntil: encoded as 0, decoded as absent, valid forever after validFrom.
    const open = signReleaseManifest(SEED, { ...FIELDS, validUntil: undefined });
    assert.equal(toHex(open.subarray(open.length - 72, open.length - 64)), '0'.repeat(16));
    assert.equal(decodeReleaseManifest(open).validUntil, undefined);
    verifyReleaseManifest(open, { ...check, now: T0 + 3650 * DAY });
  });

  test('changing any byte of a signed manifest makes it refused', () => {
    const bytes = signReleaseManifest(SEED, FIELDS);
    for (let i = 0; i < bytes.length; i++) {
      const t = bytes.slice();
      t[i]! ^= 0x01;
      assert.throws(() => verifyReleaseManifest(t, check), (e: unknown) => isParleyError(e, 'ATTESTATION_INVALID') && e.details?.reason === 'manifest', `byte ${i}`);
    }
    assert.throws(() => verifyReleaseManifest(bytes.subarray(0, bytes.length - 1), check), refusedWith('malformed'));
    assert.throws(() => verifyReleaseManifest(new Uint8Array([...bytes, 0]), check), refusedWith('malformed'));
  });

  test('each signed field, re-encoded with another value under the same signature, is refused', () => {
    const bytes = signReleaseManifest(SEED, FIELDS);
    const sig = bytes.subarray(bytes.length - 64);
    const others: Partial<ReleaseManifestFields>[] = [
      { label: 'sales' },
      { measurement: new Uint8Array(32).fill(0xac) },
      { releaseVersion: '2.4.1' },
      { validFrom: T0 - DAY },
      { validUntil: T0 + 900 * DAY },
    ];
    for (const change of others) {
      const forged = new Uint8Array([...signReleaseManifest(OTHER_SEED, { ...FIELDS, ...change }).subarray(0, -64), ...sig]);
      // Also put the pinned org key back into the payload, so only the signature can tell.
      forged.set(ORG_KEY, 1);
      const fields = { ...FIELDS, ...change };
      assert.throws(
        () => verifyReleaseManifest(forged, { ...check, label: fields.label, measurement: fields.measurement }),
        refusedWith('signature'),
        JSON.stringify(Object.keys(change)),
      );
    }
  });

  test('another org key, label or measurement, and the validity window, are refused', () => {
    const bytes = signReleaseManifest(SEED, FIELDS);
    const otherKey = getCrypto().ed25519PublicKey(OTHER_SEED);
    assert.throws(() => verifyReleaseManifest(bytes, { ...check, orgKey: otherKey }), refusedWith('orgKey'));
    // Signed by another key that claims the pinned one.
    const claimed = signReleaseManifest(OTHER_SEED, FIELDS);
    claimed.set(ORG_KEY, 1);
    assert.throws(() => verifyReleaseManifest(claimed, check), refusedWith('signature'));
    assert.throws(() => verifyReleaseManifest(bytes, { ...check, label: 'sales' }), refusedWith('label'));
    assert.throws(() => verifyReleaseManifest(bytes, { ...check, measurement: new Uint8Array(32) }), refusedWith('measurement'));
    assert.throws(() => verifyReleaseManifest(bytes, { ...check, now: T0 - 1 }), refusedWith('notYetValid'));
    verifyReleaseManifest(bytes, { ...check, now: T0 });
    verifyReleaseManifest(bytes, { ...check, now: T0 + 90 * DAY - 1 });
    assert.throws(() => verifyReleaseManifest(bytes, { ...check, now: T0 + 90 * DAY }), refusedWith('expired'));
    // An org certificate is not a manifest.
    const cert = signOrgCertificate(SEED, { role: 'bot', label: 'support', signingKey: new Uint8Array(32), dhKey: new Uint8Array(32), expiresAt: T0 });
    assert.throws(() => verifyReleaseManifest(cert, check), refusedWith('malformed'));
  });

  test('bad fields are a USAGE error when signing', () => {
    const usage = (e: unknown) => e instanceof ParleyError && e.code === 'USAGE';
    assert.throws(() => signReleaseManifest(SEED, { ...FIELDS, label: 'no spaces' }), usage);
    assert.throws(() => signReleaseManifest(SEED, { ...FIELDS, releaseVersion: '<b>2</b>' }), usage);
    assert.throws(() => signReleaseManifest(SEED, { ...FIELDS, releaseVersion: 'x'.repeat(65) }), usage);
    assert.throws(() => signReleaseManifest(SEED, { ...FIELDS, measurement: new Uint8Array(31) }), usage);
    assert.throws(() => signReleaseManifest(SEED, { ...FIELDS, validUntil: T0 }), usage);
    assert.throws(() => signReleaseManifest(new Uint8Array(31), FIELDS), usage);
  });
});

describe('release manifest lists and selection', () => {
  test('list framing round-trips and is bounded', () => {
    const a = signReleaseManifest(SEED, FIELDS);
    const b = signReleaseManifest(SEED, { ...FIELDS, releaseVersion: '2.5.0' });
    const list = encodeReleaseManifestList([a, b]);
    assert.deepEqual(decodeReleaseManifestList(list).map(toHex), [toHex(a), toHex(b)]);
    assert.deepEqual(decodeReleaseManifestList(encodeReleaseManifestList([])), []);
    const malformed = (e: unknown) => isParleyError(e, 'MALFORMED_MESSAGE');
    assert.throws(() => decodeReleaseManifestList(list.subarray(0, list.length - 1)), malformed);
    assert.throws(() => decodeReleaseManifestList(new Uint8Array([...list, 0])), malformed);
    assert.throws(() => decodeReleaseManifestList(new Uint8Array([MAX_RELEASE_MANIFESTS + 1])), malformed);
    assert.throws(() => decodeReleaseManifestList(new Uint8Array([1, 0x04, 0x01, ...new Uint8Array(1025)])), malformed);
    assert.throws(() => encodeReleaseManifestList(Array.from({ length: MAX_RELEASE_MANIFESTS + 1 }, () => a)), (e: unknown) => isParleyError(e, 'USAGE'));
  });

  test('selection: the valid manifest for the measurement wins; the error says why none did', () => {
    const old = signReleaseManifest(SEED, { ...FIELDS, releaseVersion: '2.3.0', validFrom: T0 - 30 * DAY });
    const current = signReleaseManifest(SEED, FIELDS);
    const otherCode = signReleaseManifest(SEED, { ...FIELDS, measurement: new Uint8Array(32), releaseVersion: '9.9.9' });
    assert.equal(selectReleaseManifest([otherCode, old, current], check).releaseVersion, '2.4.0');
    assert.equal(selectReleaseManifest([otherCode, old, current], { ...check, now: T0 - DAY }).releaseVersion, '2.3.0');
    // None names the measurement: reason `measurement`, as without manifests.
    assert.throws(() => selectReleaseManifest([otherCode], check), refusedWith('', 'measurement'));
    assert.throws(() => selectReleaseManifest([], check), refusedWith('', 'measurement'));
    // Some name it but none is valid: reason `manifest` with the most telling refusal.
    assert.throws(() => selectReleaseManifest([current], { ...check, label: 'sales' }), refusedWith('label'));
    assert.throws(() => selectReleaseManifest([signReleaseManifest(OTHER_SEED, FIELDS), otherCode], check), refusedWith('orgKey'));
    assert.throws(() => selectReleaseManifest([current], { ...check, now: T0 + 100 * DAY }), refusedWith('expired'));
    // A foreign manifest for other code does not turn `measurement` into `manifest`.
    assert.throws(() => selectReleaseManifest([signReleaseManifest(OTHER_SEED, { ...FIELDS, measurement: new Uint8Array(32) })], check), refusedWith('', 'measurement'));
  });
});
