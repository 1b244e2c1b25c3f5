/**
 * docs/threats.md R13 (issue 10, finding 1): memory amplification through the mailbox push.
 * A ~20-byte `fetchQueue` used to push a whole backlog page again from the start, and engine.io
 * buffers what a client that stops reading does not take. Now: one drain per socket at a time
 * (repeated `fetchQueue`s coalesce), a pushed and unacked message is not pushed again on the
 * same socket before `backlogRedeliveryMs`, the drain pauses while the socket's buffered bytes
 * are above `socketBufferBytes`, a socket above `maxSocketBufferBytes` is dropped as a slow
 * consumer (its messages stay stored), and a device holds at most `maxSocketsPerDevice` sockets.
 *
 * The memory figures come from a relay in its own process (fixtures/relay-mem.ts, garbage
 * collected before each reading), so the test's own clients are not counted.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { call, login, msgId, newDevice, setupCrypto, startRelay, until, type ClientSocket } from './helpers.js';
import { MiB, mib, spawnMemRelay } from './mem-relay.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const FAST = { eventsPerSecond: 100_000, eventBurst: 100_000 };

/** Stops reading the socket: the TCP receive side is paused, writes still go out. */
function stopReading(socket: ClientSocket): void {
  const transport = socket.io.engine.transport as unknown as { ws?: { _socket?: { pause(): void } } };
  const tcp = transport.ws?._socket;
  if (!tcp) throw new Error('expected a websocket transport in Node');
  tcp.pause();
}

/** `count` envelopes of `size` random bytes from a fresh sender to `to`, 50 in flight at a time. */
async function fill(relay: Parameters<typeof login>[0], to: string, count: number, size: number): Promise<void> {
  const s = await login(relay, newDevice());
  const envelope = new Uint8Array(randomBytes(size));
  for (let i = 0; i < count; i += 50) {
    const batch = await Promise.all(Array.from({ length: Math.min(50, count - i) }, () => call(s.socket, 'send', { to, id: msgId(), envelope })));
    assert.ok(batch.every((r) => r.ok), JSON.stringify(batch.find((r) => !r.ok)));
  }
  s.socket.disconnect();
}

before(setupCrypto);

const BACKLOG = 200;
const ENVELOPE = 60 * 1024;
const CALLS = 45;
/** Relay RSS growth allowed under the abuse. The unbounded push grew it by about 500 MiB. */
const BOUND = 48 * MiB;

const variants: { name: string; limits: Record<string, number> }[] = [
  { name: 'default limits', limits: {} },
  // Redelivery at once: only the socket's buffer bound stands between the calls and the heap.
  { name: 'backlogRedeliveryMs 0 (back-pressure alone)', limits: { backlogRedeliveryMs: 0 } },
];
for (const variant of variants) {
  test(`R13: ${CALLS} fetchQueue calls from one identity that stops reading keep relay memory bounded (${variant.name})`, { timeout: 120_000 }, async () => {
    const m = await spawnMemRelay({ ...FAST, maxQueuePerPair: 100_000, ...variant.limits });
    try {
      const victim = newDevice();
      await fill(m.relay, victim.deviceId, BACKLOG, ENVELOPE);
      const v = await login(m.relay, victim);
      // The first page arrives and is read, never acked.
      await until(() => v.inbox.length >= BACKLOG, 20_000);
      await sleep(300);
      const start = await m.mem();
      stopReading(v.socket);
      // Without an ack callback: the answers could not be read anyway.
      const raw = v.socket as unknown as { emit(event: string, payload: object): void };
      for (let i = 0; i < CALLS; i++) raw.emit('fetchQueue', {});
      // Time for the relay to push whatever it is going to push.
      await sleep(4000);
      const end = await m.mem();
      const grew = end.rss - start.rss;
      const live = end.heapUsed + end.external - (start.heapUsed + start.external);
      console.log(`R13 (${variant.name}): ${BACKLOG} × ${ENVELOPE / 1024} KiB backlog, ${CALLS} fetchQueue from a socket that stopped reading: ` +
        `relay RSS ${mib(start.rss)} → ${mib(end.rss)} MiB (+${mib(grew)}), live heap+external +${mib(live)} MiB`);
      assert.ok(grew < BOUND, `relay RSS grew by ${mib(grew)} MiB (bound ${mib(BOUND)})`);
      assert.ok(live < BOUND / 2, `live heap+external grew by ${mib(live)} MiB`);
      v.socket.disconnect();
    } finally {
      await m.close();
    }
  });
}

test('R13: live pushes to a socket that stops reading end in a slow-consumer drop at maxSocketBufferBytes; nothing is lost', { timeout: 120_000 }, async () => {
  const m = await spawnMemRelay({ ...FAST, maxQueuePerPair: 100_000 });
  try {
    const victim = newDevice();
    const v = await login(m.relay, victim);
    await sleep(200);
    const start = await m.mem();
    stopReading(v.socket);
    const COUNT = 400; // 24 MB: more than the kernel's socket buffers and the relay's cap together
    await fill(m.relay, victim.deviceId, COUNT, ENVELOPE);
    await sleep(1000);
    const end = await m.mem();
    const metrics = await m.metrics();
    const drops = Number(/parley_relay_slow_consumer_drops_total (\d+)/.exec(metrics)?.[1] ?? NaN);
    console.log(`R13 slow consumer: ${COUNT} × ${ENVELOPE / 1024} KiB live to a socket that stopped reading: ` +
      `relay RSS ${mib(start.rss)} → ${mib(end.rss)} MiB (+${mib(end.rss - start.rss)}), slow-consumer drops ${drops}`);
    assert.equal(drops, 1, 'the socket that stopped reading was dropped');
    // The memory store itself holds the envelopes; beyond them the relay keeps little.
    const stored = COUNT * ENVELOPE;
    const beyond = end.heapUsed + end.external - (start.heapUsed + start.external) - stored;
    console.log(`  live heap+external beyond the ${mib(stored)} MiB stored: ${mib(beyond)} MiB`);
    assert.ok(beyond < 8 * MiB, `live memory beyond the stored envelopes grew by ${mib(beyond)} MiB`);
    assert.match(metrics, /parley_relay_connections 0/);
    // Everything is still queued: a fresh login gets it all, in order, with back-pressure.
    const again = await login(m.relay, victim);
    let acked = 0;
    const pump = setInterval(() => {
      const seqs = again.inbox.slice(acked, acked + 256).map((x) => x.seq);
      acked += seqs.length;
      if (seqs.length > 0) void call(again.socket, 'ack', { seqs }).catch(() => undefined);
    }, 5);
    await until(() => again.inbox.length >= COUNT, 30_000).finally(() => clearInterval(pump));
    const seqs = again.inbox.map((x) => x.seq);
    assert.equal(new Set(seqs).size, COUNT);
    assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b));
    again.socket.disconnect();
  } finally {
    await m.close();
  }
});

test('R13: a device holds at most maxSocketsPerDevice sockets; the extra login is RATE_LIMITED (scope device)', async () => {
  const relay = await startRelay({ limits: { maxSocketsPerDevice: 3 } });
  try {
    const d = newDevice();
    const three = await Promise.all([login(relay, d), login(relay, d), login(relay, d)]);
    await assert.rejects(login(relay, d), /auth refused: RATE_LIMITED/);
    const { open, answer } = await import('./helpers.js');
    const o = await open(relay.url);
    const r = await call(o.socket, 'auth', answer(d, o.hello, relay.origin));
    assert.equal(r.ok, false);
    assert.equal(r.error.code, 'RATE_LIMITED');
    assert.equal(r.error.details?.scope, 'device');
    assert.equal(r.error.details?.max, 3);
    o.socket.disconnect();
    // Another device is not affected; a freed slot can be used again.
    (await login(relay, newDevice())).socket.disconnect();
    three[0]!.socket.disconnect();
    await sleep(100);
    const fourth = await login(relay, d);
    for (const s of [...three.slice(1), fourth]) s.socket.disconnect();
  } finally {
    await relay.close();
  }
});

test('R13: repeated fetchQueue while messages are in flight pushes nothing twice; after backlogRedeliveryMs the unacked ones come again', async () => {
  const relay = await startRelay({ limits: { ...FAST, backlogRedeliveryMs: 1500 } });
  try {
    const d = newDevice();
    await fill(relay, d.deviceId, 50, 100);
    const s = await login(relay, d);
    await until(() => s.inbox.length >= 50);
    for (let i = 0; i < 10; i++) assert.equal((await call(s.socket, 'fetchQueue', {})).pending, 50);
    await sleep(300);
    assert.equal(s.inbox.length, 50, 'ten fetchQueue calls pushed nothing again');
    // Kept (unacked) messages come back on request once the redelivery delay has passed.
    await sleep(1500);
    await call(s.socket, 'ack', { seqs: s.inbox.slice(0, 47).map((m) => m.seq) });
    await call(s.socket, 'fetchQueue', {});
    await until(() => s.inbox.length >= 53);
    await sleep(200);
    assert.deepEqual(s.inbox.slice(50).map((m) => m.id), s.inbox.slice(47, 50).map((m) => m.id));
    await call(s.socket, 'ack', { seqs: s.inbox.slice(47).map((m) => m.seq) });
    assert.equal((await call(s.socket, 'fetchQueue', {})).pending, 0);
    s.socket.disconnect();
  } finally {
    await relay.close();
  }
});

test('R13: an honest reader drains a backlog larger than its window and buffer: all of it, in order, once', async () => {
  const relay = await startRelay({ limits: { ...FAST, backlogPageSize: 40, socketBufferBytes: 64 * 1024, maxSocketBufferBytes: 1024 * 1024 } });
  try {
    const d = newDevice();
    const COUNT = 600;
    await fill(relay, d.deviceId, COUNT, 4096);
    const s = await login(relay, d);
    // Ack what arrives (the helper's inbox holds everything from the login on), 5 ms batches.
    let acked = 0;
    const pump = setInterval(() => {
      const seqs = s.inbox.slice(acked).map((m) => m.seq);
      acked += seqs.length;
      if (seqs.length > 0) void call(s.socket, 'ack', { seqs }).catch(() => undefined);
    }, 5);
    try {
      await until(() => s.inbox.length >= COUNT, 30_000);
      await sleep(300);
    } finally {
      clearInterval(pump);
    }
    const seqs = s.inbox.map((m) => m.seq);
    assert.equal(seqs.length, COUNT, 'each message pushed once');
    assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b), 'in seq order');
    const seqsLeft = s.inbox.slice(acked).map((m) => m.seq);
    if (seqsLeft.length > 0) await call(s.socket, 'ack', { seqs: seqsLeft });
    assert.equal(await relay.store.countPending(d.deviceId), 0);
    assert.ok(s.socket.connected);
    s.socket.disconnect();
  } finally {
    await relay.close();
  }
});
