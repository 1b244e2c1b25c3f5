/** Errors narrow per code: `isParleyError(e, code)` checks the code and types that code's details. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ParleyError, isParleyError } from '../../src/index.js';

test('isParleyError narrows to one code and its typed details; other codes and non-errors are refused', () => {
  const e: unknown = new ParleyError('ATTESTATION_INVALID', 'peer attested another measurement', { details: { reason: 'measurement', peer: 'abc' } });
  assert.equal(isParleyError(e), true);
  assert.equal(isParleyError(e, 'UNTRUSTED_IDENTITY'), false);
  assert.equal(isParleyError(new Error('x'), 'ATTESTATION_INVALID'), false);
  assert.equal(isParleyError({ code: 'ATTESTATION_INVALID', message: 'forged' }, 'ATTESTATION_INVALID'), false);
  if (!isParleyError(e, 'ATTESTATION_INVALID')) assert.fail('narrowing failed');
  // Compile-time: `reason` has the documented literal type (a typo here fails the type-check).
  const reason: 'missing' | 'invalid' | 'measurement' | 'manifest' | 'expired' | undefined = e.details?.reason;
  assert.equal(reason, 'measurement');
});

test('an error that crossed a boundary keeps code and details, and an unknown code becomes INTERNAL', () => {
  const wire = JSON.parse(JSON.stringify(new ParleyError('PAYLOAD_TOO_LARGE', 'envelope too large', { details: { size: 70_000, max: 65_536 } })));
  const back = ParleyError.fromJSON(wire);
  assert.ok(isParleyError(back, 'PAYLOAD_TOO_LARGE'));
  assert.equal(back.details?.max, 65_536);
  assert.equal(ParleyError.fromJSON({ code: 'NOPE', message: 'x' }).code, 'INTERNAL');
});
