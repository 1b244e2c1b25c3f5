/**
 * Tampering (docs/threats.md C10 ciphertext/tag, C11 header/AD and "state mutated before the MAC
 * check", section (c) "Malformed-input rejection"). Every single-bit flip of whole messages
 * (version, type, header nonce, encrypted header, body nonce, body, tag) and of a prekey
 * message's identity, base key and ids is rejected with a typed error, the receiver's state
 * digest is unchanged, and the untampered message still decrypts afterwards.
 */
import { describe, test, before } from 'node:test';
import assert from 'node:assert/strict';
import { Account, initCrypto, associatedData, type ParleyErrorCode, type Session } from '../../src/index.js';
import {
  accountDigest,
  clone,
  establish,
  expectError,
  flipBit,
  seededRandom,
  sendMany,
  str,
  text,
  unsafeCraftMessage,
  unsafeDecodeSessionPickle,
  unsafeMessageKey,
  withCounts,
} from '../helpers/protocol.js';
import { concatBytes } from '../../src/bytes.js';

before(() => initCrypto('node'));

/** The code a flip of byte `offset` of a type-0x02 message must give. */
function ratchetFlipCode(offset: number): ParleyErrorCode {
  if (offset === 0) return 'UNSUPPORTED_VERSION';
  if (offset === 1) return 'MALFORMED_MESSAGE';
  return 'AUTH_FAILED'; // header nonce, encrypted header, body nonce, body and tag are all authenticated
}

/** Flips every bit of `wire` into `receiver`, then delivers the real message. */
function flipEveryBit(receiver: Session, wire: Uint8Array, plaintext: string, codeAt: (offset: number) => ParleyErrorCode | readonly ParleyErrorCode[]): number {
  const digest = receiver.stateDigest();
  for (let bit = 0; bit < wire.length * 8; bit++) {
    expectError(() => receiver.decrypt(flipBit(wire, bit)), codeAt(bit >> 3), `${plaintext}: bit ${bit} (byte ${bit >> 3})`);
    if (bit % 64 === 0) assert.equal(receiver.stateDigest(), digest, `${plaintext}: state changed by flip ${bit}`);
  }
  assert.equal(receiver.stateDigest(), digest, `${plaintext}: state changed`);
  assert.equal(str(receiver.decrypt(wire)), plaintext, `${plaintext}: the real message still opens`);
  return wire.length * 8;
}

describe('C10/C11 single-bit flips', () => {
  test('every bit of 10 messages (new chains, current chains, skipped keys, both directions) -> typed rejection, state unchanged', () => {
    const { a, b } = establish();
    let flips = 0;
    // 1: Alice opens a new chain: flips reach Bob's next-header-key path (a DH ratchet attempt).
    const [a0, a1, a2] = sendMany(a, 3, 'alice');
    flips += flipEveryBit(b, a0!.wire, a0!.plaintext, ratchetFlipCode);
    // 2: out of order on the current chain (a2 skips a1), 3: a1 from the skipped-key store.
    flips += flipEveryBit(b, a2!.wire, a2!.plaintext, ratchetFlipCode);
    flips += flipEveryBit(b, a1!.wire, a1!.plaintext, ratchetFlipCode);
    // 4-6: Bob's new chain and its successors to Alice.
    for (const m of sendMany(b, 3, 'bob')) flips += flipEveryBit(a, m.wire, m.plaintext, ratchetFlipCode);
    // 7: a skipped key of an older chain (Bob's chain after Alice ratcheted past it).
    const [late, onTime] = sendMany(b, 2, 'bob late');
    flips += flipEveryBit(a, onTime!.wire, onTime!.plaintext, ratchetFlipCode);
    b.decrypt(a.encrypt(text('turn')));
    a.decrypt(b.encrypt(text('turn back')));
    flips += flipEveryBit(a, late!.wire, late!.plaintext, ratchetFlipCode);
    // 9-10: a long message (several padding buckets) each way.
    flips += flipEveryBit(b, a.encrypt(text('x'.repeat(700))), 'x'.repeat(700), ratchetFlipCode);
    flips += flipEveryBit(a, b.encrypt(text('y'.repeat(300))), 'y'.repeat(300), ratchetFlipCode);
    assert.ok(flips > 30_000, `${flips} flips`);
  });

  test('every bit of a prekey message into Bob\'s account (identity, binding, base key, ids, flags, inner message) -> typed rejection, account unchanged', () => {
    const alice = Account.create();
    const bob = Account.create();
    bob.generateOneTimePrekeys(2);
    const wire = alice.createOutboundSession(bob.bundle()).encrypt(text('first'));
    const digest = accountDigest(bob);
    const codeAt = (offset: number): readonly ParleyErrorCode[] => {
      if (offset === 0) return ['UNSUPPORTED_VERSION'];
      if (offset === 1) return ['MALFORMED_MESSAGE'];
      if (offset < 130) return ['INVALID_SIGNATURE']; // Ed25519 key, X25519 key, binding signature
      // Bit 255 of the base key: a non-canonical encoding of the same key, refused as such.
      if (offset === 161) return ['AUTH_FAILED', 'INVALID_KEY'];
      if (offset < 162) return ['AUTH_FAILED']; // base key: other DH values, other SK, header fails
      if (offset < 166) return ['INVALID_PREKEY']; // signed prekey id
      if (offset === 166) return ['MALFORMED_MESSAGE']; // flags
      // One-time prekey id: unknown, or (id 2 -> 3) another of Bob's prekeys, so other DH values.
      if (offset < 171) return ['INVALID_PREKEY', 'AUTH_FAILED'];
      return [ratchetFlipCode(offset - 171)];
    };
    const seen = new Set<string>();
    for (let bit = 0; bit < wire.length * 8; bit++) {
      seen.add(expectError(() => bob.createInboundSession(flipBit(wire, bit)), codeAt(bit >> 3), `bit ${bit} (byte ${bit >> 3})`));
      if (bit % 256 === 0) assert.equal(accountDigest(bob), digest);
    }
    assert.equal(accountDigest(bob), digest, 'no one-time prekey consumed, no base key remembered');
    assert.deepEqual([...seen].sort(), ['AUTH_FAILED', 'INVALID_KEY', 'INVALID_PREKEY', 'INVALID_SIGNATURE', 'MALFORMED_MESSAGE', 'UNSUPPORTED_VERSION']);
    assert.equal(str(bob.createInboundSession(wire).plaintext), 'first');
  });

  test('every bit of a repeated prekey message into the existing responder session -> typed rejection, state unchanged', () => {
    const alice = Account.create();
    const bob = Account.create();
    bob.generateOneTimePrekeys(2);
    const a = alice.createOutboundSession(bob.bundle());
    const [p0, p1] = [a.encrypt(text('p0')), a.encrypt(text('p1'))];
    const { session: b } = bob.createInboundSession(p1);
    const digest = b.stateDigest();
    const codeAt = (offset: number): readonly ParleyErrorCode[] => {
      if (offset === 0) return ['UNSUPPORTED_VERSION'];
      if (offset === 1 || offset === 166) return ['MALFORMED_MESSAGE'];
      if (offset < 162) return ['AUTH_FAILED']; // someone else's identity or base key: not this session
      if (offset < 171) return ['AUTH_FAILED']; // ids: see the next test
      return [ratchetFlipCode(offset - 171)];
    };
    for (let offset = 0; offset < p0.length; offset++) {
      if (offset >= 162 && offset < 171 && offset !== 166) continue; // prekey ids: next test
      for (let bit = offset * 8; bit < offset * 8 + 8; bit++) {
        expectError(() => b.decrypt(flipBit(p0, bit)), codeAt(offset), `bit ${bit} (byte ${offset})`);
      }
    }
    assert.equal(b.stateDigest(), digest);
    assert.equal(str(b.decrypt(p0)), 'p0');
  });

  test('the prekey ids of a repeated prekey message are checked by the existing session: rewritten ids are refused', () => {
    // The ids are outside every AEAD; the responder session keeps the ids that opened it
    // (session pickle v2) and refuses a repeat naming others (audit finding 5).
    const alice = Account.create();
    const bob = Account.create();
    bob.generateOneTimePrekeys(2);
    const a = alice.createOutboundSession(bob.bundle());
    const [p0, p1] = [a.encrypt(text('p0')), a.encrypt(text('p1'))];
    const { session: b } = bob.createInboundSession(p1);
    const rewritten = flipBit(p0, 8 * 165 + 7); // signed prekey id + 1
    const digest = b.stateDigest();
    expectError(() => b.decrypt(rewritten), 'AUTH_FAILED', 'a rewritten signed-prekey id');
    assert.equal(b.stateDigest(), digest, 'nothing changed');
    assert.equal(str(b.decrypt(p0)), 'p0', 'the authentic repeat opens once');
    expectError(() => b.decrypt(p0), 'DUPLICATE_MESSAGE', 'and is then a duplicate');
  });
});

describe('C10 truncation, extension and splicing', () => {
  test('truncating or extending by 1-64 bytes -> MALFORMED_MESSAGE; by a whole padding bucket -> AUTH_FAILED', () => {
    const { a, b } = establish();
    const wire = a.encrypt(text('length matters'));
    const digest = b.stateDigest();
    const garbage = globalThis.crypto.getRandomValues(new Uint8Array(256));
    for (let k = 1; k <= 64; k++) {
      expectError(() => b.decrypt(wire.subarray(0, wire.length - k)), 'MALFORMED_MESSAGE', `truncated by ${k}`);
      expectError(() => b.decrypt(concatBytes(wire, garbage.subarray(0, k))), 'MALFORMED_MESSAGE', `extended by ${k}`);
      expectError(() => b.decrypt(concatBytes(wire, new Uint8Array(k))), 'MALFORMED_MESSAGE', `zero-extended by ${k}`);
    }
    expectError(() => b.decrypt(concatBytes(wire, garbage)), 'AUTH_FAILED', 'extended by one bucket');
    const long = a.encrypt(text('z'.repeat(400)));
    expectError(() => b.decrypt(long.subarray(0, long.length - 256)), 'AUTH_FAILED', 'truncated by one bucket');
    for (let k = 0; k < 106; k++) expectError(() => b.decrypt(wire.subarray(0, k)), 'MALFORMED_MESSAGE', `cut to ${k} bytes`);
    assert.equal(b.stateDigest(), digest);
    assert.equal(str(b.decrypt(wire)), 'length matters');
    assert.equal(str(b.decrypt(long)), 'z'.repeat(400));
  });

  test('10,000 random truncations, extensions and splices of real messages -> typed rejection, 0 plaintext, state unchanged', () => {
    const { a, b } = establish();
    const pool = [...sendMany(a, 5, 'short'), ...sendMany(a, 3, 'long '.repeat(80))].map((m) => m.wire);
    const prekey = establish({ reply: false }).prekeyMessage;
    pool.push(prekey);
    const rand = seededRandom(10);
    const pick = () => pool[Math.floor(rand() * pool.length)]!;
    const digest = b.stateDigest();
    const codes: Record<string, number> = {};
    for (let i = 0; i < 10_000; i++) {
      const x = pick();
      const y = pick();
      let forged: Uint8Array;
      const kind = Math.floor(rand() * 3);
      if (kind === 0) forged = x.subarray(0, Math.floor(rand() * x.length));
      else if (kind === 1) forged = concatBytes(x, globalThis.crypto.getRandomValues(new Uint8Array(1 + Math.floor(rand() * 300))));
      else {
        const cut = 3 + Math.floor(rand() * (Math.min(x.length, y.length) - 3));
        forged = concatBytes(x.subarray(0, cut), y.subarray(cut));
        // A splice that reproduces a real message (same bytes before the cut) is not a forgery.
        if (pool.some((w) => w.length === forged.length && w.every((v, j) => v === forged[j]))) forged[cut]! ^= 1;
      }
      const code = expectError(() => b.decrypt(forged), ['MALFORMED_MESSAGE', 'AUTH_FAILED', 'UNSUPPORTED_VERSION'], `forgery ${i} (kind ${kind})`);
      codes[code] = (codes[code] ?? 0) + 1;
    }
    assert.equal(b.stateDigest(), digest);
    assert.ok((codes.MALFORMED_MESSAGE ?? 0) > 1000 && (codes.AUTH_FAILED ?? 0) > 1000, JSON.stringify(codes));
    for (const w of pool.slice(0, 8)) b.decrypt(w);
  });
});

describe('C11 AD binding and transactional decrypt', () => {
  test('a message for Bob fed to Bob\'s session with Carol, and to Carol\'s session with Bob -> AUTH_FAILED', () => {
    const ab = establish();
    const carol = Account.create();
    const cb = carol.createOutboundSession(ab.bob.bundle());
    const { session: bobWithCarol } = ab.bob.createInboundSession(cb.encrypt(text('carol here')));
    const forBob = ab.a.encrypt(text('for bob from alice'));
    for (const [s, label] of [[bobWithCarol, 'bob-carol session'], [cb, 'carol-bob session']] as const) {
      const digest = s.stateDigest();
      expectError(() => s.decrypt(forBob), 'AUTH_FAILED', label);
      assert.equal(s.stateDigest(), digest);
    }
    assert.equal(str(ab.b.decrypt(forBob)), 'for bob from alice');
  });

  test('a message sealed with the right keys but another AD (other identity, swapped roles, other version) -> AUTH_FAILED', () => {
    const { a, b } = establish();
    b.decrypt(a.encrypt(text('chain open')));
    const d = unsafeDecodeSessionPickle(a.pickle());
    const craft = (ad: Uint8Array) =>
      unsafeCraftMessage({
        headerKey: d.state.hks!,
        ad,
        ratchetKey: d.state.dhSelf!.publicKey,
        pn: d.state.pn,
        n: d.state.ns,
        messageKey: unsafeMessageKey(d.state.sendChain!),
        plaintext: text('crafted'),
      });
    // Control: with the session's own AD the crafted message is genuine.
    assert.equal(str(clone(b).decrypt(craft(d.ad))), 'crafted');
    assert.deepEqual(d.ad, associatedData(a.localIdentity, a.remoteIdentity));
    const mallory = Account.create().publicIdentity;
    const otherVersion = d.ad.slice();
    otherVersion[0] = 0x02;
    const variants: [string, Uint8Array][] = [
      ['roles swapped (Bob || Alice)', associatedData(a.remoteIdentity, a.localIdentity)],
      ['initiator replaced by Mallory', associatedData(mallory, a.remoteIdentity)],
      ['responder replaced by Mallory', associatedData(a.localIdentity, mallory)],
      ['version byte 0x02 in the AD', otherVersion],
    ];
    const digest = b.stateDigest();
    for (const [label, ad] of variants) expectError(() => b.decrypt(craft(ad)), 'AUTH_FAILED', label);
    assert.equal(b.stateDigest(), digest);
  });

  test('a genuine header that forces a DH ratchet step, with a forged body: AUTH_FAILED, and the step is discarded', () => {
    const { a, b } = establish(); // Alice's next message opens a new chain
    const wire = a.encrypt(text('new chain'));
    const forged = wire.slice();
    forged.set(globalThis.crypto.getRandomValues(new Uint8Array(forged.length - 106)), 106);
    const digest = b.stateDigest();
    const { error, counts } = withCounts(['x25519', 'hkdfSha256'], () => b.decrypt(forged));
    assert.ok(error, 'must throw');
    expectError(() => {
      throw error;
    }, 'AUTH_FAILED');
    assert.equal(counts.x25519, 1, 'the header was genuine: the DH step was attempted');
    assert.equal(counts.hkdfSha256, 1);
    assert.equal(b.stateDigest(), digest, 'no header-key rotation, no DH step, no receiver chain committed');
    // Forged body on a current-chain header that skips ahead: no skipped keys are stored.
    const [, second] = sendMany(a, 2, 'skip');
    const forgedSkip = second!.wire.slice();
    forgedSkip[forgedSkip.length - 1]! ^= 1;
    expectError(() => b.decrypt(forgedSkip), 'AUTH_FAILED');
    assert.equal(b.stateDigest(), digest);
    assert.equal(b.skippedKeyCount, 0);
    assert.equal(str(b.decrypt(wire)), 'new chain');
  });
});
