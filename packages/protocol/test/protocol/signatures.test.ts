/**
 * Signed prekeys and domain separation (docs/threats.md C13 prekey signature forgery, C14
 * cross-protocol signature confusion), on every backend so the verdicts also agree (C21).
 * A bundle that fails verification must not reach any key generation or DH: nothing of a
 * session is made and nothing could be sent.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Account,
  SIGNATURE_CONTEXTS,
  contextMessage,
  getCrypto,
  initCrypto,
  signedPrekeyPayload,
  verifyBundle,
  verifyContextSignature,
  type PrekeyBundle,
  type SignatureContext,
} from '../../src/index.js';
import { BACKENDS, expectError, flipBit, testSigner, text, unsafeAccountPrivateKeys, withCounts } from '../helpers/protocol.js';

const CONTEXTS = Object.keys(SIGNATURE_CONTEXTS) as SignatureContext[];

/** createOutboundSession must fail with `code` before generating or using any key. */
function expectRefusedBundle(alice: Account, bundle: PrekeyBundle, code: 'INVALID_SIGNATURE' | 'INVALID_KEY', label: string): void {
  const { error, counts } = withCounts(['x25519', 'x25519Generate'], () => expectError(() => alice.createOutboundSession(bundle), code, label));
  if (error !== undefined) throw error;
  assert.equal(counts.x25519! + counts.x25519Generate!, 0, `${label}: no key generated or used`);
}

for (const backend of BACKENDS) {
  describe(`C13 signed prekey forgery (${backend})`, () => {
    test('each of the 512 signature bits flipped -> INVALID_SIGNATURE, no session', async () => {
      await initCrypto(backend);
      const alice = Account.create();
      const bob = Account.create();
      const bundle = bob.bundle();
      for (let bit = 0; bit < 512; bit++) {
        const signature = flipBit(bundle.signedPrekey.signature, bit);
        expectRefusedBundle(alice, { ...bundle, signedPrekey: { ...bundle.signedPrekey, signature } }, 'INVALID_SIGNATURE', `signature bit ${bit}`);
      }
      // Control: the untouched bundle opens a session.
      assert.ok(alice.createOutboundSession(bundle));
    });

    test('wrong signer, no domain prefix, another SPK\'s signature, altered id or time -> INVALID_SIGNATURE', async () => {
      await initCrypto(backend);
      const alice = Account.create();
      const bob = Account.create();
      const mallory = Account.create();
      const bundle = bob.bundle();
      const spk = bundle.signedPrekey;
      const payload = signedPrekeyPayload(spk);
      const { signingSeed } = unsafeAccountPrivateKeys(bob);
      // Control for the extracted seed: signing with the prefix reproduces Bob's signature.
      assert.deepEqual(getCrypto().ed25519Sign(signingSeed, contextMessage('signedPrekey', payload)), spk.signature);

      const withSignature = (signature: Uint8Array): PrekeyBundle => ({ ...bundle, signedPrekey: { ...spk, signature } });
      expectRefusedBundle(alice, withSignature(mallory.sign('signedPrekey', payload)), 'INVALID_SIGNATURE', 'signed by another identity');
      expectRefusedBundle(alice, withSignature(getCrypto().ed25519Sign(signingSeed, payload)), 'INVALID_SIGNATURE', 'Bob\'s key over the raw payload (no domain prefix)');
      const rotated = bob.rotateSignedPrekey();
      expectRefusedBundle(alice, { ...bundle, signedPrekey: { ...rotated, signature: spk.signature } }, 'INVALID_SIGNATURE', 'signature of another SPK');
      expectRefusedBundle(alice, { ...bundle, signedPrekey: { ...spk, id: spk.id + 1 } }, 'INVALID_SIGNATURE', 'SPK id altered');
      expectRefusedBundle(alice, { ...bundle, signedPrekey: { ...spk, createdAt: spk.createdAt + 1 } }, 'INVALID_SIGNATURE', 'SPK creation time altered');
      expectRefusedBundle(alice, withSignature(new Uint8Array(64)), 'INVALID_SIGNATURE', 'all-zero signature');
      expectRefusedBundle(alice, withSignature(spk.signature.subarray(0, 63)), 'INVALID_KEY', 'short signature');
      // Mallory re-publishes Bob's identity with her own signed prekey: the signature must be Bob's.
      expectRefusedBundle(alice, { identity: bob.publicIdentity, signedPrekey: mallory.signedPrekey }, 'INVALID_SIGNATURE', 'Mallory\'s SPK under Bob\'s identity');
      expectRefusedBundle(alice, { identity: mallory.publicIdentity, signedPrekey: spk }, 'INVALID_SIGNATURE', 'Bob\'s SPK under Mallory\'s identity');
    });

    test('identity binding: each of the 512 bits, another signer, another X25519 key, no prefix -> INVALID_SIGNATURE', async () => {
      await initCrypto(backend);
      const alice = Account.create();
      const bob = Account.create();
      const bundle = bob.bundle();
      const id = bundle.identity;
      for (let bit = 0; bit < 512; bit++) {
        expectRefusedBundle(alice, { ...bundle, identity: { ...id, binding: flipBit(id.binding, bit) } }, 'INVALID_SIGNATURE', `binding bit ${bit}`);
      }
      const mallory = Account.create();
      const { signingSeed } = unsafeAccountPrivateKeys(bob);
      const cases: [string, PrekeyBundle][] = [
        ['binding by another identity', { ...bundle, identity: { ...id, binding: mallory.sign('identityBinding', id.dhKey) } }],
        ['Bob\'s binding on Mallory\'s X25519 key', { ...bundle, identity: { ...id, dhKey: mallory.publicIdentity.dhKey } }],
        ['binding over the raw X25519 key', { ...bundle, identity: { ...id, binding: getCrypto().ed25519Sign(signingSeed, id.dhKey) } }],
        ['binding made under the SPK context', { ...bundle, identity: { ...id, binding: bob.sign('signedPrekey', id.dhKey) } }],
      ];
      for (const [label, b] of cases) expectRefusedBundle(alice, b, 'INVALID_SIGNATURE', label);
      assert.doesNotThrow(() => verifyBundle(bundle));
    });
  });
}

describe('C14 cross-context signatures never verify', () => {
  test('a relay-auth signature over bytes equal to an SPK payload is not an SPK signature', async () => {
    await initCrypto('node');
    const alice = Account.create();
    const bob = Account.create();
    const bundle = bob.bundle();
    const payload = signedPrekeyPayload(bundle.signedPrekey);
    // The relay picks a "challenge" equal to the SPK record and gets it signed for login.
    const loginSignature = bob.sign('relayAuth', payload);
    assert.equal(verifyContextSignature(bob.publicIdentity.signingKey, 'relayAuth', payload, loginSignature), true, 'control: valid for login');
    assert.equal(verifyContextSignature(bob.publicIdentity.signingKey, 'signedPrekey', payload, loginSignature), false);
    expectRefusedBundle(alice, { ...bundle, signedPrekey: { ...bundle.signedPrekey, signature: loginSignature } }, 'INVALID_SIGNATURE', 'relay-auth signature as SPK');
    // ... and an attacker X25519 key as a challenge is not an identity binding either.
    const attackerKey = getCrypto().x25519Generate().publicKey;
    const sig = bob.sign('relayAuth', attackerKey);
    assert.equal(verifyContextSignature(bob.publicIdentity.signingKey, 'identityBinding', attackerKey, sig), false);
  });

  test('for every ordered pair of the 6 contexts, a signature made for one never verifies for the other (all backends)', async () => {
    for (const backend of BACKENDS) {
      await initCrypto(backend);
      const signer = testSigner();
      const payloads = [new Uint8Array(0), text('server nonce || client nonce || origin'), signedPrekeyPayload({ id: 7, createdAt: 1, publicKey: new Uint8Array(32).fill(9) })];
      for (const payload of payloads) {
        for (const made of CONTEXTS) {
          const signature = getCrypto().ed25519Sign(signer.seed, contextMessage(made, payload));
          for (const checked of CONTEXTS) {
            assert.equal(verifyContextSignature(signer.signingKey, checked, payload, signature), made === checked, `${backend}: made for ${made}, checked as ${checked}`);
          }
        }
      }
    }
  });

  test('context prefixes are prefix-free and 0x00-terminated, so no two (context, payload) pairs sign the same bytes', () => {
    for (const a of CONTEXTS) {
      assert.ok(!SIGNATURE_CONTEXTS[a].includes('\u0000'));
      const prefixA = contextMessage(a, new Uint8Array(0));
      for (const b of CONTEXTS) {
        if (a === b) continue;
        const prefixB = contextMessage(b, new Uint8Array(0));
        const isPrefix = prefixA.length <= prefixB.length && prefixA.every((v, i) => v === prefixB[i]);
        assert.ok(!isPrefix, `${a}'s prefix starts ${b}'s`);
      }
    }
    assert.equal(new Set(Object.values(SIGNATURE_CONTEXTS)).size, CONTEXTS.length);
  });
});
