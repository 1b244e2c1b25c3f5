/**
 * Skipped message keys expire by time as well as by count (issue 9, recovery; docs/threats.md C9
 * "Keys also expire by TTL"). A key is stamped with the clock of the decrypt that stored it and
 * is dropped SKIPPED_KEY_TTL_MS later, at the next decrypt or `expireSkippedKeys`; its message
 * then answers MESSAGE_KEY_EXPIRED, while messages already read keep answering
 * DUPLICATE_MESSAGE. The clock is passed in (`decrypt(wire, { now })`), so these tests never wait.
 */
import { describe, test, before } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Account, Session, fromHex, initCrypto, limits } from '../../src/index.js';
import { establish, expectError, sendMany, str, text } from '../helpers/protocol.js';

const { SKIPPED_KEY_TTL_MS: TTL } = limits;
const T0 = 1_700_000_000_000;
const DAY = 24 * 3600 * 1000;
/** The frozen v2 transcript: its session pickles are version 2 (no skip times). */
const GOLDEN_V2 = fileURLToPath(new URL('../golden/golden-v2.json', import.meta.url));

before(() => initCrypto('node'));

function refusedUnchanged(s: Session, wire: Uint8Array, code: 'MESSAGE_KEY_EXPIRED' | 'DUPLICATE_MESSAGE', now: number, label: string): void {
  const digest = s.stateDigest();
  expectError(() => s.decrypt(wire, { now }), code, label);
  assert.equal(s.stateDigest(), digest, `${label}: state unchanged`);
}

describe('skipped keys expire SKIPPED_KEY_TTL_MS after they were stored', () => {
  test('a key opens until the TTL, then answers MESSAGE_KEY_EXPIRED; the next decrypt drops every expired key', () => {
    assert.equal(TTL, 30 * DAY);
    const { a, b } = establish();
    const burst = sendMany(a, 10, 'burst');
    assert.equal(str(b.decrypt(burst[9]!.wire, { now: T0 })), 'burst 9'); // 0..8 skipped at T0
    assert.equal(str(b.decrypt(burst[0]!.wire, { now: T0 + TTL - 1 })), 'burst 0', 'one ms before the TTL');
    assert.equal(b.skippedKeyCount, 8);
    refusedUnchanged(b, burst[1]!.wire, 'MESSAGE_KEY_EXPIRED', T0 + TTL, 'at the TTL');
    assert.equal(b.skippedKeyCount, 8, 'a refused message commits nothing, not even the expiry');
    assert.equal(str(b.decrypt(a.encrypt(text('later')), { now: T0 + TTL })), 'later');
    assert.equal(b.skippedKeyCount, 0, 'the successful decrypt dropped the expired keys');
    for (let n = 1; n < 9; n++) refusedUnchanged(b, burst[n]!.wire, 'MESSAGE_KEY_EXPIRED', T0 + TTL, `expired n=${n}`);
    refusedUnchanged(b, burst[0]!.wire, 'DUPLICATE_MESSAGE', T0 + TTL, 'read before it expired');
    refusedUnchanged(b, burst[9]!.wire, 'DUPLICATE_MESSAGE', T0 + TTL, 'read first');
  });

  test('expireSkippedKeys drops each chain\'s keys at their own time; older chains answer MESSAGE_KEY_EXPIRED after', () => {
    const { a, b } = establish();
    const chain1 = sendMany(a, 5, 'chain 1');
    b.decrypt(chain1[4]!.wire, { now: T0 }); // 0..3 stored at T0
    a.decrypt(b.encrypt(text('turn')));
    const chain2 = sendMany(a, 5, 'chain 2');
    b.decrypt(chain2[4]!.wire, { now: T0 + 10 * DAY }); // 0..3 stored ten days later
    for (let i = 0; i < 40; i++) b.decrypt(a.encrypt(text(`more ${i}`)), { now: T0 + 10 * DAY });
    assert.equal(b.skippedKeyCount, 8);
    assert.equal(b.expireSkippedKeys(T0 + TTL - 1), 0);
    assert.equal(b.expireSkippedKeys(T0 + TTL), 4, 'chain 1 only');
    assert.equal(b.skippedKeyCount, 4);
    refusedUnchanged(b, chain1[0]!.wire, 'MESSAGE_KEY_EXPIRED', T0 + TTL, 'chain 1 expired');
    refusedUnchanged(b, chain1[4]!.wire, 'DUPLICATE_MESSAGE', T0 + TTL, 'chain 1 read');
    assert.equal(str(b.decrypt(chain2[1]!.wire, { now: T0 + 10 * DAY + TTL - 1 })), 'chain 2 1');
    assert.equal(b.expireSkippedKeys(T0 + 10 * DAY + TTL), 3);
    assert.equal(b.skippedKeyCount, 0);
    refusedUnchanged(b, chain2[2]!.wire, 'MESSAGE_KEY_EXPIRED', T0 + 10 * DAY + TTL, 'chain 2 expired');
    refusedUnchanged(b, chain2[1]!.wire, 'DUPLICATE_MESSAGE', T0 + 10 * DAY + TTL, 'chain 2 read');
    assert.equal(b.expireSkippedKeys(T0 + 100 * DAY), 0, 'nothing left');
  });

  test('skip times survive a pickle round trip (session pickle v3)', () => {
    const { a, b } = establish();
    const burst = sendMany(a, 4, 'burst');
    b.decrypt(burst[3]!.wire, { now: T0 });
    const restored = Session.unpickle(b.pickle());
    assert.deepEqual(restored.pickle(), b.pickle());
    assert.equal(str(clone(restored).decrypt(burst[0]!.wire, { now: T0 + TTL - 1 })), 'burst 0');
    refusedUnchanged(restored, burst[0]!.wire, 'MESSAGE_KEY_EXPIRED', T0 + TTL, 'after unpickle');
    assert.equal(restored.expireSkippedKeys(T0 + TTL), 3);
  });

  test('keys from a v2 pickle carry no skip time: stamped by the next clock, never expired by the upgrade itself', () => {
    const v2 = JSON.parse(readFileSync(GOLDEN_V2, 'utf8')) as { messages: { wire: string; plaintext: string }[]; deliveries: { index: number; receiverBefore: string }[] };
    const delivery = v2.deliveries.find((d) => d.index === 1)!; // message 1 arrived after message 2
    const m = v2.messages[1]!;
    const late = T0 + 10_000 * DAY;
    const s = Session.unpickle(fromHex(delivery.receiverBefore));
    assert.equal(s.skippedKeyCount, 1);
    assert.equal(str(clone(s).decrypt(fromHex(m.wire), { now: late })), m.plaintext, 'no skip time: no expiry');
    assert.equal(s.expireSkippedKeys(late), 0, 'stamped with this clock');
    assert.equal(s.expireSkippedKeys(late + TTL - 1), 0);
    assert.equal(s.expireSkippedKeys(late + TTL), 1);
    expectError(() => s.decrypt(fromHex(m.wire), { now: late + TTL }), 'MESSAGE_KEY_EXPIRED', 'expired after the upgrade');
  });

  test('keys skipped by the first message of an inbound session are stamped by the session\'s first decrypt with a clock', () => {
    const alice = Account.create();
    const bob = Account.create();
    bob.generateOneTimePrekeys(1);
    const a = alice.createOutboundSession(bob.bundle());
    const prekeyMessages = sendMany(a, 3, 'prekey');
    const { session: b, plaintext } = bob.createInboundSession(prekeyMessages[2]!.wire);
    assert.equal(str(plaintext), 'prekey 2');
    assert.equal(b.skippedKeyCount, 2);
    assert.equal(str(b.decrypt(prekeyMessages[0]!.wire, { now: T0 })), 'prekey 0'); // stamps key 1 at T0
    assert.equal(b.expireSkippedKeys(T0 + TTL - 1), 0);
    assert.equal(b.expireSkippedKeys(T0 + TTL), 1);
    expectError(() => b.decrypt(prekeyMessages[1]!.wire, { now: T0 + TTL }), 'MESSAGE_KEY_EXPIRED', 'prekey 1');
  });

  test('the default clock is Date.now()', () => {
    const { a, b } = establish();
    const burst = sendMany(a, 3, 'burst');
    const before = Date.now();
    b.decrypt(burst[2]!.wire);
    assert.equal(b.expireSkippedKeys(before + TTL - 1), 0);
    assert.equal(b.expireSkippedKeys(Date.now() + TTL), 2);
    assert.equal(b.expireSkippedKeys(), 0);
  });

  test('an invalid clock is a USAGE error and changes nothing', () => {
    const { a, b } = establish();
    const wire = a.encrypt(text('x'));
    const digest = b.stateDigest();
    for (const now of [Number.NaN, -1, Number.POSITIVE_INFINITY, Number.MAX_SAFE_INTEGER]) {
      expectError(() => b.decrypt(wire, { now }), 'USAGE', `decrypt now=${now}`);
      expectError(() => b.expireSkippedKeys(now), 'USAGE', `expire now=${now}`);
    }
    assert.equal(b.stateDigest(), digest);
    assert.equal(str(b.decrypt(wire, { now: T0 })), 'x');
  });
});

function clone(s: Session): Session {
  return Session.unpickle(s.pickle());
}
