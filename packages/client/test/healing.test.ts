/**
 * Self-healing sessions over a real relay (issue 9 "Recovery", docs/threats.md C3): one side's
 * session state is lost, or rolled back to an old snapshot, mid-conversation. The conversation
 * resumes on its own: every message not receipted yet is resent and reaches the app exactly
 * once, both apps get a `sessionReset` event, and what a restored snapshot missed *and* was
 * receipted before the restore comes back as a `messageGap` (the sender no longer holds it).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { MemoryStore } from '@parley/engine';
import { unsafeTestingRaw } from '@parley/engine/testing';
import type { ParleyClientEvents } from '../src/index.js';
import { setupCrypto } from '../../engine/test/helpers/engines.js';
import { client, startRelay, until } from './helpers/relay.js';

type Relay = Awaited<ReturnType<typeof startRelay>>;
type Reset = ParleyClientEvents['sessionReset'];

/** A byte copy of a memory store, optionally edited (a restored backup, a partial loss). */
async function copyStore(store: MemoryStore, edit?: (raw: Map<string, Uint8Array>) => void): Promise<MemoryStore> {
  const raw = new Map([...unsafeTestingRaw(store)].map(([k, v]) => [k, v.slice()] as [string, Uint8Array]));
  edit?.(raw);
  const copy = new MemoryStore();
  await copy.setMany([...raw]);
  return copy;
}

/** Removes every session record and every peer's session list: the device lost its session state. */
function wipeSessions(raw: Map<string, Uint8Array>): void {
  for (const key of [...raw.keys()]) {
    if (key.startsWith('session/')) raw.delete(key);
    if (key.startsWith('peer/')) {
      const rec = JSON.parse(new TextDecoder().decode(raw.get(key)!)) as Record<string, unknown>;
      raw.set(key, new TextEncoder().encode(JSON.stringify({ ...rec, sessions: [] })));
    }
  }
}

const texts = (got: { text?: string }[]) => got.map((m) => m.text);

describe('self-healing sessions through the relay', () => {
  let relay: Relay;
  before(async () => {
    await setupCrypto();
    relay = await startRelay();
  });
  after(() => relay.close());

  for (const scenario of ['lost session state', 'restored old snapshot'] as const) {
    it(`${scenario}: the conversation resumes with no loss and no duplicate`, async () => {
      const alice = await client(relay);
      const bobStore = new MemoryStore();
      const bob = await client(relay, { store: bobStore });
      await alice.client.connect();
      await bob.client.connect();
      const aliceResets: Reset[] = [];
      alice.client.on('sessionReset', (e) => aliceResets.push(e));
      const bobId = bob.client.deviceId;
      const aliceId = alice.client.deviceId;

      await alice.client.send(bobId, 'a1');
      await until(() => bob.got.length === 1, 10_000, 'a1');
      await bob.client.send(aliceId, 'b1');
      await until(() => alice.got.length === 1, 10_000, 'b1');
      await until(() => alice.delivered.length === 1, 10_000, 'receipt of a1');
      const snapshot = scenario === 'restored old snapshot' ? await copyStore(bobStore) : undefined;
      // A few more exchanges (new DH steps) that the snapshot does not know.
      for (let i = 2; i <= 3; i++) {
        await alice.client.send(bobId, `a${i}`);
        await until(() => bob.got.length === i, 10_000, `a${i}`);
        await bob.client.send(aliceId, `b${i}`);
        await until(() => alice.got.length === i, 10_000, `b${i}`);
      }
      await until(() => alice.delivered.length === 3, 10_000, 'receipts of a2, a3');
      await bob.client.close();

      const restoredStore = snapshot ? await copyStore(snapshot) : await copyStore(bobStore, wipeSessions);
      const bob2 = await client(relay, { store: restoredStore, gapTimeoutMs: 1000 });
      const gaps: number[] = [];
      bob2.client.on('messageGap', (g) => gaps.push(...g.seqs));
      const bobResets: Reset[] = [];
      bob2.client.on('sessionReset', (e) => bobResets.push(e));
      const errors: string[] = [];
      bob2.client.on('error', (e) => errors.push(e.error.code));
      await bob2.client.connect();
      assert.equal(bob2.client.deviceId, bobId);

      await alice.client.send(bobId, 'a4');
      // Bob cannot open a4, asks Alice; Alice resends what Bob has not receipted, in a fresh session.
      await until(() => texts(bob2.got).includes('a4'), 15_000, 'a4 after healing');
      assert.equal(bobResets[0]?.initiatedBy, 'self');
      await until(() => aliceResets.length === 1, 5_000, 'Alice told of the reset');
      assert.equal(aliceResets[0]!.initiatedBy, 'peer');
      assert.equal(aliceResets[0]!.safetyNumber, alice.client.safetyNumber(bobId));

      // The conversation goes on in both directions.
      await bob2.client.send(aliceId, 'b4');
      await until(() => texts(alice.got).includes('b4'), 10_000, 'b4');
      await alice.client.send(bobId, 'a5');
      await until(() => texts(bob2.got).includes('a5'), 10_000, 'a5');
      await new Promise((r) => setTimeout(r, 300)); // let any stray duplicate arrive
      assert.deepEqual(texts(alice.got), ['b1', 'b2', 'b3', 'b4'], 'Alice sees each message of Bob once');
      // Nothing is shown twice. a2 and a3 were receipted before the restore, so Alice no longer
      // holds them: the restored device reports them as a gap instead of silently missing them.
      assert.deepEqual(texts(bob2.got), ['a4', 'a5']);
      // (Alice's receipts to Bob use sequence numbers too: the gap may hold those as well.)
      const lostSeqs = bob.got.filter((m) => m.text === 'a2' || m.text === 'a3').map((m) => m.seq);
      if (snapshot) await until(() => lostSeqs.every((q) => gaps.includes(q)), 5_000, 'the gap of a2, a3 reported');
      else assert.deepEqual(gaps, []);
      assert.ok(errors.length >= 1, 'the failed decrypt was reported');

      await alice.client.close();
      await bob2.client.close();
    });
  }
});
