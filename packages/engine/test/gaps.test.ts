/**
 * docs/threats.md C25: the relay withholds message k, delivers k+1..k+5 and permutes them. Every
 * delivered message decrypts; k is reported missing once the timeout passed (not before, and
 * once), and its late arrival closes the gap.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { ConversationEngine, MAX_TRACKED_GAPS } from '../src/index.js';
import { deliver, device, mid, setupCrypto, str, takeBundle, text } from './helpers/engines.js';

before(setupCrypto);

test('a withheld message is a gap after the timeout, reported once, closed when it arrives', async () => {
  let now = 1_000_000;
  const alice = await device();
  const bob = await device({ now: () => now });
  const bundle = takeBundle(bob.upload);
  const sent = [];
  for (let i = 0; i < 7; i++) {
    sent.push(await alice.engine.encrypt(bob.engine.deviceId, text(`m${i}`), { messageId: mid(), ...(i === 0 ? { bundle } : {}) }));
  }
  const withheld = sent[1]!;
  // Delivered: 0, then 6, 3, 5, 2, 4 (permuted); 1 is withheld.
  for (const i of [0, 6, 3, 5, 2, 4]) {
    const r = await deliver(bob.engine, alice.engine, sent[i]!);
    assert.equal(r.kind === 'message' ? str(r.payload) : r.kind, `m${i}`);
    assert.equal(r.kind === 'message' && r.gapClosed, false);
  }
  assert.deepEqual(bob.engine.messageGaps(30_000), [], 'nothing due before the timeout');
  now += 30_000;
  const gaps = bob.engine.messageGaps(30_000);
  assert.equal(gaps.length, 1);
  assert.equal(gaps[0]!.peer, alice.engine.deviceId);
  assert.deepEqual(gaps[0]!.seqs, [2], 'the sender numbers from 1: the withheld second message is seq 2');
  await bob.engine.markGapsReported(alice.engine.deviceId, gaps[0]!.seqs);
  assert.deepEqual(bob.engine.messageGaps(30_000), [], 'reported once');
  const late = await deliver(bob.engine, alice.engine, withheld);
  assert.ok(late.kind === 'message' && late.gapClosed && str(late.payload) === 'm1', 'the late arrival closes the reported gap');
  assert.deepEqual(bob.engine.messageGaps(0), []);
});

test('gaps survive a restart and a huge jump keeps only the newest numbers', async () => {
  let now = 5_000_000;
  const alice = await device();
  const bob = await device({ now: () => now });
  const first = await alice.engine.encrypt(bob.engine.deviceId, text('first'), { messageId: mid(), bundle: takeBundle(bob.upload) });
  await deliver(bob.engine, alice.engine, first);
  // 1,200 messages the relay drops, on two ratchet chains (each within the ratchet's MAX_SKIP).
  for (let i = 0; i < 600; i++) await alice.engine.encrypt(bob.engine.deviceId, text('dropped'), { messageId: mid() });
  await deliver(alice.engine, bob.engine, await bob.engine.encrypt(alice.engine.deviceId, text('ping'), { messageId: mid() }));
  for (let i = 0; i < 600; i++) await alice.engine.encrypt(bob.engine.deviceId, text('dropped'), { messageId: mid() });
  const after = await deliver(bob.engine, alice.engine, await alice.engine.encrypt(bob.engine.deviceId, text('after'), { messageId: mid() }));
  assert.equal(after.kind === 'message' && after.seq, 1202);
  const reopened = await ConversationEngine.open({ store: bob.store, now: () => now });
  now += 1;
  const gaps = reopened.messageGaps(0);
  assert.equal(gaps[0]!.seqs.length, MAX_TRACKED_GAPS);
  assert.deepEqual([gaps[0]!.seqs[0], gaps[0]!.seqs.at(-1)], [202, 1201], 'the newest missing numbers are kept');
});
