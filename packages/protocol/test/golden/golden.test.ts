/**
 * Known-answer evidence for the whole protocol: the frozen v4 transcript (golden-v4.json), and
 * the frozen v1, v2 and v3 transcripts (golden-v1.json to golden-v3.json), whose pickles later
 * code must still read.
 *
 * 1. The deterministic generator (generate.ts) is re-run on every backend and must reproduce
 *    the frozen file byte for byte: X3DH KDF, identities, bundle, prekey message, every
 *    ciphertext, every pickle and digest. Any change to a KDF label, a layout, the padding or
 *    the ratchet order fails here loudly.
 * 2. Independently of the generator, the frozen ciphertexts are decrypted from the frozen
 *    pickles on every backend, so later code must still read what v1 wrote.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Account, Session, fromHex, initCrypto, safetyNumber, toHex } from '../../src/index.js';
import { BACKENDS, str } from '../helpers/protocol.js';
import { GENERATOR_VERSION, GOLDEN_PATH, GOLDEN_V1_PATH, GOLDEN_V2_PATH, GOLDEN_V3_PATH, generateGolden, type GoldenV1 } from './generate.js';

const frozen = JSON.parse(readFileSync(GOLDEN_PATH, 'utf8')) as GoldenV1;
const frozenV1 = JSON.parse(readFileSync(GOLDEN_V1_PATH, 'utf8')) as GoldenV1;
const frozenV2 = JSON.parse(readFileSync(GOLDEN_V2_PATH, 'utf8')) as GoldenV1;
const frozenV3 = JSON.parse(readFileSync(GOLDEN_V3_PATH, 'utf8')) as GoldenV1;

describe('golden v1 transcript (session pickle version 1): still read', () => {
  test('v2 changed the session pickle only: same seed, identities, accounts and ciphertexts', () => {
    assert.equal(frozenV1.seed, frozenV2.seed);
    assert.deepEqual(frozenV1.messages, frozenV2.messages);
    assert.deepEqual(frozenV1.final.bobAccount, frozenV2.final.bobAccount);
    assert.notEqual(frozenV1.bobSessionAfterPrekey, frozenV2.bobSessionAfterPrekey, 'the responder now keeps its prekey ids');
  });

  for (const backend of BACKENDS) {
    test(`${backend}: every frozen v1 session pickle loads and opens the message it was frozen before`, async () => {
      await initCrypto(backend);
      for (const d of frozenV1.deliveries) {
        const m = frozenV1.messages[d.index]!;
        const receiver = Session.unpickle(fromHex(d.receiverBefore));
        assert.equal(str(receiver.decrypt(fromHex(m.wire))), m.plaintext, `message ${d.index}`);
      }
      const a = Session.unpickle(fromHex(frozenV1.final.aliceSession));
      const b = Session.unpickle(fromHex(frozenV1.final.bobSession));
      assert.equal(str(b.decrypt(a.encrypt(new TextEncoder().encode('after the v1 transcript')))), 'after the v1 transcript');
    });
  }
});

describe('golden v2 transcript (account pickle version 1): still read', () => {
  test('v3 changed the account pickle only: same seed, identities, ciphertexts and session pickles', () => {
    assert.equal(frozenV2.seed, frozenV3.seed);
    assert.deepEqual(frozenV2.messages, frozenV3.messages);
    assert.deepEqual(frozenV2.deliveries, frozenV3.deliveries);
    assert.deepEqual(frozenV2.final.bobSession, frozenV3.final.bobSession);
    assert.notEqual(frozenV2.final.bobAccount, frozenV3.final.bobAccount, 'signed prekeys now keep their own base keys');
  });

  for (const backend of BACKENDS) {
    test(`${backend}: the frozen v1 account pickles load, open the first message, and are rewritten as the v3 ones`, async () => {
      await initCrypto(backend);
      const bob = Account.unpickle(fromHex(frozenV2.bob.accountPickle));
      const first = frozenV2.messages[0]!;
      assert.equal(str(bob.createInboundSession(fromHex(first.wire)).plaintext), first.plaintext);
      assert.equal(toHex(bob.pickle()), frozen.final.bobAccount, 'read as v1, written as v2: the same account');
      // The v1 account that remembered the first message's base key: migrated, it is the same
      // account (the base key now under its signed prekey) and still refuses the replay.
      const after = Account.unpickle(fromHex(frozenV2.final.bobAccount));
      assert.equal(toHex(after.pickle()), frozen.final.bobAccount);
      assert.throws(() => after.createInboundSession(fromHex(first.wire)), /one-time prekey|already used/);
      assert.equal(toHex(Account.unpickle(fromHex(frozenV2.alice.accountPickle)).pickle()), frozen.alice.accountPickle);
    });
  }
});

describe('golden v3 transcript (session pickle version 2): still read', () => {
  test('v4 changed the session pickle only: same seed, identities, accounts and ciphertexts', () => {
    assert.equal(frozenV3.seed, frozen.seed);
    assert.deepEqual(frozenV3.messages, frozen.messages);
    assert.deepEqual(frozenV3.final.bobAccount, frozen.final.bobAccount);
    assert.deepEqual(frozenV3.final.aliceAccount, frozen.final.aliceAccount);
    assert.notEqual(frozenV3.final.bobSession, frozen.final.bobSession, 'skipped keys now keep their skip time');
  });

  for (const backend of BACKENDS) {
    test(`${backend}: every frozen v3 session pickle loads and opens the message it was frozen before`, async () => {
      await initCrypto(backend);
      for (const d of frozenV3.deliveries) {
        const m = frozenV3.messages[d.index]!;
        const receiver = Session.unpickle(fromHex(d.receiverBefore));
        assert.equal(str(receiver.decrypt(fromHex(m.wire), { now: frozen.now })), m.plaintext, `message ${d.index}`);
      }
      const a = Session.unpickle(fromHex(frozenV3.final.aliceSession));
      const b = Session.unpickle(fromHex(frozenV3.final.bobSession));
      assert.equal(str(b.decrypt(a.encrypt(new TextEncoder().encode('after the v3 transcript')))), 'after the v3 transcript');
    });
  }
});

describe('golden v4 transcript', () => {
  test('the frozen file is the current generator version and a complete transcript', () => {
    assert.equal(frozen.generatorVersion, GENERATOR_VERSION);
    assert.equal(frozen.messages.length, 11);
    assert.equal(frozen.deliveries.length, 10);
    assert.deepEqual(frozen.deliveries.map((d) => d.index).slice(0, 2), [2, 1], 'an out-of-order pair');
    assert.ok(frozen.deliveries.every((d) => typeof d.now === 'number' && d.now > frozen.now), 'every delivery has its clock');
    assert.ok(frozen.note.length > 0);
  });

  for (const backend of BACKENDS) {
    test(`${backend}: regenerating the transcript reproduces every frozen byte`, async () => {
      await initCrypto(backend);
      const fresh = generateGolden();
      // Field by field first, for a readable failure, then the whole serialisation.
      for (const key of Object.keys(frozen) as (keyof GoldenV1)[]) assert.deepEqual(fresh[key], frozen[key], `${backend}: ${key}`);
      assert.equal(JSON.stringify(fresh, null, 2) + '\n', readFileSync(GOLDEN_PATH, 'utf8'));
    });

    test(`${backend}: the frozen ciphertexts open from the frozen pickles`, async () => {
      await initCrypto(backend);
      const bob = Account.unpickle(fromHex(frozen.bob.accountPickle));
      assert.equal(bob.deviceId, frozen.bob.deviceId);
      const first = frozen.messages[0]!;
      const { session: b, plaintext } = bob.createInboundSession(fromHex(first.wire));
      assert.equal(str(plaintext), first.plaintext);
      assert.equal(toHex(b.pickle()), frozen.bobSessionAfterPrekey, 'the inbound session is the frozen one');
      assert.equal(toHex(bob.pickle()), frozen.final.bobAccount, 'one-time prekey consumed, base key remembered');
      assert.equal(b.sessionId, frozen.sessionId);

      // Each later message from the frozen state its receiver had just before it arrived (the
      // sender's own sends in between change that state: new ratchet keys, counters).
      assert.equal(frozen.deliveries[0]!.receiverBefore, frozen.aliceSessionAfterPrekey, 'Alice first hears back');
      let digests = { alice: '', bob: '' };
      for (const d of frozen.deliveries) {
        const m = frozen.messages[d.index]!;
        const to = m.from === 'alice' ? 'bob' : 'alice';
        const receiver = Session.unpickle(fromHex(d.receiverBefore));
        assert.equal(toHex(receiver.pickle()), d.receiverBefore);
        assert.equal(str(receiver.decrypt(fromHex(m.wire), { now: d.now })), m.plaintext, `message ${d.index}`);
        assert.equal(receiver.stateDigest(), d.receiverDigest, `digest after message ${d.index}`);
        digests = { ...digests, [to]: receiver.stateDigest() };
      }
      // Alice's last act was receiving message 10; Bob wrote message 10 after his last receive.
      assert.equal(digests.alice, frozen.final.aliceDigest);
      assert.notEqual(digests.bob, frozen.final.bobDigest);
      assert.equal(Session.unpickle(fromHex(frozen.final.aliceSession)).stateDigest(), frozen.final.aliceDigest);
      assert.equal(Session.unpickle(fromHex(frozen.final.bobSession)).stateDigest(), frozen.final.bobDigest);
      // The final pickles carry on: unpickled, they still talk to each other.
      const a2 = Session.unpickle(fromHex(frozen.final.aliceSession));
      const b2 = Session.unpickle(fromHex(frozen.final.bobSession));
      assert.equal(str(b2.decrypt(a2.encrypt(new TextEncoder().encode('after the transcript')))), 'after the transcript');
      const alice = Account.unpickle(fromHex(frozen.alice.accountPickle));
      assert.equal(safetyNumber(alice.publicIdentity, bob.publicIdentity), frozen.safetyNumber);
    });
  }
});
