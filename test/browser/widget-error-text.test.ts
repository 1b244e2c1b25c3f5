/**
 * Issue 10, finding 14: error text a relay chose must never reach the widget's chat or banners.
 * The widget words every error itself (`examples/web/src/error-text.ts`); this checks the words
 * and that the page code shows no error's own `message`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ERROR_CODES, ParleyError } from '@parley/protocol';
import { errorReason, errorText } from '../../examples/web/src/error-text.js';

const PHISH = 'Your session expired: sign in again at https://evil.example/login';

test('every code gets our own sentence; the message and odd reasons never appear', () => {
  for (const code of ERROR_CODES) {
    const text = errorText(new ParleyError(code, PHISH, { details: { reason: 'Visit evil.example now' } }));
    assert.ok(text.startsWith(`${code}: `), text);
    assert.ok(!text.includes('evil') && !text.includes('sign in'), text);
    assert.ok(text.length > code.length + 10, `a sentence for ${code}`);
  }
  assert.equal(errorReason(new ParleyError('UNTRUSTED_IDENTITY', PHISH, { details: { reason: 'expired' } })), 'expired');
  assert.equal(errorReason(new ParleyError('UNTRUSTED_IDENTITY', PHISH, { details: { reason: 'Visit evil.example' } })), '', 'only a short lower-case word');
});

test('the widget source never renders an error message', () => {
  const dir = join(process.env.PARLEY_ROOT ?? process.cwd(), 'examples/web/src');
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.ts'))) {
    const source = readFileSync(join(dir, file), 'utf8').replace(/\/\*[\s\S]*?\*\//g, '');
    const hits = source.split('\n').filter((line) => /\b(e|err|error)\??\.message\b/.test(line));
    assert.deepEqual(hits, [], `${file} shows an error's message`);
  }
});
