/**
 * docs/threats.md C3 b, end to end through the engine: a device whose whole store was copied
 * (a restored backup, a cloned VM) just before its next send. Both copies send; the peer accepts
 * the first and raises SESSION_FORK_DETECTED for the other, with nothing changed and no
 * second plaintext: the app is told, never silently forked.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { ConversationEngine, MemoryStore } from '../src/index.js';
import { unsafeTestingRaw } from '../src/testing.js';
import { deliver, device, mid, refused, setupCrypto, str, takeBundle, text } from './helpers/engines.js';

before(setupCrypto);

test('a device cloned before its next send: the peer accepts one copy and reports SESSION_FORK_DETECTED for the other', async () => {
  const alice = await device();
  const bob = await device();
  await deliver(bob.engine, alice.engine, await alice.engine.encrypt(bob.engine.deviceId, text('hi'), { messageId: mid(), bundle: takeBundle(bob.upload) }));
  // Bob answers, so Alice's next send starts a new DH ratchet step.
  await deliver(alice.engine, bob.engine, await bob.engine.encrypt(alice.engine.deviceId, text('hello'), { messageId: mid() }));

  // The clone: a second engine opened on a byte copy of Alice's store.
  const copy = new MemoryStore();
  await copy.setMany([...unsafeTestingRaw(alice.store)].map(([k, v]) => [k, v.slice()] as [string, Uint8Array]));
  const clone = await ConversationEngine.open({ store: copy });
  assert.equal(clone.deviceId, alice.engine.deviceId);

  const fromClone = await clone.encrypt(bob.engine.deviceId, text('from the clone'), { messageId: mid() });
  const fromAlice = await alice.engine.encrypt(bob.engine.deviceId, text('from alice'), { messageId: mid() });
  const first = await deliver(bob.engine, clone, fromClone);
  assert.equal(first.kind === 'message' ? str(first.payload) : first.kind, 'from the clone');
  await assert.rejects(deliver(bob.engine, alice.engine, fromAlice), refused('SESSION_FORK_DETECTED'));
  assert.equal(bob.engine.inbox().filter((m) => str(m.payload) === 'from alice').length, 0, 'no second plaintext');
  await assert.rejects(
    deliver(bob.engine, alice.engine, await alice.engine.encrypt(bob.engine.deviceId, text('again'), { messageId: mid() })),
    refused('SESSION_FORK_DETECTED'),
  );
});
