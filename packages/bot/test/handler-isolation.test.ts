/**
 * Issue 10, finding 10: the handler runs in its own worker, a separate V8 isolate that holds no
 * key, shares no module instance with the key-holding enclave and gets plaintext and `reply`
 * only. A hostile handler that wraps the crypto provider `@parley/protocol` hands out, patches
 * the identity's `sign` and the engine's prototype, and imports the enclave's engine module (the
 * review's attack) catches nothing: no call, no key, no engine; and no secret reaches its replies
 * or the host.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MessageChannel, receiveMessageOnPort } from 'node:worker_threads';
import { Customer } from './customer.js';
import { startBot, startRelay } from './harness.js';
import { SecretScanner, binariesIn, setupCrypto, sleep, tempDir, waitFor } from './helpers.js';

await setupCrypto();

const KEY_THIEF = new URL('./fixtures/key-thief-handler.ts', import.meta.url);

interface Report {
  provider: string;
  providerCalls: number;
  signCalls: number;
  engines: number;
  oracleSignatures: number;
  engineModule: string;
  capturedCount: number;
  captured: string[];
  env: string[];
  argv: string[];
  workerData: string;
}

test('a handler that wraps the crypto provider and imports the enclave engine captures no key', async (t) => {
  const dir = tempDir(t);
  const relay = await startRelay();
  t.after(() => relay.close());
  const keys = new MessageChannel();
  t.after(() => keys.port1.close());
  const crossed: unknown[] = [];
  const { bot, logger } = await startBot(relay, dir, {
    handler: KEY_THIEF,
    unsafeTestingExposeKeys: keys.port2,
    unsafeTestingTap: (_d, m) => crossed.push(m),
  });
  t.after(() => bot.close());
  const c = await Customer.connect(relay.url);
  t.after(() => c.close());
  // Key operations of every kind after the handler loaded: decrypt and encrypt (messages and
  // replies), identity signatures (attestations, prekeys), then the report.
  await c.send(bot.deviceId, 'hello');
  await waitFor(() => c.replies.length >= 1, 10_000, 'first reply');
  await bot.supervisor.call('attest', {});
  await bot.supervisor.call('prekeys', { generate: 2 });
  await c.send(bot.deviceId, 'report');
  await waitFor(() => c.replies.length >= 2, 10_000, 'the report');
  const report = c.replies[1]!.json as Report;

  assert.equal(report.engineModule, 'function', 'the import of the enclave engine module loaded (a fresh, empty copy)');
  assert.equal(report.provider, 'own', 'the handler sees no crypto provider (the enclave one lives in another isolate), and the one it starts is its own');
  assert.deepEqual(
    { providerCalls: report.providerCalls, signCalls: report.signCalls, engines: report.engines, oracleSignatures: report.oracleSignatures, captured: report.capturedCount },
    { providerCalls: 0, signCalls: 0, engines: 0, oracleSignatures: 0, captured: 0 },
    'the wrapped provider, sign and engine prototype never ran for the enclave',
  );
  assert.deepEqual(report.env, [], 'an empty environment');
  assert.deepEqual(report.argv, [], 'no arguments');
  assert.match(report.workerData, /"handlerUrl"/, 'workerData: the handler, its measured files and the sync port (scanned for keys below)');

  keys.port1.postMessage('dump');
  let dump: { secrets: Uint8Array[] } | undefined;
  for (let i = 0; i < 500 && !dump; i++) {
    dump = receiveMessageOnPort(keys.port1)?.message as typeof dump;
    if (!dump) await sleep(10);
  }
  assert.ok(dump && dump.secrets.length > 10, 'the enclave dumped its keys');
  const scanner = new SecretScanner(dump.secrets);
  const replies = JSON.stringify(c.replies);
  const hits = {
    replies: scanner.countInText(replies),
    captured: report.captured.reduce((n, hex) => n + scanner.countInText(hex), 0),
    boundary: crossed.flatMap((m) => binariesIn(m)).reduce((n, b) => n + scanner.countInBytes(b), 0),
    logs: scanner.countInText(logger.text()),
  };
  assert.deepEqual(hits, { replies: 0, captured: 0, boundary: 0, logs: 0 });
  // Control: the scanner finds a key in a reply-shaped text.
  assert.equal(scanner.countInText(JSON.stringify({ captured: [Buffer.from(dump.secrets[0]!).toString('hex')] })), 1);
});

const CONTRACT = new URL('./fixtures/contract-handler.mjs', import.meta.url);

test('the handler worker keeps the handler contract: errors withheld (an SDK error keeps its words), late replies refused, a crash re-runs the message', async (t) => {
  const dir = tempDir(t);
  const relay = await startRelay();
  t.after(() => relay.close());
  // No failure reply and no re-run of a failed message: this test is about what crosses.
  const { bot, logger } = await startBot(relay, dir, { handler: CONTRACT, restartBackoffMs: { min: 10, max: 100 }, maxHandlerFailures: 1, failureReply: false });
  t.after(() => bot.close());
  const c = await Customer.connect(relay.url);
  t.after(() => c.close());
  const texts = () => c.replies.map((r) => r.text);

  // A thrown error with a code: the code crosses, its message (which quotes plaintext) does not.
  await c.send(bot.deviceId, 'coded plaintext-1');
  // The enclave's own refusal, rethrown by the handler: reported in the SDK's words.
  await c.send(bot.deviceId, 'too big');
  await c.send(bot.deviceId, 'after');
  await waitFor(() => texts().includes('echo:after'), 10_000, 'a reply after the failures');
  await waitFor(() => bot.stats.handlerFailures === 2, 5000, 'two failures reported');
  const failures = logger.lines.filter((l) => l.includes('handler.failed')).map((l) => (JSON.parse(l) as { error: { code: string; message: string } }).error);
  assert.deepEqual(failures, [
    { code: 'USAGE', message: 'the handler threw USAGE (message withheld at the enclave boundary)' },
    { code: 'PAYLOAD_TOO_LARGE', message: 'plaintext exceeds the maximum message size' },
  ]);
  assert.doesNotMatch(logger.text(), /plaintext-1/);

  // A reply after the handler returned is refused (the message is already consumed).
  await c.send(bot.deviceId, 'late');
  await sleep(200);
  await c.send(bot.deviceId, 'late?');
  await waitFor(() => c.replies.length >= 2, 10_000, 'the late answer');
  assert.equal(texts().at(-1), 'USAGE: the handler already returned for this message: reply before it returns');
  assert.ok(!texts().includes('too late'));

  // The handler ends its own worker: the enclave restarts from its sealed state and runs the
  // message again, flagged as redelivered.
  await c.send(bot.deviceId, `die:${dir}/died-once`);
  await waitFor(() => texts().some((x) => x?.startsWith('survived')), 20_000, 'the re-run');
  assert.equal(texts().at(-1), 'survived redelivered=true');
  assert.equal(bot.stats.crashes, 1);
  assert.match(logger.text(), /enclave\.crashed/);
  assert.equal(c.errors, 0);
});

test('what the handler posts on its port is checked by the enclave: malformed or forged messages change nothing', async (t) => {
  const dir = tempDir(t);
  const relay = await startRelay();
  t.after(() => relay.close());
  const { bot } = await startBot(relay, dir, { handler: new URL('./fixtures/port-fuzz-handler.mjs', import.meta.url) });
  t.after(() => bot.close());
  const c = await Customer.connect(relay.url);
  t.after(() => c.close());
  await c.send(bot.deviceId, 'fuzz');
  await c.send(bot.deviceId, 'after');
  await waitFor(() => c.replies.length >= 2, 10_000, 'two replies');
  await sleep(200);
  assert.deepEqual(c.replies.map((r) => r.text), ['still fine: fuzz', 'still fine: after']);
  assert.equal(bot.stats.crashes, 0);
  assert.equal(bot.stats.handlerFailures, 0);
  assert.equal(({} as { polluted?: boolean }).polluted, undefined);
});
