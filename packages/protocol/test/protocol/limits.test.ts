/**
 * Skip limits (docs/threats.md C8 MAX_SKIP DoS, C9 skipped-key exhaustion, section (c) "Skip
 * limits"). Over-limit headers must be refused before any chain-key derivation: the tests count
 * the provider's KDF and DH calls during the refused decrypt instead of timing it.
 *
 * Most messages come from the real sender (encrypt MAX_SKIP+1 messages, deliver only the last).
 * Counters the sender cannot reach (n or PN = 2^32-1) are crafted with the sender's own header
 * key read from its pickle (`unsafeCraftMessage`): the header is peer-authentic, so the receiver
 * gets past header decryption and must refuse on the numbers alone.
 */
import { describe, test, before } from 'node:test';
import assert from 'node:assert/strict';
import { initCrypto, limits, type Session } from '../../src/index.js';
import {
  clone,
  establish,
  expectError,
  sendMany,
  str,
  text,
  unsafeCraftMessage,
  unsafeDecodeSessionPickle,
  unsafeMessageKey,
  withCounts,
  type ProviderMethod,
} from '../helpers/protocol.js';

const { MAX_SKIP, MAX_STORED_SKIPPED_KEYS, MAX_SKIPPED_CHAINS } = limits;
const KDF_AND_DH: ProviderMethod[] = ['hmacSha256', 'hkdfSha256', 'x25519', 'x25519Generate', 'xchachaDecrypt'];

before(() => initCrypto('node'));

/** Decrypts `wire` at `s`, expecting TOO_MANY_SKIPPED with no KDF or DH work and no state change. */
function expectRefusedWithoutWork(s: Session, wire: Uint8Array, label: string): void {
  const digest = s.stateDigest();
  const { error, counts } = withCounts(KDF_AND_DH, () => expectError(() => s.decrypt(wire), 'TOO_MANY_SKIPPED', label));
  if (error !== undefined) throw error;
  assert.equal(counts.hmacSha256, 0, `${label}: chain-key derivations`);
  assert.equal(counts.hkdfSha256, 0, `${label}: root-key derivations`);
  assert.equal(counts.x25519, 0, `${label}: DH operations`);
  assert.equal(counts.x25519Generate, 0, `${label}: key generations`);
  assert.ok(counts.xchachaDecrypt! <= MAX_SKIPPED_CHAINS + 2, `${label}: header trial decryptions`);
  assert.equal(s.stateDigest(), digest, `${label}: state unchanged`);
}

describe('C8 MAX_SKIP: an over-limit header is refused before any derivation', () => {
  test(`current chain: n = nr + MAX_SKIP + 1 (real sender, only the last of ${MAX_SKIP + 2} delivered) -> TOO_MANY_SKIPPED, 0 KDF calls; n = nr + MAX_SKIP is accepted`, () => {
    const { a, b } = establish();
    b.decrypt(a.encrypt(text('n=0'))); // Bob's nr on Alice's chain is 1
    const burst = sendMany(a, MAX_SKIP + 1, 'gap'); // n = 1 .. MAX_SKIP + 1
    const last = burst[MAX_SKIP]!; // n = MAX_SKIP + 1 = nr + MAX_SKIP
    const over = a.encrypt(text('over')); // n = MAX_SKIP + 2 = nr + MAX_SKIP + 1
    expectRefusedWithoutWork(b, over, 'n = nr + MAX_SKIP + 1');
    const atLimit = clone(b);
    assert.equal(str(atLimit.decrypt(last.wire)), last.plaintext, 'a gap of exactly MAX_SKIP is allowed');
    assert.equal(atLimit.skippedKeyCount, MAX_SKIP);
    // After the gap was filled legitimately, the message is in range and opens.
    assert.equal(str(atLimit.decrypt(over)), 'over');
  });

  test('new ratchet key with PN far past what Bob received (real sender) -> TOO_MANY_SKIPPED, 0 KDF calls', () => {
    const { a, b } = establish();
    b.decrypt(a.encrypt(text('n=0')));
    sendMany(a, MAX_SKIP + 1, 'never delivered'); // Alice's chain ends at PN = MAX_SKIP + 2, Bob's nr = 1
    a.decrypt(b.encrypt(text('bob')));
    const next = a.encrypt(text('new chain')); // new ratchet key, PN = MAX_SKIP + 2
    expectRefusedWithoutWork(b, next, 'PN - nr = MAX_SKIP + 1');
  });

  test('new ratchet key with PN - nr = MAX_SKIP exactly (real sender) is accepted and stores MAX_SKIP keys', () => {
    const { a, b } = establish();
    b.decrypt(a.encrypt(text('n=0')));
    sendMany(a, MAX_SKIP, 'skipped'); // PN = MAX_SKIP + 1, Bob's nr = 1
    a.decrypt(b.encrypt(text('bob')));
    assert.equal(str(b.decrypt(a.encrypt(text('new chain')))), 'new chain');
    assert.equal(b.skippedKeyCount, MAX_SKIP);
  });

  test('new ratchet key with n = MAX_SKIP + 1 (real sender, first message of the chain lost) -> TOO_MANY_SKIPPED', () => {
    const { a, b } = establish();
    b.decrypt(a.encrypt(text('n=0')));
    a.decrypt(b.encrypt(text('bob')));
    const burst = sendMany(a, MAX_SKIP + 2, 'new chain'); // n = 0 .. MAX_SKIP + 1 on a new ratchet key
    expectRefusedWithoutWork(b, burst[MAX_SKIP + 1]!.wire, 'new chain n = MAX_SKIP + 1');
    assert.equal(str(clone(b).decrypt(burst[MAX_SKIP]!.wire)), `new chain ${MAX_SKIP}`, 'n = MAX_SKIP on a new chain is allowed');
  });

  test('crafted peer-authentic headers with n = 2^32-1 and PN = 2^32-1 (new ratchet key) -> TOO_MANY_SKIPPED, 0 KDF calls', () => {
    const { a, b } = establish();
    b.decrypt(a.encrypt(text('n=0')));
    const onChain = unsafeDecodeSessionPickle(a.pickle());
    assert.equal(onChain.state.sendRatchetPending, false);
    const current = (n: number, pn = 0, withKey = false) =>
      unsafeCraftMessage({
        headerKey: onChain.state.hks!,
        ad: onChain.ad,
        ratchetKey: onChain.state.dhSelf!.publicKey,
        pn,
        n,
        ...(withKey ? { messageKey: unsafeMessageKey(onChain.state.sendChain!), plaintext: text('crafted') } : {}),
      });
    // Control: the crafting is right, a crafted in-range message with the right key opens.
    assert.equal(str(clone(b).decrypt(current(onChain.state.ns, onChain.state.pn, true))), 'crafted');
    expectRefusedWithoutWork(b, current(0xffffffff), 'current chain n = 2^32-1');
    expectRefusedWithoutWork(b, current(1 + MAX_SKIP + 1), 'current chain n = nr + MAX_SKIP + 1');

    // Alice receives, so her next chain is a new ratchet key under the header key Bob expects next.
    a.decrypt(b.encrypt(text('bob')));
    const pending = unsafeDecodeSessionPickle(a.pickle());
    assert.equal(pending.state.sendRatchetPending, true);
    const fresh = (pn: number, n: number) =>
      unsafeCraftMessage({ headerKey: pending.state.hks!, ad: pending.ad, ratchetKey: a.localIdentity.dhKey, pn, n });
    expectRefusedWithoutWork(b, fresh(0xffffffff, 0), 'new ratchet key, PN = 2^32-1');
    expectRefusedWithoutWork(b, fresh(1, 0xffffffff), 'new ratchet key, n = 2^32-1');
    expectRefusedWithoutWork(b, fresh(0xffffffff, 0xffffffff), 'new ratchet key, PN = n = 2^32-1');
    // In range, the same crafted header reaches the DH step and fails only at the body tag.
    expectError(() => clone(b).decrypt(fresh(1, 0)), 'AUTH_FAILED', 'in-range crafted header with a random body');
  });

  test('1,000 messages whose encrypted header opens under no key: AUTH_FAILED after at most (skipped chains + 2) trial decryptions', () => {
    const { a, b } = establish();
    // Give Bob the maximum number of receiving chains with skipped keys.
    for (let turn = 0; turn < MAX_SKIPPED_CHAINS + 2; turn++) {
      const [, second] = sendMany(a, 2, `turn ${turn}`);
      b.decrypt(second!.wire);
      a.decrypt(b.encrypt(text('ack')));
    }
    const chains = unsafeDecodeSessionPickle(b.pickle()).state.skipped.length;
    assert.equal(chains, MAX_SKIPPED_CHAINS, 'Bob holds the maximum number of skipped chains');
    const template = a.encrypt(text('template'));
    const digest = b.stateDigest();
    for (let i = 0; i < 1000; i++) {
      const forged = template.slice();
      forged.set(globalThisRandom(forged.length - 2), 2); // everything after version and type
      const { error, counts } = withCounts(KDF_AND_DH, () => expectError(() => b.decrypt(forged), 'AUTH_FAILED', `forged ${i}`));
      if (error !== undefined) throw error;
      assert.ok(counts.xchachaDecrypt! <= chains + 2, `forged ${i}: ${counts.xchachaDecrypt} trial decryptions`);
      assert.equal(counts.hmacSha256! + counts.hkdfSha256! + counts.x25519!, 0);
    }
    assert.equal(b.stateDigest(), digest);
    assert.equal(str(b.decrypt(template)), 'template');
  });
});

function globalThisRandom(length: number): Uint8Array {
  return globalThis.crypto.getRandomValues(new Uint8Array(length));
}

describe('C9 skipped-key memory exhaustion: many legitimate gaps over many ratchet turns', () => {
  test(`8 turns each skipping MAX_SKIP-1 keys: <= ${MAX_STORED_SKIPPED_KEYS} keys, <= ${MAX_SKIPPED_CHAINS} chains, oldest evicted first`, () => {
    const { a, b } = establish();
    const turns = 8;
    const withheld: { turn: number; n: number; wire: Uint8Array; plaintext: string }[] = [];
    // The policy as a model: chains in arrival order; beyond MAX_SKIPPED_CHAINS the oldest chain
    // is dropped; beyond MAX_STORED_SKIPPED_KEYS the oldest keys are evicted (their chain stays
    // listed, so its header still opens and the receiver can say MESSAGE_KEY_EXPIRED).
    let model: { turn: number; keys: number[]; evicted: Set<number> }[] = [];
    for (let turn = 0; turn < turns; turn++) {
      const burst = sendMany(a, MAX_SKIP, `turn ${turn}`);
      assert.equal(str(b.decrypt(burst[MAX_SKIP - 1]!.wire)), `turn ${turn} ${MAX_SKIP - 1}`);
      burst.slice(0, MAX_SKIP - 1).forEach((m, n) => withheld.push({ turn, n, ...m }));
      model.push({ turn, keys: [...Array(MAX_SKIP - 1).keys()], evicted: new Set() });
      if (model.length > MAX_SKIPPED_CHAINS) model = model.slice(model.length - MAX_SKIPPED_CHAINS);
      let total = model.reduce((s, ch) => s + ch.keys.length, 0);
      for (const ch of model) {
        while (total > MAX_STORED_SKIPPED_KEYS && ch.keys.length > 0) {
          ch.evicted.add(ch.keys.shift()!);
          total--;
        }
      }
      const decoded = unsafeDecodeSessionPickle(b.pickle()).state;
      assert.ok(b.skippedKeyCount <= MAX_STORED_SKIPPED_KEYS, `turn ${turn}: ${b.skippedKeyCount} skipped keys`);
      assert.ok(decoded.skipped.length <= MAX_SKIPPED_CHAINS, `turn ${turn}: ${decoded.skipped.length} chains`);
      assert.equal(b.skippedKeyCount, total, `turn ${turn}: matches the eviction model`);
      assert.ok(b.pickle().length < 100_000, 'retained state stays small (<< 1 MB)');
      a.decrypt(b.encrypt(text(`ack ${turn}`)));
    }
    assert.equal(b.skippedKeyCount, MAX_STORED_SKIPPED_KEYS);

    const outcome = { opened: 0, expired: 0, chainGone: 0 };
    for (const m of withheld.reverse()) {
      const chain = model.find((ch) => ch.turn === m.turn);
      if (!chain) {
        // Its chain was pushed out by the chain cap: the header key is gone, nothing opens it.
        expectError(() => b.decrypt(m.wire), 'AUTH_FAILED', `turn ${m.turn} n ${m.n} (chain dropped)`);
        outcome.chainGone++;
      } else if (chain.evicted.has(m.n)) {
        expectError(() => b.decrypt(m.wire), 'MESSAGE_KEY_EXPIRED', `turn ${m.turn} n ${m.n} (key evicted)`);
        outcome.expired++;
      } else {
        assert.equal(str(b.decrypt(m.wire)), m.plaintext);
        outcome.opened++;
      }
    }
    assert.equal(outcome.opened, MAX_STORED_SKIPPED_KEYS);
    assert.ok(outcome.expired > MAX_SKIP, `evicted keys from listed chains: ${outcome.expired}`);
    assert.ok(outcome.chainGone > MAX_SKIP, `messages of dropped chains: ${outcome.chainGone}`);
    assert.equal(b.skippedKeyCount, 0);
    assert.equal(str(b.decrypt(a.encrypt(text('still fine')))), 'still fine');
  });
});
