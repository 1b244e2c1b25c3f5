/**
 * Self-healing sessions (issue 9 "Recovery", docs/threats.md C3): a device that cannot decrypt
 * a peer's message for a session reason sends a signed reset request; the peer archives its
 * sessions, starts a fresh one from a new bundle and resends what was not receipted, under the
 * same ids. Each case checks that every message reaches the app exactly once.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { Account, ParleyError, encodeSessionReset, type ParleyErrorCode, type SessionResetReason } from '@parley/protocol';
import { ConversationEngine, MemoryStore, MAX_RESENDS, MAX_RESET_REQUESTS_PER_MINUTE, RESET_APPLY_INTERVAL_MS, resetReasonOf, type OutgoingEnvelope, type ReceiveResult } from '../src/index.js';
import { unsafeTestingRaw } from '../src/testing.js';
import { deliver, device, mid, refused, setupCrypto, str, takeBundle, text } from './helpers/engines.js';

before(setupCrypto);

type Device = Awaited<ReturnType<typeof device>>;

/** A second engine on a byte copy of `store` (a restored backup, a clone), optionally edited first. */
async function copyOf(store: MemoryStore, edit?: (raw: Map<string, Uint8Array>) => void, now?: () => number): Promise<{ engine: ConversationEngine; store: MemoryStore }> {
  const raw = new Map([...unsafeTestingRaw(store)].map(([k, v]) => [k, v.slice()] as [string, Uint8Array]));
  edit?.(raw);
  const copy = new MemoryStore();
  await copy.setMany([...raw]);
  return { engine: await ConversationEngine.open({ store: copy, ...(now ? { now } : {}) }), store: copy };
}

/** Delivers and returns the decrypted text, 'duplicate', or the error code. */
async function outcome(to: ConversationEngine, from: ConversationEngine, out: OutgoingEnvelope): Promise<string> {
  try {
    const r: ReceiveResult = await deliver(to, from, out);
    if (r.kind === 'message') return str(r.payload);
    return r.kind;
  } catch (e) {
    return (e as { code: string }).code;
  }
}

/** Every text in `engine`'s inbox from `peer`, in order (the app's view). */
function texts(engine: ConversationEngine, peer: string): string[] {
  return engine.inbox().filter((m) => m.from === peer && m.type === 'text').map((m) => str(m.payload));
}

async function converse(alice: Device, bob: Device): Promise<void> {
  await deliver(bob.engine, alice.engine, await alice.engine.encrypt(bob.engine.deviceId, text('a1'), { messageId: mid(), type: 'text', bundle: takeBundle(bob.upload) }));
  await deliver(alice.engine, bob.engine, await bob.engine.encrypt(alice.engine.deviceId, text('b1'), { messageId: mid(), type: 'text' }));
}

/** The receiver asks for a reset after `failed`; the sender applies it and resends; the receiver takes every resend. */
async function heal(receiver: ConversationEngine, receiverUpload: Device['upload'], sender: ConversationEngine, failed: OutgoingEnvelope, code: string): Promise<string[]> {
  const reason: SessionResetReason | undefined = resetReasonOf(new ParleyError(code as ParleyErrorCode, 'failed'));
  assert.ok(reason, `${code} asks for a reset`);
  const request = await receiver.requestSessionReset(sender.deviceId, { failedId: failed.id, reason });
  assert.ok(request, 'a reset request was queued');
  const applied = await deliver(sender, receiver, request);
  assert.equal(applied.kind, 'sessionReset');
  assert.equal(applied.kind === 'sessionReset' && applied.applied, true);
  assert.equal(sender.needsBundle(receiver.deviceId), true, 'the broken sessions are archived');
  const { resent, failed: given } = await sender.resendUnconfirmed(receiver.deviceId, takeBundle(receiverUpload));
  assert.deepEqual(given, []);
  const results: string[] = [];
  for (const out of resent) results.push(await outcome(receiver, sender, out));
  return results;
}

test('fork (C3): both copies send, the peer reports SESSION_FORK_DETECTED, asks for a reset and gets the lost message once', async () => {
  const alice = await device();
  const bob = await device();
  await converse(alice, bob);
  const clone = await copyOf(alice.store);
  const fromClone = await clone.engine.encrypt(bob.engine.deviceId, text('from the clone'), { messageId: mid(), type: 'text' });
  const fromAlice = await alice.engine.encrypt(bob.engine.deviceId, text('from alice'), { messageId: mid(), type: 'text' });
  assert.equal(await outcome(bob.engine, clone.engine, fromClone), 'from the clone');
  assert.equal(await outcome(bob.engine, alice.engine, fromAlice), 'SESSION_FORK_DETECTED');

  // Alice never got a receipt, so a1 and 'from alice' are resent; a1 is recognised as a duplicate.
  const results = await heal(bob.engine, bob.upload, alice.engine, fromAlice, 'SESSION_FORK_DETECTED');
  assert.deepEqual(results, ['duplicate', 'from alice']);
  assert.deepEqual(texts(bob.engine, alice.engine.deviceId), ['a1', 'from the clone', 'from alice']);

  // Healed: both directions work on the fresh session, each message once.
  assert.equal(await outcome(bob.engine, alice.engine, await alice.engine.encrypt(bob.engine.deviceId, text('a2'), { messageId: mid(), type: 'text' })), 'a2');
  assert.equal(await outcome(alice.engine, bob.engine, await bob.engine.encrypt(alice.engine.deviceId, text('b2'), { messageId: mid(), type: 'text' })), 'b2');
  assert.equal(await outcome(bob.engine, alice.engine, await alice.engine.encrypt(bob.engine.deviceId, text('a3'), { messageId: mid(), type: 'text' })), 'a3');
  assert.deepEqual(texts(bob.engine, alice.engine.deviceId), ['a1', 'from the clone', 'from alice', 'a2', 'a3']);
  assert.deepEqual(texts(alice.engine, bob.engine.deviceId), ['b1', 'b2']);
});

test('lost session state: the receiver whose sessions were wiped gets SESSION_NOT_FOUND, asks, and receives everything once', async () => {
  const alice = await device();
  const bob = await device();
  await converse(alice, bob);
  const peerKey = `peer/${alice.engine.deviceId}`;
  const wiped = await copyOf(bob.store, (raw) => {
    for (const k of [...raw.keys()]) if (k.startsWith('session/')) raw.delete(k);
    const rec = JSON.parse(str(raw.get(peerKey)!)) as { sessions: string[] };
    raw.set(peerKey, text(JSON.stringify({ ...rec, sessions: [] })));
  });
  await bob.engine.close();
  const bobAfter: Device = { ...bob, engine: wiped.engine, store: wiped.store };

  const lost = await alice.engine.encrypt(bob.engine.deviceId, text('a2'), { messageId: mid(), type: 'text' });
  assert.equal(await outcome(bobAfter.engine, alice.engine, lost), 'SESSION_NOT_FOUND');
  const results = await heal(bobAfter.engine, bob.upload, alice.engine, lost, 'SESSION_NOT_FOUND');
  assert.deepEqual(results, ['duplicate', 'a2'], 'a1 was seen before the wipe; a2 arrives once');
  assert.deepEqual(texts(bobAfter.engine, alice.engine.deviceId), ['a1', 'a2']);
  assert.equal(await outcome(alice.engine, bobAfter.engine, await bobAfter.engine.encrypt(alice.engine.deviceId, text('b2'), { messageId: mid(), type: 'text' })), 'b2');
});

test('restored old snapshot: the restored side fails, asks for a reset, and the conversation resumes with each message once', async () => {
  const alice = await device();
  const bob = await device();
  await converse(alice, bob);
  const snapshot = await copyOf(bob.store);
  await snapshot.engine.close();
  // The conversation goes on for a few DH steps.
  for (let i = 2; i <= 4; i++) {
    await deliver(bob.engine, alice.engine, await alice.engine.encrypt(bob.engine.deviceId, text(`a${i}`), { messageId: mid(), type: 'text' }));
    await deliver(alice.engine, bob.engine, await bob.engine.encrypt(alice.engine.deviceId, text(`b${i}`), { messageId: mid(), type: 'text' }));
  }
  // Bob's device is restored from the old snapshot.
  const restored = await copyOf(snapshot.store);
  const next = await alice.engine.encrypt(bob.engine.deviceId, text('a5'), { messageId: mid(), type: 'text' });
  const code = await outcome(restored.engine, alice.engine, next);
  assert.ok(resetReasonOf(new ParleyError(code as ParleyErrorCode, 'failed')), `a session reason, got ${code}`);
  const results = await heal(restored.engine, bob.upload, alice.engine, next, code);
  // The restored device saw a1 before its snapshot; a2..a5 come back once each.
  assert.deepEqual(results, ['duplicate', 'a2', 'a3', 'a4', 'a5']);
  assert.deepEqual(texts(restored.engine, alice.engine.deviceId), ['a1', 'a2', 'a3', 'a4', 'a5']);
  // Bob's answers from the restored state go on the fresh session and open at Alice once.
  assert.equal(await outcome(alice.engine, restored.engine, await restored.engine.encrypt(alice.engine.deviceId, text('b5'), { messageId: mid(), type: 'text' })), 'b5');
  assert.deepEqual(texts(alice.engine, bob.engine.deviceId), ['b1', 'b2', 'b3', 'b4', 'b5']);
});

test('receipts confirm: receipted messages are not resent, and their stored payloads are deleted', async () => {
  const alice = await device();
  const bob = await device();
  await deliver(bob.engine, alice.engine, await alice.engine.encrypt(bob.engine.deviceId, text('a1'), { messageId: mid(), type: 'text', bundle: takeBundle(bob.upload) }));
  const a2 = await alice.engine.encrypt(bob.engine.deviceId, text('a2'), { messageId: mid(), type: 'text' });
  await bob.engine.receive({ from: alice.engine.deviceId, id: a2.id, envelope: a2.envelope }, { receipt: true });
  assert.equal(alice.engine.unconfirmedCount(bob.engine.deviceId), 2);
  const receipt = await bob.engine.encryptReceipts(alice.engine.deviceId);
  assert.ok(receipt);
  await deliver(alice.engine, bob.engine, receipt);
  assert.equal(alice.engine.unconfirmedCount(bob.engine.deviceId), 1, 'a2 is confirmed; a1 was not receipted');
  const stored = [...unsafeTestingRaw(alice.store).keys()].filter((k) => k.startsWith('unconfirmed/'));
  assert.equal(stored.length, 1, 'the confirmed payload record is gone');
});

test('bounds: a repeat within the interval is not applied, the requester is rate-limited, and a message is resent at most MAX_RESENDS times', async () => {
  let now = Date.UTC(2030, 0, 1);
  const clock = () => now;
  const alice = await device({ now: clock });
  const bob = await device({ now: clock });
  await converse(alice, bob);
  const lost = await alice.engine.encrypt(bob.engine.deviceId, text('a2'), { messageId: mid(), type: 'text' });

  const first = await bob.engine.requestSessionReset(alice.engine.deviceId, { failedId: lost.id, reason: 'AUTH_FAILED' });
  assert.ok(first);
  assert.equal(await bob.engine.requestSessionReset(alice.engine.deviceId, { failedId: lost.id, reason: 'AUTH_FAILED' }), undefined, 'one request per peer per interval');
  const r1 = await deliver(alice.engine, bob.engine, first);
  assert.equal(r1.kind === 'sessionReset' && r1.applied, true);
  await alice.engine.resendUnconfirmed(bob.engine.deviceId, takeBundle(bob.upload));

  now += 1000;
  const second = await (await copyOf(bob.store, undefined, clock)).engine.requestSessionReset(alice.engine.deviceId, { failedId: lost.id, reason: 'AUTH_FAILED' });
  const r2 = await deliver(alice.engine, bob.engine, second!);
  assert.equal(r2.kind === 'sessionReset' && r2.applied, false, 'not applied again within RESET_APPLY_INTERVAL_MS');
  assert.equal(alice.engine.needsBundle(bob.engine.deviceId), false, 'the fresh session stays active');

  // Each further applied reset resends a1 and a2 again, until MAX_RESENDS is reached.
  for (let k = 2; k <= MAX_RESENDS + 1; k++) {
    now += RESET_APPLY_INTERVAL_MS + 1;
    const again = await (await copyOf(bob.store, undefined, clock)).engine.requestSessionReset(alice.engine.deviceId, { failedId: lost.id, reason: 'AUTH_FAILED' });
    const r = await deliver(alice.engine, bob.engine, again!);
    assert.equal(r.kind === 'sessionReset' && r.applied, true);
    const { resent, failed } = await alice.engine.resendUnconfirmed(bob.engine.deviceId, takeBundle(bob.upload));
    if (k <= MAX_RESENDS) assert.equal(resent.length, 2);
    else {
      assert.equal(resent.length, 0);
      assert.equal(failed.length, 2, 'given up after MAX_RESENDS');
      assert.equal(alice.engine.unconfirmedCount(bob.engine.deviceId), 0);
    }
  }
});

test('forged or misdirected reset requests change nothing', async () => {
  const alice = await device();
  const bob = await device();
  await converse(alice, bob);
  const before = alice.engine.needsBundle(bob.engine.deviceId);
  // Signed by another identity that claims to be Bob.
  const mallory = Account.create();
  const requestId = `x${ConversationEngine.newMessageId()}`;
  const forged = encodeSessionReset({ sentAt: Date.now(), reason: 'AUTH_FAILED', requestId, failedId: '' }, { from: bob.engine.deviceId, to: alice.engine.deviceId }, (p) => mallory.sign('sessionReset', p));
  await assert.rejects(alice.engine.receive({ from: bob.engine.deviceId, id: requestId, envelope: forged }), refused('AUTH_FAILED'));
  // A genuine request relabelled by the relay.
  const genuine = (await bob.engine.requestSessionReset(alice.engine.deviceId, { failedId: '', reason: 'AUTH_FAILED' }))!;
  await assert.rejects(alice.engine.receive({ from: bob.engine.deviceId, id: `${genuine.id}z`, envelope: genuine.envelope }), refused('AUTH_FAILED'));
  // A genuine request to Bob replayed to Carol.
  const carol = await device();
  await assert.rejects(carol.engine.receive({ from: bob.engine.deviceId, id: genuine.id, envelope: genuine.envelope }), refused('SESSION_NOT_FOUND'));
  assert.equal(alice.engine.needsBundle(bob.engine.deviceId), before);
  // Replayed after it was applied: a duplicate.
  assert.equal((await deliver(alice.engine, bob.engine, genuine)).kind, 'sessionReset');
  assert.equal((await deliver(alice.engine, bob.engine, genuine)).kind, 'duplicate');
});

test('resetReasonOf: only session reasons ask for a reset', () => {
  for (const code of ['SESSION_NOT_FOUND', 'SESSION_FORK_DETECTED', 'SENDER_STATE_ROLLBACK', 'AUTH_FAILED', 'INVALID_PREKEY'] as const) {
    assert.equal(resetReasonOf(new ParleyError(code, 'x')), code);
  }
  for (const code of ['MESSAGE_KEY_EXPIRED', 'UNTRUSTED_IDENTITY', 'MALFORMED_MESSAGE', 'STORAGE_INTEGRITY', 'ATTESTATION_INVALID'] as const) {
    assert.equal(resetReasonOf(new ParleyError(code, 'x')), undefined, code);
  }
  // receive() never throws it for a seen relay id: a counter reused under a new id is a rollback.
  assert.equal(resetReasonOf(new ParleyError('DUPLICATE_MESSAGE', 'x')), 'SENDER_STATE_ROLLBACK');
  assert.equal(resetReasonOf({ name: 'ParleyError', code: 'AUTH_FAILED' }), undefined, 'a look-alike object is not a ParleyError');
});

test('requests to peers this device has no record of share a per-minute cap; known peers are not held back by them', async () => {
  const now = Date.UTC(2030, 0, 1);
  const alice = await device({ now: () => now });
  const bob = await device({ now: () => now });
  await converse(alice, bob);
  let sent = 0;
  for (let i = 0; i < MAX_RESET_REQUESTS_PER_MINUTE + 5; i++) {
    const stranger = ConversationEngine.newMessageId(); // any 32-hex device id
    if (await bob.engine.requestSessionReset(stranger, { failedId: '', reason: 'SESSION_NOT_FOUND' })) sent++;
  }
  assert.equal(sent, MAX_RESET_REQUESTS_PER_MINUTE, 'unknown peers: capped per minute');
  assert.ok(await bob.engine.requestSessionReset(alice.engine.deviceId, { failedId: '', reason: 'AUTH_FAILED' }), 'a known peer still gets its request');
});

test('a request held back by the interval is sent later by requestDeferredResets, not forgotten', async () => {
  let now = Date.UTC(2030, 0, 1);
  const alice = await device({ now: () => now });
  const bob = await device({ now: () => now });
  await converse(alice, bob);
  assert.ok(await bob.engine.requestSessionReset(alice.engine.deviceId, { failedId: 'm1', reason: 'AUTH_FAILED' }));
  assert.equal(await bob.engine.requestSessionReset(alice.engine.deviceId, { failedId: 'm2', reason: 'SESSION_FORK_DETECTED' }), undefined);
  assert.deepEqual(await bob.engine.requestDeferredResets(), [], 'still inside the interval');
  now += 10_001;
  const later = await bob.engine.requestDeferredResets();
  assert.equal(later.length, 1);
  assert.equal(later[0]!.reason, 'SESSION_FORK_DETECTED');
  const applied = await deliver(alice.engine, bob.engine, later[0]!.envelope);
  assert.equal(applied.kind === 'sessionReset' && applied.reason, 'SESSION_FORK_DETECTED');
  assert.deepEqual(await bob.engine.requestDeferredResets(), [], 'sent once');
});
