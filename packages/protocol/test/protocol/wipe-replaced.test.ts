/**
 * Secrets a session replaces are zero-filled when the new state is adopted (issue 9, defect 4,
 * the JS side): chain keys, root-KDF outputs, the ratchet private key, used skipped keys, and
 * skipped keys evicted by the caps or expired. States are immutable and share arrays until one
 * is adopted, so the wipe happens at commit, by identity: every secret array of the old state
 * that the new state no longer references. A refused message wipes nothing the live state uses.
 *
 * The tests hold the live arrays (`unsafeTestingLiveSessionSecrets`, not copies) across each
 * operation and look at them afterwards.
 */
import { describe, test, before } from 'node:test';
import assert from 'node:assert/strict';
import { initCrypto, limits, type Session } from '../../src/index.js';
import { unsafeTestingLiveSessionSecrets } from '../../src/testing.js';
import { BODY_AD_END } from '../../src/wire/message.js';
import { establish, expectError, flipBit, seededRandom, sendMany, str, text, withCounts } from '../helpers/protocol.js';

before(() => initCrypto('node'));

const T0 = 1_700_000_000_000;
const isZero = (k: Uint8Array): boolean => k.every((x) => x === 0);

/**
 * Runs `op` on `s` holding the live secret arrays of its state: every array the state no longer
 * references afterwards must be all zero, every one it still references unchanged. Returns the
 * dropped arrays and their positions in the old list (0 is the root key).
 */
function acrossCommit(s: Session, op: () => void, label: string): { dropped: Uint8Array[]; droppedAt: number[] } {
  const held = unsafeTestingLiveSessionSecrets(s).state;
  const copies = held.map((k) => k.slice());
  op();
  const live = new Set(unsafeTestingLiveSessionSecrets(s).state);
  const dropped: Uint8Array[] = [];
  const droppedAt: number[] = [];
  held.forEach((k, i) => {
    if (live.has(k)) {
      assert.deepEqual(k, copies[i], `${label}: a secret the new state still uses is intact`);
    } else {
      assert.ok(!isZero(copies[i]!), `${label}: control, secret ${i} was not zero before`);
      assert.ok(isZero(k), `${label}: replaced secret ${i} is zero-filled`);
      dropped.push(k);
      droppedAt.push(i);
    }
  });
  return { dropped, droppedAt };
}

/** `op` (a refused message) leaves every live secret of `s` as it was. */
function wipesNothing(s: Session, op: () => void, label: string): void {
  const held = unsafeTestingLiveSessionSecrets(s).state;
  const copies = held.map((k) => k.slice());
  op();
  held.forEach((k, i) => assert.deepEqual(k, copies[i], `${label}: live secret ${i} untouched`));
  assert.deepEqual(unsafeTestingLiveSessionSecrets(s).state, held, `${label}: the same arrays are live`);
}

describe('replaced secrets are zero-filled at commit', () => {
  test('encrypt: the replaced sending chain key; with a pending DH step also the old root key', () => {
    const { a, b } = establish();
    // Alice received Bob's reply: her next encrypt runs the sending half of a DH ratchet step.
    const step = acrossCommit(a, () => b.decrypt(a.encrypt(text('step'))), 'encrypt with a DH step');
    assert.ok(step.droppedAt.includes(0), 'the old root key');
    const plain = acrossCommit(a, () => b.decrypt(a.encrypt(text('next'))), 'encrypt on the chain');
    assert.equal(plain.dropped.length, 1, 'the old sending chain key only');
  });

  test('decrypt of a new DH ratchet step: old root key, ratchet private key, receiving chain and header keys', () => {
    const { a, b } = establish();
    b.decrypt(a.encrypt(text('a1')));
    a.decrypt(b.encrypt(text('b1')));
    b.decrypt(a.encrypt(text('a2'))); // Alice holds a fresh ratchet key pair and has sent on it
    const { dropped, droppedAt } = acrossCommit(a, () => a.decrypt(b.encrypt(text('b2'))), 'new DH step');
    assert.ok(droppedAt.includes(0), 'the old root key');
    assert.ok(dropped.length >= 4, `root, ratchet private, receiving chain and a header key: ${dropped.length}`);
  });

  test('decrypt from a skipped key: that message key; decrypt on the chain: the old receiving chain key', () => {
    const { a, b } = establish();
    const burst = sendMany(a, 5, 'burst');
    acrossCommit(b, () => assert.equal(str(b.decrypt(burst[4]!.wire)), 'burst 4'), 'skip 0..3');
    const used = acrossCommit(b, () => assert.equal(str(b.decrypt(burst[1]!.wire)), 'burst 1'), 'skipped key 1');
    assert.equal(used.dropped.length, 1, 'the used message key');
    const chain = acrossCommit(b, () => b.decrypt(a.encrypt(text('on'))), 'in order');
    assert.equal(chain.dropped.length, 1, 'the old receiving chain key');
  });

  test('keys evicted by the count cap and keys expired by time are zero-filled', () => {
    const { a, b } = establish();
    const chain1 = sendMany(a, limits.MAX_SKIP, 'chain 1');
    b.decrypt(chain1[limits.MAX_SKIP - 1]!.wire, { now: T0 });
    a.decrypt(b.encrypt(text('turn')));
    const chain2 = sendMany(a, limits.MAX_SKIP, 'chain 2');
    b.decrypt(chain2[limits.MAX_SKIP - 1]!.wire, { now: T0 + 1 });
    a.decrypt(b.encrypt(text('turn')));
    const chain3 = sendMany(a, 100, 'chain 3');
    const evicting = acrossCommit(b, () => b.decrypt(chain3[99]!.wire, { now: T0 + 2 }), 'cap eviction');
    const evicted = 2 * (limits.MAX_SKIP - 1) + 99 - limits.MAX_STORED_SKIPPED_KEYS;
    assert.ok(evicting.dropped.length > evicted, `evicted keys (${evicted}) and the old chain key wiped: ${evicting.dropped.length}`);
    expectError(() => b.decrypt(chain1[0]!.wire, { now: T0 + 2 }), 'MESSAGE_KEY_EXPIRED', 'evicted');
    const held = b.skippedKeyCount;
    const expiring = acrossCommit(b, () => assert.equal(b.expireSkippedKeys(T0 + 1 + limits.SKIPPED_KEY_TTL_MS), held - 99), 'expiry');
    assert.equal(expiring.dropped.length, held - 99, 'every expired key, and nothing else');
  });

  test('a refused message wipes nothing the live state uses; the header stage it kept is wiped when another state is adopted', () => {
    const { a, b } = establish();
    const chain1 = sendMany(a, 50, 'chain 1');
    b.decrypt(chain1[0]!.wire);
    a.decrypt(b.encrypt(text('reply')));
    const chain2 = sendMany(a, 50, 'chain 2');
    const genuine = chain2[49]!.wire; // a DH step with skips on both chains
    const forged = genuine.slice();
    forged.fill(7, BODY_AD_END);
    wipesNothing(b, () => expectError(() => b.decrypt(forged), 'AUTH_FAILED', 'forged body'), 'forged body');
    wipesNothing(b, () => expectError(() => b.decrypt(flipBit(genuine, 30 * 8)), 'AUTH_FAILED', 'forged header'), 'forged header');
    wipesNothing(b, () => expectError(() => b.decrypt(chain1[0]!.wire), 'DUPLICATE_MESSAGE', 'replay'), 'replay');
    const kept = unsafeTestingLiveSessionSecrets(b).headerCache;
    assert.ok(kept.length > 50, `the forged body's header stage is kept: ${kept.length} secrets`);
    const liveBefore = new Set(unsafeTestingLiveSessionSecrets(b).state);
    const derived = kept.filter((k) => !liveBefore.has(k));
    assert.ok(derived.length > 50 && derived.every((k) => !isZero(k)));
    // Another message commits first: the kept stage is stale and its derived secrets go.
    assert.equal(str(b.decrypt(chain1[1]!.wire)), 'chain 1 1');
    assert.equal(unsafeTestingLiveSessionSecrets(b).headerCache.length, 0);
    assert.ok(derived.every(isZero), 'the stale header stage is zero-filled');
    assert.equal(str(b.decrypt(genuine)), 'chain 2 49');
  });

  test('adopting a kept header stage wipes its message key and what the old state alone held', () => {
    const { a, b } = establish();
    const burst = sendMany(a, 6, 'burst');
    const forged = burst[5]!.wire.slice();
    forged.fill(1, BODY_AD_END);
    expectError(() => b.decrypt(forged), 'AUTH_FAILED', 'forged body first');
    const kept = unsafeTestingLiveSessionSecrets(b).headerCache;
    acrossCommit(b, () => assert.equal(str(b.decrypt(burst[5]!.wire)), 'burst 5'), 'genuine after forgery');
    const live = new Set(unsafeTestingLiveSessionSecrets(b).state);
    for (const k of kept) assert.ok(live.has(k) || isZero(k), 'a kept secret is either adopted or wiped');
    assert.ok(kept.some((k) => !live.has(k)), 'the message key was among them');
  });

  test('a seeded schedule of reordering, forgeries, replays, turns and expiry never wipes a live secret', () => {
    const { a, b } = establish();
    const rand = seededRandom(0x71e);
    const queues: Record<'a' | 'b', { wire: Uint8Array; plaintext: string }[]> = { a: [], b: [] };
    const sessions = { a, b };
    const done: Record<'a' | 'b', Uint8Array[]> = { a: [], b: [] };
    let now = T0;
    let opened = 0;
    for (let step = 0; step < 1500; step++) {
      const to = rand() < 0.5 ? 'a' : 'b';
      const from = to === 'a' ? 'b' : 'a';
      const r = rand();
      now += Math.floor(rand() * 2 * 24 * 3600 * 1000); // up to two days per step: keys expire
      if (r < 0.3) {
        for (const m of sendMany(sessions[from], 1 + Math.floor(rand() * 8), `${from}${step}`)) queues[to].push(m);
      } else if (r < 0.8 && queues[to].length > 0) {
        const [m] = queues[to].splice(Math.floor(rand() * Math.min(queues[to].length, 12)), 1);
        const result = (() => {
          try {
            return str(sessions[to].decrypt(m!.wire, { now }));
          } catch (e) {
            return e instanceof Error ? e : new Error(String(e));
          }
        })();
        if (typeof result === 'string') {
          assert.equal(result, m!.plaintext);
          opened++;
          done[to].push(m!.wire);
        } else {
          assert.ok(/expired|evicted|any key/.test(result.message), `${step}: ${result.message}`);
        }
      } else if (r < 0.9 && queues[to].length > 0) {
        const forged = queues[to][Math.floor(rand() * queues[to].length)]!.wire.slice();
        forged.fill(step & 0xff, BODY_AD_END);
        expectError(() => sessions[to].decrypt(forged, { now }), ['AUTH_FAILED', 'MESSAGE_KEY_EXPIRED'], `${step}: forged body`);
      } else if (done[to].length > 0) {
        expectError(() => sessions[to].decrypt(done[to][Math.floor(rand() * done[to].length)]!, { now }), ['DUPLICATE_MESSAGE', 'MESSAGE_KEY_EXPIRED', 'AUTH_FAILED'], `${step}: replay`);
      }
      for (const s of [a, b]) {
        const { state, headerCache } = unsafeTestingLiveSessionSecrets(s);
        for (const k of [...state, ...headerCache]) assert.ok(!isZero(k), `${step}: a live secret was wiped`);
      }
    }
    assert.ok(opened > 300, `messages opened: ${opened}`);
    assert.equal(str(b.decrypt(a.encrypt(text('end a')), { now })), 'end a');
    assert.equal(str(a.decrypt(b.encrypt(text('end b')), { now })), 'end b');
  });

  test('the padded plaintext the ratchet builds (encrypt) and opens (decrypt) is zero-filled', () => {
    const { a, b } = establish();
    const padded: Uint8Array[] = [];
    const { error } = withCounts(
      ['xchachaEncrypt', 'xchachaDecrypt'],
      () => assert.equal(str(b.decrypt(a.encrypt(text('padded secret')))), 'padded secret'),
      (method, args, result) => {
        // Bodies are padded to 256-byte buckets; headers are shorter.
        if (method === 'xchachaEncrypt' && (args[2] as Uint8Array).length >= 256) padded.push(args[2] as Uint8Array);
        if (method === 'xchachaDecrypt' && (result as Uint8Array).length >= 256) padded.push(result as Uint8Array);
      },
    );
    if (error !== undefined) throw error;
    assert.equal(padded.length, 2);
    assert.ok(padded.every(isZero));
  });

  test('dispose wipes the state and the kept header stages', () => {
    const { a, b } = establish();
    const burst = sendMany(a, 3, 'burst');
    const forged = burst[2]!.wire.slice();
    forged.fill(3, BODY_AD_END);
    expectError(() => b.decrypt(forged), 'AUTH_FAILED', 'forged body');
    const { state, headerCache } = unsafeTestingLiveSessionSecrets(b);
    assert.ok(headerCache.length > 0);
    b.dispose();
    assert.ok([...state, ...headerCache].every(isZero));
  });
});
