/**
 * docs/threats.md R14 (issue 10, finding 3): an unbounded mailbox. `send` used to accept any
 * recipient with one per-recipient cap and no expiry, so one sender filled a victim's queue and
 * every other sender got `STORAGE_QUOTA`. Now the store checks, in the same atomic step as the
 * write, a quota per (sender, recipient), per recipient with its last places reserved for
 * senders with few messages pending, per sender and in total; queued envelopes expire after
 * `queueTtlMs` (skipped on read, purged on a schedule). The store-level rules are in the store
 * contract (test/store-contract.ts, all three stores).
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Relay } from '../src/index.js';
import { call, login, msgId, newDevice, setupCrypto, startRelay, until } from './helpers.js';
import { MiB, mib, spawnMemRelay } from './mem-relay.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const FAST = { eventsPerSecond: 100_000, eventBurst: 100_000 };

before(setupCrypto);

/** Sends `count` envelopes from a fresh sender (`batch` in flight); returns the acks. */
async function flood(relay: Pick<Relay, 'url' | 'origin'>, to: string, count: number, size = 16, batch = 50): Promise<any[]> {
  const s = await login(relay as Relay, newDevice());
  const envelope = new Uint8Array(randomBytes(size));
  const out: any[] = [];
  try {
    for (let i = 0; i < count; i += batch) {
      out.push(...await Promise.all(Array.from({ length: Math.min(batch, count - i) }, () => call(s.socket, 'send', { to, id: msgId(), envelope }))));
    }
  } finally {
    s.socket.disconnect();
  }
  return out;
}

const LIMITS = { ...FAST, maxQueuePerPair: 50, maxQueuePerDevice: 200, queueReserve: 40, queueReservePerSender: 5 };

test('R14: one sender fills only its own share of a queue; other senders still get through', async () => {
  const relay = await startRelay({ limits: LIMITS });
  try {
    const victim = newDevice().deviceId;
    const acks = await flood(relay, victim, 300);
    const ok = acks.filter((r) => r.ok).length;
    const refusals = acks.filter((r) => !r.ok);
    assert.equal(ok, 50, 'the flooder stores its share only');
    assert.ok(refusals.every((r) => r.error.code === 'STORAGE_QUOTA' && r.error.details.quota === 'pair' && r.error.details.max === 50));
    const legit = await flood(relay, victim, 3);
    assert.ok(legit.every((r) => r.ok), JSON.stringify(legit));
    assert.equal(await relay.store.countPending(victim), 53);
    const m = await (await fetch(`${relay.url}/metrics`)).text();
    assert.ok(m.includes(`parley_relay_quota_refusals_total{quota="pair"} ${refusals.length}`), m);
  } finally {
    await relay.close();
  }
});

test('R14: ten sybil senders fill the shared part; the reserved places still admit a fresh sender; the hard cap holds', async () => {
  const relay = await startRelay({ limits: LIMITS });
  try {
    const victim = newDevice().deviceId;
    for (let i = 0; i < 10; i++) {
      const acks = await flood(relay, victim, 60, 16, 10);
      assert.ok(acks.filter((r) => !r.ok).every((r) => r.error.code === 'STORAGE_QUOTA' && ['pair', 'recipient'].includes(r.error.details.quota)));
    }
    const filled = await relay.store.countPending(victim);
    assert.ok(filled <= 200 - 5, `${filled} pending after ten sybils`);
    const legit = await flood(relay, victim, 6, 16, 1);
    assert.deepEqual(legit.map((r) => r.ok), [true, true, true, true, true, false], 'five reserved places for a new sender');
    assert.equal(legit[5].error.details.quota, 'recipient');
    assert.equal(legit[5].error.details.reserved, true);
    for (let i = 0; i < 20; i++) await flood(relay, victim, 5, 16, 5);
    assert.equal(await relay.store.countPending(victim), 200, 'never above maxQueuePerDevice');
  } finally {
    await relay.close();
  }
});

test('R14: a sender\'s total across recipients and the relay\'s total are bounded (quota sender, total)', async () => {
  const relay = await startRelay({ limits: { ...FAST, maxQueuePerSender: 30, maxQueueTotal: 45 } });
  try {
    const s = await login(relay, newDevice());
    const acks = await Promise.all(Array.from({ length: 40 }, () => call(s.socket, 'send', { to: newDevice().deviceId, id: msgId(), envelope: new Uint8Array(8) })));
    assert.equal(acks.filter((r) => r.ok).length, 30);
    assert.ok(acks.filter((r) => !r.ok).every((r) => r.error.details.quota === 'sender'));
    s.socket.disconnect();
    const second = await flood(relay, newDevice().deviceId, 20);
    assert.equal(second.filter((r) => r.ok).length, 15);
    assert.ok(second.filter((r) => !r.ok).every((r) => r.error.details.quota === 'total'));
    assert.equal(await relay.store.queueDepth(), 45);
  } finally {
    await relay.close();
  }
});

test('R14: queued envelopes expire: not delivered after queueTtlMs, purged on schedule (metric)', async () => {
  // No purge during this part: expired envelopes are skipped on read.
  const lazy = await startRelay({ limits: { ...FAST, queueTtlMs: 400, queuePurgeIntervalMs: 3_600_000 } });
  try {
    const bob = newDevice();
    await flood(lazy, bob.deviceId, 5);
    await sleep(500);
    const fresh = await flood(lazy, bob.deviceId, 1);
    const b = await login(lazy, bob);
    await until(() => b.inbox.length >= 1);
    await sleep(200);
    assert.deepEqual(b.inbox.map((m) => m.seq), [fresh[0].seq], 'only the unexpired envelope is delivered');
    b.socket.disconnect();
  } finally {
    await lazy.close();
  }
  const relay = await startRelay({ limits: { ...FAST, queueTtlMs: 300, queuePurgeIntervalMs: 100 } });
  try {
    const bob = newDevice().deviceId;
    await flood(relay, bob, 7);
    assert.equal(await relay.store.countPending(bob), 7);
    await sleep(700);
    assert.equal(await relay.store.countPending(bob), 0);
    const m = await (await fetch(`${relay.url}/metrics`)).text();
    assert.match(m, /parley_relay_messages_expired_total 7/);
    assert.match(m, /parley_relay_queue_depth 0/);
  } finally {
    await relay.close();
  }
});

test('R14: the flood of the finding (one sender, default quotas): queue and relay memory before the legitimate sender', { timeout: 180_000 }, async () => {
  const m = await spawnMemRelay(FAST);
  try {
    const victim = newDevice().deviceId;
    const SIZE = 8 * 1024;
    const COUNT = 11_000;
    const start = await m.mem();
    const t0 = Date.now();
    const acks = await flood(m.relay, victim, COUNT, SIZE, 200);
    const seconds = (Date.now() - t0) / 1000;
    const stored = acks.filter((r) => r.ok).length;
    const legit = await flood(m.relay, victim, 1);
    const end = await m.mem();
    const live = end.heapUsed + end.external - (start.heapUsed + start.external);
    const quotas = [...new Set(acks.filter((r) => !r.ok).map((r) => `${r.error.code}/${r.error.details?.quota}`))];
    console.log(`R14 flood: ${COUNT} × ${SIZE / 1024} KiB from one sender in ${seconds.toFixed(1)} s: ${stored} stored (${quotas.join(', ')}), ` +
      `legitimate sender ${legit[0].ok ? 'accepted' : `refused ${legit[0].error.code}`}; relay live heap+external +${mib(live)} MiB, RSS ${mib(start.rss)} → ${mib(end.rss)} MiB`);
    assert.equal(stored, 1000, 'one sender stores maxQueuePerPair messages for one recipient');
    assert.ok(legit[0].ok, 'a legitimate sender is still accepted');
    assert.ok(live < 24 * MiB, `relay live memory grew by ${mib(live)} MiB`);
  } finally {
    await m.close();
  }
});
