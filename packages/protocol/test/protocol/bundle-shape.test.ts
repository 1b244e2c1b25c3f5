/**
 * docs/threats.md I1: a bundle from the relay is checked field by field before any key is used.
 * Every malformed shape gives `MALFORMED_MESSAGE` naming the field, never a `TypeError`.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { Account, initCrypto, isParleyError, verifyBundle } from '../../src/index.js';

before(() => initCrypto('node'));

test('verifyBundle refuses every malformed shape with MALFORMED_MESSAGE naming the field', () => {
  const bob = Account.create();
  bob.generateOneTimePrekeys(1);
  const good = bob.bundle();
  verifyBundle(good);
  const spk = good.signedPrekey;
  const cases: [unknown, string][] = [
    [null, 'bundle'],
    ['bundle', 'bundle'],
    [{ ...good, identity: undefined }, 'identity'],
    [{ ...good, identity: { ...good.identity, binding: 'AAAA' } }, 'identity.binding'],
    [{ ...good, signedPrekey: undefined }, 'signedPrekey'],
    [{ ...good, signedPrekey: { ...spk, id: -1 } }, 'signedPrekey.id'],
    [{ ...good, signedPrekey: { ...spk, id: 2 ** 32 } }, 'signedPrekey.id'],
    [{ ...good, signedPrekey: { ...spk, createdAt: Number.NaN } }, 'signedPrekey.createdAt'],
    [{ ...good, signedPrekey: { ...spk, createdAt: Infinity } }, 'signedPrekey.createdAt'],
    [{ ...good, signedPrekey: { ...spk, createdAt: '2026' } }, 'signedPrekey.createdAt'],
    [{ ...good, signedPrekey: { ...spk, publicKey: [...spk.publicKey] } }, 'signedPrekey.publicKey'],
    [{ ...good, signedPrekey: { ...spk, signature: undefined } }, 'signedPrekey.signature'],
    [{ ...good, oneTimePrekey: 7 }, 'oneTimePrekey'],
    [{ ...good, oneTimePrekey: { id: 1.5, publicKey: new Uint8Array(32) } }, 'oneTimePrekey.id'],
    [{ ...good, oneTimePrekey: { id: 1, publicKey: null } }, 'oneTimePrekey.publicKey'],
  ];
  for (const [input, field] of cases) {
    assert.throws(
      () => verifyBundle(input),
      (e: unknown) => isParleyError(e, 'MALFORMED_MESSAGE') && e.details?.field === field,
      `malformed ${field}`,
    );
  }
  // Shape fine, content wrong: the existing key and signature checks still answer.
  assert.throws(() => verifyBundle({ ...good, signedPrekey: { ...spk, createdAt: spk.createdAt + 1 } }), (e: unknown) => isParleyError(e, 'INVALID_SIGNATURE'));
});
