/**
 * Staff roles on two relay nodes sharing one Redis: a device's role stored at its login on one
 * node decides a send through the other (customer → customer FORBIDDEN across nodes), and a
 * revocation list posted to one node disconnects the revoked agent connected to the other at
 * once (socket.io's Redis adapter `serverSideEmit`; the periodic pass is set 60 s away) and its
 * next login is refused on either node. Skipped only when redis-server is missing (CI has it).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { call, disconnected, msgId, newDevice, setupCrypto, startRelay, until } from './helpers.js';
import { REDIS_SKIP, RedisServer, redisAvailable } from './redis-server.js';
import { loginWith, newOrg, postList } from './staff-helpers.js';

await setupCrypto();
const ORIGIN = 'https://relay.parley.test';
type R = Awaited<ReturnType<typeof startRelay>>;
const send = (socket: Parameters<typeof call>[0], to: string) => call(socket, 'send', { to, id: msgId(), envelope: new Uint8Array([7]) });

describe('staff roles on two relay nodes (Redis)', { skip: redisAvailable() ? false : REDIS_SKIP }, () => {
  const org = newOrg();
  let redis: RedisServer;
  let a: R;
  let b: R;
  before(async () => {
    redis = await RedisServer.start();
    const prefix = `t${randomBytes(5).toString('hex')}:`;
    const options = { redis: { url: redis.url, prefix }, origin: ORIGIN, orgKey: org.orgKey, limits: { apiKeyCheckIntervalMs: 60_000 } };
    a = await startRelay(options);
    b = await startRelay(options);
  });
  after(async () => {
    await Promise.allSettled([a?.close(), b?.close()]);
    await redis?.destroy();
  });

  test('roles judged across nodes; a list posted to one node disconnects the agent on the other at once', async () => {
    const [agent, c1, c2] = [newDevice(), newDevice(), newDevice()];
    const ag = await loginWith(a, agent, org.credential(agent));
    const s2 = await loginWith(a, c2);
    const s1 = await loginWith(b, c1);
    assert.deepEqual([ag.r.roles, s1.r.roles, s2.r.roles], [['agent'], ['customer'], ['customer']]);

    const refused = await send(s1.socket, c2.deviceId); // c2 logged in on the other node
    assert.deepEqual([refused.error.code, refused.error.details], ['FORBIDDEN', { role: 'customer', operation: 'sendToCustomer' }]);
    assert.match(await b.metrics.metrics(), /^parley_relay_forbidden_total\{role="customer",operation="sendToCustomer"\} 1$/m);
    assert.equal((await send(s1.socket, agent.deviceId)).ok, true, 'customer on B → agent on A');
    assert.equal((await send(ag.socket, c1.deviceId)).ok, true, 'agent on A → customer on B');
    await until(() => s1.inbox.length === 1 && ag.inbox.length === 1);

    const errors: { code: string; details?: { reason?: string } }[] = [];
    ag.socket.on('relayError', (e) => errors.push(e));
    const gone = disconnected(ag.socket, 3000);
    assert.equal(await postList(b.url, org.revocations({ devices: [agent.deviceId] })), 204);
    assert.equal(await gone, true, 'the agent on node A is disconnected by the list posted to node B');
    assert.deepEqual(errors.map((e) => [e.code, e.details?.reason]), [['UNAUTHENTICATED', 'revoked']]);
    assert.equal(s2.socket.connected && s1.socket.connected, true, 'customers stay');
    for (const node of [a, b]) {
      const next = await loginWith(node, agent, org.credential(agent));
      assert.deepEqual([next.r.error.code, next.r.error.details.reason], ['UNAUTHENTICATED', 'revoked']);
    }
    // The stored list is shared: stale on the other node too.
    assert.equal(await postList(a.url, org.revocations({ sequence: 1, devices: [] })), 409);
    s1.socket.disconnect();
    s2.socket.disconnect();
  });
});
