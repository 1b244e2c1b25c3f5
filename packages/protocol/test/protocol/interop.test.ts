/**
 * Cross-implementation evidence: a conversation moves between crypto backends mid-session.
 *
 * For every ordered pair (X, Y) of distinct backends, Alice lives on X and Bob on Y, and the
 * active backend is switched with `initCrypto` between every step, so each X3DH half, each DH
 * ratchet step, each header and body AEAD and each pickle is produced by one implementation
 * and consumed by the other (docs/architecture.md "Crypto providers": both paths interoperate).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Account, Session, initCrypto, safetyNumber, type BackendName } from '../../src/index.js';
import { BACKENDS, str, text } from '../helpers/protocol.js';

const PAIRS: [BackendName, BackendName][] = BACKENDS.flatMap((x) => BACKENDS.filter((y) => y !== x).map((y): [BackendName, BackendName] => [x, y]));

describe('interop: a session started on one backend continues on another', () => {
  test('there are 6 ordered backend pairs', () => assert.equal(PAIRS.length, 6));

  for (const [x, y] of PAIRS) {
    test(`Alice on ${x}, Bob on ${y}: X3DH, out-of-order replies and pickles cross the boundary every step`, async () => {
      // Alice (on x) fetches Bob's bundle and writes the first message. Bob's account is made on x too.
      await initCrypto(x);
      const aliceAccount = Account.create();
      const bobAccountOnX = Account.create();
      bobAccountOnX.generateOneTimePrekeys(3);
      const bundle = bobAccountOnX.bundle();
      const bobAccountPickle = bobAccountOnX.pickle();
      let a = aliceAccount.createOutboundSession(bundle);
      const first = a.encrypt(text('hi from alice'));
      const second = a.encrypt(text('and again'));
      let alicePickle = a.pickle();
      const aliceSafety = safetyNumber(aliceAccount.publicIdentity, a.remoteIdentity);

      // Bob's account moves to y through its pickle (byte-identical after a round trip there).
      await initCrypto(y);
      const bobAccount = Account.unpickle(bobAccountPickle);
      assert.deepEqual(bobAccount.pickle(), bobAccountPickle, 'account pickle is backend-independent');
      const { session: b0, plaintext } = bobAccount.createInboundSession(second);
      assert.equal(str(plaintext), 'and again');
      assert.equal(str(b0.decrypt(first)), 'hi from alice', 'the earlier prekey message opens from the skipped key');
      const replies = [b0.encrypt(text('reply 0')), b0.encrypt(text('reply 1')), b0.encrypt(text('reply 2'))];
      let bobPickle = b0.pickle();
      const bobSafety = safetyNumber(b0.localIdentity, b0.remoteIdentity);

      // Back on x: Alice restarts from her pickle and reads Bob's replies out of order.
      await initCrypto(x);
      a = Session.unpickle(alicePickle);
      assert.equal(str(a.decrypt(replies[2]!)), 'reply 2');
      assert.equal(str(a.decrypt(replies[0]!)), 'reply 0');
      assert.equal(a.skippedKeyCount, 1);
      const burst = [0, 1, 2, 3].map((i) => a.encrypt(text(`alice ${i}`)));
      assert.equal(a.isAwaitingReply, false, 'Alice stopped sending prekey messages once she heard back');
      alicePickle = a.pickle();

      for (let round = 0; round < 3; round++) {
        await initCrypto(y);
        let b = Session.unpickle(bobPickle);
        if (round === 0) {
          assert.equal(str(b.decrypt(burst[1]!)), 'alice 1');
          assert.equal(str(b.decrypt(burst[3]!)), 'alice 3');
          b = Session.unpickle(b.pickle());
          assert.equal(str(b.decrypt(burst[0]!)), 'alice 0');
          assert.equal(str(b.decrypt(burst[2]!)), 'alice 2');
        }
        const out = [b.encrypt(text(`bob r${round} a`)), b.encrypt(text(`bob r${round} b`))];
        bobPickle = b.pickle();

        await initCrypto(x);
        a = Session.unpickle(alicePickle);
        if (round === 0) assert.equal(str(a.decrypt(replies[1]!)), 'reply 1', 'the skipped key survived the pickle');
        assert.equal(str(a.decrypt(out[1]!)), `bob r${round} b`);
        assert.equal(str(a.decrypt(out[0]!)), `bob r${round} a`);
        const back = a.encrypt(text(`alice r${round}`));
        alicePickle = a.pickle();

        await initCrypto(y);
        b = Session.unpickle(bobPickle);
        assert.equal(str(b.decrypt(back)), `alice r${round}`);
        bobPickle = b.pickle();
      }

      // Both ends hold every key they should and nothing more.
      await initCrypto(x);
      assert.equal(Session.unpickle(alicePickle).skippedKeyCount, 0);
      assert.equal(safetyNumber(a.remoteIdentity, a.localIdentity), aliceSafety, 'argument order does not matter');
      await initCrypto(y);
      assert.equal(Session.unpickle(bobPickle).skippedKeyCount, 0);
      assert.equal(Session.unpickle(bobPickle).sessionId, Session.unpickle(alicePickle).sessionId, 'both sides name the session alike');
      assert.equal(bobSafety, aliceSafety, `safety numbers agree across ${x} and ${y}`);
      assert.match(aliceSafety, /^\d{60}$/);
    });
  }

  test('a session pickle re-encodes byte for byte on every backend', async () => {
    await initCrypto('node');
    const alice = Account.create();
    const bob = Account.create();
    const a = alice.createOutboundSession(bob.bundle());
    const { session: b } = bob.createInboundSession(a.encrypt(text('x')));
    a.decrypt(b.encrypt(text('y')));
    const pickles = [a.pickle(), b.pickle(), alice.pickle(), bob.pickle()];
    for (const name of BACKENDS) {
      await initCrypto(name);
      assert.deepEqual(Session.unpickle(pickles[0]!).pickle(), pickles[0], `${name}: initiator session`);
      assert.deepEqual(Session.unpickle(pickles[1]!).pickle(), pickles[1], `${name}: responder session`);
      assert.deepEqual(Account.unpickle(pickles[2]!).pickle(), pickles[2], `${name}: account`);
      assert.deepEqual(Account.unpickle(pickles[3]!).pickle(), pickles[3], `${name}: account`);
    }
  });
});
