/**
 * Known-answer evidence: every Project Wycheproof case in `test/vectors/data/wycheproof/` through
 * every crypto backend (docs/threats.md C1), judged by the policy in that folder's README:
 *
 * - `valid` succeeds and matches byte for byte;
 * - `invalid` is rejected with a typed {@link ParleyError} (signatures: `false`, never a throw;
 *   HMAC: the SDK only computes tags, so rejection is `constantTimeEqual` saying no);
 * - X25519 `acceptable`: all-zero shared secret (`ZeroSharedSecret`) → `INVALID_KEY`, the rest →
 *   the RFC 7748 result.
 *
 * Each test counts what it ran and compares the count with the file's `numberOfTests` and with
 * the figure pinned below, so a skipped group or a swapped file fails instead of passing quietly.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { loadBackend, type BackendName, type CryptoProvider } from '../../src/crypto/index.js';
import { ParleyError, type ParleyErrorCode } from '../../src/errors.js';
import { concatBytes, constantTimeEqual } from '../../src/bytes.js';
import { isAllZero } from '../../src/crypto/common.js';
import {
  hex,
  readWycheproof,
  type AeadGroup,
  type EddsaGroup,
  type HkdfGroup,
  type MacGroup,
  type XdhGroup,
} from '../helpers/vectors.js';

const BACKENDS: readonly BackendName[] = ['node', 'sodium', 'noble'];

/** Case counts from `wycheproof/README.md` and docs/threats.md C1 (1,569 in all). */
const PINNED_COUNTS = {
  'x25519_test.json': 518,
  'xchacha20_poly1305_test.json': 315,
  'chacha20_poly1305_test.json': 325,
  'ed25519_test.json': 151,
  'hkdf_sha256_test.json': 86,
  'hmac_sha256_test.json': 174,
} as const;

type VectorFile = keyof typeof PINNED_COUNTS;

/** Asserts that `fn` throws a ParleyError with `code`. */
function assertRejects(fn: () => unknown, code: ParleyErrorCode, label: string): void {
  assert.throws(
    fn,
    (e: unknown) => {
      assert.ok(e instanceof ParleyError, `${label}: expected a ParleyError, got ${String(e)}`);
      assert.equal(e.code, code, `${label}: wrong error code`);
      return true;
    },
    label,
  );
}

/** Counts outcomes by name; `total` is their sum. */
class Tally {
  readonly counts: Record<string, number> = {};
  add(outcome: string): void {
    this.counts[outcome] = (this.counts[outcome] ?? 0) + 1;
  }
  get total(): number {
    return Object.values(this.counts).reduce((a, b) => a + b, 0);
  }
}

function assertRanAll(file: VectorFile, numberOfTests: number, tally: Tally): void {
  assert.equal(numberOfTests, PINNED_COUNTS[file], `${file}: numberOfTests differs from the pinned count`);
  assert.equal(tally.total, numberOfTests, `${file}: ran ${tally.total} of ${numberOfTests} cases`);
}

/** Defines one test per backend; `run` returns the outcome tally for the final count check. */
function perBackend(file: VectorFile, numberOfTests: () => number, run: (c: CryptoProvider) => Tally): void {
  for (const name of BACKENDS) {
    test(`${name} backend`, async (t) => {
      const c = await loadBackend(name);
      const tally = run(c);
      assertRanAll(file, numberOfTests(), tally);
      t.diagnostic(`${file} on ${name}: ${tally.total} cases ${JSON.stringify(tally.counts)}`);
    });
  }
}

describe('Wycheproof x25519_test.json (RFC 7748)', () => {
  const file = readWycheproof<XdhGroup>('x25519_test.json');

  test('exactly the 31 ZeroSharedSecret cases have an all-zero expected output', () => {
    const cases = file.testGroups.flatMap((g) => g.tests);
    const flagged = cases.filter((t) => t.flags.includes('ZeroSharedSecret')).map((t) => t.tcId);
    const zero = cases.filter((t) => isAllZero(hex(t.shared))).map((t) => t.tcId);
    assert.equal(flagged.length, 31);
    assert.deepEqual(zero, flagged);
  });

  perBackend('x25519_test.json', () => file.numberOfTests, (c) => {
    const tally = new Tally();
    for (const group of file.testGroups) {
      assert.equal(group.curve, 'curve25519');
      for (const t of group.tests) {
        const label = `tcId ${t.tcId} (${t.result}, ${t.flags.join(',')})`;
        const priv = hex(t.private);
        const pub = hex(t.public);
        assert.notEqual(t.result, 'invalid', `${label}: the policy has no rule for invalid X25519 cases`);
        if (t.flags.includes('ZeroSharedSecret')) {
          // RFC 7748 §6.1: abort on an all-zero output. Every backend maps it to INVALID_KEY.
          assertRejects(() => c.x25519(priv, pub), 'INVALID_KEY', label);
          tally.add('zero-output rejected');
        } else {
          // Twist, non-canonical u, high bit set, ...: RFC 7748 §5 defines the output.
          assert.deepEqual(c.x25519(priv, pub), hex(t.shared), label);
          tally.add(`${t.result} computed`);
        }
      }
    }
    assert.equal(tally.counts['zero-output rejected'], 31);
    return tally;
  });
});

/** RFC 8439 §2.8 ChaCha20-Poly1305 and its 24-byte-nonce XChaCha20 extension. */
function aeadSuite(fileName: 'xchacha20_poly1305_test.json' | 'chacha20_poly1305_test.json', nonceBits: number): void {
  const file = readWycheproof<AeadGroup>(fileName);
  perBackend(fileName, () => file.numberOfTests, (c) => {
    const encrypt = nonceBits === 192 ? c.xchachaEncrypt : c.chachaEncrypt;
    const decrypt = nonceBits === 192 ? c.xchachaDecrypt : c.chachaDecrypt;
    const tally = new Tally();
    for (const group of file.testGroups) {
      assert.equal(group.keySize, 256);
      assert.equal(group.tagSize, 128);
      for (const t of group.tests) {
        const label = `tcId ${t.tcId} (${t.result}, ${t.flags.join(',')})`;
        const [key, nonce, ad, msg] = [hex(t.key), hex(t.iv), hex(t.aad), hex(t.msg)];
        const sealed = concatBytes(hex(t.ct), hex(t.tag));
        if (t.result === 'valid') {
          assert.equal(group.ivSize, nonceBits, label);
          assert.deepEqual(encrypt(key, nonce, msg, ad), sealed, `${label}: encrypt`);
          assert.deepEqual(decrypt(key, nonce, sealed, ad), msg, `${label}: decrypt`);
          tally.add('valid');
        } else if (t.flags.includes('InvalidNonceSize')) {
          assert.notEqual(group.ivSize, nonceBits, label);
          // USAGE comes only from the size check that runs before the cipher is touched.
          assertRejects(() => decrypt(key, nonce, sealed, ad), 'USAGE', `${label}: decrypt`);
          assertRejects(() => encrypt(key, nonce, msg, ad), 'USAGE', `${label}: encrypt`);
          tally.add('invalid nonce size rejected');
        } else {
          assert.equal(t.result, 'invalid', label);
          assertRejects(() => decrypt(key, nonce, sealed, ad), 'AUTH_FAILED', label);
          tally.add('invalid tag rejected');
        }
      }
    }
    return tally;
  });
}

describe('Wycheproof xchacha20_poly1305_test.json (draft-irtf-cfrg-xchacha)', () => {
  aeadSuite('xchacha20_poly1305_test.json', 192);
});

describe('Wycheproof chacha20_poly1305_test.json (RFC 8439)', () => {
  aeadSuite('chacha20_poly1305_test.json', 96);
});

describe('Wycheproof ed25519_test.json (RFC 8032, strict)', () => {
  const file = readWycheproof<EddsaGroup>('ed25519_test.json');
  perBackend('ed25519_test.json', () => file.numberOfTests, (c) => {
    const tally = new Tally();
    let sawTcId151 = false;
    for (const group of file.testGroups) {
      const pk = hex(group.publicKey.pk);
      for (const t of group.tests) {
        const label = `tcId ${t.tcId} (${t.result}, ${t.flags.join(',')})`;
        // The contract: a bad signature is `false`, never an exception.
        const verdict = c.ed25519Verify(pk, hex(t.msg), hex(t.sig));
        assert.equal(verdict, t.result === 'valid', label);
        tally.add(t.result === 'valid' ? 'valid accepted' : 'invalid rejected');
        // tcId 151 (non-canonical encoding) is the case noble's default zip215: true accepts.
        if (t.tcId === 151) sawTcId151 = !verdict;
      }
    }
    assert.ok(sawTcId151, 'tcId 151 must be present and rejected');
    return tally;
  });
});

describe('Wycheproof hkdf_sha256_test.json (RFC 5869)', () => {
  const file = readWycheproof<HkdfGroup>('hkdf_sha256_test.json');
  perBackend('hkdf_sha256_test.json', () => file.numberOfTests, (c) => {
    const tally = new Tally();
    for (const group of file.testGroups) {
      for (const t of group.tests) {
        const label = `tcId ${t.tcId} (${t.result}, ${t.flags.join(',')}), size ${t.size}`;
        const derive = () => c.hkdfSha256(hex(t.ikm), hex(t.salt), hex(t.info), t.size);
        if (t.result === 'valid') {
          assert.deepEqual(derive(), hex(t.okm), label);
          tally.add('valid');
        } else {
          // RFC 5869 §2.3: L <= 255*HashLen.
          assert.ok(t.flags.includes('SizeTooLarge'), label);
          assertRejects(derive, 'USAGE', label);
          tally.add('size too large rejected');
        }
      }
    }
    return tally;
  });
});

describe('Wycheproof hmac_sha256_test.json (RFC 2104)', () => {
  const file = readWycheproof<MacGroup>('hmac_sha256_test.json');
  perBackend('hmac_sha256_test.json', () => file.numberOfTests, (c) => {
    const tally = new Tally();
    for (const group of file.testGroups) {
      for (const t of group.tests) {
        const label = `tcId ${t.tcId} (${t.result}, tag ${group.tagSize} bits)`;
        const full = c.hmacSha256(hex(t.key), hex(t.msg));
        assert.equal(full.length, 32, label);
        // The SDK uses full 256-bit tags; truncated groups only exercise the comparison helper.
        const candidate = full.subarray(0, group.tagSize / 8);
        const match = constantTimeEqual(candidate, hex(t.tag));
        assert.equal(match, t.result === 'valid', label);
        tally.add(`${t.result} (${group.tagSize === 256 ? 'full' : 'truncated'} tag)`);
      }
    }
    return tally;
  });
});
