/**
 * Cross-implementation evidence: random inputs through every backend (node:crypto + libsodium,
 * libsodium, noble) must give the same bytes, or the same typed error (docs/threats.md (c):
 * "Differential libsodium vs noble" and "Ed25519 consensus").
 *
 * Counts follow the CI / extended tiers of docs/threats.md (c): 10³ per primitive in CI; with
 * `PARLEY_TEST_SCALE=extended`, 10⁵ for Ed25519 (valid and mutated) and 10⁶ for the rest.
 * The fast-check seed is fixed, so a failure reproduces; fast-check prints the shrunk input.
 */
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { loadBackend, type BackendName, type CryptoProvider } from '../../src/crypto/index.js';
import { ParleyError } from '../../src/errors.js';
import { toHex } from '../../src/bytes.js';
import { hex, readWycheproof, type XdhGroup } from '../helpers/vectors.js';

const BACKENDS: readonly BackendName[] = ['node', 'sodium', 'noble'];
const EXTENDED = process.env.PARLEY_TEST_SCALE === 'extended';
const RUNS = EXTENDED ? 1_000_000 : 1_000;
const ED25519_RUNS = EXTENDED ? 100_000 : 1_000;
/** Fixed so every run sees the same inputs; change it only together with a note why. */
const SEED = 20_260_818;

let providers: readonly CryptoProvider[] = [];
before(async () => {
  providers = await Promise.all(BACKENDS.map((b) => loadBackend(b)));
});

/** What one backend did: the output bytes in hex, or the error code it threw. */
type Outcome = { readonly ok: string } | { readonly error: string };

function outcome(f: () => Uint8Array): Outcome {
  try {
    return { ok: toHex(f()) };
  } catch (e) {
    // An untyped exception is a finding in itself: keep its message so the diff shows it.
    return { error: e instanceof ParleyError ? e.code : `untyped: ${String(e)}` };
  }
}

/** Runs `f` on every backend and asserts identical outcomes; returns the common one. */
function agree(label: string, f: (c: CryptoProvider) => Uint8Array): Outcome {
  const [first, ...rest] = providers.map((c) => outcome(() => f(c)));
  rest.forEach((o, i) => assert.deepEqual(o, first, `${label}: ${BACKENDS[i + 1]} differs from ${BACKENDS[0]}`));
  assert.ok(first !== undefined);
  return first;
}

const bytes = (minLength: number, maxLength: number) => fc.uint8Array({ minLength, maxLength, size: 'max' });
const key32 = bytes(32, 32);

/** Flips bit `bit` of a copy of `b`. */
function flipBit(b: Uint8Array, bit: number): Uint8Array {
  const out = b.slice();
  out[bit >> 3]! ^= 1 << (bit & 7);
  return out;
}

describe('differential: all backends agree byte for byte', () => {
  test(`X25519: public keys, DH both ways, arbitrary u (${RUNS} runs)`, () => {
    // Uniform random u almost never hits an edge case, so one run in ten uses a Wycheproof
    // public key whose output is all zero (low-order u, incl. non-canonical encodings).
    const lowOrder = readWycheproof<XdhGroup>('x25519_test.json')
      .testGroups.flatMap((g) => g.tests)
      .filter((t) => t.flags.includes('ZeroSharedSecret'))
      .map((t) => hex(t.public));
    const u = fc.oneof({ arbitrary: key32, weight: 9 }, { arbitrary: fc.constantFrom(...lowOrder), weight: 1 });
    let rejected = 0;
    fc.assert(
      fc.property(key32, key32, u, (a, b, peer) => {
        const pubA = agree('x25519PublicKey(a)', (c) => c.x25519PublicKey(a));
        const pubB = agree('x25519PublicKey(b)', (c) => c.x25519PublicKey(b));
        assert.ok('ok' in pubA && 'ok' in pubB);
        const ab = agree('x25519(a, B)', (c) => c.x25519(a, hex(pubB.ok)));
        const ba = agree('x25519(b, A)', (c) => c.x25519(b, hex(pubA.ok)));
        assert.deepEqual(ab, ba, 'DH is symmetric (RFC 7748 §6.1)');
        const withPeer = agree('x25519(a, u)', (c) => c.x25519(a, peer));
        if ('error' in withPeer) {
          assert.equal(withPeer.error, 'INVALID_KEY');
          rejected++;
        }
      }),
      { seed: SEED, numRuns: RUNS },
    );
    assert.ok(rejected > 0, 'the low-order share of u must have been exercised');
  });

  test(`HMAC-SHA256: keys across the 64-byte block size (${RUNS} runs)`, () => {
    fc.assert(
      fc.property(bytes(0, 130), bytes(0, 300), (key, data) => {
        agree('hmacSha256', (c) => c.hmacSha256(key, data));
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });

  test(`HKDF-SHA256: lengths 0..8160, info past node's 1,024-byte cap (${RUNS} runs)`, () => {
    // Covers both code paths of the node backend (HMAC-spelled for length <= 64 or long info,
    // hkdfSync otherwise) and the USAGE error just above 255*32.
    const info = fc.oneof({ arbitrary: bytes(0, 64), weight: 9 }, { arbitrary: bytes(1000, 1100), weight: 1 });
    const length = fc.oneof(
      { arbitrary: fc.integer({ min: 0, max: 200 }), weight: 8 },
      { arbitrary: fc.integer({ min: 0, max: 8160 }), weight: 1 },
      { arbitrary: fc.integer({ min: 8155, max: 8165 }), weight: 1 },
    );
    fc.assert(
      fc.property(bytes(0, 80), bytes(0, 80), info, length, (ikm, salt, inf, len) => {
        const o = agree(`hkdfSha256(len ${len}, info ${inf.length})`, (c) => c.hkdfSha256(ikm, salt, inf, len));
        if (len > 255 * 32) assert.deepEqual(o, { error: 'USAGE' });
        else assert.ok('ok' in o && o.ok.length === 2 * len, `length ${len}`);
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });

  test(`Ed25519: public keys, signatures, verification (${ED25519_RUNS} runs)`, () => {
    fc.assert(
      fc.property(key32, bytes(0, 300), (seed, message) => {
        const pub = agree('ed25519PublicKey', (c) => c.ed25519PublicKey(seed));
        // RFC 8032 §5.1.6: signing is deterministic, so the bytes must match too.
        const sig = agree('ed25519Sign', (c) => c.ed25519Sign(seed, message));
        assert.ok('ok' in pub && 'ok' in sig);
        for (const c of providers) assert.equal(c.ed25519Verify(hex(pub.ok), message, hex(sig.ok)), true, c.name);
      }),
      { seed: SEED, numRuns: ED25519_RUNS },
    );
  });

  test(`Ed25519: single-bit flips of valid signatures get identical verdicts (${ED25519_RUNS} runs)`, () => {
    const [reference] = providers.filter((c) => c.name === 'sodium');
    assert.ok(reference);
    fc.assert(
      fc.property(key32, bytes(0, 300), fc.integer({ min: 0, max: 511 }), (seed, message, bit) => {
        const pub = reference.ed25519PublicKey(seed);
        const mutated = flipBit(reference.ed25519Sign(seed, message), bit);
        const verdicts = providers.map((c) => c.ed25519Verify(pub, message, mutated));
        // A flip changes R's encoding or adds 2^i (not a multiple of L) to S: never valid.
        assert.deepEqual(verdicts, [false, false, false], `bit ${bit}`);
      }),
      { seed: SEED, numRuns: ED25519_RUNS },
    );
  });

  test(`XChaCha20-Poly1305: seal, open, and a flipped bit (${RUNS} runs)`, () => {
    fc.assert(
      fc.property(key32, bytes(24, 24), bytes(0, 300), bytes(0, 64), fc.nat(), (key, nonce, plaintext, ad, r) => {
        const sealed = agree('xchachaEncrypt', (c) => c.xchachaEncrypt(key, nonce, plaintext, ad));
        assert.ok('ok' in sealed);
        const ct = hex(sealed.ok);
        assert.deepEqual(agree('xchachaDecrypt', (c) => c.xchachaDecrypt(key, nonce, ct, ad)), { ok: toHex(plaintext) });
        const tampered = flipBit(ct, r % (ct.length * 8));
        assert.deepEqual(agree('xchachaDecrypt(tampered)', (c) => c.xchachaDecrypt(key, nonce, tampered, ad)), {
          error: 'AUTH_FAILED',
        });
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });
});

describe("node backend's KeyObject cache", () => {
  // The cache is keyed by the caller's array object. An array overwritten in place (a reused
  // buffer, or wipe() before reuse) must be re-imported, never served the old key.
  test('an array overwritten in place is used with its new bytes', () => {
    const [node, sodium] = ['node', 'sodium'].map((n) => providers.find((c) => c.name === n)!);
    assert.ok(node && sodium);
    const priv = node.randomBytes(32);
    const peer = sodium.x25519Generate().publicKey;
    const seed = node.randomBytes(32);
    const message = node.randomBytes(40);
    for (let round = 0; round < 3; round++) {
      assert.deepEqual(node.x25519(priv, peer), sodium.x25519(priv, peer), `x25519, round ${round}`);
      assert.deepEqual(node.x25519PublicKey(priv), sodium.x25519PublicKey(priv), `public key, round ${round}`);
      assert.deepEqual(node.ed25519Sign(seed, message), sodium.ed25519Sign(seed, message), `sign, round ${round}`);
      priv.set(node.randomBytes(32));
      seed.set(node.randomBytes(32));
      peer.set(sodium.x25519Generate().publicKey);
    }
  });
});
