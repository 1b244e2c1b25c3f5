import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { isParleyError, type ParleyErrorCode } from '@parley/protocol';
import { ConversationEngine, MemoryStore, decodeReceiptBody, encodeReceiptBody } from '../src/index.js';
import { deliver, device, mid, setupCrypto, str, takeBundle, text } from './helpers/engines.js';

const rejects = (p: Promise<unknown>, code: ParleyErrorCode) =>
  assert.rejects(p, (e: unknown) => {
    assert.ok(isParleyError(e), `expected a ParleyError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    return true;
  });

before(setupCrypto);

describe('ConversationEngine: a conversation', () => {
  it('alice starts from bob\'s bundle, bob answers, both decrypt', async () => {
    const alice = await device();
    const bob = await device();
    const out = await alice.engine.encrypt(bob.engine.deviceId, text('hello bob'), { messageId: mid(), bundle: takeBundle(bob.upload), type: 'text' });
    assert.equal(out.to, bob.engine.deviceId);
    assert.equal(alice.engine.pendingOutbox().length, 1);
    const got = await deliver(bob.engine, alice.engine, out);
    assert.equal(got.kind, 'message');
    assert.ok(got.kind === 'message');
    assert.equal(str(got.payload), 'hello bob');
    assert.equal(got.type, 'text');
    assert.equal(got.seq, 1);
    assert.equal(got.from, alice.engine.deviceId);

    assert.equal(bob.engine.needsBundle(alice.engine.deviceId), false);
    const reply = await bob.engine.encrypt(alice.engine.deviceId, text('hi alice'), { messageId: mid(), type: 'text' });
    const back = await deliver(alice.engine, bob.engine, reply);
    assert.ok(back.kind === 'message');
    assert.equal(str(back.payload), 'hi alice');
    assert.equal(alice.engine.safetyNumber(bob.engine.deviceId), bob.engine.safetyNumber(alice.engine.deviceId));
    assert.equal(alice.engine.safetyNumber(bob.engine.deviceId).length, 60);
  });

  it('repeated prekey messages before the first reply land in the same session', async () => {
    const alice = await device();
    const bob = await device();
    const bundle = takeBundle(bob.upload);
    const m1 = await alice.engine.encrypt(bob.engine.deviceId, text('1'), { messageId: mid(), bundle });
    const m2 = await alice.engine.encrypt(bob.engine.deviceId, text('2'), { messageId: mid() });
    const m3 = await alice.engine.encrypt(bob.engine.deviceId, text('3'), { messageId: mid() });
    // Out of order too.
    const r3 = await deliver(bob.engine, alice.engine, m3);
    const r1 = await deliver(bob.engine, alice.engine, m1);
    const r2 = await deliver(bob.engine, alice.engine, m2);
    assert.ok(r1.kind === 'message' && r2.kind === 'message' && r3.kind === 'message');
    assert.deepEqual([str(r1.payload), str(r2.payload), str(r3.payload)], ['1', '2', '3']);
    assert.equal(r1.sessionId, r2.sessionId);
    assert.equal(r2.sessionId, r3.sessionId);
  });

  it('a redelivered message is a duplicate, reported once, and nothing changes', async () => {
    const alice = await device();
    const bob = await device();
    const out = await alice.engine.encrypt(bob.engine.deviceId, text('once'), { messageId: mid(), bundle: takeBundle(bob.upload) });
    assert.equal((await deliver(bob.engine, alice.engine, out)).kind, 'message');
    const before = bob.store.size;
    for (let i = 0; i < 5; i++) assert.equal((await deliver(bob.engine, alice.engine, out)).kind, 'duplicate');
    assert.equal(bob.store.size, before);
    assert.equal(bob.engine.inbox().length, 1);
  });

  it('a relay that rewrites the message id gets AUTH_FAILED and changes nothing', async () => {
    const alice = await device();
    const bob = await device();
    const first = await alice.engine.encrypt(bob.engine.deviceId, text('a'), { messageId: mid(), bundle: takeBundle(bob.upload) });
    await deliver(bob.engine, alice.engine, first);
    const second = await alice.engine.encrypt(bob.engine.deviceId, text('b'), { messageId: mid() });
    await rejects(bob.engine.receive({ from: alice.engine.deviceId, id: 'forged-id', envelope: second.envelope }), 'AUTH_FAILED');
    // The genuine delivery still decrypts: the failed attempt committed nothing.
    const ok = await deliver(bob.engine, alice.engine, second);
    assert.ok(ok.kind === 'message');
    assert.equal(str(ok.payload), 'b');
  });

  it('a message with a forged sender (relay rewrote `from`) is refused', async () => {
    const alice = await device();
    const bob = await device();
    const carol = await device();
    const out = await alice.engine.encrypt(bob.engine.deviceId, text('x'), { messageId: mid(), bundle: takeBundle(bob.upload) });
    await rejects(bob.engine.receive({ from: carol.engine.deviceId, id: out.id, envelope: out.envelope }), 'UNTRUSTED_IDENTITY');
    assert.ok((await deliver(bob.engine, alice.engine, out)).kind === 'message');
  });

  it('a bundle whose identity is not the requested device is refused (no session, nothing stored)', async () => {
    const alice = await device();
    const bob = await device();
    const mallory = await device();
    const before = alice.store.size;
    await rejects(
      alice.engine.encrypt(bob.engine.deviceId, text('x'), { messageId: mid(), bundle: takeBundle(mallory.upload) }),
      'UNTRUSTED_IDENTITY',
    );
    assert.equal(alice.store.size, before);
    assert.equal(alice.engine.needsBundle(bob.engine.deviceId), true);
  });

  it('both sides starting at once converge on one session', async () => {
    const alice = await device();
    const bob = await device();
    const a1 = await alice.engine.encrypt(bob.engine.deviceId, text('a1'), { messageId: mid(), bundle: takeBundle(bob.upload) });
    const b1 = await bob.engine.encrypt(alice.engine.deviceId, text('b1'), { messageId: mid(), bundle: takeBundle(alice.upload) });
    assert.ok((await deliver(bob.engine, alice.engine, a1)).kind === 'message');
    assert.ok((await deliver(alice.engine, bob.engine, b1)).kind === 'message');
    for (let i = 0; i < 4; i++) {
      const x = await alice.engine.encrypt(bob.engine.deviceId, text(`a${i}`), { messageId: mid() });
      const y = await bob.engine.encrypt(alice.engine.deviceId, text(`b${i}`), { messageId: mid() });
      const rx = await deliver(bob.engine, alice.engine, x);
      const ry = await deliver(alice.engine, bob.engine, y);
      assert.ok(rx.kind === 'message' && str(rx.payload) === `a${i}`);
      assert.ok(ry.kind === 'message' && str(ry.payload) === `b${i}`);
    }
  });

  it('duplicate message ids in the outbox are refused', async () => {
    const alice = await device();
    const bob = await device();
    const id = mid();
    await alice.engine.encrypt(bob.engine.deviceId, text('x'), { messageId: id, bundle: takeBundle(bob.upload) });
    await rejects(alice.engine.encrypt(bob.engine.deviceId, text('y'), { messageId: id }), 'USAGE');
    await alice.engine.markDelivered(bob.engine.deviceId, id);
    assert.equal(alice.engine.pendingOutbox().length, 0);
  });

  it('receipts round-trip', () => {
    assert.deepEqual(decodeReceiptBody(encodeReceiptBody(['a', 'b-c'])), ['a', 'b-c']);
    assert.throws(() => decodeReceiptBody(text('a,b c')), (e) => isParleyError(e, 'MALFORMED_MESSAGE'));
  });

  it('sending without a session asks for a bundle', async () => {
    const alice = await device();
    const bob = await device();
    await rejects(alice.engine.encrypt(bob.engine.deviceId, text('x'), { messageId: mid() }), 'SESSION_NOT_FOUND');
  });

  it('the inbox keeps messages until consumed', async () => {
    const alice = await device();
    const bob = await device();
    const out = await alice.engine.encrypt(bob.engine.deviceId, text('keep'), { messageId: mid(), bundle: takeBundle(bob.upload) });
    await deliver(bob.engine, alice.engine, out);
    assert.equal(bob.engine.inbox().length, 1);
    await bob.engine.consume(alice.engine.deviceId, out.id);
    assert.equal(bob.engine.inbox().length, 0);
    // Still a duplicate afterwards.
    assert.equal((await deliver(bob.engine, alice.engine, out)).kind, 'duplicate');
  });
});

describe('ConversationEngine: restarts', () => {
  it('reopening from the same store mid-conversation loses and repeats nothing', async () => {
    const alice = await device();
    const bob = await device();
    let aliceEngine = alice.engine;
    let bobEngine = bob.engine;
    const sent: { to: 'alice' | 'bob'; out: Awaited<ReturnType<ConversationEngine['encrypt']>> }[] = [];
    sent.push({ to: 'bob', out: await aliceEngine.encrypt(bobEngine.deviceId, text('a0'), { messageId: mid(), bundle: takeBundle(bob.upload) }) });
    for (let i = 1; i < 5; i++) sent.push({ to: 'bob', out: await aliceEngine.encrypt(bobEngine.deviceId, text(`a${i}`), { messageId: mid() }) });

    const seenByBob: string[] = [];
    const seenByAlice: string[] = [];
    // Bob gets three, then restarts.
    for (const s of sent.slice(0, 3)) {
      const r = await deliver(bobEngine, aliceEngine, s.out);
      if (r.kind === 'message') seenByBob.push(str(r.payload));
    }
    bobEngine = await ConversationEngine.open({ store: bob.store });
    assert.equal(bobEngine.deviceId, bob.engine.deviceId);
    // At-least-once relay: everything again after the restart.
    for (const s of sent) {
      const r = await deliver(bobEngine, aliceEngine, s.out);
      if (r.kind === 'message') seenByBob.push(str(r.payload));
    }
    assert.deepEqual(seenByBob, ['a0', 'a1', 'a2', 'a3', 'a4']);

    // Bob answers; Alice restarts before receiving; her outbox survived too.
    const replies = [];
    for (let i = 0; i < 3; i++) replies.push(await bobEngine.encrypt(aliceEngine.deviceId, text(`b${i}`), { messageId: mid() }));
    aliceEngine = await ConversationEngine.open({ store: alice.store });
    assert.equal(aliceEngine.pendingOutbox().length, 5);
    for (const r of [...replies, ...replies]) {
      const got = await deliver(aliceEngine, bobEngine, r);
      if (got.kind === 'message') seenByAlice.push(str(got.payload));
    }
    assert.deepEqual(seenByAlice, ['b0', 'b1', 'b2']);
    // And the conversation continues from both reopened engines.
    const more = await aliceEngine.encrypt(bobEngine.deviceId, text('a5'), { messageId: mid() });
    const r = await deliver(bobEngine, aliceEngine, more);
    assert.ok(r.kind === 'message' && str(r.payload) === 'a5');
    // Undelivered inbox entries survive a restart as well.
    const bobAgain = await ConversationEngine.open({ store: bob.store });
    assert.deepEqual(bobAgain.inbox().map((m) => str(m.payload)), ['a0', 'a1', 'a2', 'a3', 'a4', 'a5']);
  });

  it('owed receipts are persisted with their messages, survive a restart and leave in one receipt', async () => {
    const alice = await device();
    const bob = await device();
    const ids: string[] = [];
    const outs = [];
    for (let i = 0; i < 5; i++) {
      ids.push(mid());
      outs.push(await alice.engine.encrypt(bob.engine.deviceId, text(`a${i}`), { messageId: ids[i]!, type: 'text', ...(i === 0 ? { bundle: takeBundle(bob.upload) } : {}) }));
    }
    for (const out of outs.slice(0, 3)) await bob.engine.receive({ from: alice.engine.deviceId, id: out.id, envelope: out.envelope }, { receipt: true });
    // A redelivery owes nothing more; without the option nothing is owed.
    assert.equal((await bob.engine.receive({ from: alice.engine.deviceId, id: outs[0]!.id, envelope: outs[0]!.envelope }, { receipt: true })).kind, 'duplicate');
    await deliver(bob.engine, alice.engine, outs[3]!);
    await bob.engine.receive({ from: alice.engine.deviceId, id: outs[4]!.id, envelope: outs[4]!.envelope }, { receipt: true });
    const owed = [ids[0]!, ids[1]!, ids[2]!, ids[4]!];
    assert.deepEqual(bob.engine.pendingReceipts(), [{ peer: alice.engine.deviceId, ids: owed }]);

    // Restart: still owed.
    const bob2 = await ConversationEngine.open({ store: bob.store });
    assert.deepEqual(bob2.pendingReceipts(), [{ peer: alice.engine.deviceId, ids: owed }]);
    const receipt = await bob2.encryptReceipts(alice.engine.deviceId);
    assert.ok(receipt);
    assert.deepEqual(bob2.pendingReceipts(), []);
    assert.equal(await bob2.encryptReceipts(alice.engine.deviceId), undefined);
    assert.equal(bob2.pendingOutbox().length, 1);
    const got = await deliver(alice.engine, bob2, receipt);
    assert.ok(got.kind === 'message' && got.type === 'receipt');
    assert.deepEqual(decodeReceiptBody(got.payload), owed);
    // Encrypted and cleared in one write: nothing owed after another restart.
    assert.deepEqual((await ConversationEngine.open({ store: bob.store })).pendingReceipts(), []);
  });

  it('a store holding sessions but no account refuses to mint a new identity', async () => {
    const alice = await device();
    const bob = await device();
    await alice.engine.encrypt(bob.engine.deviceId, text('x'), { messageId: mid(), bundle: takeBundle(bob.upload) });
    await alice.store.delMany(['account']);
    await rejects(ConversationEngine.open({ store: alice.store }), 'STORAGE_INTEGRITY');
  });

  it('a failed write leaves the engine as it was', async () => {
    const alice = await device();
    const bob = await device();
    const out = await alice.engine.encrypt(bob.engine.deviceId, text('1'), { messageId: mid(), bundle: takeBundle(bob.upload) });
    const flaky = new MemoryStore();
    const bobStore = bob.store;
    let fail = true;
    const wrapped = {
      get: (k: string) => bobStore.get(k),
      keys: (p: string) => bobStore.keys(p),
      delMany: (k: string[]) => bobStore.delMany(k),
      setMany: async (e: [string, Uint8Array][]) => {
        if (fail) throw new Error('disk full');
        return bobStore.setMany(e);
      },
    };
    void flaky;
    const bob2 = await ConversationEngine.open({ store: wrapped });
    await assert.rejects(bob2.receive({ from: alice.engine.deviceId, id: out.id, envelope: out.envelope }), /disk full/);
    fail = false;
    const r = await bob2.receive({ from: alice.engine.deviceId, id: out.id, envelope: out.envelope });
    assert.ok(r.kind === 'message' && str(r.payload) === '1');
  });
});

describe('ConversationEngine: labels and identity changes', () => {
  it('a known label moving to a new device blocks sending until accepted', async () => {
    const alice = await device();
    const bob1 = await device();
    const bob2 = await device(); // bob reinstalled: new identity, new device id
    const events: unknown[] = [];
    const engine = await ConversationEngine.open({ store: alice.store, onTrustEvent: (e) => events.push(e) });
    await engine.bindLabel('bob', bob1.engine.deviceId);
    const pending = [];
    pending.push(await engine.encrypt(bob1.engine.deviceId, text('1'), { messageId: mid(), bundle: takeBundle(bob1.upload) }));
    for (let i = 0; i < 4; i++) pending.push(await engine.encrypt(bob1.engine.deviceId, text(`${i}`), { messageId: mid() }));

    await rejects(engine.bindLabel('bob', bob2.engine.deviceId), 'IDENTITY_CHANGED');
    assert.equal(events.length, 1);
    assert.equal(engine.isBlocked(bob2.engine.deviceId), true);
    await rejects(engine.encrypt(bob2.engine.deviceId, text('x'), { messageId: mid(), bundle: takeBundle(bob2.upload) }), 'IDENTITY_CHANGED');
    // The 5 pending messages stay addressed to the old device, never re-encrypted.
    assert.deepEqual(engine.pendingOutbox().map((e) => e.to), Array(5).fill(bob1.engine.deviceId));
    // Blocked across restarts.
    const reopened = await ConversationEngine.open({ store: alice.store });
    await rejects(reopened.encrypt(bob2.engine.deviceId, text('x'), { messageId: mid(), bundle: takeBundle(bob2.upload) }), 'IDENTITY_CHANGED');
    assert.equal(await reopened.acceptIdentityChange(bob2.engine.deviceId), true);
    assert.equal(reopened.resolveLabel('bob'), bob2.engine.deviceId);
    const out = await reopened.encrypt(bob2.engine.deviceId, text('hi again'), { messageId: mid(), bundle: takeBundle(bob2.upload) });
    const got = await bob2.engine.receive({ from: reopened.deviceId, id: out.id, envelope: out.envelope });
    assert.ok(got.kind === 'message' && str(got.payload) === 'hi again');
  });
});
