/**
 * Erasure requests and deletion receipts (erasure.ts, THREATS P4): each verifies with its
 * signer's key only; any changed field, another key, or a statement of the other kind is refused.
 */
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  IdentityKeyPair,
  deletionReceiptPayload,
  erasureRequestHash,
  erasureRequestPayload,
  initCrypto,
  isParleyError,
  verifyDeletionReceipt,
  verifyErasureRequest,
  type DeletionReceipt,
  type ErasureRequest,
} from '../../src/index.js';

before(() => initCrypto());

const refused = (e: unknown) => isParleyError(e, 'INVALID_SIGNATURE');

describe('erasure statements', () => {
  test('a request verifies with the owner key only; every changed field is refused', () => {
    const owner = IdentityKeyPair.generate();
    const other = IdentityKeyPair.generate();
    const req: ErasureRequest = { conversation: 'A'.repeat(22), owner: 'a'.repeat(32), members: ['b'.repeat(32), 'c'.repeat(32)], at: 1000 };
    const sig = owner.sign('erasure', erasureRequestPayload(req));
    verifyErasureRequest(owner.publicIdentity.signingKey, req, sig);
    // Member order does not matter (canonical), membership does.
    verifyErasureRequest(owner.publicIdentity.signingKey, { ...req, members: ['c'.repeat(32), 'b'.repeat(32)] }, sig);
    assert.throws(() => verifyErasureRequest(other.publicIdentity.signingKey, req, sig), refused);
    for (const changed of [
      { ...req, conversation: 'B'.repeat(22) },
      { ...req, owner: 'd'.repeat(32) },
      { ...req, members: ['b'.repeat(32)] },
      { ...req, at: 1001 },
    ]) assert.throws(() => verifyErasureRequest(owner.publicIdentity.signingKey, changed, sig), refused);
    const flipped = sig.slice();
    flipped[5]! ^= 1;
    assert.throws(() => verifyErasureRequest(owner.publicIdentity.signingKey, req, flipped), refused);
  });

  test('a receipt names the request hash; changed fields, another key or another context are refused', () => {
    const member = IdentityKeyPair.generate();
    const req: ErasureRequest = { conversation: 'A'.repeat(22), owner: 'a'.repeat(32), members: ['b'.repeat(32)], at: 1000 };
    const hash = erasureRequestHash(req);
    assert.match(hash, /^[0-9a-f]{64}$/);
    assert.notEqual(hash, erasureRequestHash({ ...req, at: 1001 }));
    const rec: DeletionReceipt = { conversation: req.conversation, request: hash, member: 'b'.repeat(32), at: 2000 };
    const sig = member.sign('erasure', deletionReceiptPayload(rec));
    verifyDeletionReceipt(member.publicIdentity.signingKey, rec, sig);
    for (const changed of [
      { ...rec, conversation: 'B'.repeat(22) },
      { ...rec, request: erasureRequestHash({ ...req, at: 5 }) },
      { ...rec, member: 'c'.repeat(32) },
      { ...rec, at: 2001 },
    ]) assert.throws(() => verifyDeletionReceipt(member.publicIdentity.signingKey, changed, sig), refused);
    assert.throws(() => verifyDeletionReceipt(IdentityKeyPair.generate().publicIdentity.signingKey, rec, sig), refused);
    // The same bytes signed under another context do not verify.
    const wrongContext = member.sign('sessionReset', deletionReceiptPayload(rec));
    assert.throws(() => verifyDeletionReceipt(member.publicIdentity.signingKey, rec, wrongContext), refused);
  });

  test('bad fields are a usage error before any signing', () => {
    assert.throws(() => erasureRequestPayload({ conversation: 'x', owner: 'a'.repeat(32), members: [], at: 1 }), (e) => isParleyError(e, 'USAGE'));
    assert.throws(() => deletionReceiptPayload({ conversation: 'A'.repeat(22), request: 'zz', member: 'b'.repeat(32), at: 1 }), (e) => isParleyError(e, 'USAGE'));
  });
});
