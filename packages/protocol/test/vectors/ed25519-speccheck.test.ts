/**
 * Ed25519 verifier consensus (docs/threats.md C21): the 12 edge cases of "Taming the many EdDSAs"
 * (Chalkias et al., SSR 2020; `test/vectors/data/ed25519-speccheck/`) get the same verdict from
 * every backend, and that verdict is libsodium's strict one.
 *
 * The reference verdict is computed from the data by the `sodium` backend, not copied from the
 * paper; the paper's table (libsodium accepts only case 3) is then checked against it.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createPublicKey, verify as opensslVerify } from 'node:crypto';
import { ed25519 } from '@noble/curves/ed25519.js';
import { loadBackend, type BackendName } from '../../src/crypto/index.js';
import { hex, readVectorJson, type SpeccheckCase } from '../helpers/vectors.js';

const BACKENDS: readonly BackendName[] = ['node', 'sodium', 'noble'];
const cases = readVectorJson<SpeccheckCase[]>('ed25519-speccheck/cases.json');
const decoded = cases.map((c) => ({ pk: hex(c.pub_key), msg: hex(c.message), sig: hex(c.signature) }));

async function verdicts(name: BackendName): Promise<boolean[]> {
  const c = await loadBackend(name);
  return decoded.map(({ pk, msg, sig }) => c.ed25519Verify(pk, msg, sig));
}

describe('ed25519-speccheck: identical strict verdicts on every backend', () => {
  test('the file holds the 12 cases', () => {
    assert.equal(cases.length, 12);
  });

  test('libsodium accepts exactly case 3, as the paper reports', async () => {
    const sodium = await verdicts('sodium');
    assert.deepEqual(
      sodium.flatMap((ok, i) => (ok ? [i] : [])),
      [3],
    );
  });

  for (const name of BACKENDS.filter((b) => b !== 'sodium')) {
    test(`${name} gives libsodium's verdict on all 12`, async (t) => {
      const reference = await verdicts('sodium');
      const got = await verdicts(name);
      assert.deepEqual(got, reference);
      t.diagnostic(`${name}: ${got.map((ok) => (ok ? 'accept' : 'reject')).join(' ')}`);
    });
  }

  // Why noble.ts adds rules of its own: noble's strict mode is RFC 8032 but not libsodium. If a
  // later noble release closes the gap, this test says so and the extra rules can be revisited.
  test("noble's built-in verify alone would not agree (why noble.ts adds libsodium's rules)", async () => {
    const reference = await verdicts('sodium');
    const nobleStrict = decoded.map(({ pk, msg, sig }) => ed25519.verify(sig, msg, pk, { zip215: false }));
    const nobleDefault = decoded.map(({ pk, msg, sig }) => ed25519.verify(sig, msg, pk));
    const disagreements = (v: boolean[]) => v.flatMap((ok, i) => (ok === reference[i] ? [] : [i]));
    // Small-order R (case 2) and cofactored-only passes (cases 4, 5).
    assert.deepEqual(disagreements(nobleStrict), [2, 4, 5]);
    // ZIP-215 accepts far more: small-order A and R, non-canonical encodings.
    assert.ok(disagreements(nobleDefault).length > 3);
  });

  // Why node.ts verifies with libsodium and not with node:crypto (OpenSSL).
  test("node:crypto's verify would not agree (why node.ts verifies with libsodium)", async () => {
    const reference = await verdicts('sodium');
    const openssl = decoded.map(({ pk, msg, sig }) => {
      const key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(pk).toString('base64url') }, format: 'jwk' });
      return opensslVerify(null, msg, key, sig);
    });
    // OpenSSL does not reject small-order A (cases 0, 1, 11) or small-order R (case 2).
    assert.deepEqual(
      openssl.flatMap((ok, i) => (ok === reference[i] ? [] : [i])),
      [0, 1, 2, 11],
    );
  });
});
