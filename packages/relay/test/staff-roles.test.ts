/**
 * Staff roles at the relay (issue 12): with an org key the relay reads roles from the staff
 * credential presented at login, refuses credentials that do not verify (reason `credential` with
 * the verifier's reason) or are revoked (reason `revoked`), enforces the role table (customer →
 * customer `send` is FORBIDDEN, logged and counted), and takes revocation lists on
 * `POST /v1/revocations`, ending the connections they name at once. Without an org key nothing
 * changes. One relay per configuration, memory store, real sockets.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { relayAuthPayload } from '@parley/protocol/wire';
import { RelayLink } from '../../relay-link/src/index.js';
import { createApiKey } from '../src/index.js';
import { call, disconnected, msgId, newDevice, setupCrypto, startRelay, upload } from './helpers.js';
import { HOUR, loginWith, newOrg, postList } from './staff-helpers.js';

await setupCrypto();
type R = Awaited<ReturnType<typeof startRelay>>;
const send = (socket: Parameters<typeof call>[0], to: string) => call(socket, 'send', { to, id: msgId(), envelope: new Uint8Array([1, 2, 3]) });

/** The value of `parley_relay_forbidden_total{role,operation}` (0 when absent). */
async function forbiddenCount(relay: R, role: string, operation: string): Promise<number> {
  const text = await relay.metrics.metrics();
  const m = new RegExp(`^parley_relay_forbidden_total\\{role="${role}",operation="${operation}"\\} (\\d+)$`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

describe('relay with an org key', () => {
  const org = newOrg();
  let relay: R;
  // Short periodic pass off: the revocation test must show the push, not the timer.
  before(async () => {
    await setupCrypto();
    relay = await startRelay({ orgKey: org.orgKey, limits: { apiKeyCheckIntervalMs: 60_000 } });
  });
  after(async () => relay?.close());

  test('a staff device with a valid credential gets its roles; a customer and a bot get theirs', async () => {
    const agent = newDevice();
    const a = await loginWith(relay, agent, org.credential(agent, { roles: ['agent', 'supervisor'] }));
    assert.equal(a.r.ok, true, JSON.stringify(a.r.error));
    assert.deepEqual(a.r.roles, ['agent', 'supervisor']);
    assert.deepEqual(await relay.store.getDeviceRoles(agent.deviceId), ['agent', 'supervisor']);
    const c = await loginWith(relay, newDevice());
    assert.deepEqual(c.r.roles, ['customer']);
    const { key } = await createApiKey(relay.store, 'bot');
    const b = await loginWith(relay, newDevice(), undefined, key);
    assert.deepEqual([b.r.role, b.r.roles], ['bot', ['bot']]);
    for (const s of [a, c, b]) s.socket.disconnect();
  });

  test('RelayLink: the credential in the login answer reaches the relay (session roles); fetchRevocations returns the stored lists', async () => {
    const agent = newDevice();
    const credential = org.credential(agent, { personId: 'dora' });
    const link = new RelayLink({
      url: relay.url,
      connectTimeoutMs: 5000,
      credentials: {
        answer: (c) => {
          const clientNonce = new Uint8Array(randomBytes(32));
          const timestamp = Date.now();
          const payload = relayAuthPayload({ serverNonce: c.serverNonce, clientNonce, origin: c.origin, timestamp, deviceId: agent.deviceId });
          return { identity: agent.publicIdentity, clientNonce, timestamp, signature: agent.sign('relayAuth', payload), credential };
        },
      },
    });
    try {
      const session = await link.connect();
      assert.deepEqual(session.roles, ['agent']);
      const list = org.revocations({ persons: ['nobody'] });
      assert.equal(await postList(relay.url, list), 204);
      const lists = await link.fetchRevocations();
      assert.ok(lists.some((l) => Buffer.from(l).equals(Buffer.from(list))));
    } finally {
      await link.close();
    }
  });

  test('credentials beyond policy, expired, for another identity or from another org are refused with the reason', async () => {
    const other = newOrg();
    const cases: [string, (d: ReturnType<typeof newDevice>) => Uint8Array][] = [
      ['issuerPolicy', (d) => org.credential(d, { roles: ['admin'] })], // a role the issuer may not grant
      ['issuerPolicy', (d) => org.credential(d, { lifetimeMs: 13 * HOUR })], // longer than the policy allows
      ['expired', (d) => org.credential(d, { issuedAt: Date.now() - 2 * HOUR, lifetimeMs: HOUR })],
      ['identity', () => org.credential(newDevice())],
      ['issuerSignature', (d) => other.credential(d)],
    ];
    for (const [reason, make] of cases) {
      const d = newDevice();
      const { r } = await loginWith(relay, d, make(d));
      assert.equal(r.ok, false, reason);
      assert.equal(r.error.code, 'UNAUTHENTICATED');
      assert.deepEqual([r.error.details.reason, r.error.details.credentialReason], ['credential', reason]);
    }
    assert.match(relay.logs(), /"event":"authFailed".*"reason":"credential".*"credentialReason":"issuerPolicy"/);
    // Garbage bytes in the credential slot: refused as malformed, not a crash.
    const { r } = await loginWith(relay, newDevice(), new Uint8Array([2, 0, 1]));
    assert.deepEqual([r.error.details.reason, r.error.details.credentialReason], ['credential', 'malformed']);
  });

  test('customer → customer send is FORBIDDEN (logged, counted); customer → bot, customer → agent, agent → customer are allowed', async () => {
    const [cust1, cust2, agent, bot] = [newDevice(), newDevice(), newDevice(), newDevice()];
    const { key } = await createApiKey(relay.store, 'bot');
    const c1 = await loginWith(relay, cust1);
    const c2 = await loginWith(relay, cust2);
    const a = await loginWith(relay, agent, org.credential(agent));
    const b = await loginWith(relay, bot, undefined, key);
    const before = await forbiddenCount(relay, 'customer', 'sendToCustomer');

    const refused = await send(c1.socket, cust2.deviceId);
    assert.equal(refused.ok, false);
    assert.equal(refused.error.code, 'FORBIDDEN');
    assert.deepEqual(refused.error.details, { role: 'customer', operation: 'sendToCustomer' });
    assert.equal(await relay.store.countPending(cust2.deviceId), 0, 'nothing stored');
    // A device never seen logging in counts as a customer.
    assert.equal((await send(c1.socket, newDevice().deviceId)).error.code, 'FORBIDDEN');
    assert.equal(await forbiddenCount(relay, 'customer', 'sendToCustomer'), before + 2);
    assert.match(relay.logs(), new RegExp(`"event":"forbidden","deviceId":"${cust1.deviceId}","role":"customer","operation":"sendToCustomer"`));

    assert.equal((await send(c1.socket, bot.deviceId)).ok, true, 'customer → bot');
    assert.equal((await send(c1.socket, agent.deviceId)).ok, true, 'customer → agent');
    assert.equal((await send(a.socket, cust2.deviceId)).ok, true, 'agent → customer');
    assert.equal((await send(b.socket, cust2.deviceId)).ok, true, 'bot → customer');
    // The recipient's role is its last login's: the agent signing in without a credential is a customer.
    a.socket.disconnect();
    const again = await loginWith(relay, agent);
    assert.deepEqual(again.r.roles, ['customer']);
    assert.equal((await send(c1.socket, agent.deviceId)).error.code, 'FORBIDDEN');
    for (const s of [c1, c2, b, again]) s.socket.disconnect();
  });

  test('a posted revocation list disconnects the revoked agent at once and refuses its next login; stale lists get 409', async () => {
    const [agent, bob, keep] = [newDevice(), newDevice(), newDevice()];
    const a = await loginWith(relay, agent, org.credential(agent));
    const k = await loginWith(relay, keep, org.credential(keep, { personId: 'carol' }));
    assert.equal(a.r.ok && k.r.ok, true);
    const errors: { code: string; details?: { reason?: string } }[] = [];
    a.socket.on('relayError', (e) => errors.push(e));
    const gone = disconnected(a.socket, 2000);
    const list = org.revocations({ devices: [agent.deviceId] });
    assert.equal(await postList(relay.url, list), 204);
    assert.equal(await gone, true, 'disconnected at the publish (the periodic pass is 60 s away)');
    assert.deepEqual(errors.map((e) => [e.code, e.details?.reason]), [['UNAUTHENTICATED', 'revoked']]);
    assert.equal(k.socket.connected, true, 'a device the list does not name stays');

    const next = await loginWith(relay, agent, org.credential(agent));
    assert.deepEqual([next.r.error.code, next.r.error.details.reason], ['UNAUTHENTICATED', 'revoked']);
    // Without its credential too: the device is revoked, not only the credential.
    assert.equal((await loginWith(relay, agent)).r.error.details.reason, 'revoked');

    // The same sequence again, or a lower one: stale.
    assert.equal(await postList(relay.url, list), 409);
    assert.equal(await postList(relay.url, org.revocations({ sequence: 0, persons: ['bob'] })), 409);
    // A person revoked: every device of that person, at its next login.
    assert.equal(await postList(relay.url, org.revocations({ devices: [agent.deviceId], persons: ['bob'] })), 204);
    assert.equal((await loginWith(relay, bob, org.credential(bob, { personId: 'bob' }))).r.error.details.reason, 'revoked');
    assert.equal(k.socket.connected, true);

    // Not a list, or a list of another org: 400, nothing stored.
    assert.equal(await postList(relay.url, new Uint8Array([1, 2, 3])), 400);
    assert.equal(await postList(relay.url, newOrg().revocations({ sequence: 99, devices: [keep.deviceId] })), 400);
    assert.equal(await postList(relay.url, new Uint8Array(64 * 1024 + 1)), 413);
    // GET and fetchRevocations hand out the stored list as posted.
    const got = await (await fetch(`${relay.url}/v1/revocations`)).json() as { lists: string[] };
    assert.equal(got.lists.length, 1);
    const fetched = await call(k.socket, 'fetchRevocations', {});
    assert.deepEqual(fetched.lists.map((l: Uint8Array) => Buffer.from(l).toString('base64')), got.lists);
    assert.equal(k.socket.connected, true);
    k.socket.disconnect();
  });
});

describe('relay with an org key and a fast periodic pass', () => {
  const org = newOrg();
  let relay: R;
  before(async () => {
    relay = await startRelay({ orgKey: org.orgKey, limits: { apiKeyCheckIntervalMs: 100 } });
  });
  after(async () => relay?.close());

  test('a staff connection whose credential expires is disconnected (reason credential, expired); a customer stays', async () => {
    const agent = newDevice();
    const a = await loginWith(relay, agent, org.credential(agent, { issuedAt: Date.now() - 1000, lifetimeMs: 2000 }));
    const c = await loginWith(relay, newDevice());
    assert.equal(a.r.ok, true);
    const errors: { code: string; details?: { reason?: string; credentialReason?: string } }[] = [];
    a.socket.on('relayError', (e) => errors.push(e));
    assert.equal(await disconnected(a.socket, 3000), true);
    assert.deepEqual(errors.map((e) => [e.code, e.details?.reason, e.details?.credentialReason]), [['UNAUTHENTICATED', 'credential', 'expired']]);
    assert.equal(c.socket.connected, true);
    c.socket.disconnect();
  });
});

describe('relay without an org key', () => {
  let relay: R;
  before(async () => {
    await setupCrypto();
    relay = await startRelay();
  });
  after(async () => relay?.close());

  test('behaves as before: customers message customers, credentials are ignored, no revocation lists are taken', async () => {
    const org = newOrg();
    const [c1, c2] = [newDevice(), newDevice()];
    const a = await loginWith(relay, c1, org.credential(c1));
    assert.deepEqual([a.r.ok, a.r.role, a.r.roles], [true, 'device', ['customer']]);
    const b = await loginWith(relay, c2);
    assert.equal((await call(b.socket, 'uploadPrekeys', upload(c2, [1]))).ok, true);
    assert.equal((await send(a.socket, c2.deviceId)).ok, true);
    assert.equal(await postList(relay.url, org.revocations({ devices: [c1.deviceId] })), 404);
    assert.deepEqual((await call(a.socket, 'fetchRevocations', {})).lists, []);
    assert.equal(a.socket.connected, true);
    a.socket.disconnect();
    b.socket.disconnect();
  });
});

describe('relay with an org key and customersMayMessageCustomers', () => {
  let relay: R;
  before(async () => {
    await setupCrypto();
    relay = await startRelay({ orgKey: Buffer.from(newOrg().orgKey).toString('hex'), customersMayMessageCustomers: true });
  });
  after(async () => relay?.close());

  test('customers may message each other', async () => {
    const [c1, c2] = [newDevice(), newDevice()];
    const a = await loginWith(relay, c1);
    const b = await loginWith(relay, c2);
    assert.equal((await send(a.socket, c2.deviceId)).ok, true);
    a.socket.disconnect();
    b.socket.disconnect();
  });
});
