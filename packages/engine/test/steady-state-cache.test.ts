/**
 * What the engine keeps between messages of a steady conversation (issue 15, the SDK's cost per
 * message): peer records are copied without `structuredClone` and encoded reusing the JSON of
 * their unchanging parts — byte for byte what `JSON.stringify` writes — and a session whose
 * state was persisted stays live for the next message instead of being unpickled again; a
 * failed write never leaves an advanced live session behind.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { ConversationEngine, MemoryStore } from '../src/index.js';
import { clonePeer, encodePeerRecord, jsonBytes, type PeerRecord } from '../src/records.js';
import { deliver, device, mid, setupCrypto, str, takeBundle, text } from './helpers/engines.js';

before(setupCrypto);

/** A memory store whose next `setMany` fails (a full disk), once. */
class FlakyStore extends MemoryStore {
  failNext = false;
  override async setMany(entries: [string, Uint8Array][]): Promise<void> {
    if (this.failNext) {
      this.failNext = false;
      throw new Error('disk full');
    }
    return super.setMany(entries);
  }
}

function fullRecord(): PeerRecord {
  return {
    v: 1,
    identity: { signingKey: 'aa'.repeat(32), dhKey: 'bb'.repeat(32), binding: 'cc'.repeat(64) },
    sessions: ['0'.repeat(32), '1'.repeat(32)],
    sendSeq: 7,
    recvSeq: 9,
    seenBucket: 2,
    cert: { role: 'bot', label: 'support-bot', expiresAt: 123, bytes: 'dd'.repeat(100) },
    missing: [[5, 1000, 0], [6, 1000, 1]],
    archived: ['2'.repeat(32)],
    unconfirmed: [{ id: 'm1', at: 1, resent: 0 }, { id: 'm2', at: 2, resent: 1 }],
    lastReset: { at: 3, requestSentAt: 2 },
  };
}

describe('peer records in a steady conversation', () => {
  it('encodes byte for byte like JSON.stringify, also after a clone is changed and re-encoded', () => {
    const rec = fullRecord();
    assert.deepEqual(encodePeerRecord(rec), jsonBytes(rec));
    const next = clonePeer(rec);
    next.sendSeq += 1;
    next.unconfirmed = [...next.unconfirmed!.slice(1), { id: 'm3', at: 4, resent: 0 }];
    next.cert = { ...next.cert!, label: 'renamed' };
    next.blocked = { label: 'x', previous: 'y' };
    delete next.lastReset;
    assert.deepEqual(encodePeerRecord(next), jsonBytes(next));
    assert.deepEqual(encodePeerRecord(rec), jsonBytes(rec), 'the original encodes as before');
    assert.deepEqual(JSON.parse(str(encodePeerRecord({ v: 1, sessions: [], sendSeq: 0, recvSeq: 0, seenBucket: 0, identity: undefined }))), {
      v: 1, sessions: [], sendSeq: 0, recvSeq: 0, seenBucket: 0,
    });
  });

  it('a clone owns its lists: changing them in place leaves the original alone', () => {
    const rec = fullRecord();
    const before = str(jsonBytes(rec));
    const c = clonePeer(rec);
    c.sessions.unshift('3'.repeat(32));
    c.missing![1]![2] = 0;
    c.missing!.push([8, 2000, 0]);
    c.archived!.splice(0, 1);
    c.unconfirmed!.push({ id: 'm9', at: 9, resent: 0 });
    assert.equal(str(jsonBytes(rec)), before);
  });
});

describe('live sessions between messages', () => {
  it('a failed write on send or receive leaves nothing advanced behind; the conversation and a reopened engine go on', async () => {
    const aliceStore = new FlakyStore();
    const alice = await device({ store: aliceStore });
    const bob = await device();
    const first = await alice.engine.encrypt(bob.engine.deviceId, text('hello'), { messageId: mid(), bundle: takeBundle(bob.upload) });
    await deliver(bob.engine, alice.engine, first);

    // Send: the session encrypted, the write failed; the next send starts from the stored state.
    aliceStore.failNext = true;
    await assert.rejects(alice.engine.encrypt(bob.engine.deviceId, text('lost'), { messageId: mid() }), /disk full/);
    for (let i = 0; i < 3; i++) {
      const out = await alice.engine.encrypt(bob.engine.deviceId, text(`a${i}`), { messageId: mid() });
      const got = await deliver(bob.engine, alice.engine, out);
      assert.equal(got.kind === 'message' && str(got.payload), `a${i}`);
    }

    // Receive: decrypted, the write failed; the same delivery again opens with the stored state.
    const reply = await bob.engine.encrypt(alice.engine.deviceId, text('b0'), { messageId: mid() });
    aliceStore.failNext = true;
    await assert.rejects(deliver(alice.engine, bob.engine, reply), /disk full/);
    const again = await deliver(alice.engine, bob.engine, reply);
    assert.equal(again.kind === 'message' && str(again.payload), 'b0');
    const out = await alice.engine.encrypt(bob.engine.deviceId, text('a3'), { messageId: mid() });
    const got = await deliver(bob.engine, alice.engine, out);
    assert.equal(got.kind === 'message' && str(got.payload), 'a3');

    // What is stored is what the live sessions were: a reopened engine continues both ways.
    await alice.engine.close();
    const reopened = await ConversationEngine.open({ store: aliceStore });
    const next = await reopened.encrypt(bob.engine.deviceId, text('a4'), { messageId: mid() });
    const got2 = await deliver(bob.engine, reopened, next);
    assert.equal(got2.kind === 'message' && str(got2.payload), 'a4');
    const reply2 = await bob.engine.encrypt(reopened.deviceId, text('b1'), { messageId: mid() });
    const got3 = await deliver(reopened, bob.engine, reply2);
    assert.equal(got3.kind === 'message' && str(got3.payload), 'b1');
    await reopened.close();
    await bob.engine.close();
  });
});
