/**
 * The X3DH replay window (docs/threats.md C6, issue 9 defect 2). A first message sent without a
 * one-time prekey can only be told apart from its replay by its base key, so a signed prekey
 * (SPK) remembers the base key of every session it accepted for as long as it accepts first
 * messages: until its grace after retirement ends and it is deleted. Memory is bounded by
 * refusing, never by forgetting: a full SPK refuses new first messages, and the account asks for
 * rotation well before that.
 */
import { describe, test, before } from 'node:test';
import assert from 'node:assert/strict';
import { Account, MESSAGE_TYPE, ParleyError, getCrypto, initCrypto, limits, parseMessage, signedPrekeyPayload, type PrekeyBundle } from '../../src/index.js';
import { ByteWriter } from '../../src/codec.js';
import { contextMessage } from '../../src/contexts.js';
import { accountDigest, expectError, str, text } from '../helpers/protocol.js';

before(() => initCrypto('node'));

const DAY = 24 * 3600 * 1000;
const T0 = 1_700_000_000_000;

/** A first message from a fresh sender session, without a one-time prekey unless the bundle has one. */
function firstMessage(alice: Account, bundle: PrekeyBundle, plaintext = 'hello'): Uint8Array {
  return alice.createOutboundSession(bundle).encrypt(text(plaintext));
}

/** The ParleyError `fn` throws; fails the test on anything else (and checks the code). */
function refusal(fn: () => unknown, code: ParleyError['code'], label: string): ParleyError {
  expectError(fn, code, label);
  try {
    fn();
  } catch (e) {
    if (e instanceof ParleyError) return e;
  }
  assert.fail(`${label}: no ParleyError the second time`);
}

describe('C6 replay window: base keys live as long as their signed prekey', () => {
  test('replayed SPK-only first message after 1,100 other sessions: DUPLICATE_MESSAGE, releases nothing, account unchanged', () => {
    const alice = Account.create();
    const bob = Account.create(); // no one-time prekeys: every first message is SPK-only
    const first = firstMessage(alice, bob.bundle(), 'first');
    assert.equal(str(bob.createInboundSession(first).plaintext), 'first');
    for (let i = 0; i < 1100; i++) bob.createInboundSession(firstMessage(alice, bob.bundle(), `other ${i}`));
    const digest = accountDigest(bob);
    expectError(() => bob.createInboundSession(first), 'DUPLICATE_MESSAGE', 'replay after 1,100 sessions');
    assert.equal(accountDigest(bob), digest);
    expectError(() => Account.unpickle(bob.pickle()).createInboundSession(first), 'DUPLICATE_MESSAGE', 'replay after 1,100 sessions and a restart');
  });

  test('a first message to a retired SPK opens within the grace and is refused (INVALID_PREKEY, retired) after it, even before cleanup ran', () => {
    const alice = Account.create();
    const bob = Account.create({ now: T0 });
    const late = firstMessage(alice, bob.bundle(), 'late');
    const retiredId = bob.signedPrekey.id;
    const T1 = T0 + 7 * DAY;
    bob.rotateSignedPrekey(T1);
    const graceEnd = T1 + limits.SIGNED_PREKEY_GRACE_MS;

    // Within the grace (a copy, so the same message can be tried again below).
    const within = Account.unpickle(bob.pickle());
    assert.equal(str(within.createInboundSession(late, { now: graceEnd - 1 }).plaintext), 'late');

    // A device offline for months: no cleanup ran, the age check refuses on its own.
    const digest = accountDigest(bob);
    const e = refusal(() => bob.createInboundSession(late, { now: graceEnd + 90 * DAY }), 'INVALID_PREKEY', 'past grace, not deleted');
    assert.equal(e.details?.reason, 'retired');
    assert.match(e.message, /fresh bundle/);
    expectError(() => bob.createInboundSession(late, { now: graceEnd }), 'INVALID_PREKEY', 'at the end of the grace');
    assert.equal(accountDigest(bob), digest);

    // Cleanup deletes it only once the grace ended; afterwards it is refused at any clock.
    assert.equal(bob.deleteExpiredSignedPrekeys(graceEnd - 1), 0);
    assert.equal(bob.deleteExpiredSignedPrekeys(graceEnd), 1);
    assert.equal(bob.deleteExpiredSignedPrekeys(graceEnd + DAY), 0, 'the current SPK is never deleted');
    const deleted = refusal(() => bob.createInboundSession(late, { now: T1 }), 'INVALID_PREKEY', 'deleted SPK');
    assert.equal(deleted.details?.reason, 'retired');
    assert.equal(deleted.details?.spkId, retiredId);
    // The current SPK is never refused for its age (it has no grace to outlive): a device
    // offline for a year still opens what was queued for it.
    assert.equal(str(bob.createInboundSession(firstMessage(alice, bob.bundle(), 'queued'), { now: T1 + 365 * DAY }).plaintext), 'queued');
  });

  test('an SPK id this account never issued: INVALID_PREKEY, reason unknown', () => {
    const alice = Account.create();
    const carol = Account.create();
    carol.generateOneTimePrekeys(10);
    carol.rotateSignedPrekey();
    const bob = Account.create();
    assert.ok(carol.signedPrekey.id > bob.signedPrekey.id);
    const wire = firstMessage(alice, { identity: carol.publicIdentity, signedPrekey: carol.signedPrekey });
    const e = refusal(() => bob.createInboundSession(wire), 'INVALID_PREKEY', 'unknown SPK id');
    assert.equal(e.details?.reason, 'unknown');
    assert.match(e.message, /fresh bundle/);
  });

  test('base keys survive pickle/unpickle, each under its SPK, across a rotation; the pickle is version 2 and round-trips', () => {
    const alice = Account.create();
    const bob = Account.create({ now: T0 });
    const oldBundle = bob.bundle();
    const m1 = firstMessage(alice, oldBundle, 'one');
    bob.createInboundSession(m1, { now: T0 });
    bob.rotateSignedPrekey(T0 + DAY);
    const m2 = firstMessage(alice, bob.bundle(), 'two');
    bob.createInboundSession(m2, { now: T0 + DAY });
    // Still in the old SPK's grace: it accepts new first messages and refuses its replays.
    const m3 = firstMessage(alice, oldBundle, 'three');
    bob.createInboundSession(m3, { now: T0 + 2 * DAY });

    const pickle = bob.pickle();
    assert.equal(pickle[4], 2, 'account pickle version 2');
    const restored = Account.unpickle(pickle);
    assert.deepEqual(restored.pickle(), pickle);
    for (const [label, m] of [['m1', m1], ['m2', m2], ['m3', m3]] as const) {
      expectError(() => restored.createInboundSession(m, { now: T0 + 3 * DAY }), 'DUPLICATE_MESSAGE', `${label} after restart`);
    }
  });
});

describe('C6 bounded memory: refuse rather than forget', () => {
  test(`rotation is due at ${limits.SIGNED_PREKEY_ROTATE_AT_BASE_KEYS} base keys; at ${limits.MAX_BASE_KEYS_PER_SIGNED_PREKEY} the SPK refuses (INVALID_PREKEY, full) and still refuses every replay`, () => {
    const alice = Account.create();
    const bob = Account.create();
    const bundle = bob.bundle();
    const first = firstMessage(alice, bundle, 'first');
    bob.createInboundSession(first);
    for (let n = 1; n < limits.MAX_BASE_KEYS_PER_SIGNED_PREKEY; n++) {
      assert.equal(bob.signedPrekeyRotationDue, n >= limits.SIGNED_PREKEY_ROTATE_AT_BASE_KEYS, `after ${n} sessions`);
      bob.createInboundSession(firstMessage(alice, bundle, `n ${n}`));
    }
    assert.equal(bob.signedPrekeyRotationDue, true);

    // Full: a new first message is refused before any DH, and nothing changes.
    const digest = accountDigest(bob);
    const e = refusal(() => bob.createInboundSession(firstMessage(alice, bundle, 'one too many')), 'INVALID_PREKEY', 'full SPK');
    assert.equal(e.details?.reason, 'full');
    assert.match(e.message, /fresh bundle/);
    expectError(() => bob.createInboundSession(first), 'DUPLICATE_MESSAGE', 'the oldest replay, on a full SPK');
    assert.equal(accountDigest(bob), digest);

    // The full set round-trips (bounded: 16 bytes per key), and refuses the same way after it.
    const pickle = bob.pickle();
    assert.ok(pickle.length < limits.MAX_BASE_KEYS_PER_SIGNED_PREKEY * 16 + 1000, `${pickle.length} bytes`);
    const restored = Account.unpickle(pickle);
    expectError(() => restored.createInboundSession(first), 'DUPLICATE_MESSAGE', 'replay after restart');
    expectError(() => restored.createInboundSession(firstMessage(alice, bundle)), 'INVALID_PREKEY', 'full after restart');

    // Rotation clears the signal; the new SPK opens, the retired full one keeps refusing.
    bob.rotateSignedPrekey();
    assert.equal(bob.signedPrekeyRotationDue, false);
    assert.equal(str(bob.createInboundSession(firstMessage(alice, bob.bundle(), 'fresh')).plaintext), 'fresh');
    expectError(() => bob.createInboundSession(firstMessage(alice, bundle)), 'INVALID_PREKEY', 'retired and full');
    expectError(() => bob.createInboundSession(first), 'DUPLICATE_MESSAGE', 'replay to the retired SPK');
  });

  test(`at most ${limits.MAX_SIGNED_PREKEYS} SPKs are kept: rotating beyond deletes the oldest retired one early, whose messages are then refused`, () => {
    const alice = Account.create();
    const bob = Account.create({ now: T0 });
    const oldest = bob.bundle();
    const m = firstMessage(alice, oldest);
    for (let i = 1; i < limits.MAX_SIGNED_PREKEYS; i++) bob.rotateSignedPrekey(T0 + i);
    assert.equal(str(Account.unpickle(bob.pickle()).createInboundSession(m, { now: T0 + 10 }).plaintext), 'hello', 'still kept');
    bob.rotateSignedPrekey(T0 + limits.MAX_SIGNED_PREKEYS);
    const e = refusal(() => bob.createInboundSession(m, { now: T0 + 10 }), 'INVALID_PREKEY', 'deleted early');
    assert.equal(e.details?.reason, 'retired');
    assert.ok(Account.unpickle(bob.pickle()));
  });

  test('pickle bounds: a base-key count over the cap, an unknown SPK flag, a retired last SPK -> STORAGE_INTEGRITY', () => {
    const bob = Account.create();
    const pickle = bob.pickle();
    // v2 layout: magic 4, version 1, identity 64, next id 4, SPK count 1, then the SPK:
    // id 4, createdAt 8, signature 64, key pair 64, flags 1, retiredAt 8, base-key count 4.
    const flagsAt = 4 + 1 + 64 + 4 + 1 + 4 + 8 + 64 + 64;
    const countAt = flagsAt + 1 + 8;
    assert.equal(pickle.length, countAt + 4 + 4, 'one SPK, no base keys, no one-time prekeys');
    const withKeys = (count: number): Uint8Array => {
      const w = new ByteWriter().fixed(pickle.subarray(0, countAt)).u32(count);
      w.fixed(getCrypto().randomBytes(count * 16));
      return w.u32(0).finish();
    };
    assert.doesNotThrow(() => Account.unpickle(withKeys(limits.MAX_BASE_KEYS_PER_SIGNED_PREKEY)), 'control: the cap itself');
    expectError(() => Account.unpickle(withKeys(limits.MAX_BASE_KEYS_PER_SIGNED_PREKEY + 1)), 'STORAGE_INTEGRITY', 'one over the cap');
    for (const flags of [0x04, 0x80, 0x01]) {
      const bad = pickle.slice();
      bad[flagsAt] = flags;
      expectError(() => Account.unpickle(bad), 'STORAGE_INTEGRITY', `flags ${flags}`);
    }
  });
});

/** The version-1 layout, written by hand: what accounts stored before this change look like. */
function v1Pickle(keys: {
  signingSeed: Uint8Array;
  dhPrivate: Uint8Array;
  spks: { id: number; createdAt: number; privateKey: Uint8Array; publicKey: Uint8Array }[];
  baseKeys: Uint8Array[];
}): Uint8Array {
  const c = getCrypto();
  const w = new ByteWriter().u32(0x50414343).u8(1).fixed(keys.signingSeed).fixed(keys.dhPrivate).u32(100);
  w.u8(keys.spks.length);
  for (const spk of keys.spks) {
    const signature = c.ed25519Sign(keys.signingSeed, contextMessage('signedPrekey', signedPrekeyPayload(spk)));
    w.u32(spk.id).u64(spk.createdAt).fixed(signature).fixed(spk.privateKey).fixed(spk.publicKey);
  }
  w.u32(0); // one-time prekeys
  w.u32(keys.baseKeys.length);
  for (const k of keys.baseKeys) w.fixed(k);
  return w.finish();
}

describe('C6 account pickle version 1 is still read', () => {
  function v1Keys() {
    const c = getCrypto();
    const spk1 = c.x25519Generate();
    const spk2 = c.x25519Generate();
    return {
      signingSeed: c.ed25519Generate().privateKey,
      dhPrivate: c.x25519Generate().privateKey,
      spks: [
        { id: 1, createdAt: T0, ...spk1 },
        { id: 2, createdAt: T0 + 7 * DAY, ...spk2 },
      ],
    };
  }

  test('its one base-key list guards both of its SPKs; the older SPK is retired at the newer one\'s creation; rewritten as v2', () => {
    const keys = v1Keys();
    const empty = Account.unpickle(v1Pickle({ ...keys, baseKeys: [] }));
    const alice = Account.create();
    const spk1 = { id: 1, createdAt: T0, publicKey: keys.spks[0]!.publicKey };
    const bundle1: PrekeyBundle = { identity: empty.publicIdentity, signedPrekey: { ...spk1, signature: empty.sign('signedPrekey', signedPrekeyPayload(spk1)) } };
    const bundle2 = empty.bundle();
    assert.equal(bundle2.signedPrekey.id, 2, 'the last v1 SPK is current');
    const m1 = firstMessage(alice, bundle1, 'to the older SPK');
    const m2 = firstMessage(alice, bundle2, 'to the current SPK');
    const baseKeys = [m1, m2].map((m) => {
      const parsed = parseMessage(m);
      assert.equal(parsed.type, MESSAGE_TYPE.prekey);
      return parsed.type === MESSAGE_TYPE.prekey ? parsed.baseKey : new Uint8Array(32);
    });

    const bob = Account.unpickle(v1Pickle({ ...keys, baseKeys }));
    const now = T0 + 8 * DAY;
    expectError(() => bob.createInboundSession(m1, { now }), 'DUPLICATE_MESSAGE', 'v1 base key, older SPK');
    expectError(() => bob.createInboundSession(m2, { now }), 'DUPLICATE_MESSAGE', 'v1 base key, current SPK');
    assert.equal(bob.signedPrekeyRotationDue, false, 'a v1 list that never overflowed is complete');

    // The older SPK was retired when SPK 2 was created: its grace runs from then.
    const m3 = firstMessage(alice, bundle1, 'late');
    const graceEnd = T0 + 7 * DAY + limits.SIGNED_PREKEY_GRACE_MS;
    const e = refusal(() => bob.createInboundSession(m3, { now: graceEnd }), 'INVALID_PREKEY', 'older v1 SPK past grace');
    assert.equal(e.details?.reason, 'retired');
    assert.equal(str(bob.createInboundSession(m3, { now: graceEnd - 1 }).plaintext), 'late');

    const v2 = bob.pickle();
    assert.equal(v2[4], 2, 'written back as version 2');
    const again = Account.unpickle(v2);
    for (const m of [m1, m2, m3]) expectError(() => again.createInboundSession(m, { now }), 'DUPLICATE_MESSAGE', 'after the v2 round trip');
  });

  test('a full v1 list (it may have forgotten keys) makes rotation due, also after a v2 round trip; bounds still checked', () => {
    const keys = v1Keys();
    const full = Array.from({ length: 1000 }, () => getCrypto().x25519Generate().publicKey);
    const bob = Account.unpickle(v1Pickle({ ...keys, baseKeys: full }));
    assert.equal(bob.signedPrekeyRotationDue, true);
    assert.equal(Account.unpickle(bob.pickle()).signedPrekeyRotationDue, true);
    bob.rotateSignedPrekey(T0 + 8 * DAY);
    assert.equal(bob.signedPrekeyRotationDue, false);

    expectError(() => Account.unpickle(v1Pickle({ ...keys, baseKeys: [...full, full[0]!] })), 'STORAGE_INTEGRITY', '1,001 v1 base keys');
    const third = { id: 3, createdAt: T0 + 14 * DAY, ...getCrypto().x25519Generate() };
    expectError(() => Account.unpickle(v1Pickle({ ...keys, spks: [...keys.spks, third], baseKeys: [] })), 'STORAGE_INTEGRITY', '3 v1 SPKs');
  });
});
