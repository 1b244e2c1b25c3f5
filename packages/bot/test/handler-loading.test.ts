/**
 * The `handler` option: paths, `file:` URLs and relative paths resolve to the module the enclave
 * runs; a missing or broken handler fails `createBot` at once, naming the file and the loader's
 * reason with its line.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isParleyError } from '@parley/protocol';
import { computeMeasurement } from '../src/index.js';
import { startBot, startRelay } from './harness.js';
import { ECHO_HANDLER, setupCrypto, tempDir } from './helpers.js';

await setupCrypto();
const relay = await startRelay();
after(() => relay.close());

const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));

async function refusal(handler: string | URL, t: Parameters<typeof tempDir>[0]): Promise<string> {
  const started = Date.now();
  try {
    const { bot } = await startBot(relay, tempDir(t), { handler });
    await bot.close();
  } catch (e) {
    assert.ok(isParleyError(e, 'USAGE'), `USAGE, got ${String(e)}`);
    assert.ok(Date.now() - started < 10_000, 'fails at once, without restart loops');
    return e.message;
  }
  return assert.fail('createBot accepted the handler');
}

test('a missing handler is refused before the enclave starts, naming the resolved path', async (t) => {
  const message = await refusal('./no/such/handler.mjs', t);
  assert.match(message, /handler module not found: .*no\/such\/handler\.mjs/);
});

test('a handler with a syntax error is refused with its file and line', async (t) => {
  const message = await refusal(fixture('broken-handler.mjs'), t);
  assert.ok(message.includes(`SyntaxError`), message);
  assert.ok(message.includes(`${fixture('broken-handler.mjs')}:2`), message);
});

test('a syntax error in a module the handler imports is refused with that file and line', async (t) => {
  const message = await refusal(fixture('imports-broken-handler.mjs'), t);
  assert.ok(message.includes('SyntaxError'), message);
  assert.ok(message.includes(`${fixture('broken-handler.mjs')}:2`), message);
});

test('a handler module that throws while loading is refused with its file and line', async (t) => {
  const message = await refusal(new URL(`file://${fixture('throwing-handler.mjs')}`), t);
  assert.ok(message.includes(`${fixture('throwing-handler.mjs')}:2`), message);
});

test('a module without a handler function is refused, naming it', async (t) => {
  const message = await refusal(fixture('no-export-handler.mjs'), t);
  assert.ok(message.includes('no-export-handler.mjs') && message.includes('default function'), message);
});

test('a relative path, an absolute path and a file: URL name the same handler and measurement', async (t) => {
  const absolute = fileURLToPath(ECHO_HANDLER);
  const fromCwd = `./${relative(process.cwd(), absolute)}`;
  const measurements = await Promise.all([fromCwd, absolute, ECHO_HANDLER].map(async (h) => (await computeMeasurement(h)).hex));
  assert.equal(new Set(measurements).size, 1);
  const { bot } = await startBot(relay, tempDir(t), { handler: fromCwd });
  t.after(() => bot.close());
  assert.equal(bot.measurement, measurements[0]);
});
