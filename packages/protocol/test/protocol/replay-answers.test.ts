/**
 * What a replay answers (issue 9, defect 7; packages/protocol/README.md "Duplicates, expired keys
 * and the window"). While its chain is held, a counter whose key was consumed answers
 * DUPLICATE_MESSAGE, however long ago and on whichever chain; MESSAGE_KEY_EXPIRED is kept for
 * counters whose keys were really dropped unused (evicted by the caps here; expired by time in
 * skipped-key-expiry.test.ts). Before the fix a chain remembered only its highest evicted
 * counter, so a consumed counter below it answered MESSAGE_KEY_EXPIRED once it had left the
 * 32-header window, and on any older chain at once.
 */
import { describe, test, before } from 'node:test';
import assert from 'node:assert/strict';
import { Session, initCrypto, limits } from '../../src/index.js';
import { establish, expectError, sendMany, str, text, unsafeDecodeSessionPickle } from '../helpers/protocol.js';

const { MAX_STORED_SKIPPED_KEYS, MAX_EVICTED_RANGES, RECENT_HEADERS } = limits;

before(() => initCrypto('node'));

type Sent = ReturnType<typeof sendMany>;

/** `wire` is refused with `code` and leaves `s` exactly as it was. */
function refused(s: Session, wire: Uint8Array, code: 'DUPLICATE_MESSAGE' | 'MESSAGE_KEY_EXPIRED', label: string): void {
  const digest = s.stateDigest();
  expectError(() => s.decrypt(wire), code, label);
  assert.equal(s.stateDigest(), digest, `${label}: state unchanged`);
}

function open(s: Session, m: Sent[number]): void {
  assert.equal(str(s.decrypt(m.wire)), m.plaintext);
}

describe('replays answer DUPLICATE_MESSAGE, evicted keys MESSAGE_KEY_EXPIRED', () => {
  test(`current chain, beyond the ${RECENT_HEADERS}-header window, below evicted counters: a consumed counter is a duplicate`, () => {
    const { a, b } = establish();
    const burst = sendMany(a, 1000, 'burst'); // n = 0..999 of Alice's new chain
    open(b, burst[999]!); // keys 0..998 skipped
    open(b, burst[3]!);
    for (let n = 10; n < 50; n++) open(b, burst[n]!); // 40 more: n = 3 leaves the recent window
    const more = sendMany(a, 1100, 'more'); // n = 1000..2099
    open(b, more[999]!); // skips 1000..1998
    open(b, more[1099]!); // skips 2000..2098: 958 + 999 + 99 = 2,056 keys, the 56 oldest are evicted
    assert.equal(b.skippedKeyCount, MAX_STORED_SKIPPED_KEYS);
    // Evicted, oldest first: 0, 1, 2, 4..9, then 50..96 (3 and 10..49 were consumed).
    for (const n of [3, 10, 20, 49]) refused(b, burst[n]!.wire, 'DUPLICATE_MESSAGE', `consumed n=${n}`);
    for (const n of [0, 2, 4, 9, 50, 96]) refused(b, burst[n]!.wire, 'MESSAGE_KEY_EXPIRED', `evicted n=${n}`);
    refused(b, burst[999]!.wire, 'DUPLICATE_MESSAGE', 'the first message received');
    open(b, burst[97]!); // the oldest key still held
    refused(b, burst[97]!.wire, 'DUPLICATE_MESSAGE', 'n=97 after it opened');
  });

  test('an older chain whose keys were evicted: consumed counters are duplicates long after, evicted ones expired', () => {
    const { a, b } = establish();
    const chain1 = sendMany(a, 1000, 'chain 1');
    for (const n of [999, 3, 500]) open(b, chain1[n]!); // 997 keys held on chain 1
    a.decrypt(b.encrypt(text('turn 1')));
    const chain2 = sendMany(a, 1000, 'chain 2');
    open(b, chain2[999]!); // + 999 = 1,996
    a.decrypt(b.encrypt(text('turn 2')));
    const chain3 = sendMany(a, 1000, 'chain 3');
    open(b, chain3[999]!); // + 999 = 2,995: chain 1's 995 oldest keys are evicted
    for (let i = 0; i < 40; i++) open(b, chain3[i]!); // chain 3 moves on, far from chain 1
    assert.equal(unsafeDecodeSessionPickle(b.pickle()).state.skipped.length, 3, 'chain 1 is still held');
    for (const n of [3, 500, 999]) refused(b, chain1[n]!.wire, 'DUPLICATE_MESSAGE', `chain 1 consumed n=${n}`);
    for (const n of [0, 2, 4, 499, 501, 996]) refused(b, chain1[n]!.wire, 'MESSAGE_KEY_EXPIRED', `chain 1 evicted n=${n}`);
    open(b, chain1[997]!);
    refused(b, chain1[997]!.wire, 'DUPLICATE_MESSAGE', 'chain 1 n=997 after it opened');
    refused(b, chain2[999]!.wire, 'DUPLICATE_MESSAGE', 'chain 2 consumed');
    open(b, chain2[0]!);
    assert.equal(str(b.decrypt(a.encrypt(text('still talking')))), 'still talking');
  });

  test('the answers survive a pickle round trip', () => {
    const { a, b } = establish();
    const chain1 = sendMany(a, 1000, 'chain 1');
    for (const n of [999, 1]) open(b, chain1[n]!);
    a.decrypt(b.encrypt(text('turn')));
    const chain2 = sendMany(a, 1000, 'chain 2');
    open(b, chain2[999]!);
    a.decrypt(b.encrypt(text('turn')));
    const chain3 = sendMany(a, 100, 'chain 3');
    open(b, chain3[99]!); // 998 + 999 + 99 = 2,096: evicts chain 1's 0, 2..96
    const restored = Session.unpickle(b.pickle());
    refused(restored, chain1[1]!.wire, 'DUPLICATE_MESSAGE', 'consumed, after unpickle');
    refused(restored, chain1[0]!.wire, 'MESSAGE_KEY_EXPIRED', 'evicted, after unpickle');
    refused(restored, chain1[2]!.wire, 'MESSAGE_KEY_EXPIRED', 'evicted, after unpickle');
    open(restored, chain1[97]!);
  });

  test(`beyond ${MAX_EVICTED_RANGES} evicted ranges the closest merge: evicted counters still never answer DUPLICATE_MESSAGE`, () => {
    const { a, b } = establish();
    const chain1 = sendMany(a, 1000, 'chain 1');
    open(b, chain1[999]!);
    for (let n = 0; n < 80; n += 2) open(b, chain1[n]!); // 40 consumed: the held keys alternate up to 80
    a.decrypt(b.encrypt(text('turn')));
    const chain2 = sendMany(a, 1000, 'chain 2');
    open(b, chain2[999]!); // 959 + 999 = 1,958
    a.decrypt(b.encrypt(text('turn')));
    const chain3 = sendMany(a, 90, 'chain 3');
    open(b, chain3[89]!); // + 89 = 2,047: evicts 1, 3, ..., 79 and 80..86 of chain 1 (40 ranges)
    const chain1State = unsafeDecodeSessionPickle(b.pickle()).state.skipped[0]!;
    assert.equal(chain1State.evicted.length, MAX_EVICTED_RANGES, 'the record is capped');
    let misanswered = 0;
    for (let n = 0; n < 87; n++) {
      if (n % 2 === 1 || n >= 80) {
        refused(b, chain1[n]!.wire, 'MESSAGE_KEY_EXPIRED', `evicted n=${n}`);
      } else {
        const code = expectError(() => b.decrypt(chain1[n]!.wire), ['DUPLICATE_MESSAGE', 'MESSAGE_KEY_EXPIRED'], `consumed n=${n}`);
        if (code === 'MESSAGE_KEY_EXPIRED') misanswered++;
      }
    }
    // Each merge beyond the cap covers one consumed counter here (the gaps are one wide).
    assert.equal(misanswered, 40 - MAX_EVICTED_RANGES, 'only the merged gaps over-state eviction');
    open(b, chain1[87]!);
  });
});
