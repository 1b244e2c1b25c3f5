/**
 * Staff credentials (staff-cert.ts): org root → issuer (policy) → staff device, revocation
 * lists and the sign-in proof. Every signed byte, when changed, makes the credential refused;
 * so do another org key, an expired issuer, a role or lifetime beyond the issuer's policy
 * (THREATS S3: a 30-day agent certificate under a 12 h policy), another identity, expiry and
 * revocation of the person or the device.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  IdentityKeyPair,
  STAFF_ROLES,
  contextMessage,
  decodeIssuerCertificate,
  decodeRevocationList,
  decodeStaffCredential,
  describeStaffCredential,
  encodeStaffCredential,
  generateIssuerKey,
  getCrypto,
  initCrypto,
  isParleyError,
  isStaffCredential,
  parseStaffRoles,
  signIssuerCertificate,
  signOrgCertificate,
  signRevocationList,
  signStaffCertificate,
  staffSignInPayload,
  toHex,
  verifyRevocationList,
  verifyStaffCredential,
  verifyStaffSignInProof,
  type StaffCertificateFields,
} from '../../src/index.js';
import * as verifyEntry from '../../src/verify.js';

await initCrypto();

const HOUR = 3600_000;
const DAY = 24 * HOUR;
const T0 = Date.UTC(2030, 0, 1);
const ORG_SEED = new Uint8Array(32).fill(7);
const ORG_KEY = getCrypto().ed25519PublicKey(ORG_SEED);
const OTHER_ORG_SEED = new Uint8Array(32).fill(8);
const ISSUER = generateIssuerKey();
const device = IdentityKeyPair.generate();
const other = IdentityKeyPair.generate();

const issuerCert = signIssuerCertificate(ORG_SEED, {
  issuerKey: ISSUER.publicKey,
  name: 'Acme staff',
  policy: { roles: ['agent', 'supervisor'], maxLifetimeMs: 12 * HOUR },
  expiresAt: T0 + 365 * DAY,
});
const SERIAL = new Uint8Array(16).fill(0x5a);
const FIELDS: StaffCertificateFields = {
  ...device.publicIdentity,
  personId: 'p-1001',
  displayName: 'Zoë Agent',
  roles: ['agent'],
  issuedAt: T0,
  expiresAt: T0 + 12 * HOUR,
  serial: SERIAL,
};
const credential = (f: Partial<StaffCertificateFields> = {}, issuer = issuerCert, seed = ISSUER.seed) =>
  encodeStaffCredential(issuer, signStaffCertificate(seed, { ...FIELDS, ...f }));
const check = { orgKey: ORG_KEY, identity: device.publicIdentity, now: T0 + HOUR };

function refused(reason: string) {
  return (e: unknown) => {
    assert.ok(isParleyError(e, 'UNTRUSTED_IDENTITY'), `UNTRUSTED_IDENTITY, got ${String(e)}`);
    assert.equal(e.details?.reason, reason, e.message);
    return true;
  };
}

describe('staff credential', () => {
  test('round trip: root → issuer → device verifies and says who, what and until when', () => {
    const bytes = credential({ roles: ['supervisor', 'agent'] });
    assert.equal(bytes[0], 0x02);
    assert.ok(isStaffCredential(bytes));
    assert.ok(!isStaffCredential(signOrgCertificate(ORG_SEED, { role: 'agent', label: 'x', ...device.publicIdentity, expiresAt: T0 + DAY })));
    const v = verifyStaffCredential(bytes, check);
    assert.deepEqual(
      { ...v, issuerKey: toHex(v.issuerKey) },
      {
        personId: 'p-1001', displayName: 'Zoë Agent', roles: ['agent', 'supervisor'], issuedAt: T0, expiresAt: T0 + 12 * HOUR,
        serial: toHex(SERIAL), issuerKey: toHex(ISSUER.publicKey), issuerName: 'Acme staff',
      },
    );
    const d = describeStaffCredential(decodeStaffCredential(bytes));
    assert.equal(d.device, device.deviceId);
    assert.equal(d.roles, 'agent,supervisor');
    assert.equal(d.orgKey, toHex(ORG_KEY));
    const ic = decodeIssuerCertificate(issuerCert);
    assert.deepEqual(ic.policy, { roles: ['agent', 'supervisor'], maxLifetimeMs: 12 * HOUR });
    // Deterministic, canonical encoding: same fields, same bytes; role order does not matter.
    assert.equal(toHex(credential({ roles: ['agent', 'supervisor'] })), toHex(bytes));
    // The key-free entry point verifies too.
    assert.equal(verifyEntry.verifyStaffCredential(bytes, check).personId, 'p-1001');
    assert.deepEqual(parseStaffRoles('agent, admin'), ['agent', 'admin']);
    assert.deepEqual([...STAFF_ROLES], ['agent', 'supervisor', 'compliance', 'admin']);
  });

  test('signatures are made under their own contexts', () => {
    const cred = decodeStaffCredential(credential());
    const staffPayload = cred.staffCertificate.subarray(0, cred.staffCertificate.length - 64);
    assert.ok(getCrypto().ed25519Verify(ISSUER.publicKey, contextMessage('staffCertificate', staffPayload), cred.staff.signature));
    assert.ok(!getCrypto().ed25519Verify(ISSUER.publicKey, contextMessage('orgCertificate', staffPayload), cred.staff.signature));
    const issuerPayload = issuerCert.subarray(0, issuerCert.length - 64);
    assert.ok(getCrypto().ed25519Verify(ORG_KEY, contextMessage('issuerCertificate', issuerPayload), cred.issuer.signature));
    assert.ok(!getCrypto().ed25519Verify(ORG_KEY, contextMessage('orgCertificate', issuerPayload), cred.issuer.signature));
  });

  test('changing any byte of a credential makes it refused', () => {
    const bytes = credential();
    const reasons = new Set<string>();
    for (let i = 0; i < bytes.length; i++) {
      for (const flip of [0x01, 0x80]) {
        const t = bytes.slice();
        t[i]! ^= flip;
        assert.throws(() => verifyStaffCredential(t, check), (e: unknown) => {
          assert.ok(isParleyError(e, 'UNTRUSTED_IDENTITY'), `byte ${i}: ${String(e)}`);
          reasons.add(String(e.details?.reason));
          return true;
        }, `byte ${i} ^ ${flip}`);
      }
    }
    // Framing, the org signature and the issuer signature all played their part.
    for (const r of ['malformed', 'issuerSignature', 'signature']) assert.ok(reasons.has(r), `${r} in ${[...reasons].join(',')}`);
  });

  test('another org key, an expired issuer, a foreign issuer key', () => {
    assert.throws(() => verifyStaffCredential(credential(), { ...check, orgKey: getCrypto().ed25519PublicKey(OTHER_ORG_SEED) }), refused('issuerSignature'));
    const foreign = signIssuerCertificate(OTHER_ORG_SEED, { issuerKey: ISSUER.publicKey, name: 'Rogue', policy: { roles: ['admin'], maxLifetimeMs: DAY }, expiresAt: T0 + DAY });
    assert.throws(() => verifyStaffCredential(credential({}, foreign), check), refused('issuerSignature'));
    const shortIssuer = signIssuerCertificate(ORG_SEED, { issuerKey: ISSUER.publicKey, name: 'Acme staff', policy: { roles: ['agent'], maxLifetimeMs: 12 * HOUR }, expiresAt: T0 + 30 * 60_000 });
    verifyStaffCredential(credential({}, shortIssuer), { ...check, now: T0 + 60_000 });
    assert.throws(() => verifyStaffCredential(credential({}, shortIssuer), check), refused('issuerExpired'));
    // A staff certificate signed by a key other than the certified issuer's.
    const rogue = generateIssuerKey();
    assert.throws(() => verifyStaffCredential(credential({}, issuerCert, rogue.seed), check), refused('signature'));
  });

  test('beyond the issuer policy: a role it may not grant, a lifetime longer than it may give', () => {
    assert.throws(() => verifyStaffCredential(credential({ roles: ['agent', 'admin'] }), check), refused('issuerPolicy'));
    assert.throws(() => verifyStaffCredential(credential({ roles: ['compliance'] }), check), refused('issuerPolicy'));
    // THREATS S3: a 30-day agent certificate under a 12 h policy, refused even while "valid".
    const long = credential({ expiresAt: T0 + 30 * DAY });
    assert.throws(() => verifyStaffCredential(long, check), refused('issuerPolicy'));
    assert.throws(() => verifyStaffCredential(long, { ...check, now: T0 + 1 }), refused('issuerPolicy'));
    // Exactly the policy's lifetime is accepted.
    verifyStaffCredential(credential({ expiresAt: T0 + 12 * HOUR }), check);
  });

  test('expired, not yet valid, another identity', () => {
    assert.throws(() => verifyStaffCredential(credential(), { ...check, now: T0 + 12 * HOUR }), refused('expired'));
    verifyStaffCredential(credential(), { ...check, now: T0 + 12 * HOUR - 1 });
    assert.throws(() => verifyStaffCredential(credential({ issuedAt: T0 + HOUR, expiresAt: T0 + 2 * HOUR }), { ...check, now: T0 }), refused('notYetValid'));
    assert.throws(() => verifyStaffCredential(credential(), { ...check, identity: other.publicIdentity }), refused('identity'));
  });

  test('malformed credentials are refused before anything is verified', () => {
    const bytes = credential();
    const cases: Uint8Array[] = [
      new Uint8Array(0),
      new Uint8Array([0x02]),
      bytes.subarray(0, bytes.length - 1),
      new Uint8Array([...bytes, 0]),
      new Uint8Array(2000).fill(2),
      Uint8Array.from([0x03, ...bytes.subarray(1)]),
      encodeStaffCredential(new Uint8Array([1, 2, 3]), decodeStaffCredential(bytes).staffCertificate),
    ];
    for (const c of cases) assert.throws(() => verifyStaffCredential(c, check), refused('malformed'));
    // Fields the format forbids cannot be signed either.
    for (const bad of [{ displayName: 'evil\u202Eeman' }, { displayName: '' }, { personId: 'a b' }, { roles: [] }, { expiresAt: T0 }, { serial: new Uint8Array(8) }]) {
      assert.throws(() => credential(bad as Partial<StaffCertificateFields>), (e: unknown) => isParleyError(e, 'USAGE'));
    }
    assert.throws(
      () => signIssuerCertificate(ORG_SEED, { issuerKey: ISSUER.publicKey, name: 'x', policy: { roles: ['agent'], maxLifetimeMs: 400 * DAY }, expiresAt: T0 }),
      (e: unknown) => isParleyError(e, 'USAGE'),
    );
  });
});

describe('revocation lists', () => {
  const list = (f: { persons?: string[]; devices?: string[]; sequence?: number } = {}, issuer = issuerCert, seed = ISSUER.seed) =>
    signRevocationList(seed, { issuerCertificate: issuer, sequence: f.sequence ?? 1, issuedAt: T0, persons: f.persons ?? [], devices: f.devices ?? [] });
  const verified = (bytes: Uint8Array) => verifyRevocationList(bytes, { orgKey: ORG_KEY, now: T0 + HOUR });

  test('round trip; a revoked device or person is refused, others are not', () => {
    const bytes = list({ persons: ['p-2', 'p-1001'], devices: [device.deviceId], sequence: 7 });
    const l = verified(bytes);
    assert.deepEqual({ ...l, issuerKey: toHex(l.issuerKey) }, {
      issuerKey: toHex(ISSUER.publicKey), sequence: 7, issuedAt: T0, persons: ['p-1001', 'p-2'], devices: [device.deviceId],
    });
    assert.equal(decodeRevocationList(bytes).issuer.name, 'Acme staff');
    assert.throws(() => verifyStaffCredential(credential(), { ...check, revocations: [verified(list({ devices: [device.deviceId] }))] }), refused('revoked'));
    assert.throws(() => verifyStaffCredential(credential(), { ...check, revocations: [verified(list({ persons: ['p-1001'] }))] }), refused('revoked'));
    // Lists naming other devices and persons change nothing.
    verifyStaffCredential(credential(), { ...check, revocations: [verified(list({ persons: ['p-2'], devices: [other.deviceId] }))] });
    // Another org-certified issuer: its device revocations count, its person ids are its own names.
    const second = generateIssuerKey();
    const secondCert = signIssuerCertificate(ORG_SEED, { issuerKey: second.publicKey, name: 'Second', policy: { roles: ['agent'], maxLifetimeMs: HOUR }, expiresAt: T0 + DAY });
    verifyStaffCredential(credential(), { ...check, revocations: [verified(list({ persons: ['p-1001'] }, secondCert, second.seed))] });
    assert.throws(
      () => verifyStaffCredential(credential(), { ...check, revocations: [verified(list({ devices: [device.deviceId] }, secondCert, second.seed))] }),
      refused('revoked'),
    );
  });

  test('a list verifies against the org key alone: tampering, another org, an expired issuer, a foreign signer are refused', () => {
    const bytes = list({ persons: ['p-1'], devices: [device.deviceId] });
    for (let i = 0; i < bytes.length; i++) {
      const t = bytes.slice();
      t[i]! ^= 0x01;
      assert.throws(() => verified(t), refused('revocationList'), `byte ${i}`);
    }
    assert.throws(() => verifyRevocationList(bytes, { orgKey: getCrypto().ed25519PublicKey(OTHER_ORG_SEED), now: T0 }), refused('revocationList'));
    assert.throws(() => verifyRevocationList(bytes, { orgKey: ORG_KEY, now: T0 + 366 * DAY }), refused('revocationList'));
    assert.throws(() => verified(new Uint8Array([1, 0])), refused('revocationList'));
    // The issuer certificate embedded must be the signer's own.
    assert.throws(() => list({}, issuerCert, generateIssuerKey().seed), (e: unknown) => isParleyError(e, 'USAGE'));
    assert.throws(() => list({ devices: ['not-hex'] }), (e: unknown) => isParleyError(e, 'USAGE'));
  });
});

describe('staff sign-in proof', () => {
  test('the device key signs challenge ‖ issuer origin under its own context', () => {
    const challenge = new Uint8Array(32).fill(9);
    const proof = device.sign('staffSignIn', staffSignInPayload(challenge, 'https://issuer.example'));
    assert.ok(verifyStaffSignInProof(device.publicIdentity.signingKey, challenge, 'https://issuer.example', proof));
    assert.ok(!verifyStaffSignInProof(device.publicIdentity.signingKey, challenge, 'https://evil.example', proof));
    assert.ok(!verifyStaffSignInProof(device.publicIdentity.signingKey, new Uint8Array(32).fill(8), 'https://issuer.example', proof));
    assert.ok(!verifyStaffSignInProof(other.publicIdentity.signingKey, challenge, 'https://issuer.example', proof));
    const relayAuthSig = device.sign('relayAuth', staffSignInPayload(challenge, 'https://issuer.example'));
    assert.ok(!verifyStaffSignInProof(device.publicIdentity.signingKey, challenge, 'https://issuer.example', relayAuthSig));
    assert.throws(() => staffSignInPayload(new Uint8Array(31), 'https://issuer.example'), (e: unknown) => isParleyError(e, 'USAGE'));
  });
});
