/**
 * `createBot` always settles, with a typed error naming what went wrong: a closed port, an
 * unknown host, an untrusted certificate, an unknown and a revoked API key each reject well
 * within `connectTimeoutMs`; `ca` makes an HTTPS relay with a private CA work. A running bot
 * emits `connected` / `disconnected` / `connected` across a relay restart, and `authFailed`
 * (once, with no further login attempts) after its key is revoked. A bot without a certificate
 * says so once. Real sockets, a real relay (HTTP and HTTPS), a real enclave worker.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { isParleyError } from '@parley/protocol';
import { createApiKey, createRelay, MemoryStore, type Relay } from '../../relay/src/index.js';
import type { BotOptions } from '../src/index.js';
import { createBotForTesting } from '../src/testing.js';
import { closedPort, makeTestCertificates } from '../../client/test/helpers/tls.js';
import { TEST_RELAY_LIMITS } from './harness.js';
import { captureLogger, ECHO_HANDLER, setupCrypto, sleep, tempDir, waitFor } from './helpers.js';

await setupCrypto();

const TIMEOUT_MS = 10_000;
const dir = tempDir();

let bots = 0;
function options(relayUrl: string, apiKey: string, extra: Partial<BotOptions> = {}): BotOptions {
  return { relayUrl, apiKey, handler: ECHO_HANDLER, stateDir: join(dir, `bot-${++bots}`), logger: captureLogger(), oneTimePrekeys: 5, connectTimeoutMs: TIMEOUT_MS, ...extra };
}

/** The rejection of `createBot` and how long it took (enclave start included). */
async function refusal(opts: BotOptions): Promise<{ error: unknown; ms: number }> {
  const start = Date.now();
  try {
    const bot = await createBotForTesting(opts);
    await bot.close();
  } catch (error) {
    return { error, ms: Date.now() - start };
  }
  throw new Error('expected createBot to reject');
}

async function authFailures(relay: Relay): Promise<number> {
  const m = /auth_total\{result="failure"\} (\d+)/.exec(await relay.metrics.metrics());
  return m ? Number(m[1]) : 0;
}

const FAKE_KEY = `prk_0123456789abcdef_${'A'.repeat(43)}`;

test('createBot rejects with its own typed error for each way of failing, well within connectTimeoutMs', async (t) => {
  await t.test('closed port: TRANSPORT / refused', async () => {
    const port = await closedPort();
    const { error, ms } = await refusal(options(`http://127.0.0.1:${port}`, FAKE_KEY));
    assert.ok(isParleyError(error, 'TRANSPORT'), String(error));
    assert.equal(error.details?.reason, 'refused');
    assert.equal(error.details?.cause, 'ECONNREFUSED');
    assert.match(error.message, /refused the connection \(ECONNREFUSED\): is parley-relay running on that port\?/);
    assert.ok(ms < TIMEOUT_MS / 2, `${ms} ms`);
  });

  await t.test('unknown host: TRANSPORT / dns', async () => {
    const { error, ms } = await refusal(options('https://parley-bot-relay.invalid', FAKE_KEY));
    assert.ok(isParleyError(error, 'TRANSPORT'), String(error));
    assert.equal(error.details?.reason, 'dns');
    assert.match(String(error.details?.cause), /^(ENOTFOUND|EAI_AGAIN)$/);
    assert.ok(ms < TIMEOUT_MS / 2, `${ms} ms`);
  });

  const certs = makeTestCertificates();
  const https = await createRelay({ logLevel: 'silent', limits: TEST_RELAY_LIMITS, tls: { cert: certs.cert, key: certs.key } });
  t.after(() => https.close());
  const { key: httpsKey } = await createApiKey(https.store, 'tls bot');

  await t.test('untrusted certificate: TRANSPORT / tls; with `ca` the bot connects', async () => {
    const { error, ms } = await refusal(options(https.url, httpsKey));
    assert.ok(isParleyError(error, 'TRANSPORT'), String(error));
    assert.equal(error.details?.reason, 'tls');
    assert.match(error.message, /is not trusted \(\w+\): pass its CA with the `ca` option/);
    assert.ok(ms < TIMEOUT_MS / 2, `${ms} ms`);

    const bot = await createBotForTesting(options(https.url, httpsKey, { ca: certs.ca }));
    try {
      assert.equal(bot.connected, true);
    } finally {
      await bot.close();
    }
  });

  const relay = await createRelay({ logLevel: 'silent', limits: TEST_RELAY_LIMITS });
  t.after(() => relay.close());

  await t.test('unknown API key: UNAUTHENTICATED', async () => {
    const { error, ms } = await refusal(options(relay.url, FAKE_KEY));
    assert.ok(isParleyError(error, 'UNAUTHENTICATED'), String(error));
    assert.match(error.message, /refused the login/);
    assert.equal(error.details?.reason, 'apiKey');
    assert.match(error.message, /check the API key/);
    assert.ok(ms < TIMEOUT_MS / 2, `${ms} ms`);
  });

  await t.test('revoked API key: UNAUTHENTICATED, and no retry', async () => {
    const { id, key } = await createApiKey(relay.store, 'revoked bot');
    await relay.store.revokeApiKey(id, Date.now());
    const before = await authFailures(relay);
    const { error, ms } = await refusal(options(relay.url, key));
    assert.ok(isParleyError(error, 'UNAUTHENTICATED'), String(error));
    assert.equal(error.details?.reason, 'apiKeyRevoked');
    assert.match(error.message, /was revoked: issue a new one with `parley-relay apikey create`/);
    assert.ok(ms < TIMEOUT_MS / 2, `${ms} ms`);
    await sleep(800);
    assert.equal((await authFailures(relay)) - before, 1, 'one login attempt');
  });
});

test('a running bot: connection events across a relay restart, authFailed after its key is revoked', async (t) => {
  const store = new MemoryStore();
  let relay = await createRelay({ logLevel: 'silent', limits: TEST_RELAY_LIMITS, store });
  const port = relay.port;
  t.after(() => relay.close());
  const { id, key } = await createApiKey(store, 'events bot');
  const logger = captureLogger();
  const bot = await createBotForTesting(options(relay.url, key, { logger }));
  t.after(() => bot.close());
  const seen: string[] = [];
  const failures: unknown[] = [];
  bot.on('connected', ({ deviceId }) => seen.push(deviceId === bot.deviceId ? 'connected' : 'connected:wrong-id'));
  bot.on('disconnected', () => seen.push('disconnected'));
  bot.on('authFailed', ({ error }) => {
    seen.push('authFailed');
    failures.push(error);
  });
  const off = bot.on('prekeysLow', () => undefined);
  off();

  // A bot without a certificate said so exactly once at start, with the fix.
  const unsafe = logger.lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l['event'] === 'unsafeDefault');
  assert.equal(unsafe.length, 1);
  assert.equal(unsafe[0]!['option'], 'certificate');
  assert.equal(unsafe[0]!['identity'], bot.identityHex);
  assert.match(String(unsafe[0]!['msg']), /parley-org certify/);

  await relay.close();
  await waitFor(() => seen.length === 1, 5_000, 'disconnected');
  relay = await createRelay({ logLevel: 'silent', limits: TEST_RELAY_LIMITS, store, port });
  await waitFor(() => seen.length === 2, 10_000, 'connected again');
  assert.deepEqual(seen, ['disconnected', 'connected']);
  assert.equal(bot.connected, true);

  // Revoked while running: the next login (after a relay restart) is refused, for good.
  await store.revokeApiKey(id, Date.now());
  await relay.close();
  relay = await createRelay({ logLevel: 'silent', limits: TEST_RELAY_LIMITS, store, port });
  await waitFor(() => failures.length === 1, 10_000, 'authFailed');
  const error = failures[0];
  assert.ok(isParleyError(error, 'UNAUTHENTICATED'), String(error));
  assert.equal(error.details?.reason, 'apiKeyRevoked');
  const attempts = await authFailures(relay);
  assert.ok(attempts <= 1, `${attempts} refused logins`);
  // The default backoff starts at 250 ms: a retry loop would have tried again by now.
  await sleep(1_500);
  assert.equal(await authFailures(relay), attempts, 'no login attempt after authFailed');
  assert.equal(failures.length, 1);
  assert.equal(bot.connected, false);
  assert.deepEqual(seen.slice(0, 3), ['disconnected', 'connected', 'disconnected']);
  assert.equal(seen.at(-1), 'authFailed');
  assert.equal(logger.lines.filter((l) => l.includes('"unsafeDefault"')).length, 1, 'the warning is not repeated');
});
