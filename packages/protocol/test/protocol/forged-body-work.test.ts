/**
 * Forged bodies under a captured genuine header (issue 9, defect 8; docs/threats.md C8). The
 * header of a message that starts a DH ratchet step with large PN and N authenticates, so the
 * receiver does the DH and up to 2 × MAX_SKIP chain steps before the body tag fails, and before
 * the fix it did all of that again for every replay of the header. The session now keeps the
 * header stage it derived (in memory, for its current state only), so repeats cost the body's
 * AEAD alone and the genuine message, arriving after any number of forgeries, still opens.
 * Measured by counting provider calls, not by timing.
 */
import { describe, test, before } from 'node:test';
import assert from 'node:assert/strict';
import { getCrypto, initCrypto, limits } from '../../src/index.js';
import { BODY_AD_END } from '../../src/wire/message.js';
import { clone, establish, expectError, sendMany, str, text, withCounts, type ProviderMethod } from '../helpers/protocol.js';

before(() => initCrypto('node'));

const WORK: ProviderMethod[] = ['x25519', 'hkdfSha256', 'hmacSha256', 'xchachaDecrypt'];

/** `wire` with everything after its authenticated prefix (body nonce, body) replaced by random bytes. */
function forgeBody(wire: Uint8Array): Uint8Array {
  const forged = wire.slice();
  forged.set(getCrypto().randomBytes(wire.length - BODY_AD_END), BODY_AD_END);
  return forged;
}

/**
 * Bob has read only message 0 of Alice's 500 on her chain and answered; Alice's next chain
 * (700 messages) starts a DH ratchet step whose last header says PN = 500, N = 699.
 */
function expensiveHeader() {
  const { a, b } = establish();
  const chain1 = sendMany(a, 500, 'chain 1');
  assert.equal(str(b.decrypt(chain1[0]!.wire)), 'chain 1 0');
  a.decrypt(b.encrypt(text('reply')));
  const chain2 = sendMany(a, 700, 'chain 2');
  return { a, b, chain1, chain2, last: chain2[699]! };
}

function counted(fn: () => void): Record<string, number> {
  const { error, counts } = withCounts(WORK, fn);
  if (error !== undefined) throw error;
  return counts;
}

describe('forged bodies under one genuine header cost one header stage per session state', () => {
  test('100 forged bodies under a DH-step header with PN = 500, N = 699: at most one DH step of work; then the genuine message opens with no more', () => {
    const { b, chain1, chain2, last } = expensiveHeader();
    const genuine = counted(() => clone(b).decrypt(last.wire));
    assert.equal(genuine.x25519, 1);
    assert.ok(genuine.hmacSha256! >= 2 * (499 + 699 + 1), `a genuine decrypt derives the gap: ${genuine.hmacSha256} HMACs`);

    const digest = b.stateDigest();
    const forged = counted(() => {
      for (let i = 0; i < 100; i++) expectError(() => b.decrypt(forgeBody(last.wire)), 'AUTH_FAILED', `forgery ${i}`);
    });
    assert.equal(forged.x25519, 1, 'one DH for all 100 forgeries');
    assert.ok(forged.hkdfSha256! <= 1, `root KDFs: ${forged.hkdfSha256}`);
    assert.ok(forged.hmacSha256! <= genuine.hmacSha256!, `chain steps: ${forged.hmacSha256} for 100 forgeries, ${genuine.hmacSha256} for one message`);
    assert.equal(b.stateDigest(), digest, 'forgeries change no persisted state');

    const after = counted(() => assert.equal(str(b.decrypt(last.wire)), last.plaintext));
    assert.equal(after.x25519! + after.hkdfSha256! + after.hmacSha256!, 0, 'the genuine message reuses the derived header stage');
    for (const m of [chain2[0]!, chain2[698]!, chain1[1]!, chain1[499]!]) assert.equal(str(b.decrypt(m.wire)), m.plaintext);
    expectError(() => b.decrypt(last.wire), 'DUPLICATE_MESSAGE', 'and it opens once');
  });

  test(`${limits.HEADER_CACHE_ENTRIES} genuine headers, each under 25 forged bodies in turn: ${limits.HEADER_CACHE_ENTRIES} DH steps, and all ${limits.HEADER_CACHE_ENTRIES} messages open afterwards`, () => {
    const { b, chain2 } = expensiveHeader();
    const headers = [chain2[699]!, chain2[600]!, chain2[400]!, chain2[200]!].slice(0, limits.HEADER_CACHE_ENTRIES);
    const counts = counted(() => {
      for (let round = 0; round < 25; round++) {
        for (const m of headers) expectError(() => b.decrypt(forgeBody(m.wire)), 'AUTH_FAILED', `round ${round}`);
      }
    });
    assert.equal(counts.x25519, headers.length);
    for (const m of headers) assert.equal(str(b.decrypt(m.wire)), m.plaintext);
  });

  test('a kept header stage belongs to the state it came from: after another message commits, the genuine message is derived afresh and opens', () => {
    const { a, b, chain1, last } = expensiveHeader();
    expectError(() => b.decrypt(forgeBody(last.wire)), 'AUTH_FAILED', 'forgery first');
    assert.equal(str(b.decrypt(chain1[7]!.wire)), 'chain 1 7'); // a skipped key of the old chain: new state
    const work = counted(() => assert.equal(str(b.decrypt(last.wire)), last.plaintext));
    assert.equal(work.x25519, 1, 'derived again from the new state');
    assert.equal(str(b.decrypt(chain1[8]!.wire)), 'chain 1 8');
    assert.equal(str(a.decrypt(b.encrypt(text('back')))), 'back');
  });

  test('our own send in between invalidates the kept stage: adopting it would roll back the sending chain', () => {
    const { a, b } = establish();
    const burst = sendMany(a, 10, 'burst');
    assert.equal(str(b.decrypt(burst[0]!.wire)), 'burst 0');
    const forged = forgeBody(burst[9]!.wire); // current chain, skips 1..8
    expectError(() => b.decrypt(forged), 'AUTH_FAILED', 'forgery');
    const x1 = b.encrypt(text('x1')); // Bob's state moves on: send ratchet step, counter 0
    assert.equal(str(a.decrypt(x1)), 'x1');
    assert.equal(str(b.decrypt(burst[9]!.wire)), 'burst 9');
    const x2 = b.encrypt(text('x2'));
    assert.equal(str(a.decrypt(x2)), 'x2', 'Bob did not reuse a sending counter or chain');
    for (let i = 1; i < 9; i++) assert.equal(str(b.decrypt(burst[i]!.wire)), `burst ${i}`);
  });

  test('forged bodies under a header of the current chain with a skipped gap: one chain walk, not one per forgery', () => {
    const { a, b } = establish();
    const burst = sendMany(a, limits.MAX_SKIP, 'burst');
    assert.equal(str(b.decrypt(burst[0]!.wire)), 'burst 0');
    const target = burst[limits.MAX_SKIP - 1]!;
    const counts = counted(() => {
      for (let i = 0; i < 50; i++) expectError(() => b.decrypt(forgeBody(target.wire)), 'AUTH_FAILED', `forgery ${i}`);
    });
    assert.ok(counts.hmacSha256! <= 2 * limits.MAX_SKIP, `HMACs for 50 forgeries: ${counts.hmacSha256}`);
    assert.equal(str(b.decrypt(target.wire)), target.plaintext);
    assert.equal(b.skippedKeyCount, limits.MAX_SKIP - 2);
  });
});
