/**
 * Several relay nodes on one Redis (issue 5; docs/threats.md R8 for the Redis store and (c) "Relay
 * load" smoke), over real sockets: cross-node and offline delivery, OPK hand-out across nodes,
 * a node SIGKILLed mid-traffic, redis-server SIGKILLed mid-traffic and restarted on its AOF,
 * and a bounded load smoke. The app view is each client's `(from, id)` dedupe, as in the SDK.
 *
 * Each test uses its own key prefix on one private redis-server (see redis-server.ts). Skipped
 * only when /usr/bin/redis-server is missing; CI installs it.
 */
import { after, before, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { RelayMessage } from '@parley/protocol/wire';
import { hashApiKey, type Relay } from '../src/index.js';
import { RedisStore } from '../src/store/redis.js';
import { ClusterClient, type NodeRef } from './cluster-client.js';
import { call, login, msgId, newDevice, setupCrypto, startRelay, until, upload } from './helpers.js';
import { REDIS_SKIP, RedisServer, redisAvailable } from './redis-server.js';

const ORIGIN = 'https://relay.parley.test';
const root = join(import.meta.dirname, '..', '..', '..');
const fixture = join(import.meta.dirname, 'fixtures', 'cluster-node.ts');
const bin = join(import.meta.dirname, '..', 'bin', 'parley-relay.mjs');
const extended = process.env['PARLEY_TEST_SCALE'] === 'extended';
const quiet = { warn: () => undefined, error: () => undefined };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const newPrefix = () => `t${randomBytes(5).toString('hex')}:`;
const LIMITS = { eventsPerSecond: 10_000, eventBurst: 10_000, bundleFetchesPerMinute: 10_000, bundleFetchesPerMinutePerAddress: 100_000, opksPerTargetPerMinute: 100_000 };

/** A relay node in its own process (so it can be SIGKILLed). */
interface ChildNode extends NodeRef {
  readonly child: ChildProcess;
}

async function spawnNode(redisUrl: string, prefix: string, env: Record<string, string> = {}): Promise<ChildNode> {
  const child = spawn(process.execPath, ['--import', 'tsx', fixture, redisUrl, prefix, ORIGIN], {
    cwd: root, stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, ...env },
  });
  const line = await new Promise<string>((resolve, reject) => {
    const rl = createInterface({ input: child.stdout! });
    const t = setTimeout(() => reject(new Error('relay node did not start within 30 s')), 30_000);
    rl.once('line', (l) => {
      clearTimeout(t);
      resolve(l);
    });
    child.once('exit', (code) => reject(new Error(`relay node exited early (${code})`)));
  });
  const { url, origin } = JSON.parse(line) as { url: string; origin: string };
  return { child, url, origin };
}

function killNode(n: ChildNode, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  const c = n.child;
  if (c.exitCode !== null || c.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    c.once('exit', () => resolve());
    c.kill(signal);
  });
}

/** The ledger of a traffic run: what each recipient must end up with. */
class Ledger {
  /** recipient → keys `${from}\n${id}` acked to their senders. */
  readonly acked = new Map<string, Set<string>>();
  readonly attempted = new Set<string>();
  sends = 0;
  retried = 0;
  record(from: string, to: string, id: string, attempts: number): void {
    const set = this.acked.get(to) ?? new Set<string>();
    set.add(`${from}\n${id}`);
    this.acked.set(to, set);
    this.sends++;
    if (attempts > 1) this.retried++;
  }
  total(): number {
    let n = 0;
    for (const s of this.acked.values()) n += s.size;
    return n;
  }
  /** Acked messages not (yet) seen by their recipient. */
  missing(clients: readonly ClusterClient[]): number {
    let n = 0;
    for (const c of clients) for (const k of this.acked.get(c.deviceId) ?? []) if (!c.seen.has(k)) n++;
    return n;
  }
}

/**
 * Every online client sends to random others (online, or offline ones whose queue grows), one
 * send in flight each, every `intervalMs`, until `durationMs` has passed and `faults` (run
 * meanwhile) are over. Returns the ledger.
 */
async function traffic(
  clients: readonly ClusterClient[], durationMs: number, intervalMs: number,
  faults: () => Promise<void> = async () => undefined, offline: readonly ClusterClient[] = [],
): Promise<Ledger> {
  const ledger = new Ledger();
  const stopAt = Date.now() + durationMs;
  const targets = [...clients, ...offline];
  let faultsOver = false;
  const senders = clients.map(async (c, i) => {
    await sleep(Math.floor(Math.random() * intervalMs));
    while (Date.now() < stopAt || !faultsOver) {
      const to = targets[(i + 1 + Math.floor(Math.random() * (targets.length - 1))) % targets.length]!;
      const id = msgId();
      ledger.attempted.add(`${c.deviceId}\n${id}`);
      const r = await c.send(to.deviceId, id, new Uint8Array(randomBytes(32 + Math.floor(Math.random() * 200))), 60_000);
      ledger.record(c.deviceId, to.deviceId, id, r.attempts);
      await sleep(intervalMs);
    }
  });
  await Promise.all([...senders, faults().finally(() => {
    faultsOver = true;
  })]);
  return ledger;
}

/** Waits (bounded) for every acked message to reach its recipient, then checks the app view. */
async function settle(t: TestContext, clients: readonly ClusterClient[], ledger: Ledger, inspect: RedisStore, ms = 30_000): Promise<void> {
  await until(() => ledger.missing(clients) === 0, ms).catch(() => undefined);
  if (ledger.missing(clients) > 0) {
    // Tell "gone from the store" from "stored but never pushed to a connected recipient".
    let stored = 0;
    for (const c of clients) {
      const pending = new Set((await inspect.listPending(c.deviceId, 0, 100_000)).map((m) => `${m.from}\n${m.id}`));
      for (const k of ledger.acked.get(c.deviceId) ?? []) if (!c.seen.has(k) && pending.has(k)) stored++;
    }
    assert.fail(`acked messages lost: ${ledger.missing(clients)} of ${ledger.total()} (${stored} of them still in the store, never pushed)`);
  }
  let dups = 0;
  let reconnects = 0;
  for (const c of clients) {
    const expected = ledger.acked.get(c.deviceId) ?? new Set<string>();
    const keys = c.app.map((m) => `${m.from}\n${m.id}`);
    // Exactly once at the app: no duplicates, nothing that was never sent.
    assert.equal(new Set(keys).size, keys.length);
    for (const k of keys) assert.ok(ledger.attempted.has(k), 'a message nobody sent');
    assert.equal(keys.length, expected.size, `${c.deviceId.slice(0, 8)}: app saw ${keys.length}, acked ${expected.size}`);
    dups += c.transportDuplicates;
    reconnects += c.reconnects;
  }
  // Every delivery was acked back: the queues drain.
  const end = Date.now() + 10_000;
  let depth = await inspect.queueDepth();
  while (depth !== 0 && Date.now() < end) {
    await sleep(100);
    depth = await inspect.queueDepth();
  }
  assert.equal(depth, 0, 'queue not drained');
  t.diagnostic(`acked ${ledger.total()} (${ledger.retried} needed a retry), delivered once each; ${dups} redeliveries dropped by the dedupe; ${reconnects} client reconnects`);
}

if (!redisAvailable()) {
  test('relay cluster on Redis', (t) => t.skip(REDIS_SKIP));
} else {
  describe('relay cluster on Redis', { concurrency: false }, () => {
    let redis: RedisServer;
    before(async () => {
      await setupCrypto();
      redis = await RedisServer.start();
    });
    after(async () => {
      await redis?.destroy();
    });

    test('two nodes: live delivery across nodes, offline delivery to a recipient who logs in on the other node', async () => {
      const prefix = newPrefix();
      const a = await startRelay({ redis: { url: redis.url, prefix }, origin: ORIGIN, limits: LIMITS });
      const b = await startRelay({ redis: { url: redis.url, prefix }, origin: ORIGIN, limits: LIMITS });
      try {
        const alice = newDevice();
        const bob = newDevice();
        const carol = newDevice();
        const A = await login(a, alice);
        const B = await login(b, bob);
        await until(() => B.socket.connected);
        // Give Bob's drain time to join his room (it joins once the empty backlog is read).
        await sleep(50);
        const r = await call(A.socket, 'send', { to: bob.deviceId, id: msgId(), envelope: new Uint8Array([1, 2, 3]) });
        assert.equal(r.ok, true, JSON.stringify(r));
        await until(() => B.inbox.length === 1);
        assert.equal(B.inbox[0]!.from, alice.deviceId);
        assert.deepEqual([...B.inbox[0]!.envelope], [1, 2, 3]);
        // And back, B → A.
        await call(B.socket, 'send', { to: alice.deviceId, id: msgId(), envelope: new Uint8Array([4]) });
        await until(() => A.inbox.length === 1);

        // Carol is offline: five messages through node A; she logs in on node B.
        const ids = Array.from({ length: 5 }, () => msgId());
        for (const id of ids) assert.equal((await call(A.socket, 'send', { to: carol.deviceId, id, envelope: new Uint8Array([9]) })).ok, true);
        assert.equal(await b.store.countPending(carol.deviceId), 5);
        const C = await login(b, carol);
        await until(() => C.inbox.length === 5);
        assert.deepEqual(C.inbox.map((m) => m.id), ids);
        const ack = await call(C.socket, 'ack', { seqs: C.inbox.map((m) => m.seq) });
        assert.equal(ack.deleted, 5);
        assert.equal(await a.store.countPending(carol.deviceId), 0);
        for (const s of [A.socket, B.socket, C.socket]) s.disconnect();
      } finally {
        await a.close();
        await b.close();
      }
    });

    test('three nodes: every pair delivers live; a device logged in on two nodes gets each message on both', async () => {
      const prefix = newPrefix();
      const nodes = await Promise.all([0, 1, 2].map(() => startRelay({ redis: { url: redis.url, prefix }, origin: ORIGIN, limits: LIMITS })));
      try {
        const devs = nodes.map(() => newDevice());
        const sessions = await Promise.all(devs.map((d, i) => login(nodes[i]!, d)));
        await sleep(50);
        for (let i = 0; i < 3; i++) {
          for (let j = 0; j < 3; j++) {
            if (i === j) continue;
            const r = await call(sessions[i]!.socket, 'send', { to: devs[j]!.deviceId, id: `m-${i}-${j}`, envelope: new Uint8Array([i, j]) });
            assert.equal(r.ok, true);
          }
        }
        await until(() => sessions.every((s) => s.inbox.length === 2));
        for (let j = 0; j < 3; j++) assert.deepEqual(sessions[j]!.inbox.map((m) => m.from).sort(), devs.filter((_, i) => i !== j).map((d) => d.deviceId).sort());
        // Device 0 also logs in on node 2: a message from node 1 reaches both of its sockets.
        const second = await login(nodes[2]!, devs[0]!);
        await until(() => second.inbox.length === 2); // its backlog (not acked yet)
        await sleep(50);
        await call(sessions[1]!.socket, 'send', { to: devs[0]!.deviceId, id: 'both', envelope: new Uint8Array([7]) });
        await until(() => sessions[0]!.inbox.length === 3 && second.inbox.length === 3);
        for (const s of [...sessions, second]) s.socket.disconnect();
      } finally {
        await Promise.all(nodes.map((n) => n.close()));
      }
    });

    test('three nodes: concurrent bundle fetches through every node never hand out an OPK twice; prekeysLow reaches the owner on another node', async () => {
      const prefix = newPrefix();
      const nodes = await Promise.all([0, 1, 2].map(() => startRelay({ redis: { url: redis.url, prefix }, origin: ORIGIN, limits: LIMITS })));
      try {
        const bob = newDevice();
        const B = await login(nodes[0]!, bob);
        const low: number[] = [];
        B.socket.on('prekeysLow', (p: { remaining: number }) => low.push(p.remaining));
        const OPKS = 90;
        assert.equal((await call(B.socket, 'uploadPrekeys', upload(bob, Array.from({ length: OPKS }, (_, i) => i + 1)))).ok, true);
        const fetchers = await Promise.all(Array.from({ length: 12 }, (_, i) => login(nodes[i % 3]!, newDevice())));
        // 12 fetchers × 10 concurrent fetches = 120 > 90 OPKs, spread over three nodes.
        const results = await Promise.all(fetchers.flatMap((f) => Array.from({ length: 10 }, () => call(f.socket, 'fetchBundle', { deviceId: bob.deviceId }))));
        assert.ok(results.every((r) => r.ok), JSON.stringify(results.find((r) => !r.ok)));
        const ids = results.map((r) => r.bundle.oneTimePrekey?.id).filter((x): x is number => x !== undefined);
        assert.equal(ids.length, OPKS);
        assert.equal(new Set(ids).size, OPKS, 'an OPK was handed out twice');
        assert.equal(results.filter((r) => r.bundle.oneTimePrekey === undefined).length, 120 - OPKS);
        // Fetches through nodes 1 and 2 told Bob (on node 0) that his supply runs low.
        await until(() => low.includes(0));
        for (const s of [B, ...fetchers]) s.socket.disconnect();
      } finally {
        await Promise.all(nodes.map((n) => n.close()));
      }
    });

    const NODE_KILLS = extended ? 20 : 4;
    test(`a node SIGKILLed mid-traffic (${NODE_KILLS}×, three nodes): its clients move to another node; 0 acked lost, 0 duplicates at the app`, { timeout: 300_000 }, async (t) => {
      const prefix = newPrefix();
      const inspect = await RedisStore.connect({ url: redis.url, prefix, logger: quiet });
      const nodes: ChildNode[] = await Promise.all([0, 1, 2].map(() => spawnNode(redis.url, prefix)));
      const clients = Array.from({ length: 12 }, (_, i) => new ClusterClient(newDevice(), () => nodes, i % 3));
      // Recipients that log in only after the faults: their messages sit in the queue meanwhile.
      const offline = Array.from({ length: 3 }, (_, i) => new ClusterClient(newDevice(), () => nodes, i % 3));
      try {
        await Promise.all(clients.map((c) => c.connect()));
        // Traffic runs until the last kill is over; each kill hits a random live node at a random moment.
        const ledger = await traffic(clients, extended ? 20_000 : 6000, 20, async () => {
          for (let k = 0; k < NODE_KILLS; k++) {
            await sleep(300 + Math.floor(Math.random() * 900));
            const live = nodes.filter((n) => n.child.exitCode === null && n.child.signalCode === null);
            const victim = live[Math.floor(Math.random() * live.length)]!;
            await killNode(victim);
            nodes[nodes.indexOf(victim)] = await spawnNode(redis.url, prefix); // a replacement takes its place
          }
          t.diagnostic(`${NODE_KILLS} nodes SIGKILLed and replaced`);
        }, offline);
        assert.ok(clients.filter((c) => c.reconnects > 0).length >= 4, 'clients of killed nodes reconnected elsewhere');
        assert.ok(ledger.total() > 200, `only ${ledger.total()} messages acked`);
        await Promise.all(offline.map((c) => c.connect()));
        await settle(t, [...clients, ...offline], ledger, inspect);
      } finally {
        for (const c of [...clients, ...offline]) c.close();
        await Promise.all(nodes.map((n) => killNode(n, 'SIGTERM')));
        await inspect.close();
      }
    });

    const REDIS_KILLS = extended ? 50 : 10;
    test(`redis-server SIGKILLed mid-traffic (${REDIS_KILLS}×, random points) and restarted on its AOF: 0 acked lost, 0 duplicates at the app`, { timeout: 300_000 }, async (t) => {
      const own = await RedisServer.start();
      const prefix = newPrefix();
      const nodes: ChildNode[] = await Promise.all([0, 1].map(() => spawnNode(own.url, prefix)));
      const clients = Array.from({ length: 8 }, (_, i) => new ClusterClient(newDevice(), () => nodes, i % 2));
      // Offline recipients: their queue grows through every kill (about a thousand messages).
      const offline = Array.from({ length: 3 }, (_, i) => new ClusterClient(newDevice(), () => nodes, i % 2));
      let inspect: RedisStore | undefined;
      try {
        await Promise.all(clients.map((c) => c.connect()));
        const ledger = await traffic(clients, 3000, 20, async () => {
          for (let k = 0; k < REDIS_KILLS; k++) {
            await sleep(200 + Math.floor(Math.random() * 800));
            await own.kill();
            await sleep(Math.floor(Math.random() * 300));
            await own.restart();
          }
          t.diagnostic(`redis-server SIGKILLed and restarted ${REDIS_KILLS}×`);
        }, offline);
        assert.ok(ledger.retried > 0, 'some sends failed while Redis was down and were retried');
        await Promise.all(offline.map((c) => c.connect()));
        inspect = await RedisStore.connect({ url: own.url, prefix, logger: quiet });
        await settle(t, [...clients, ...offline], ledger, inspect);
      } finally {
        for (const c of [...clients, ...offline]) c.close();
        await Promise.all(nodes.map((n) => killNode(n, 'SIGTERM')));
        await inspect?.close();
        await own.destroy();
      }
    });

    test('CLI: two `parley-relay serve --redis` nodes share one population; apikey create --redis; a non-durable Redis is refused', { timeout: 60_000 }, async () => {
      const prefix = newPrefix();
      const serve = (env: Record<string, string> = {}) => {
        const child = spawn(process.execPath, [bin, 'serve', '--port', '0', '--redis', redis.url, '--origin', ORIGIN, '--log-level', 'silent'], {
          env: { ...process.env, PARLEY_RELAY_REDIS_PREFIX: prefix, ...env }, stdio: ['ignore', 'pipe', 'pipe'],
        });
        return new Promise<{ child: ChildProcess; url: string }>((resolve, reject) => {
          createInterface({ input: child.stdout! }).once('line', (l) => resolve({ child, url: /listening on (\S+)/.exec(l)![1]! }));
          child.once('exit', (code) => reject(new Error(`serve exited (${code})`)));
        });
      };
      const [a, b] = await Promise.all([serve(), serve()]);
      try {
        const alice = newDevice();
        const bob = newDevice();
        const A = await login({ url: a.url, origin: ORIGIN } as Relay, alice);
        const B = await login({ url: b.url, origin: ORIGIN } as Relay, bob);
        await sleep(50);
        assert.equal((await call(A.socket, 'send', { to: bob.deviceId, id: msgId(), envelope: new Uint8Array([5]) })).ok, true);
        await until(() => B.inbox.length === 1);
        A.socket.disconnect();
        B.socket.disconnect();
        const out = execFileSync(process.execPath, [bin, 'apikey', 'create', '--redis', redis.url, '--redis-prefix', prefix, '--label', 'bot'], { encoding: 'utf8' });
        const key = /key:\s+(\S+)/.exec(out)![1]!;
        const inspect = await RedisStore.connect({ url: redis.url, prefix, logger: quiet });
        assert.ok(await inspect.findApiKey(hashApiKey(key)));
        await inspect.close();
      } finally {
        for (const n of [a, b]) {
          const exited = new Promise<number | null>((resolve) => n.child.once('exit', resolve));
          n.child.kill('SIGTERM');
          assert.equal(await exited, 0);
        }
      }
      const loose = await RedisServer.start({ extraArgs: ['--appendonly', 'no'] });
      try {
        const r = spawn(process.execPath, [bin, 'serve', '--port', '0', '--redis', loose.url, '--log-level', 'silent'], { stdio: ['ignore', 'pipe', 'pipe'] });
        let err = '';
        r.stderr!.on('data', (d: Buffer) => (err += d.toString()));
        const code = await new Promise<number | null>((resolve) => r.once('exit', resolve));
        assert.notEqual(code, 0);
        assert.match(err, /appendonly/);
      } finally {
        await loose.destroy();
      }
    });

    test('negative control: the same Redis kill on snapshot-only persistence (allowNonDurable) loses acked messages', { timeout: 60_000 }, async (t) => {
      const own = await RedisServer.start({ extraArgs: ['--appendonly', 'no'] });
      const prefix = newPrefix();
      const nodes: ChildNode[] = await Promise.all([0, 1].map(() => spawnNode(own.url, prefix, { PARLEY_NODE_ALLOW_NON_DURABLE: '1' })));
      const clients = Array.from({ length: 4 }, (_, i) => new ClusterClient(newDevice(), () => nodes, i % 2));
      const offline = Array.from({ length: 2 }, (_, i) => new ClusterClient(newDevice(), () => nodes, i % 2));
      try {
        await Promise.all(clients.map((c) => c.connect()));
        const ledger = await traffic(clients, 2500, 20, async () => {
          await sleep(1500);
          await own.kill();
          await sleep(200);
          await own.restart();
        }, offline);
        await Promise.all(offline.map((c) => c.connect()));
        await until(() => ledger.missing([...clients, ...offline]) === 0, 3000).catch(() => undefined);
        const lost = ledger.missing([...clients, ...offline]);
        t.diagnostic(`${lost} of ${ledger.total()} acked messages lost without AOF`);
        assert.ok(lost > 0, 'the durability test would not notice a non-durable Redis');
      } finally {
        for (const c of [...clients, ...offline]) c.close();
        await Promise.all(nodes.map((n) => killNode(n, 'SIGTERM')));
        await own.destroy();
      }
    });

    test(`load smoke: 200 clients across two nodes for ${extended ? 60 : 20} s, every message delivered exactly once after dedupe`, { timeout: 180_000 }, async (t) => {
      const prefix = newPrefix();
      const inspect = await RedisStore.connect({ url: redis.url, prefix, logger: quiet });
      const nodes: ChildNode[] = await Promise.all([0, 1].map(() => spawnNode(redis.url, prefix)));
      const clients = Array.from({ length: 200 }, (_, i) => new ClusterClient(newDevice(), () => nodes, i % 2));
      const latencies: number[] = [];
      for (const c of clients) c.onMessage = (m: RelayMessage) => latencies.push(Date.now() - m.receivedAt);
      try {
        for (let i = 0; i < clients.length; i += 20) await Promise.all(clients.slice(i, i + 20).map((c) => c.connect()));
        const t0 = Date.now();
        const ledger = await traffic(clients, extended ? 60_000 : 20_000, 1000);
        const secs = (Date.now() - t0) / 1000;
        await settle(t, clients, ledger, inspect);
        latencies.sort((x, y) => x - y);
        const p = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))];
        t.diagnostic(`${ledger.total()} messages in ${secs.toFixed(1)} s (${(ledger.total() / secs).toFixed(0)} msg/s); store→recipient p50 ${p(0.5)} ms, p99 ${p(0.99)} ms`);
        assert.ok(ledger.total() >= 200 * (extended ? 40 : 12), `only ${ledger.total()} messages`);
      } finally {
        for (const c of clients) c.close();
        await Promise.all(nodes.map((n) => killNode(n, 'SIGTERM')));
        await inspect.close();
      }
    });
  });
}
