/**
 * Consent receipts (consent.ts, docs/threats.md P1): a receipt verifies with the customer's
 * identity key; every signed field changed, another key, another conversation or request are
 * refused with a typed error; the request body is validated.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ParleyError,
  checkConsentReceipt,
  checkConsentRequest,
  consentReceiptFor,
  consentReceiptPayload,
  consentRequestHash,
  contextMessage,
  getCrypto,
  initCrypto,
  verifyConsentReceipt,
  withConsentSignature,
  type ConsentReceipt,
  type ConsentRequestBody,
} from '../../src/index.js';

await initCrypto();
const c = getCrypto();
const SEED = new Uint8Array(32).fill(3);
const KEY = c.ed25519PublicKey(SEED);
const OTHER = c.ed25519PublicKey(new Uint8Array(32).fill(4));
const CONV = 'AAAAAAAAAAAAAAAAAAAAAA';
const REQ: ConsentRequestBody = { id: 'ret-1', purpose: 'Arrange your return', fields: ['name', 'address'], retentionDays: 30, controller: 'Acme Ltd' };

function signed(over: Partial<ConsentReceipt> = {}): ConsentReceipt {
  const u = { ...consentReceiptFor(REQ, { id: 'rc-1', conversation: CONV, signer: 'ab'.repeat(16), decision: 'granted', at: 1_800_000_000_000 }), ...over };
  return withConsentSignature(u, c.ed25519Sign(SEED, contextMessage('consentReceipt', consentReceiptPayload(u))));
}

const code = (code: string, reason?: string, why?: string) => (e: unknown) => {
  assert.ok(e instanceof ParleyError, String(e));
  assert.equal(e.code, code);
  const d = (e.details ?? {}) as Record<string, unknown>;
  if (reason) assert.equal(d.reason, reason);
  if (why) assert.equal(d.why, why);
  return true;
};

describe('consent receipts', () => {
  test('a receipt verifies with the signer key, in its conversation, for its request', () => {
    const r = verifyConsentReceipt(JSON.parse(JSON.stringify(signed())), KEY, { conversation: CONV, request: consentRequestHash(REQ) });
    assert.deepEqual(r.fields, ['name', 'address']);
    assert.equal(r.decision, 'granted');
  });

  test('every signed field changed after signing is INVALID_SIGNATURE', () => {
    const r = signed();
    const changes: Partial<ConsentReceipt>[] = [
      { id: 'rc-2' }, { request: 'f'.repeat(64) }, { requestId: 'other' }, { purpose: 'Marketing' },
      { fields: ['name', 'address', 'phone'] }, { fields: ['name'] }, { retentionDays: 31 }, { controller: 'Evil Ltd' },
      { decision: 'denied' }, { signer: 'cd'.repeat(16) }, { at: r.at + 1 },
    ];
    for (const ch of changes) {
      assert.throws(() => verifyConsentReceipt({ ...r, ...ch }, KEY, { conversation: CONV }), code('INVALID_SIGNATURE'), JSON.stringify(ch));
    }
    const sig = Buffer.from(r.sig, 'base64');
    sig[5] = sig[5]! ^ 1;
    assert.throws(() => verifyConsentReceipt({ ...r, sig: sig.toString('base64') }, KEY, { conversation: CONV }), code('INVALID_SIGNATURE'));
  });

  test('another signer key is INVALID_SIGNATURE', () => {
    assert.throws(() => verifyConsentReceipt(signed(), OTHER, { conversation: CONV }), code('INVALID_SIGNATURE'));
  });

  test('a receipt from conversation A presented in B, or for another request: FORBIDDEN noConsent with why', () => {
    assert.throws(() => verifyConsentReceipt(signed(), KEY, { conversation: 'BBBBBBBBBBBBBBBBBBBBBB' }), code('FORBIDDEN', 'noConsent', 'otherConversation'));
    const other = consentRequestHash({ ...REQ, fields: ['name'] });
    assert.throws(() => verifyConsentReceipt(signed(), KEY, { conversation: CONV, request: other }), code('FORBIDDEN', 'noConsent', 'otherRequest'));
  });

  test('a withdrawal names the receipt it withdraws; shapes are checked', () => {
    const w = signed({ id: 'rc-9', decision: 'withdrawn', withdraws: 'rc-1' });
    assert.equal(verifyConsentReceipt(w, KEY, { conversation: CONV }).withdraws, 'rc-1');
    assert.throws(() => checkConsentReceipt({ ...signed(), withdraws: 'rc-1' }), code('MALFORMED_MESSAGE'));
    assert.throws(() => checkConsentReceipt({ ...signed(), extra: 1 }), code('MALFORMED_MESSAGE'));
    assert.throws(() => checkConsentReceipt({ ...signed(), sig: 'AAAA' }), code('MALFORMED_MESSAGE'));
  });

  test('request bodies are validated; the hash binds every field', () => {
    assert.throws(() => checkConsentRequest({ ...REQ, fields: [] }), code('USAGE'));
    assert.throws(() => checkConsentRequest({ ...REQ, fields: ['a', 'a'] }), code('USAGE'));
    assert.throws(() => checkConsentRequest({ ...REQ, fields: ['bad name'] }), code('USAGE'));
    assert.throws(() => checkConsentRequest({ ...REQ, retentionDays: -1 }), code('USAGE'));
    assert.throws(() => checkConsentRequest({ ...REQ, more: 1 }, 'MALFORMED_MESSAGE'), code('MALFORMED_MESSAGE'));
    const h = consentRequestHash(REQ);
    for (const ch of [{ id: 'x' }, { purpose: 'p' }, { fields: ['name'] }, { retentionDays: 1 }, { controller: 'c' }]) {
      assert.notEqual(consentRequestHash({ ...REQ, ...ch }), h);
    }
  });
});
