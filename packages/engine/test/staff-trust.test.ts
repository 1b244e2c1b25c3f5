/**
 * Staff peers in the engine (peer-trust.ts, revocations.ts): a customer engine pinning the org
 * key accepts a staff device whose credential verifies (org key → issuer → device), shows its
 * name and roles, refuses one beyond the issuer's policy, and refuses to send to or receive from
 * it once a revocation list naming it is held, or once it expired. Lists are verified against
 * the org key, never go back to an older sequence, and survive a restart.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import {
  encodeStaffCredential,
  generateIssuerKey,
  generateOrgKey,
  signIssuerCertificate,
  signRevocationList,
  signStaffCertificate,
  verifyStaffSignInProof,
  staffSignInPayload,
  type StaffRole,
} from '@parley/protocol';
import { ConversationEngine, MemoryStore } from '../src/index.js';
import { T0, deliver, device, mid, refused, setupCrypto, takeBundle, text } from './helpers/engines.js';

const HOUR = 3600_000;

describe('staff peers', () => {
  let org: { seed: Uint8Array; publicKey: Uint8Array };
  let issuer: { seed: Uint8Array; publicKey: Uint8Array };
  let issuerCert: Uint8Array;
  before(async () => {
    await setupCrypto();
    org = generateOrgKey();
    issuer = generateIssuerKey();
    issuerCert = signIssuerCertificate(org.seed, { issuerKey: issuer.publicKey, name: 'Acme staff', policy: { roles: ['agent', 'supervisor'], maxLifetimeMs: 12 * HOUR }, expiresAt: T0 + 365 * 24 * HOUR });
  });

  const credentialFor = (e: ConversationEngine, f: { roles?: StaffRole[]; expiresAt?: number; personId?: string } = {}) =>
    encodeStaffCredential(issuerCert, signStaffCertificate(issuer.seed, {
      ...e.publicIdentity, personId: f.personId ?? 'p-1', displayName: 'Ada Agent', roles: f.roles ?? ['agent'],
      issuedAt: T0, expiresAt: f.expiresAt ?? T0 + 12 * HOUR, serial: new Uint8Array(16).fill(3),
    }));
  const list = (sequence: number, f: { devices?: string[]; persons?: string[] } = {}) =>
    signRevocationList(issuer.seed, { issuerCertificate: issuerCert, sequence, issuedAt: T0, persons: f.persons ?? [], devices: f.devices ?? [] });

  test('accepted with name and roles; revoked mid-conversation: sends and receives refused; lists persist and never go back', async () => {
    let now = T0 + HOUR;
    const store = new MemoryStore();
    const customer = await device({ store, trust: { orgKey: org.publicKey }, now: () => now });
    const agent = await device({ now: () => now });
    const bundle = takeBundle(agent.upload, { certificate: credentialFor(agent.engine, { roles: ['agent', 'supervisor'] }) });
    const first = await customer.engine.encrypt(agent.engine.deviceId, text('hello'), { messageId: mid(), bundle });
    assert.deepEqual(customer.engine.peerStaff(agent.engine.deviceId), {
      personId: 'p-1', displayName: 'Ada Agent', roles: ['agent', 'supervisor'], expiresAt: T0 + 12 * HOUR, issuerName: 'Acme staff',
    });
    assert.equal(customer.engine.peerCertificate(agent.engine.deviceId), undefined);
    await deliver(agent.engine, customer.engine, first);
    const reply = await agent.engine.encrypt(customer.engine.deviceId, text('hi, Ada here'), { messageId: mid() });
    assert.equal((await deliver(customer.engine, agent.engine, reply)).kind, 'message');

    // A forged list (another issuer key not certified by the org) and a list naming others change nothing.
    const rogue = generateIssuerKey();
    const forged = signRevocationList(rogue.seed, { issuerCertificate: signIssuerCertificate(generateOrgKey().seed, { issuerKey: rogue.publicKey, name: 'x', policy: { roles: ['agent'], maxLifetimeMs: HOUR }, expiresAt: T0 + 24 * HOUR }), sequence: 9, issuedAt: T0, persons: [], devices: [agent.engine.deviceId] });
    assert.deepEqual(await customer.engine.setRevocationLists([forged, list(1, { devices: ['00'.repeat(16)] })]), { accepted: 1, stale: 0, refused: 1 });
    await customer.engine.encrypt(agent.engine.deviceId, text('still fine'), { messageId: mid() });

    // The device is revoked: sending fails with 'revoked', nothing goes to the outbox.
    const before = customer.engine.pendingOutbox().length;
    assert.deepEqual(await customer.engine.setRevocationLists([list(2, { devices: [agent.engine.deviceId] })]), { accepted: 1, stale: 0, refused: 0 });
    await assert.rejects(customer.engine.encrypt(agent.engine.deviceId, text('secret'), { messageId: mid() }), refused('UNTRUSTED_IDENTITY', 'revoked'));
    assert.equal(customer.engine.pendingOutbox().length, before);
    // And its messages are refused too.
    const late = await agent.engine.encrypt(customer.engine.deviceId, text('are you there?'), { messageId: mid() });
    await assert.rejects(deliver(customer.engine, agent.engine, late), refused('UNTRUSTED_IDENTITY', 'revoked'));
    // An older list (a relay replaying sequence 1) does not take the revocation back.
    assert.deepEqual(await customer.engine.setRevocationLists([list(1)]), { accepted: 0, stale: 1, refused: 0 });
    await assert.rejects(customer.engine.encrypt(agent.engine.deviceId, text('secret'), { messageId: mid() }), refused('UNTRUSTED_IDENTITY', 'revoked'));

    // After a restart, the revocation is still known.
    await customer.engine.close();
    const reopened = await ConversationEngine.open({ store, trust: { orgKey: org.publicKey }, now: () => now });
    await assert.rejects(reopened.encrypt(agent.engine.deviceId, text('secret'), { messageId: mid() }), refused('UNTRUSTED_IDENTITY', 'revoked'));
    // A newer list without the device (the issuer took it back) is honoured.
    await reopened.setRevocationLists([list(3)]);
    await reopened.encrypt(agent.engine.deviceId, text('welcome back'), { messageId: mid() });
    // Revoking the person (same issuer) covers all their devices.
    await reopened.setRevocationLists([list(4, { persons: ['p-1'] })]);
    await assert.rejects(reopened.encrypt(agent.engine.deviceId, text('x'), { messageId: mid() }), refused('UNTRUSTED_IDENTITY', 'revoked'));
    await reopened.setRevocationLists([list(5)]);
    // Expiry: refused from expiresAt on.
    now = T0 + 12 * HOUR;
    await assert.rejects(reopened.encrypt(agent.engine.deviceId, text('x'), { messageId: mid() }), refused('UNTRUSTED_IDENTITY', 'expired'));
    await reopened.close();
  });

  test('beyond the policy, another identity, or no accepted staff role: refused before anything is encrypted', async () => {
    const now = () => T0 + HOUR;
    const customer = await device({ trust: { orgKey: org.publicKey }, now });
    for (const [f, reason] of [[{ roles: ['admin'] as StaffRole[] }, 'issuerPolicy'], [{ expiresAt: T0 + 30 * 24 * HOUR }, 'issuerPolicy']] as const) {
      const agent = await device({ now });
      const bundle = takeBundle(agent.upload, { certificate: credentialFor(agent.engine, f) });
      await assert.rejects(customer.engine.encrypt(agent.engine.deviceId, text('x'), { messageId: mid(), bundle }), refused('UNTRUSTED_IDENTITY', reason));
      assert.equal(customer.engine.peerStaff(agent.engine.deviceId), undefined);
    }
    const agent = await device({ now });
    const stolen = await device({ now });
    await assert.rejects(
      customer.engine.encrypt(stolen.engine.deviceId, text('x'), { messageId: mid(), bundle: takeBundle(stolen.upload, { certificate: credentialFor(agent.engine) }) }),
      refused('UNTRUSTED_IDENTITY', 'identity'),
    );
    const onlyCompliance = await device({ trust: { orgKey: org.publicKey, staffRoles: ['compliance'] }, now });
    await assert.rejects(
      onlyCompliance.engine.encrypt(agent.engine.deviceId, text('x'), { messageId: mid(), bundle: takeBundle(agent.upload, { certificate: credentialFor(agent.engine) }) }),
      refused('UNTRUSTED_IDENTITY', 'role'),
    );
  });

  test('the sign-in proof is made with the identity key, for the challenge and origin only', async () => {
    const agent = await device();
    const challenge = new Uint8Array(32).fill(4);
    const proof = agent.engine.signStaffSignIn(challenge, 'https://issuer.example');
    assert.ok(verifyStaffSignInProof(agent.engine.publicIdentity.signingKey, challenge, 'https://issuer.example', proof));
    assert.ok(!verifyStaffSignInProof(agent.engine.publicIdentity.signingKey, challenge, 'https://other.example', proof));
    assert.equal(staffSignInPayload(challenge, 'https://issuer.example').length, 32 + 'https://issuer.example'.length);
  });
});
