/**
 * docs/threats.md C8 / issue 9 defect 8, through the engine: a relay replays a captured genuine
 * header (one that starts a DH ratchet step far into a chain) with forged bodies. The engine keeps
 * the session whose decrypt failed live, with the header stage it derived, so the replays cost
 * one DH step in total, nothing persistent changes, and the genuine message still opens after them.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { getCrypto } from '@parley/protocol';
import { BODY_AD_END } from '@parley/protocol/wire';
import { unsafeTestingRaw } from '../src/testing.js';
import { deliver, device, mid, refused, setupCrypto, str, takeBundle, text } from './helpers/engines.js';

before(setupCrypto);

/** Counts calls of the active provider's `x25519` while `fn` runs. */
async function countDh<T>(fn: () => Promise<T>): Promise<{ result: T; dh: number }> {
  const provider = getCrypto() as unknown as { x25519: (...args: unknown[]) => Uint8Array };
  const original = provider.x25519;
  let dh = 0;
  provider.x25519 = (...args: unknown[]) => {
    dh++;
    return original.apply(provider, args);
  };
  try {
    return { result: await fn(), dh };
  } finally {
    provider.x25519 = original;
  }
}

test('forged bodies under a genuine DH-step header cost one DH in total; the genuine message opens afterwards', async () => {
  const alice = await device();
  const bob = await device();
  await deliver(bob.engine, alice.engine, await alice.engine.encrypt(bob.engine.deviceId, text('a0'), { messageId: mid(), bundle: takeBundle(bob.upload) }));
  await deliver(alice.engine, bob.engine, await bob.engine.encrypt(alice.engine.deviceId, text('b0'), { messageId: mid() }));
  // Alice's next chain: Bob will see only its last message, 200 steps in.
  let last;
  for (let i = 0; i < 200; i++) last = await alice.engine.encrypt(bob.engine.deviceId, text(`a${i + 1}`), { messageId: mid() });
  const genuine = last!;
  const before = new Map([...unsafeTestingRaw(bob.store)].map(([k, v]) => [k, v.slice()]));

  const forged = await countDh(async () => {
    for (let i = 0; i < 50; i++) {
      const envelope = genuine.envelope.slice();
      envelope.set(getCrypto().randomBytes(envelope.length - BODY_AD_END), BODY_AD_END);
      await assert.rejects(bob.engine.receive({ from: alice.engine.deviceId, id: genuine.id, envelope }), refused('AUTH_FAILED'));
    }
  });
  assert.equal(forged.dh, 1, `one DH for 50 forgeries, got ${forged.dh}`);
  const after = unsafeTestingRaw(bob.store);
  assert.deepEqual([...after.keys()].sort(), [...before.keys()].sort(), 'no record added or removed');
  for (const [k, v] of before) assert.deepEqual(after.get(k), v, `record ${k} unchanged`);

  const opened = await countDh(() => deliver(bob.engine, alice.engine, genuine));
  assert.equal(opened.result.kind === 'message' ? str(opened.result.payload) : opened.result.kind, 'a200');
  assert.equal(opened.dh, 0, 'the genuine message reuses the kept header stage');
});
