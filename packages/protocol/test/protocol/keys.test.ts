/**
 * Hostile public keys and misrouted prekey messages (docs/threats.md C15 low-order X25519 points,
 * C17 unknown key-share / wrong recipient).
 *
 * C15 uses the public keys of the 31 Wycheproof X25519 cases flagged ZeroSharedSecret (read from
 * test/vectors/data at test time; 14 distinct points) in every position a peer can choose: the
 * identity X25519 key (with a valid binding signature the test makes), the signed prekey
 * (validly signed), the one-time prekey, the base key of a prekey message, the initiator
 * identity of a prekey message, and a DH ratchet key (a peer-authentic header crafted with the
 * sender's header key). Each must give INVALID_KEY with no session and no state change, with the
 * same verdicts on every backend.
 *
 * Policy for non-canonical encodings (documented here, enforced in Account.createInboundSession):
 * a base key with bit 255 set or u >= 2^255-19 is refused with INVALID_KEY, because it is a
 * second encoding of another key (see replay.test.ts C6). Other public keys are authenticated
 * (identity binding, SPK signature, header AEAD), so their encodings cannot be altered in transit.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Account, contextMessage, getCrypto, initCrypto, limits, signedPrekeyPayload, toHex, type ParleyErrorCode } from '../../src/index.js';
import { concatBytes } from '../../src/bytes.js';
import {
  BACKENDS,
  accountDigest,
  establish,
  expectError,
  str,
  testSigner,
  text,
  unsafeCraftMessage,
  unsafeDecodeSessionPickle,
  zeroSharedSecretPublicKeys,
} from '../helpers/protocol.js';

const LOW_ORDER = zeroSharedSecretPublicKeys();

/** A valid signed-prekey signature by the Ed25519 seed `seed` (a signer the test controls). */
function signSpk(seed: Uint8Array, spk: { id: number; createdAt: number; publicKey: Uint8Array }): Uint8Array {
  return getCrypto().ed25519Sign(seed, contextMessage('signedPrekey', signedPrekeyPayload(spk)));
}

describe('C15 low-order X25519 keys in every position -> INVALID_KEY, no session, on every backend', () => {
  const verdicts = new Map<string, string>();

  for (const backend of BACKENDS) {
    test(`${backend}: ${LOW_ORDER.length} distinct ZeroSharedSecret points x 6 positions`, async () => {
      await initCrypto(backend);
      const alice = Account.create();
      const bob = Account.create();
      bob.generateOneTimePrekeys(1);
      const mallory = testSigner();
      const legit = alice.createOutboundSession(bob.bundle()).encrypt(text('legit'));
      const bobDigest = accountDigest(bob);

      // A live session where Alice's next message opens a new chain (for the ratchet-key case).
      const p = establish();
      const pending = unsafeDecodeSessionPickle(p.a.pickle());
      assert.equal(pending.state.sendRatchetPending, true);
      const sessionDigest = p.b.stateDigest();

      for (const { tcIds, publicKey: low } of LOW_ORDER) {
        const tag = `${backend} tc ${tcIds.join(',')}`;
        const record = (position: string, code: ParleyErrorCode) => verdicts.set(`${backend}|${toHex(low)}|${position}`, code);
        // 1. Identity X25519 key of the responder, validly bound by the responder's Ed25519 key.
        const lowIdentity = mallory.identityFor(low);
        const normalSpk = { id: 1, createdAt: 0, publicKey: bob.signedPrekey.publicKey };
        const bundle1 = { identity: lowIdentity, signedPrekey: { ...normalSpk, signature: signSpk(mallory.seed, normalSpk) } };
        record('responder identity', expectError(() => alice.createOutboundSession(bundle1), 'INVALID_KEY', `${tag}: responder identity`));

        // 2. Signed prekey, validly signed by Bob's own identity key.
        const spk2 = { id: 9, createdAt: 0, publicKey: low };
        const bundle2 = { identity: bob.publicIdentity, signedPrekey: { ...spk2, signature: bob.sign('signedPrekey', signedPrekeyPayload(spk2)) } };
        record('signed prekey', expectError(() => alice.createOutboundSession(bundle2), 'INVALID_KEY', `${tag}: signed prekey`));

        // 3. One-time prekey in an otherwise valid bundle.
        const bundle3 = { ...bob.bundle(), oneTimePrekey: { id: 77, publicKey: low } };
        record('one-time prekey', expectError(() => alice.createOutboundSession(bundle3), 'INVALID_KEY', `${tag}: one-time prekey`));

        // 4. Base key of a prekey message (bytes 130..162).
        const withBase = legit.slice();
        withBase.set(low, 130);
        record('base key', expectError(() => bob.createInboundSession(withBase), 'INVALID_KEY', `${tag}: base key`));

        // 5. Initiator identity of a prekey message (bytes 2..130), validly bound.
        const withIdentity = legit.slice();
        withIdentity.set(concatBytes(lowIdentity.signingKey, lowIdentity.dhKey, lowIdentity.binding), 2);
        record('initiator identity', expectError(() => bob.createInboundSession(withIdentity), 'INVALID_KEY', `${tag}: initiator identity`));
        assert.equal(accountDigest(bob), bobDigest, `${tag}: Bob's account unchanged`);

        // 6. DH ratchet key in a peer-authentic header (Alice's next header key, as Bob expects).
        const crafted = unsafeCraftMessage({ headerKey: pending.state.hks!, ad: pending.ad, ratchetKey: low, pn: 0, n: 0 });
        record('ratchet key', expectError(() => p.b.decrypt(crafted), 'INVALID_KEY', `${tag}: ratchet key`));
        assert.equal(p.b.stateDigest(), sessionDigest, `${tag}: no ratchet step`);
      }
      // The same account and session still work.
      assert.equal(str(bob.createInboundSession(legit).plaintext), 'legit');
      assert.equal(str(p.b.decrypt(p.a.encrypt(text('fine')))), 'fine');
    });
  }

  test('the verdicts are identical on every backend', () => {
    const byCase = new Map<string, Set<string>>();
    for (const [key, code] of verdicts) {
      const [, point, position] = key.split('|');
      const k = `${point}|${position}`;
      byCase.set(k, (byCase.get(k) ?? new Set()).add(code));
    }
    assert.equal(byCase.size, LOW_ORDER.length * 6);
    assert.equal(verdicts.size, LOW_ORDER.length * 6 * BACKENDS.length);
    for (const [k, codes] of byCase) assert.deepEqual([...codes], ['INVALID_KEY'], k);
  });

  test('non-canonical base keys (bit 255 set, u >= p) are refused, canonical ones work', async () => {
    await initCrypto('node');
    const alice = Account.create();
    const bob = Account.create();
    const wire = alice.createOutboundSession(bob.bundle()).encrypt(text('x'));
    const pMinus1PlusK = (k: number) => {
      const u = new Uint8Array(32).fill(0xff);
      u[31] = 0x7f;
      u[0] = 0xed + k; // p + k, an alias of k
      return u;
    };
    for (const [label, key] of [['p + 9 (alias of the base point)', pMinus1PlusK(9)], ['p + 0', pMinus1PlusK(0)]] as const) {
      const forged = wire.slice();
      forged.set(key, 130);
      expectError(() => bob.createInboundSession(forged), 'INVALID_KEY', label);
    }
    const highBit = wire.slice();
    highBit[161]! |= 0x80;
    expectError(() => bob.createInboundSession(highBit), 'INVALID_KEY', 'bit 255 set');
    assert.equal(str(bob.createInboundSession(wire).plaintext), 'x');
  });
});

describe('C17 wrong recipient and re-targeted prekey messages', () => {
  test('Alice\'s prekey message for Bob fed to Carol\'s account (same prekey ids) -> AUTH_FAILED, Carol unchanged', async () => {
    await initCrypto('node');
    const alice = Account.create();
    const bob = Account.create();
    const carol = Account.create();
    bob.generateOneTimePrekeys(1);
    carol.generateOneTimePrekeys(1);
    assert.equal(carol.signedPrekey.id, bob.signedPrekey.id, 'ids collide, so the refusal must come from the keys');
    const wire = alice.createOutboundSession(bob.bundle()).encrypt(text('for bob'));
    const digest = accountDigest(carol);
    expectError(() => carol.createInboundSession(wire), ['INVALID_PREKEY', 'AUTH_FAILED'], 'to Carol');
    assert.equal(accountDigest(carol), digest);
    // With Carol's prekey ids out of line the refusal is INVALID_PREKEY: her SPK with Bob's id
    // is retired and, once its grace is over, deleted.
    const now = Date.now();
    carol.rotateSignedPrekey(now);
    carol.deleteExpiredSignedPrekeys(now + limits.SIGNED_PREKEY_GRACE_MS);
    expectError(() => carol.createInboundSession(wire), 'INVALID_PREKEY', 'unknown prekey id');
    assert.equal(str(bob.createInboundSession(wire).plaintext), 'for bob');
  });

  test('Mallory swaps her own identity into Alice\'s prekey message -> AUTH_FAILED (the identities are bound into the keys and the AD)', async () => {
    await initCrypto('node');
    const alice = Account.create();
    const bob = Account.create();
    const mallory = Account.create().publicIdentity;
    const wire = alice.createOutboundSession(bob.bundle()).encrypt(text('from alice'));
    const forged = wire.slice();
    forged.set(concatBytes(mallory.signingKey, mallory.dhKey, mallory.binding), 2);
    expectError(() => bob.createInboundSession(forged), 'AUTH_FAILED', 'sender swapped');
    const { session } = bob.createInboundSession(wire);
    assert.equal(session.remoteDeviceId, alice.deviceId);
  });

  test('Mallory re-publishes Bob\'s keys under her name: the session is with Bob\'s device id on both sides, never Mallory\'s', async () => {
    await initCrypto('node');
    const alice = Account.create();
    const bob = Account.create();
    const mallory = Account.create();
    const relabelled = { ...bob.bundle() }; // served as "Mallory" by a lying directory
    const a = alice.createOutboundSession(relabelled);
    assert.equal(a.remoteDeviceId, bob.deviceId);
    assert.notEqual(a.remoteDeviceId, mallory.deviceId);
    const { session: b } = bob.createInboundSession(a.encrypt(text('hi')));
    assert.equal(b.remoteDeviceId, alice.deviceId);
    // Mapping the label "Mallory" to a device id is the app's job (org certificate); the
    // protocol guarantees only that the id is derived from the keys actually used.
  });
});
