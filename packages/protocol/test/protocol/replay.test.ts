/**
 * Replays, reflection, X3DH replays, reordering and sender rollback (docs/threats.md C4, C5, C6,
 * C7, C16's rollback rule). Every rejected message leaves the receiver's state digest
 * unchanged and releases no plaintext.
 */
import { describe, test, before } from 'node:test';
import assert from 'node:assert/strict';
import { Account, Session, initCrypto, limits } from '../../src/index.js';
import {
  accountDigest,
  clone,
  establish,
  expectError,
  seededRandom,
  sendMany,
  str,
  text,
  withCounts,
} from '../helpers/protocol.js';

before(() => initCrypto('node'));

describe('C4 replay of a normal message', () => {
  test('replayed at once, 2-10 times: DUPLICATE_MESSAGE every time, state unchanged', () => {
    const { a, b } = establish();
    for (let i = 0; i < 5; i++) {
      const wire = a.encrypt(text(`m${i}`));
      assert.equal(str(b.decrypt(wire)), `m${i}`);
      const digest = b.stateDigest();
      for (let r = 0; r < 2 + i * 2; r++) expectError(() => b.decrypt(wire), 'DUPLICATE_MESSAGE', `replay ${r} of m${i}`);
      assert.equal(b.stateDigest(), digest);
    }
  });

  test('replayed after 1,000 later messages on the same chain: still DUPLICATE_MESSAGE', () => {
    const { a, b } = establish();
    const first = a.encrypt(text('first'));
    b.decrypt(first);
    for (const m of sendMany(a, 1000, 'later')) assert.equal(str(b.decrypt(m.wire)), m.plaintext);
    const digest = b.stateDigest();
    expectError(() => b.decrypt(first), 'DUPLICATE_MESSAGE', 'replay after 1,000');
    assert.equal(b.stateDigest(), digest);
  });

  test('replayed after the chain was ratcheted away: AUTH_FAILED (its header key is gone), never plaintext', () => {
    const { a, b } = establish();
    const old = a.encrypt(text('old'));
    b.decrypt(old);
    a.decrypt(b.encrypt(text('turn')));
    b.decrypt(a.encrypt(text('new chain')));
    const digest = b.stateDigest();
    expectError(() => b.decrypt(old), 'AUTH_FAILED', 'replay from a dropped chain');
    assert.equal(b.stateDigest(), digest);
  });

  test('replayed after an app restart (pickle round trip): DUPLICATE_MESSAGE, digest unchanged', () => {
    const { a, b } = establish();
    const msgs = sendMany(a, 3, 'm');
    for (const m of msgs) b.decrypt(m.wire);
    const restarted = Session.unpickle(b.pickle());
    const digest = restarted.stateDigest();
    assert.equal(digest, b.stateDigest());
    for (const m of msgs) expectError(() => restarted.decrypt(m.wire), 'DUPLICATE_MESSAGE', `replay of ${m.plaintext} after restart`);
    assert.equal(restarted.stateDigest(), digest);
  });

  test('a replayed out-of-order message whose skipped key was used: DUPLICATE_MESSAGE', () => {
    const { a, b } = establish();
    const [m0, m1] = sendMany(a, 2, 'm');
    b.decrypt(m1!.wire);
    assert.equal(b.skippedKeyCount, 1);
    assert.equal(str(b.decrypt(m0!.wire)), 'm 0');
    assert.equal(b.skippedKeyCount, 0);
    const digest = b.stateDigest();
    expectError(() => b.decrypt(m0!.wire), 'DUPLICATE_MESSAGE', 'replay of a skipped-key message');
    assert.equal(b.stateDigest(), digest);
  });
});

describe('C5 reflection: a party fed its own message', () => {
  test('Alice and Bob each reject their own ciphertexts with AUTH_FAILED, state unchanged', () => {
    const { a, b, prekeyMessage } = establish();
    const fromA = a.encrypt(text('to bob'));
    const fromB = b.encrypt(text('to alice'));
    for (const [s, own, label] of [[a, fromA, 'alice'], [b, fromB, 'bob']] as const) {
      const digest = s.stateDigest();
      expectError(() => s.decrypt(own), 'AUTH_FAILED', `${label} own message`);
      assert.equal(s.stateDigest(), digest);
    }
    // Alice's own prekey message reflected back to her (the initiator).
    const digest = a.stateDigest();
    expectError(() => a.decrypt(prekeyMessage), 'AUTH_FAILED', 'alice own prekey message');
    assert.equal(a.stateDigest(), digest);
    // Both still work.
    assert.equal(str(b.decrypt(fromA)), 'to bob');
    assert.equal(str(a.decrypt(fromB)), 'to alice');
  });

  test('Alice\'s prekey message reflected to her own account is refused (not for her prekeys)', () => {
    const alice = Account.create();
    const bob = Account.create();
    bob.generateOneTimePrekeys(1);
    const wire = alice.createOutboundSession(bob.bundle()).encrypt(text('hi'));
    const digest = accountDigest(alice);
    expectError(() => alice.createInboundSession(wire), ['INVALID_PREKEY', 'AUTH_FAILED'], 'own prekey message');
    assert.equal(accountDigest(alice), digest);
  });
});

describe('C6 X3DH initial-message replay', () => {
  test('(a) a prekey message replayed after its one-time prekey was consumed: INVALID_PREKEY, no new session, account unchanged', () => {
    const { bob, prekeyMessage } = establish({ reply: false });
    const digest = accountDigest(bob);
    for (let i = 0; i < 3; i++) expectError(() => bob.createInboundSession(prekeyMessage), ['INVALID_PREKEY', 'DUPLICATE_MESSAGE'], 'OPK replay');
    assert.equal(accountDigest(bob), digest);
    // Also after the account was pickled and restored.
    const restored = Account.unpickle(bob.pickle());
    expectError(() => restored.createInboundSession(prekeyMessage), ['INVALID_PREKEY', 'DUPLICATE_MESSAGE'], 'OPK replay after restart');
  });

  test('(b) a signed-prekey-only message replayed after Bob replied: DUPLICATE_MESSAGE, also after a restart', () => {
    const alice = Account.create();
    const bob = Account.create(); // no one-time prekeys: the bundle has only the signed prekey
    const bundle = bob.bundle();
    assert.equal(bundle.oneTimePrekey, undefined);
    const a = alice.createOutboundSession(bundle);
    const first = a.encrypt(text('spk only'));
    const { session: b } = bob.createInboundSession(first);

    // Bob's first reply already uses a fresh ratchet key, never the signed prekey itself:
    // read the plaintext header Bob seals (the 40-byte header AEAD input).
    let headerKey: Uint8Array | undefined;
    const { result: reply } = withCounts(['xchachaEncrypt'], () => b.encrypt(text('reply')), (_m, args) => {
      const pt = (args as Uint8Array[])[2]!;
      if (pt.length === 40) headerKey = pt.slice(0, 32);
    });
    assert.ok(headerKey);
    assert.notDeepEqual(headerKey, bundle.signedPrekey.publicKey, 'Bob never encrypts under an SK-only (signed prekey) ratchet key');
    a.decrypt(reply!);

    const digest = accountDigest(bob);
    expectError(() => bob.createInboundSession(first), 'DUPLICATE_MESSAGE', 'SPK-only replay');
    assert.equal(accountDigest(bob), digest);
    expectError(() => Account.unpickle(bob.pickle()).createInboundSession(first), 'DUPLICATE_MESSAGE', 'SPK-only replay after restart');
  });

  test('(b) the same replay with bit 255 of the base key flipped (a second encoding of the same X25519 key) creates no second session', () => {
    // X25519 ignores the top bit of a public key (RFC 7748 section 5), so flipping it in the
    // unauthenticated prekey header leaves every DH value, and so the whole session, the same.
    // If the account compared base keys byte-wise only, this replay would open a second
    // session from the same base key and release the plaintext again (libsignal:
    // test_bob_rejects_highbit_basekey).
    const alice = Account.create();
    const bob = Account.create();
    const first = alice.createOutboundSession(bob.bundle()).encrypt(text('spk only'));
    bob.createInboundSession(first);
    const highBit = first.slice();
    highBit[130 + 31]! ^= 0x80; // base key at offset 130 (wire/message.ts), last byte's top bit
    const digest = accountDigest(bob);
    expectError(() => bob.createInboundSession(highBit), ['INVALID_KEY', 'DUPLICATE_MESSAGE'], 'high-bit base key replay');
    assert.equal(accountDigest(bob), digest);
    // Also refused as a first message: honest X25519 keys never have the bit set.
    const fresh = Account.create();
    const wire = alice.createOutboundSession(fresh.bundle()).encrypt(text('x'));
    wire[130 + 31]! ^= 0x80;
    expectError(() => fresh.createInboundSession(wire), ['INVALID_KEY'], 'high-bit base key');
  });

  test('a prekey message replayed into the existing responder session: DUPLICATE_MESSAGE, state unchanged', () => {
    const { b, prekeyMessage } = establish();
    const digest = b.stateDigest();
    expectError(() => b.decrypt(prekeyMessage), 'DUPLICATE_MESSAGE', 'prekey message into its session');
    assert.equal(b.stateDigest(), digest);
  });

  test('a repeated prekey message that Bob has not seen yet opens in the existing session', () => {
    const alice = Account.create();
    const bob = Account.create();
    bob.generateOneTimePrekeys(1);
    const a = alice.createOutboundSession(bob.bundle());
    const [p0, p1] = [a.encrypt(text('p0')), a.encrypt(text('p1'))];
    const { session: b, plaintext } = bob.createInboundSession(p1);
    assert.equal(str(plaintext), 'p1');
    assert.ok(b.matchesPrekeyMessage(p0));
    assert.equal(str(b.decrypt(p0)), 'p0');
    expectError(() => b.decrypt(p0), 'DUPLICATE_MESSAGE', 'second delivery');
    // and the account refuses to start a second session from the same base key
    expectError(() => bob.createInboundSession(p0), ['INVALID_PREKEY', 'DUPLICATE_MESSAGE'], 'second session from p0');
  });
});

describe('C7 reordering within the window', () => {
  test('300 messages over 10 ratchet turns, delivered with displacement up to 30: each decrypts once, skipped keys return to 0', () => {
    const { a, b } = establish();
    const rand = seededRandom(7);
    let maxSkipped = 0;
    for (let turn = 0; turn < 10; turn++) {
      const [from, to] = turn % 2 === 0 ? [a, b] : [b, a];
      const msgs = sendMany(from, 30, `turn ${turn}`);
      // A permutation with displacement <= 30 across one chain: shuffle the whole burst.
      const order = msgs.map((m, i) => ({ m, key: i + rand() * 30 })).sort((x, y) => x.key - y.key);
      for (const { m } of order) {
        assert.equal(str(to.decrypt(m.wire)), m.plaintext);
        maxSkipped = Math.max(maxSkipped, to.skippedKeyCount);
      }
      for (const m of msgs) expectError(() => to.decrypt(m.wire), 'DUPLICATE_MESSAGE', 'second delivery');
      assert.equal(to.skippedKeyCount, 0);
    }
    assert.ok(maxSkipped > 5, 'the permutations did skip keys');
  });

  test('messages of an old chain arriving after the peer ratcheted twice still open from skipped keys', () => {
    const { a, b } = establish();
    const late = sendMany(a, 4, 'late');
    b.decrypt(late[3]!.wire); // 0..2 skipped on Alice's chain
    a.decrypt(b.encrypt(text('b1')));
    b.decrypt(a.encrypt(text('a2')));
    a.decrypt(b.encrypt(text('b2')));
    b.decrypt(a.encrypt(text('a3')));
    assert.equal(b.skippedKeyCount, 3);
    for (const i of [1, 0, 2]) assert.equal(str(b.decrypt(late[i]!.wire)), `late ${i}`);
    assert.equal(b.skippedKeyCount, 0);
  });
});

describe('sender state rollback (restored from an old backup) is detected, never a second plaintext', () => {
  test('Alice restored from an old pickle reuses counters Bob saw recently: SENDER_STATE_ROLLBACK', () => {
    const { a, b } = establish();
    b.decrypt(a.encrypt(text('on the chain'))); // Alice has a current sending chain
    const backup = a.pickle();
    const sent = sendMany(a, 3, 'before restore');
    for (const m of sent) b.decrypt(m.wire);
    const restored = Session.unpickle(backup);
    const digest = b.stateDigest();
    for (let i = 0; i < 3; i++) {
      const again = restored.encrypt(text(`after restore ${i}`));
      expectError(() => b.decrypt(again), 'SENDER_STATE_ROLLBACK', `reused counter ${i}`);
    }
    assert.equal(b.stateDigest(), digest);
    // The first new counter past what Bob has seen is accepted: the restored sender is live again.
    assert.equal(str(b.decrypt(restored.encrypt(text('fresh counter')))), 'fresh counter');
  });

  test(`a counter older than the ${limits.RECENT_HEADERS}-header window gives DUPLICATE_MESSAGE, still never plaintext`, () => {
    const { a, b } = establish();
    b.decrypt(a.encrypt(text('on the chain')));
    const backup = a.pickle();
    for (const m of sendMany(a, limits.RECENT_HEADERS + 8, 'x')) b.decrypt(m.wire);
    const restored = Session.unpickle(backup);
    const digest = b.stateDigest();
    expectError(() => b.decrypt(restored.encrypt(text('stale'))), 'DUPLICATE_MESSAGE', 'counter outside the window');
    assert.equal(b.stateDigest(), digest);
  });

  test('restored before its send ratchet: the new chain collides with the one Bob follows and is refused as a fork (SESSION_FORK_DETECTED)', () => {
    const { a, b } = establish();
    a.decrypt(b.encrypt(text('pending')));
    const backup = a.pickle(); // Alice's next send makes a fresh ratchet key
    b.decrypt(a.encrypt(text('real')));
    const restored = Session.unpickle(backup);
    const digest = b.stateDigest();
    expectError(() => b.decrypt(restored.encrypt(text('rolled back'))), 'SESSION_FORK_DETECTED', 'second fresh key on the same header key');
    assert.equal(b.stateDigest(), digest);
  });

  test('a clone that re-encrypts the same counter cannot get a message decrypted twice at Bob', () => {
    const { a, b } = establish();
    b.decrypt(a.encrypt(text('x')));
    const twin = clone(a);
    const m1 = a.encrypt(text('one'));
    const m2 = twin.encrypt(text('two'));
    assert.equal(str(b.decrypt(m1)), 'one');
    expectError(() => b.decrypt(m2), 'SENDER_STATE_ROLLBACK', 'same counter, different header');
  });
});
