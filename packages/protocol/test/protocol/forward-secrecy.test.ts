/**
 * docs/threats.md C2 (forward secrecy) and C3 (post-compromise security), bounded for CI.
 *
 * C2: after every decrypt (and every encrypt) a snapshot of the party's state (its pickle, the
 * same bytes the app persists) is cloned and fed every earlier ciphertext; only messages still
 * in flight (held as skipped keys or not yet reached) may open. A key tap records every key
 * the real session consumed (message keys, chain keys, old root keys, DH outputs, spent ratchet
 * private keys), and none of them may appear in any later snapshot.
 *
 * C3: an attacker copies Alice's whole state at t0; after one round trip in which Alice used a
 * fresh ratchet key, the copy reads nothing Bob sends.
 */
import { describe, test, before } from 'node:test';
import assert from 'node:assert/strict';
import { initCrypto, type Session } from '../../src/index.js';
import {
  clone,
  containsBytes,
  establish,
  expectError,
  seededRandom,
  str,
  text,
  unsafeDecodeSessionPickle,
  withCounts,
  EXTENDED,
} from '../helpers/protocol.js';

type Side = 'alice' | 'bob';
interface Sent {
  readonly to: Side;
  readonly wire: Uint8Array;
  readonly plaintext: string;
  delivered: boolean;
}

before(() => initCrypto('node'));

/** Runs a real session operation and returns the secrets it consumed (copies, taken at once). */
function tapped<T>(op: 'encrypt' | 'decrypt', fn: () => T): { result: T; consumed: Uint8Array[] } {
  const consumed: Uint8Array[] = [];
  const { result, error } = withCounts(['hmacSha256', 'hkdfSha256', 'xchachaDecrypt', 'xchachaEncrypt', 'x25519'], fn, (m, args, out) => {
    const a = args as Uint8Array[];
    if (m === 'hmacSha256') consumed.push(a[0]!.slice()); // a chain key, spent once its successor exists
    if (m === 'hkdfSha256') consumed.push(a[0]!.slice(), a[1]!.slice()); // DH output and the old root key
    if (m === 'x25519') {
      consumed.push((out as Uint8Array).slice());
      // Receiving drops our ratchet private key at once; sending keeps the new one until the reply.
      if (op === 'decrypt') consumed.push(a[0]!.slice());
    }
    // Body AEADs (> header size) use message keys; header keys legitimately stay.
    if (m === 'xchachaDecrypt' && a[2]!.length > 56) consumed.push(a[0]!.slice());
    if (m === 'xchachaEncrypt' && a[2]!.length > 40) consumed.push(a[0]!.slice());
  });
  if (error !== undefined) throw error;
  return { result: result as T, consumed };
}

describe('C2 forward secrecy: a snapshot taken after each step opens no earlier message', () => {
  test('60 messages each way with held-back messages: only in-flight messages open from any snapshot, and no spent key is in it', () => {
    const p = establish();
    const sessions: Record<Side, Session> = { alice: p.a, bob: p.b };
    const spent: Record<Side, Uint8Array[]> = { alice: [], bob: [] };
    const sent: Sent[] = [];
    const held: { msg: Sent; releaseAt: number }[] = [];
    const rand = seededRandom(0xc2);
    const perSide = EXTENDED ? 200 : 60;
    let skippedSeen = 0;
    let heldOpened = 0;
    let replays = 0;

    const checkSnapshot = (side: Side) => {
      const snapshot = sessions[side].pickle();
      for (const key of spent[side]) assert.ok(!containsBytes(snapshot, key), `${side}: a spent key is still in the snapshot`);
      const attacker = clone(sessions[side]);
      for (const m of sent) {
        if (m.to !== side) continue;
        if (m.delivered) {
          replays++;
          expectError(() => attacker.decrypt(m.wire), ['DUPLICATE_MESSAGE', 'AUTH_FAILED'], `${side}: earlier message "${m.plaintext}"`);
        } else {
          // Still in flight: it must open (from a held skipped key or a chain not reached yet).
          assert.equal(str(clone(sessions[side]).decrypt(m.wire)), m.plaintext);
          heldOpened++;
        }
      }
      const inFlight = sent.filter((m) => m.to === side && !m.delivered).length;
      assert.ok(sessions[side].skippedKeyCount <= inFlight, `${side}: skipped keys only for messages still in flight`);
      skippedSeen = Math.max(skippedSeen, sessions[side].skippedKeyCount);
    };

    const deliver = (m: Sent) => {
      const { result, consumed } = tapped('decrypt', () => sessions[m.to].decrypt(m.wire));
      assert.equal(str(result), m.plaintext);
      m.delivered = true;
      spent[m.to].push(...consumed);
      checkSnapshot(m.to);
    };

    let sentBy = { alice: 0, bob: 0 };
    for (let burst = 0; sentBy.alice < perSide || sentBy.bob < perSide; burst++) {
      const from: Side = sentBy.alice >= perSide ? 'bob' : sentBy.bob >= perSide ? 'alice' : rand() < 0.5 ? 'alice' : 'bob';
      const to: Side = from === 'alice' ? 'bob' : 'alice';
      const size = 1 + Math.floor(rand() * 3);
      const batch: Sent[] = [];
      for (let i = 0; i < size && sentBy[from] < perSide; i++) {
        const plaintext = `${from} #${sentBy[from]++}`;
        const { result: wire, consumed } = tapped('encrypt', () => sessions[from].encrypt(text(plaintext)));
        spent[from].push(...consumed);
        checkSnapshot(from);
        const m: Sent = { to, wire, plaintext, delivered: false };
        sent.push(m);
        batch.push(m);
      }
      // Shuffle the burst, hold one back now and then, and release held ones when due.
      batch.sort(() => rand() - 0.5);
      if (batch.length > 1 && rand() < 0.3) held.push({ msg: batch.shift()!, releaseAt: burst + 2 + Math.floor(rand() * 3) });
      for (const m of batch) deliver(m);
      for (const h of held.filter((h) => h.releaseAt <= burst)) {
        held.splice(held.indexOf(h), 1);
        deliver(h.msg);
      }
    }
    for (const h of held) deliver(h.msg);

    assert.equal(sent.length, 2 * perSide);
    assert.ok(sent.every((m) => m.delivered));
    assert.equal(p.a.skippedKeyCount, 0);
    assert.equal(p.b.skippedKeyCount, 0);
    assert.ok(skippedSeen > 0, 'the schedule did leave skipped keys to test against');
    assert.ok(heldOpened > 0, 'some snapshots held in-flight messages');
    assert.ok(replays > 2000, `replayed ${replays} earlier messages into snapshots`);
  });
});

describe('C3 post-compromise security: a copy of Alice taken at t0 is locked out after one round trip', () => {
  /** Alice has just received Bob's message, so her next send uses a fresh ratchet key. */
  function atPendingSendRatchet() {
    const p = establish();
    p.a.decrypt(p.b.encrypt(text('bob before t0')));
    assert.equal(unsafeDecodeSessionPickle(p.a.pickle()).state.sendRatchetPending, true);
    return p;
  }

  test('healing: after Alice -> Bob -> Alice the attacker copy cannot read Bob\'s reply or his next message', () => {
    const p = atPendingSendRatchet();
    const attacker = clone(p.a); // t0
    assert.equal(str(p.b.decrypt(p.a.encrypt(text('alice after t0')))), 'alice after t0');
    const reply = p.b.encrypt(text('bob reply'));
    assert.equal(str(p.a.decrypt(reply)), 'bob reply');
    const next = p.b.encrypt(text('bob next'));
    const digest = attacker.stateDigest();
    expectError(() => attacker.decrypt(reply), 'AUTH_FAILED', 'attacker reads the reply');
    expectError(() => attacker.decrypt(next), 'AUTH_FAILED', 'attacker reads the next message');
    assert.equal(attacker.stateDigest(), digest);
    assert.equal(str(p.a.decrypt(next)), 'bob next', 'the real Alice still reads it');
  });

  test('the attacker copy sending after the heal is rejected as a fork (SESSION_FORK_DETECTED) and changes nothing at Bob', () => {
    const p = atPendingSendRatchet();
    const attacker = clone(p.a);
    p.b.decrypt(p.a.encrypt(text('alice after t0')));
    p.a.decrypt(p.b.encrypt(text('bob reply')));
    const bobDigest = p.b.stateDigest();
    // Observed behaviour: the copy's header is sealed with the header key of the chain Alice
    // opened after t0 (the copy derives the same one), so it decrypts under Bob's current
    // receiving header key; but it names a ratchet key that is not that chain's: a second copy
    // of Alice's state is sending. Bob rejects it as a fork (ratchet.ts decryptCurrentChain)
    // before any DH.
    for (let i = 0; i < 3; i++) {
      const forged = attacker.encrypt(text(`attacker ${i}`));
      expectError(() => p.b.decrypt(forged), 'SESSION_FORK_DETECTED', `forged message ${i}`);
    }
    assert.equal(p.b.stateDigest(), bobDigest);
    assert.equal(str(p.b.decrypt(p.a.encrypt(text('alice again')))), 'alice again');
  });

  test('fork race: a copy that reaches Bob first is accepted, then the real Alice raises SESSION_FORK_DETECTED at Bob, never both', () => {
    // C3 b: Bob accepts at most one of the two forks of Alice's chain. If the copy's message
    // arrives first, Bob follows the copy's ratchet key; every later message of the real Alice on
    // the forked chain authenticates under the same header key with another ratchet key, which
    // only a fork produces: SESSION_FORK_DETECTED, Bob's state unchanged, no second plaintext.
    const p = atPendingSendRatchet();
    const attacker = clone(p.a);
    const real = p.a.encrypt(text('real alice'));
    const forged = attacker.encrypt(text('attacker'));
    assert.equal(str(p.b.decrypt(forged)), 'attacker', 'the first fork to arrive is accepted');
    const digest = p.b.stateDigest();
    expectError(() => p.b.decrypt(real), 'SESSION_FORK_DETECTED', 'the real Alice on the forked chain');
    expectError(() => p.b.decrypt(p.a.encrypt(text('real alice 2'))), 'SESSION_FORK_DETECTED', 'and her next message');
    assert.equal(p.b.stateDigest(), digest);
    // A forgery under no header key is still AUTH_FAILED, not a fork.
    const bogus = p.a.encrypt(text('x'));
    bogus[30]! ^= 1; // inside the encrypted header
    expectError(() => p.b.decrypt(bogus), 'AUTH_FAILED', 'a flipped header byte');
    // Bob's answer goes to the fork he follows; the real Alice cannot read it either.
    const answer = p.b.encrypt(text('to whom it may concern'));
    expectError(() => p.a.decrypt(answer), 'AUTH_FAILED', 'real Alice reads the answer to the fork');
  });

  test('healing needs Alice\'s fresh key: a copy taken after Alice sent reads Bob until Alice sends again (inherent to the Double Ratchet)', () => {
    const p = establish();
    p.b.decrypt(p.a.encrypt(text('alice on her chain'))); // Alice's current ratchet key is now in the copy
    const attacker = clone(p.a);
    // Bob -> Alice: Bob's new chain uses Alice's key the attacker holds, so the copy can read it.
    const bobFirst = p.b.encrypt(text('bob 1'));
    assert.equal(str(clone(attacker).decrypt(bobFirst)), 'bob 1', 'no healing yet: Alice has not ratcheted since t0');
    p.a.decrypt(bobFirst);
    // Alice -> Bob with a fresh key, then Bob's next chain is out of the attacker's reach.
    p.b.decrypt(p.a.encrypt(text('alice fresh')));
    const bobNext = p.b.encrypt(text('bob 2'));
    expectError(() => attacker.decrypt(bobNext), 'AUTH_FAILED', 'attacker after the heal');
    assert.equal(str(p.a.decrypt(bobNext)), 'bob 2');
  });
});
