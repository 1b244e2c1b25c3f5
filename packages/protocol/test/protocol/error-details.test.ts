/**
 * Decrypt errors carry no header counters (audit finding 9): header encryption hides the
 * message numbers from the relay, so an error that may be logged or cross a boundary (the bot
 * host logs enclave errors) must not hand them out again.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { initCrypto, isParleyError, limits, type ParleyErrorCode } from '../../src/index.js';
import { establish, sendMany, text } from '../helpers/protocol.js';

before(() => initCrypto('node'));

const COUNTER_FIELDS = ['n', 'nr', 'pn', 'ns'];

function refusal(fn: () => unknown, code: ParleyErrorCode): Readonly<Record<string, unknown>> {
  try {
    fn();
  } catch (e) {
    assert.ok(isParleyError(e, code), `expected ${code}, got ${String(e)}`);
    return e.details ?? {};
  }
  return assert.fail(`expected ${code}`);
}

test('replays and over-limit gaps are refused without any header counter in the error', () => {
  const { a, b } = establish();
  const first = a.encrypt(text('first'));
  b.decrypt(first);
  const duplicate = refusal(() => b.decrypt(first), 'DUPLICATE_MESSAGE');
  sendMany(a, limits.MAX_SKIP + 1, 'gap');
  const tooMany = refusal(() => b.decrypt(a.encrypt(text('far'))), 'TOO_MANY_SKIPPED');
  assert.equal(tooMany.max, limits.MAX_SKIP, 'the limit itself is public and stays');
  for (const details of [duplicate, tooMany]) {
    for (const field of COUNTER_FIELDS) assert.ok(!(field in details), `no "${field}" in ${JSON.stringify(details)}`);
  }
});
