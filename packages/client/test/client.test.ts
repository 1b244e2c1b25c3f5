import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isParleyError } from '@parley/protocol';
import { ConversationEngine } from '@parley/engine';
import { MemoryStore, ParleyClient, type IncomingMessage } from '../src/index.js';
import { setupCrypto } from '../../engine/test/helpers/engines.js';
import { FAST, client, rawDevice, startRelay, until } from './helpers/relay.js';

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'parley-client-e2e-'));
  dirs.push(d);
  return d;
}

before(setupCrypto);
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe('ParleyClient over a real relay', () => {
  it('two clients exchange text and JSON, with end-to-end delivery receipts', async () => {
    const relay = await startRelay();
    const alice = await client(relay);
    const bob = await client(relay);
    try {
      await alice.client.connect();
      await bob.client.connect();
      const { id } = await alice.client.send(bob.client.deviceId, 'hello bob');
      await until(() => bob.got.length === 1, 10_000, 'bob receives');
      assert.equal(bob.got[0]!.text, 'hello bob');
      assert.equal(bob.got[0]!.from, alice.client.deviceId);
      assert.equal(bob.got[0]!.id, id);
      await until(() => alice.delivered.includes(id), 10_000, 'receipt');

      await bob.client.send(alice.client.deviceId, { order: 1234, items: ['a', 'b'] });
      await until(() => alice.got.length === 1, 10_000, 'alice receives');
      assert.deepEqual(alice.got[0]!.json, { order: 1234, items: ['a', 'b'] });
      assert.equal(alice.client.safetyNumber(bob.client.deviceId), bob.client.safetyNumber(alice.client.deviceId));
      assert.match(alice.client.safetyNumber(bob.client.deviceId), /^(\d{5} ){11}\d{5}$/);
      await until(() => alice.client.pendingCount === 0 && bob.client.pendingCount === 0, 5000, 'outboxes drained');
    } finally {
      await alice.client.close();
      await bob.client.close();
      await relay.close();
    }
  });

  it('coalesces receipts: a burst gets a few receipts, each id reported delivered once', async () => {
    const relay = await startRelay();
    const alice = await client(relay);
    const bob = await client(relay, { receiptDelayMs: 50 });
    try {
      await alice.client.connect();
      await bob.client.connect();
      const ids: string[] = [];
      const sends = [];
      for (let i = 0; i < 30; i++) sends.push(alice.client.send(bob.client.deviceId, `burst ${i}`));
      for (const s of await Promise.all(sends)) ids.push(s.id);
      await until(() => bob.got.length === 30, 10_000, 'bob receives');
      const pendingBefore = alice.got.length;
      await until(() => ids.every((id) => alice.delivered.includes(id)), 10_000, 'receipts');
      await bob.client.idle();
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(alice.delivered.length, 30, 'each id once');
      assert.deepEqual([...alice.delivered].sort(), [...ids].sort());
      assert.equal(alice.got.length, pendingBefore, 'receipts are not messages');
      // A reply takes the owed receipt along (sent just before it), no waiting for the delay.
      const slow = await client(relay, { receiptDelayMs: 60_000 });
      await slow.client.connect();
      const { id } = await alice.client.send(slow.client.deviceId, 'ping');
      await until(() => slow.got.length === 1, 10_000, 'slow receives');
      await slow.client.send(alice.client.deviceId, 'pong');
      await until(() => alice.delivered.includes(id) && alice.got.some((m) => m.text === 'pong'), 5_000, 'receipt with the reply');
      await slow.client.close();
    } finally {
      await alice.client.close();
      await bob.client.close();
      await relay.close();
    }
  });

  it('receipts owed when the receiver stops are sent after its restart', async () => {
    const relay = await startRelay();
    const alice = await client(relay);
    const bob = await client(relay, { receiptDelayMs: 60_000 });
    try {
      await alice.client.connect();
      await bob.client.connect();
      const ids: string[] = [];
      for (let i = 0; i < 3; i++) ids.push((await alice.client.send(bob.client.deviceId, `m${i}`)).id);
      await until(() => bob.got.length === 3, 10_000, 'bob receives');
      await bob.client.close(); // messages consumed, receipts still owed (the delay never ran out)
      assert.deepEqual(alice.delivered, []);
      const bob2 = await ParleyClient.create({ relayUrl: relay.url, store: bob.store!, transport: FAST, receiptDelayMs: 60_000 });
      const again: string[] = [];
      bob2.on('message', (m) => again.push(m.id));
      await bob2.connect();
      await until(() => ids.every((id) => alice.delivered.includes(id)), 10_000, 'receipts after the restart');
      assert.deepEqual(again, [], 'consumed messages are not shown again');
      await bob2.close();
    } finally {
      await alice.client.close();
      await relay.close();
    }
  });

  it('rejects a bad receiptDelayMs', async () => {
    await assert.rejects(ParleyClient.create({ relayUrl: 'http://127.0.0.1:1', store: new MemoryStore(), receiptDelayMs: -1 }), (e: unknown) => isParleyError(e, 'USAGE'));
  });

  it('send rejects with the relay refusal of its own envelope, and the outbox moves on to the next', async () => {
    const relay = await startRelay({ limits: { maxEnvelopeBytes: 2048 } });
    const alice = await client(relay);
    const bob = await client(relay);
    try {
      await alice.client.connect();
      await bob.client.connect();
      await alice.client.send(bob.client.deviceId, 'first');
      await assert.rejects(alice.client.send(bob.client.deviceId, 'x'.repeat(4000)), (e) => isParleyError(e, 'PAYLOAD_TOO_LARGE'));
      const { id } = await alice.client.send(bob.client.deviceId, 'after the refused one');
      await until(() => bob.got.length === 2, 10_000, 'bob receives both small messages');
      assert.deepEqual(bob.got.map((m) => m.text), ['first', 'after the refused one']);
      assert.equal(bob.got[1]!.id, id);
      assert.equal(alice.client.pendingCount, 0, 'the refused envelope left the outbox');
    } finally {
      await alice.client.close();
      await bob.client.close();
      await relay.close();
    }
  });

  it('one-time prekeys drained right after login are refilled (notices are never ignored as too soon)', async () => {
    const relay = await startRelay();
    const alice = await client(relay, { prekeyTarget: 10 });
    await alice.client.connect();
    const drainer = await rawDevice(relay);
    try {
      await drainer.link.uploadPrekeys(await drainer.engine.prekeyUpload(1));
      const start = await relay.store.countOneTimePrekeys(alice.client.deviceId);
      assert.ok(start >= 10, `published ${start} at login`);
      // Within a second of the login: every one-time prekey, and then some at zero.
      for (let i = 0; i < start + 3; i++) await drainer.link.fetchBundle(alice.client.deviceId);
      const deadline = Date.now() + 10_000;
      let count = 0;
      while ((count = await relay.store.countOneTimePrekeys(alice.client.deviceId)) < 5 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.ok(count >= 5, `refilled to ${count} one-time prekeys (target 10)`);
    } finally {
      await drainer.close();
      await alice.client.close();
      await relay.close();
    }
  });

  it('C25: a message the relay withholds is a messageGap event after gapTimeoutMs, closed by gapClosed when it arrives', async () => {
    const relay = await startRelay();
    const bob = await client(relay, { gapTimeoutMs: 1_000 });
    const gaps: { peer: string; seqs: readonly number[]; since: number }[] = [];
    const closed: { peer: string; seq: number }[] = [];
    bob.client.on('messageGap', (g) => gaps.push(g));
    bob.client.on('gapClosed', (g) => closed.push(g));
    await bob.client.connect();
    // Alice below ParleyClient, so the test decides what reaches the relay.
    const { engine: alice, link, close } = await rawDevice(relay);
    try {
      const bundle = await link.fetchBundle(bob.client.deviceId);
      const out = [];
      for (let i = 0; i < 4; i++) {
        out.push(await alice.encrypt(bob.client.deviceId, new TextEncoder().encode(`m${i}`), { messageId: ConversationEngine.newMessageId(), type: 'text', ...(i === 0 ? { bundle } : {}) }));
      }
      for (const i of [0, 2, 3]) await link.send(out[i]!); // m1 withheld
      await until(() => bob.got.length === 3, 10_000, 'three messages');
      assert.equal(gaps.length, 0, 'no gap before the timeout');
      await until(() => gaps.length === 1, 10_000, 'the gap is reported');
      assert.deepEqual(gaps[0], { peer: alice.deviceId, seqs: [2], since: gaps[0]!.since });
      await link.send(out[1]!);
      await until(() => closed.length === 1, 10_000, 'the gap closes');
      assert.deepEqual(closed[0], { peer: alice.deviceId, id: out[1]!.id, seq: 2 });
      assert.deepEqual(bob.got.map((m) => m.text), ['m0', 'm2', 'm3', 'm1']);
      await new Promise((r) => setTimeout(r, 1_200));
      assert.equal(gaps.length, 1, 'reported once');
    } finally {
      await close();
      await bob.client.close();
      await relay.close();
    }
  });

  it('delivers to an offline device when it comes back (and through messages())', async () => {
    const relay = await startRelay();
    const alice = await client(relay);
    const bob = await client(relay);
    try {
      await alice.client.connect();
      await bob.client.connect(); // publishes prekeys
      const bobStore = bob.store!;
      const bobId = bob.client.deviceId;
      await bob.client.close();
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) ids.push((await alice.client.send(bobId, `offline ${i}`)).id);
      assert.equal(alice.client.pendingCount, 0, 'the relay stored them');

      const bob2 = await ParleyClient.create({ relayUrl: relay.url, store: bobStore, transport: FAST });
      assert.equal(bob2.deviceId, bobId);
      await bob2.connect();
      const texts: string[] = [];
      for await (const m of bob2.messages()) {
        texts.push(m.text!);
        if (texts.length === 5) break;
      }
      assert.deepEqual(texts, ids.map((_, i) => `offline ${i}`));
      await until(() => ids.every((id) => alice.delivered.includes(id)), 10_000, 'receipts');
      await bob2.close();
    } finally {
      await alice.client.close();
      await relay.close();
    }
  });

  it('a client restarting mid-conversation on a FileStore loses nothing and repeats nothing', async () => {
    const relay = await startRelay();
    const dir = await tempDir();
    const alice = await client(relay);
    let bob = await client(relay, { storagePath: dir, storageSecret: 'a-long-test-secret-0123456789abcdef' });
    const seen: IncomingMessage[] = [...bob.got];
    bob.client.on('message', (m) => seen.push(m));
    try {
      await alice.client.connect();
      await bob.client.connect();
      const bobId = bob.client.deviceId;
      const sent: string[] = [];
      for (let round = 0; round < 3; round++) {
        for (let i = 0; i < 10; i++) sent.push((await alice.client.send(bobId, `r${round} m${i}`)).id);
        // Restart bob while messages are in flight.
        await bob.client.close();
        bob = await client(relay, { storagePath: dir, storageSecret: 'a-long-test-secret-0123456789abcdef' });
        bob.client.on('message', (m) => seen.push(m));
        assert.equal(bob.client.deviceId, bobId);
        await bob.client.connect();
        // Bob talks back, so both directions cross the restarts.
        await bob.client.send(alice.client.deviceId, `bob after restart ${round}`);
      }
      await until(() => new Set(seen.map((m) => m.id)).size === sent.length, 15_000, 'all messages');
      await bob.client.idle();
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(seen.length, sent.length, 'no duplicates to the app');
      assert.deepEqual(new Set(seen.map((m) => m.id)), new Set(sent));
      await until(() => alice.got.length === 3, 10_000, 'bob replies');
      assert.deepEqual(alice.got.map((m) => m.text), [0, 1, 2].map((r) => `bob after restart ${r}`));
    } finally {
      await alice.client.close();
      await bob.client.close();
      await relay.close();
    }
  });

  it('a sender restarting with a queued outbox sends it after reconnecting', async () => {
    const dir = join(await tempDir(), 'state'); // its key file, state.key, lands in the temp dir too
    const relayDir = await tempDir();
    let relay = await startRelay({ store: { sqlite: join(relayDir, 'relay.db') } });
    const port = relay.port;
    const bob = await client(relay);
    let alice = await client(relay, { storagePath: dir });
    try {
      await bob.client.connect();
      await alice.client.connect();
      await alice.client.send(bob.client.deviceId, 'before the outage');
      await relay.close();
      await until(() => !alice.client.connected, 5000, 'disconnect');
      // Offline: the messages wait in the persisted outbox.
      for (let i = 0; i < 3; i++) await alice.client.send(bob.client.deviceId, `queued ${i}`);
      assert.equal(alice.client.pendingCount, 3);
      await alice.client.close();
      relay = await startRelay({ store: { sqlite: join(relayDir, 'relay.db') }, port });
      alice = await client(relay, { storagePath: dir });
      assert.equal(alice.client.pendingCount, 3);
      await alice.client.connect();
      await until(() => bob.got.length === 4, 15_000, 'bob gets everything');
      assert.deepEqual(bob.got.map((m) => m.text), ['before the outage', 'queued 0', 'queued 1', 'queued 2']);
      await until(() => alice.client.pendingCount === 0, 5000, 'outbox drained');
    } finally {
      await alice.client.close();
      await bob.client.close();
      await relay.close();
    }
  });

  it('sending to a device that never published prekeys fails with SESSION_NOT_FOUND', async () => {
    const relay = await startRelay();
    const alice = await client(relay);
    try {
      await alice.client.connect();
      await assert.rejects(alice.client.send('0'.repeat(32), 'anyone there?'), (e) => isParleyError(e, 'SESSION_NOT_FOUND'));
    } finally {
      await alice.client.close();
      await relay.close();
    }
  });
});
