/**
 * Leak evidence: live objects never print or serialise their secrets, and errors never carry
 * key bytes (docs/style.md "Secrets refuse to leak"; "numbers in fields, never key bytes").
 *
 * The secret bytes are read from the pickles (account bytes 5..37 = Ed25519 seed, 37..69 =
 * X25519 identity private key; the session's ratchet state via unsafeDecodeSessionPickle) and
 * searched for as hex and as the decimal lists `util.inspect` prints for a Uint8Array.
 */
import { describe, test, before } from 'node:test';
import assert from 'node:assert/strict';
import { format, inspect } from 'node:util';
import { Account, IdentityKeyPair, ParleyError, Session, getCrypto, initCrypto, toHex } from '../../src/index.js';
import {
  establish,
  flipBit,
  sendMany,
  seenErrors,
  text,
  unsafeAccountPrivateKeys,
  unsafeCraftMessage,
  unsafeDecodeSessionPickle,
  onlyParleyErrors,
} from '../helpers/protocol.js';

before(() => initCrypto('node'));

/** Renderings a secret could take in logs: hex (both cases), base64, and inspect's decimal list. */
function renderings(secret: Uint8Array): string[] {
  const decimals = [...secret.subarray(0, 8)].join(', ');
  return [toHex(secret), toHex(secret).toUpperCase(), Buffer.from(secret).toString('base64').slice(0, 20), decimals];
}

function assertNoSecrets(output: string, secrets: readonly Uint8Array[], label: string): void {
  for (const secret of secrets) {
    for (const r of renderings(secret)) assert.ok(!output.includes(r), `${label} leaks a secret (${r.slice(0, 12)}…)`);
  }
}

/** All the ways an app might print or serialise an object by accident. */
function printed(x: unknown): string[] {
  return [
    inspect(x),
    inspect(x, { showHidden: true, depth: Infinity, getters: true }),
    format('%o', x),
    format('%j', x),
    JSON.stringify(x) ?? '',
    JSON.stringify({ ...(x as object) }),
    String(x),
    inspect(structuredCloneSafe(x), { depth: Infinity }),
  ];
}

function structuredCloneSafe(x: unknown): unknown {
  try {
    return structuredClone(x);
  } catch {
    return null;
  }
}

function sessionSecrets(s: Session): Uint8Array[] {
  const { state } = unsafeDecodeSessionPickle(s.pickle());
  const out = [state.rootKey, state.nhks, state.nhkr];
  for (const k of [state.sendChain, state.recvChain, state.hks, state.hkr, state.dhSelf?.privateKey]) if (k) out.push(k);
  for (const chain of state.skipped) out.push(chain.hk, ...[...chain.keys.values()].map((k) => k.mk));
  return out;
}

describe('secrets refuse to leak', () => {
  test('Account: inspect, %o, JSON, spread and structuredClone show no private key bytes', () => {
    const account = Account.create();
    account.generateOneTimePrekeys(3);
    const { signingSeed, dhPrivate } = unsafeAccountPrivateKeys(account);
    // Control: these really are the private keys.
    assert.deepEqual(IdentityKeyPair.fromPrivate(signingSeed, dhPrivate).publicIdentity.signingKey, account.publicIdentity.signingKey);
    const pickle = account.pickle();
    const spkPrivate = pickle.slice(5 + 64 + 4 + 1 + 4 + 8 + 64, 5 + 64 + 4 + 1 + 4 + 8 + 64 + 32);
    assert.deepEqual(getCrypto().x25519PublicKey(spkPrivate), account.signedPrekey.publicKey, 'control: the SPK private key');
    for (const out of printed(account)) assertNoSecrets(out, [signingSeed, dhPrivate, spkPrivate], 'Account');
    assert.ok(inspect(account).includes(account.deviceId), 'inspect shows the public device id');
  });

  test('IdentityKeyPair: no private key bytes in any rendering', () => {
    const identity = IdentityKeyPair.generate();
    const { signingSeed, dhPrivate } = identity.exportPrivateForPickle();
    for (const out of printed(identity)) assertNoSecrets(out, [signingSeed, dhPrivate], 'IdentityKeyPair');
  });

  test('Session: no root, chain, header, message or ratchet private key bytes in any rendering', () => {
    const { a, b } = establish();
    const burst = sendMany(a, 4, 'm');
    b.decrypt(burst[3]!.wire); // skipped message keys held
    for (const s of [a, b]) {
      const secrets = sessionSecrets(s);
      assert.ok(secrets.length >= 6);
      for (const out of printed(s)) assertNoSecrets(out, secrets, `Session (${s.role})`);
    }
  });

  test('error messages, details and inspected errors from every failure path carry no key bytes', () => {
    const { alice, bob, a, b, prekeyMessage } = establish();
    const secrets = [
      ...Object.values(unsafeAccountPrivateKeys(alice)),
      ...Object.values(unsafeAccountPrivateKeys(bob)),
      ...sessionSecrets(a),
      ...sessionSecrets(b),
    ];
    const errors: ParleyError[] = [];
    const collect = (fn: () => unknown) => {
      const r = onlyParleyErrors(fn);
      if (r instanceof ParleyError) errors.push(r);
    };
    const wire = a.encrypt(text('x'));
    for (let bit = 0; bit < wire.length * 8; bit += 13) collect(() => b.decrypt(flipBit(wire, bit)));
    for (let bit = 0; bit < prekeyMessage.length * 8; bit += 11) collect(() => bob.createInboundSession(flipBit(prekeyMessage, bit)));
    collect(() => bob.createInboundSession(prekeyMessage)); // replay
    collect(() => a.decrypt(wire)); // reflection
    b.decrypt(wire);
    collect(() => b.decrypt(wire)); // duplicate
    collect(() => Session.unpickle(b.pickle().subarray(0, 100)));
    collect(() => Account.unpickle(alice.pickle().subarray(0, 50)));
    const d = unsafeDecodeSessionPickle(a.pickle());
    collect(() => b.decrypt(unsafeCraftMessage({ headerKey: d.state.hks!, ad: d.ad, ratchetKey: d.state.dhSelf!.publicKey, pn: 0, n: 0xffffffff })));
    collect(() => b.decrypt(unsafeCraftMessage({ headerKey: d.state.hks!, ad: d.ad, ratchetKey: d.state.dhSelf!.publicKey, pn: 0, n: d.state.ns })));
    collect(() => alice.createOutboundSession({ ...bob.bundle(), oneTimePrekey: { id: 1, publicKey: new Uint8Array(32) } }));
    collect(() => a.encrypt(new Uint8Array(70_000)));
    const codes = new Set(errors.map((e) => e.code));
    for (const code of ['AUTH_FAILED', 'DUPLICATE_MESSAGE', 'INVALID_PREKEY', 'INVALID_SIGNATURE', 'MALFORMED_MESSAGE', 'UNSUPPORTED_VERSION', 'STORAGE_INTEGRITY', 'TOO_MANY_SKIPPED', 'INVALID_KEY', 'PAYLOAD_TOO_LARGE']) {
      assert.ok(codes.has(code as ParleyError['code']), `covered ${code}`);
    }
    for (const e of [...errors, ...seenErrors]) {
      const out = [e.message, JSON.stringify(e), JSON.stringify(e.details ?? {}), inspect(e, { depth: Infinity })].join('\n');
      assertNoSecrets(out, secrets, `${e.code}: ${e.message}`);
      assert.doesNotMatch(`${e.message} ${JSON.stringify(e.details ?? {})}`, /[0-9a-f]{64}/i, `${e.code} carries 32 bytes of hex`);
    }
  });
});
