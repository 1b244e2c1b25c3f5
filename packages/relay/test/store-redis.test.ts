/**
 * The store contract against {@link RedisStore} on a private redis-server (AOF, fsync always),
 * plus what only Redis has: the durability check, a restart on the same AOF, and OPK hand-out
 * by several clients (as several relay nodes would) at once.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { RedisDurabilityError, RedisStore } from '../src/store/redis.js';
import { storeContract } from './store-contract.js';
import { REDIS_SKIP, RedisServer, redisAvailable } from './redis-server.js';

const quiet = { warn: () => undefined, error: () => undefined };
const rnd = (n: number) => new Uint8Array(randomBytes(n));

if (!redisAvailable()) {
  test('redis store', (t) => t.skip(REDIS_SKIP));
} else {
  let server: RedisServer;
  before(async () => {
    server = await RedisServer.start();
  });
  after(async () => {
    await server?.destroy();
  });

  // Each contract test gets its own key prefix on the shared server: a fresh, empty store.
  storeContract('redis', () => RedisStore.connect({ url: server.url, prefix: `c${randomBytes(6).toString('hex')}:`, logger: quiet }));

  const upload = (ids: number[]) => ({
    identity: { signingKey: rnd(32), dhKey: rnd(32), binding: rnd(64) },
    signedPrekey: { id: 1, createdAt: Date.now(), publicKey: rnd(32), signature: rnd(64) },
    oneTimePrekeys: ids.map((id) => ({ id, publicKey: rnd(32) })),
  });

  describe('redis store specifics', () => {
    test('refuses a Redis without AOF (typed error), starts with allowNonDurable and warns', async () => {
      const loose = await RedisServer.start({ extraArgs: ['--appendonly', 'no'] });
      try {
        await assert.rejects(RedisStore.connect({ url: loose.url, logger: quiet }), (e: unknown) => {
          assert.ok(e instanceof RedisDurabilityError);
          assert.equal(e.code, 'REDIS_NOT_DURABLE');
          assert.match(e.message, /appendonly/);
          return true;
        });
        await loose.command('CONFIG SET appendonly yes');
        await loose.command('CONFIG SET appendfsync everysec');
        await assert.rejects(RedisStore.connect({ url: loose.url, logger: quiet }), /appendfsync is "everysec" \(up to 1 s/);
        await loose.command('CONFIG SET appendfsync always');
        await loose.command('CONFIG SET maxmemory 100mb');
        await loose.command('CONFIG SET maxmemory-policy allkeys-lru');
        await assert.rejects(RedisStore.connect({ url: loose.url, logger: quiet }), /maxmemory-policy/);
        const warnings: object[] = [];
        const s = await RedisStore.connect({ url: loose.url, allowNonDurable: true, logger: { warn: (o) => warnings.push(o), error: () => undefined } });
        assert.equal(warnings.length, 1);
        await s.close();
      } finally {
        await loose.destroy();
      }
    });

    test('an unreachable Redis fails connect within the timeout', async () => {
      const { freePort } = await import('./redis-server.js');
      const port = await freePort();
      const t0 = Date.now();
      await assert.rejects(RedisStore.connect({ url: `redis://127.0.0.1:${port}`, connectTimeoutMs: 500, logger: quiet }));
      assert.ok(Date.now() - t0 < 3000);
    });

    test('acked state survives SIGKILL of redis-server (AOF, fsync always); used OPKs stay used', async () => {
      const own = await RedisServer.start();
      try {
        const s = await RedisStore.connect({ url: own.url, logger: quiet });
        const to = randomBytes(16).toString('hex');
        const from = randomBytes(16).toString('hex');
        const seqs: number[] = [];
        for (let i = 0; i < 50; i++) seqs.push((await s.enqueue({ to, from, id: `m${i}`, envelope: rnd(100), receivedAt: i })).seq);
        await s.deleteMessages(to, seqs.slice(0, 10));
        await s.putPrekeys('dev1', upload([1, 2, 3]));
        assert.equal((await s.takeBundle('dev1'))!.bundle.oneTimePrekey!.id, 1);
        await s.putApiKey({ id: 'k', hash: 'h', label: 'l', createdAt: 1 });
        await own.kill();
        // Commands fail fast while Redis is away (no offline queue).
        await assert.rejects(s.countPending(to));
        await own.restart();
        // node-redis reconnects by itself.
        const end = Date.now() + 10_000;
        let pending = -1;
        while (Date.now() < end) {
          try {
            pending = await s.countPending(to);
            break;
          } catch {
            await new Promise((r) => setTimeout(r, 50));
          }
        }
        assert.equal(pending, 40);
        assert.equal(await s.queueDepth(), 40);
        const list = await s.listPending(to, 0, 100);
        assert.deepEqual(list.map((m) => m.id), Array.from({ length: 40 }, (_, i) => `m${i + 10}`));
        // Still pending, so a retry is still a duplicate; a re-upload cannot revive OPK 1.
        assert.equal((await s.enqueue({ to, from, id: 'm20', envelope: rnd(1), receivedAt: 0 })).duplicate, true);
        assert.equal(await s.putPrekeys('dev1', upload([1, 2, 3, 4])), 3);
        assert.equal((await s.findApiKey('h'))?.id, 'k');
        await s.close();
      } finally {
        await own.destroy();
      }
    });

    test('several clients taking bundles at once (as several nodes would) never share an OPK', async () => {
      const prefix = `n${randomBytes(4).toString('hex')}:`;
      const nodes = await Promise.all([1, 2, 3].map(() => RedisStore.connect({ url: server.url, prefix, logger: quiet })));
      try {
        await nodes[0]!.putPrekeys('bob', upload(Array.from({ length: 300 }, (_, i) => i + 1)));
        const taken = await Promise.all(Array.from({ length: 400 }, (_, i) => nodes[i % 3]!.takeBundle('bob')));
        const ids = taken.map((t) => t!.bundle.oneTimePrekey?.id).filter((x): x is number => x !== undefined);
        assert.equal(ids.length, 300);
        assert.equal(new Set(ids).size, 300);
        // Concurrent duplicate sends through different nodes: one stored, the others duplicates.
        const sends = await Promise.all(nodes.map((n) => n.enqueue({ to: 'bob', from: 'alice', id: 'x1', envelope: rnd(5), receivedAt: 1 })));
        assert.equal(sends.filter((r) => !r.duplicate).length, 1);
        assert.equal(new Set(sends.map((r) => r.seq)).size, 1);
        assert.equal(await nodes[2]!.countPending('bob'), 1);
      } finally {
        await Promise.all(nodes.map((n) => n.close()));
      }
    });
  });
}
