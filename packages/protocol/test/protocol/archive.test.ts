/**
 * The compliance archive (archive.ts): the org-signed disclosure, the sealed box to the
 * compliance key, and the hash chain whose verifier names a deleted, reordered or replaced entry.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  IdentityKeyPair,
  chainArchiveEntry,
  decodeArchiveEntry,
  decodeArchivedMessage,
  describeArchiveBreak,
  encodeArchiveEntry,
  encodeArchivedMessage,
  getCrypto,
  initCrypto,
  isParleyError,
  makeArchiveSubmission,
  openArchiveSeal,
  sealToArchiveKey,
  archiveSealAd,
  signArchiveDisclosure,
  verifyArchiveChain,
  verifyArchiveDisclosure,
  type ArchiveDisclosureFields,
} from '../../src/index.js';

await initCrypto();

const SEED = new Uint8Array(32).fill(7);
const FIELDS: ArchiveDisclosureFields = {
  label: 'support',
  archiveKey: new Uint8Array(32).fill(9),
  retentionDays: 365,
  openers: ['compliance'],
  issuedAt: 1_000,
  expiresAt: 10_000,
};

function refusedWith(why: string) {
  return (e: unknown) => isParleyError(e, 'FORBIDDEN') && e.details?.reason === 'archiveNotDisclosed' && e.details?.why === why;
}

describe('archive disclosure', () => {
  const orgKey = getCrypto().ed25519PublicKey(SEED);
  const bytes = signArchiveDisclosure(SEED, FIELDS);

  test('verifies under the pinned org key and returns its fields', () => {
    const d = verifyArchiveDisclosure(bytes, { orgKey, label: 'support', now: 2_000 });
    assert.equal(d.retentionDays, 365);
    assert.deepEqual(d.openers, ['compliance']);
    assert.deepEqual(d.archiveKey, FIELDS.archiveKey);
  });

  test('every signed byte matters', () => {
    for (let i = 0; i < bytes.length; i++) {
      const t = bytes.slice();
      t[i] = (t[i] ?? 0) ^ 1;
      assert.throws(() => verifyArchiveDisclosure(t, { orgKey, now: 2_000 }), (e: unknown) => isParleyError(e, 'FORBIDDEN') && e.details?.reason === 'archiveNotDisclosed');
    }
  });

  test('another org key, another label, the clock', () => {
    const other = getCrypto().ed25519PublicKey(new Uint8Array(32).fill(8));
    assert.throws(() => verifyArchiveDisclosure(bytes, { orgKey: other, now: 2_000 }), refusedWith('orgKey'));
    assert.throws(() => verifyArchiveDisclosure(bytes, { orgKey, label: 'sales', now: 2_000 }), refusedWith('label'));
    assert.throws(() => verifyArchiveDisclosure(bytes, { orgKey, now: 500 }), refusedWith('notYetValid'));
    assert.throws(() => verifyArchiveDisclosure(bytes, { orgKey, now: 10_000 }), refusedWith('expired'));
  });
});

describe('sealed box', () => {
  const c = getCrypto();
  const kp = c.x25519Generate();
  const ad = archiveSealAd('conv-1', new Uint8Array(32).fill(1));

  test('opens with the compliance private key only, bound to its ad', () => {
    const msg = encodeArchivedMessage({ conversation: 'c', id: 'm1', from: 'd', at: 5, body: 'hello' });
    const sealed = sealToArchiveKey(kp.publicKey, msg, ad);
    assert.equal(Buffer.from(sealed).includes(Buffer.from('hello')), false);
    assert.equal(decodeArchivedMessage(openArchiveSeal(kp.privateKey, sealed, ad)).body, 'hello');
    assert.throws(() => openArchiveSeal(c.x25519Generate().privateKey, sealed, ad), (e: unknown) => isParleyError(e, 'AUTH_FAILED'));
    assert.throws(() => openArchiveSeal(kp.privateKey, sealed, archiveSealAd('conv-2', new Uint8Array(32).fill(1))), (e: unknown) => isParleyError(e, 'AUTH_FAILED'));
    const t = sealed.slice();
    t[t.length - 1] = (t[t.length - 1] ?? 0) ^ 1;
    assert.throws(() => openArchiveSeal(kp.privateKey, t, ad), (e: unknown) => isParleyError(e, 'AUTH_FAILED'));
  });
});

describe('archive chain', () => {
  const c = getCrypto();
  const archive = c.x25519Generate();
  const alice = IdentityKeyPair.generate();
  const bot = IdentityKeyPair.generate();
  const ref = 'conv-abc';

  function build(n: number): Uint8Array[] {
    const out: Uint8Array[] = [];
    const seq = new Map<IdentityKeyPair, number>();
    for (let i = 0; i < n; i++) {
      const who = i % 2 === 0 ? alice : bot;
      const s = seq.get(who) ?? 0;
      seq.set(who, s + 1);
      const sealed = sealToArchiveKey(archive.publicKey, encodeArchivedMessage({ conversation: ref, id: `m${i}`, from: who.deviceId, at: i, body: `msg ${i}` }), archiveSealAd(ref, who.publicIdentity.signingKey));
      const sub = makeArchiveSubmission({ ref, senderKey: who.publicIdentity.signingKey, senderSeq: s, sealed }, (p) => who.sign('archiveEntry', p));
      out.push(chainArchiveEntry(sub, out.at(-1)));
    }
    return out;
  }

  const chain = build(6);

  test('an intact chain verifies', () => {
    const r = verifyArchiveChain(ref, chain);
    assert.deepEqual(r.breaks, []);
    assert.equal(r.ok, true);
    assert.equal(decodeArchiveEntry(chain[3]!).index, 3);
  });

  test('a deleted entry is named', () => {
    const r = verifyArchiveChain(ref, [...chain.slice(0, 2), ...chain.slice(3)]);
    assert.equal(r.ok, false);
    assert.deepEqual(r.breaks.map(describeArchiveBreak), ['entry 2 deleted']);
  });

  test('two swapped entries are named', () => {
    const t = chain.slice();
    [t[1], t[4]] = [t[4]!, t[1]!];
    const r = verifyArchiveChain(ref, t);
    assert.deepEqual(r.breaks.map(describeArchiveBreak), ['entries 1 and 4 reordered']);
  });

  test('a replaced entry is named: altered bytes, or another validly signed entry in its place', () => {
    const t = chain.slice();
    const b = t[3]!.slice();
    b[b.length - 70] = (b[b.length - 70] ?? 0) ^ 1; // inside the sealed payload
    t[3] = b;
    assert.deepEqual(verifyArchiveChain(ref, t).breaks.map(describeArchiveBreak), ['entry 3 replaced (signature)']);
    // A fresh, validly signed submission re-chained at index 2 with the old prevHash.
    const e2 = decodeArchiveEntry(chain[2]!);
    const sealed = sealToArchiveKey(archive.publicKey, encodeArchivedMessage({ conversation: ref, id: 'x', from: 'd', at: 0, body: 'forged' }), archiveSealAd(ref, alice.publicIdentity.signingKey));
    const sub = makeArchiveSubmission({ ref, senderKey: alice.publicIdentity.signingKey, senderSeq: e2.submission.senderSeq, sealed }, (p) => alice.sign('archiveEntry', p));
    const u = chain.slice();
    u[2] = encodeArchiveEntry({ index: 2, prevHash: e2.prevHash, submission: sub });
    assert.deepEqual(verifyArchiveChain(ref, u).breaks.map(describeArchiveBreak), ['entry 2 replaced (hash)']);
  });

  test('a deletion with the chain rewritten after it shows as a gap in the sender sequence', () => {
    const kept = [chain[0]!, chain[1]!, chain[3]!, chain[4]!];
    const rebuilt: Uint8Array[] = [];
    for (const k of kept) rebuilt.push(chainArchiveEntry(decodeArchiveEntry(k).submission, rebuilt.at(-1)));
    const r = verifyArchiveChain(ref, rebuilt);
    assert.equal(r.ok, false);
    assert.equal(r.breaks[0]?.kind, 'senderGap');
  });

  test('the relay refuses a submission whose signature does not verify', () => {
    const e = decodeArchiveEntry(chain[0]!);
    const bad = { ...e.submission, senderSeq: 9 };
    assert.throws(() => chainArchiveEntry(bad, undefined), (x: unknown) => isParleyError(x, 'INVALID_SIGNATURE'));
  });
});
