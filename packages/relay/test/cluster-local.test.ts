/**
 * A relay node on Redis that is alone publishes nothing (issue 15, relay README "Scaling out"):
 * the store counts the other nodes right behind each write (`PUBSUB NUMSUB`), and with none the
 * push stays local — no PUBLISH, no barrier PING. Once a second node subscribes, messages are
 * broadcast again and reach a recipient on that node. Counted with Redis's own `INFO
 * commandstats`, over real sockets. Skipped only when /usr/bin/redis-server is missing.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createClient } from 'redis';
import { call, login, msgId, newDevice, setupCrypto, startRelay, until } from './helpers.js';
import { REDIS_SKIP, RedisServer, redisAvailable } from './redis-server.js';

const ORIGIN = 'https://relay.parley.test';
const LIMITS = { eventsPerSecond: 10_000, eventBurst: 10_000 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

if (!redisAvailable()) {
  test('relay node alone on Redis', (t) => t.skip(REDIS_SKIP));
} else {
  describe('relay node alone on Redis', () => {
    let redis: RedisServer;
    let admin: ReturnType<typeof createClient>;
    before(async () => {
      await setupCrypto();
      redis = await RedisServer.start();
      admin = createClient({ url: redis.url });
      await admin.connect();
    });
    after(async () => {
      await admin?.close();
      await redis?.destroy();
    });

    /** Calls of a command since the server started (`INFO commandstats`). */
    const calls = async (command: string): Promise<number> => {
      const info = await admin.info('commandstats');
      const m = new RegExp(`^cmdstat_${command}:calls=(\\d+)`, 'm').exec(info);
      return m ? Number(m[1]) : 0;
    };

    test('alone: pushes stay local (no PUBLISH, no PING); with a second node: broadcast again, across nodes', async () => {
      const prefix = `t${randomBytes(5).toString('hex')}:`;
      const a = await startRelay({ redis: { url: redis.url, prefix }, origin: ORIGIN, limits: LIMITS });
      let b: Awaited<ReturnType<typeof startRelay>> | undefined;
      try {
        const alice = newDevice();
        const bob = newDevice();
        const A = await login(a, alice);
        const B = await login(a, bob);
        // Bob's drain joins his room once his (empty) backlog is read.
        await sleep(50);
        const publish0 = await calls('publish');
        const ping0 = await calls('ping');
        for (let i = 0; i < 20; i++) {
          const r = await call(A.socket, 'send', { to: bob.deviceId, id: msgId(), envelope: new Uint8Array([i]) });
          assert.equal(r.ok, true, JSON.stringify(r));
        }
        await until(() => B.inbox.length === 20);
        assert.deepEqual(B.inbox.map((m) => m.envelope[0]), Array.from({ length: 20 }, (_, i) => i), 'live, in order');
        assert.equal(await calls('publish') - publish0, 0, 'a node alone publishes nothing');
        assert.equal(await calls('ping') - ping0, 0, 'and waits for no barrier');

        // A second node: Carol there. Messages are broadcast again, and hers cross nodes.
        b = await startRelay({ redis: { url: redis.url, prefix }, origin: ORIGIN, limits: LIMITS });
        const carol = newDevice();
        const C = await login(b, carol);
        await sleep(50);
        const publish1 = await calls('publish');
        for (let i = 0; i < 5; i++) {
          assert.equal((await call(A.socket, 'send', { to: carol.deviceId, id: msgId(), envelope: new Uint8Array([i]) })).ok, true);
          assert.equal((await call(A.socket, 'send', { to: bob.deviceId, id: msgId(), envelope: new Uint8Array([20 + i]) })).ok, true);
        }
        await until(() => C.inbox.length === 5 && B.inbox.length === 25);
        assert.deepEqual(C.inbox.map((m) => m.envelope[0]), [0, 1, 2, 3, 4]);
        assert.ok(await calls('publish') - publish1 >= 10, 'with another node subscribed, every push is published');
        for (const s of [A.socket, B.socket, C.socket]) s.disconnect();
      } finally {
        await b?.close();
        await a.close();
      }
    });
  });
}
