/**
 * `ctx.state` (README "Handler state"): a per-conversation key-value store the enclave seals.
 * It survives a bot restart, one customer never sees another's keys, a run that fails changes
 * nothing, the limits are typed errors, and the host never holds a value in clear: a marker
 * stored in it is in no file of the state folder, no message across the host/enclave boundary
 * and no log line, while the sealed record for it did cross.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { getCrypto, toHex } from '@parley/protocol';
import { createBotForTesting } from '../src/testing.js';
import { Customer } from './customer.js';
import { startBot, startRelay } from './harness.js';
import { binariesIn, captureLogger, countBytes, setupCrypto, tempDir, waitFor } from './helpers.js';

await setupCrypto();

const STATE = new URL('./fixtures/state-handler.mjs', import.meta.url);

function filesUnder(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) filesUnder(path, out);
    else out.push(path);
  }
  return out;
}

/** Sends `text` and waits for the reply to it (the customer's next reply). */
async function ask(c: Customer, bot: string, text: string): Promise<string | undefined> {
  const before = c.replies.length;
  await c.send(bot, text);
  await waitFor(() => c.replies.length > before, 10_000, `the reply to ${text}`);
  return c.replies[before]!.text;
}

test('ctx.state is per conversation, survives a bot restart, keeps no change of a failed run, and is sealed: its values never reach the host in clear', async (t) => {
  const dir = tempDir(t);
  const relay = await startRelay();
  t.after(() => relay.close());
  const crossed: unknown[] = [];
  const first = await startBot(relay, dir, { handler: STATE, maxHandlerFailures: 1, failureReply: 'failed', unsafeTestingTap: (_d, m) => crossed.push(m) });
  const a = await Customer.connect(relay.url);
  const b = await Customer.connect(relay.url);
  t.after(() => [a, b].forEach((c) => c.close()));
  const bot = first.bot.deviceId;
  const marker = `marker-${toHex(getCrypto().randomBytes(12))}`;

  assert.equal(await ask(a, bot, `set consent ${marker}`), 'ok consent');
  assert.equal(await ask(a, bot, 'get consent'), `consent={"value":"${marker}"}`);
  assert.equal(await ask(b, bot, 'get consent'), 'consent=null', 'another conversation does not see it');
  assert.equal(await ask(b, bot, 'set consent b-value'), 'ok consent');
  assert.equal(await ask(a, bot, 'fail-after-set consent changed'), 'failed');
  assert.equal(await ask(a, bot, 'get consent'), `consent={"value":"${marker}"}`, 'a failed run changed nothing');
  assert.equal(await ask(a, bot, 'limits'), 'USAGE:stateKey,USAGE:stateTooLarge,USAGE:stateValue');
  assert.equal(await ask(a, bot, 'count'), 'count=1');
  assert.equal(await ask(a, bot, 'count'), 'count=2');
  await first.bot.idle();
  await first.bot.close();

  // The host's side of it: files, boundary messages, logs.
  const stateFiles = filesUnder(dir).filter((f) => !f.endsWith('.heapsnapshot'));
  assert.ok(stateFiles.length > 0);
  const markerBytes = new TextEncoder().encode(marker);
  const inFiles = stateFiles.reduce((n, f) => n + countBytes(new Uint8Array(readFileSync(f)), markerBytes), 0);
  const binaries = crossed.flatMap((m) => binariesIn(m));
  const inMessages = binaries.reduce((n, bin) => n + countBytes(bin, markerBytes), 0) + (JSON.stringify(crossed, (_k, v: unknown) => (v instanceof Uint8Array ? undefined : v)).includes(marker) ? 1 : 0);
  assert.deepEqual({ inFiles, inMessages, inLogs: first.logger.text().includes(marker) }, { inFiles: 0, inMessages: 0, inLogs: false });
  // The record did cross, sealed: a persist batch put `handler-state/<customer>`.
  const sealedPuts = crossed.filter((m): m is { type: 'persist'; puts: { key: string }[] } => (m as { type?: string }).type === 'persist').flatMap((m) => m.puts.map((p) => p.key));
  assert.ok(sealedPuts.includes(`handler-state/${a.engine.deviceId}`), 'the state went to the host as a sealed record');
  // Control: the byte scanner finds the marker where it is.
  assert.equal(countBytes(new Uint8Array([1, ...markerBytes, 2]), markerBytes), 1);

  // After a restart (same state folder): both conversations' state is back, each its own.
  const second = await createBotForTesting({ ...first.options, logger: captureLogger() });
  t.after(() => second.close());
  assert.equal(await ask(a, bot, 'get consent'), `consent={"value":"${marker}"}`);
  assert.equal(await ask(b, bot, 'get consent'), 'consent={"value":"b-value"}');
  assert.equal(await ask(a, bot, 'count'), 'count=3');
  assert.equal(await ask(b, bot, 'list'), '[["consent",{"value":"b-value"}]]');
  assert.equal(await ask(b, bot, 'del consent'), 'deleted consent: true');
  assert.equal(await ask(b, bot, 'list'), '[]');
});
