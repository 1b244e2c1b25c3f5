/**
 * Canary (docs/threats.md B1, B5): customers send many messages carrying a unique canary; the bot's
 * handler sees and echoes it. Then the bot host thread is searched for the canary and for every
 * private key the enclave held: a `v8.writeHeapSnapshot()` of the host, the host's logs, and
 * every message that crossed the host/enclave boundary (both directions). 0 hits.
 *
 * Keeping the test honest:
 * - The customers run in their own worker thread, and this thread holds the canary only as
 *   bytes in an ArrayBuffer (whose contents a heap snapshot does not include) until the scans.
 * - The enclave's keys come from the `unsafeTestingExposeKeys` port only after the snapshot, so
 *   the snapshot is taken without them; the test reads them with `receiveMessageOnPort`, and the
 *   host never touched the port (it was transferred to the worker at start).
 * - Positive controls: the same scanner finds the canary once this thread holds it as a string,
 *   and finds key bytes planted in a message.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeHeapSnapshot } from 'node:v8';
import { MessageChannel, Worker, receiveMessageOnPort } from 'node:worker_threads';
import { getCrypto } from '@parley/protocol';
import { startBot, startRelay } from './harness.js';
import { SecretScanner, binariesIn, countBytes, encodings, setupCrypto, sleep, tempDir } from './helpers.js';

await setupCrypto();

const CONVERSATIONS = 10;
const PER_CONVERSATION = Number(process.env.PARLEY_LEAK_MESSAGES ?? 1000) / CONVERSATIONS;

function countText(hay: string, needle: string): number {
  let n = 0;
  for (let i = hay.indexOf(needle); i !== -1; i = hay.indexOf(needle, i + 1)) n++;
  return n;
}

test(`B1/B5: ${CONVERSATIONS * PER_CONVERSATION} messages with a canary; 0 canary or key hits in the host heap, logs and boundary messages`, { timeout: 300_000 }, async (t) => {
  const dir = tempDir(t);
  const relay = await startRelay();
  t.after(() => relay.close());
  const keys = new MessageChannel();
  t.after(() => keys.port1.close());
  const crossed: unknown[] = [];
  const { bot, logger } = await startBot(relay, dir, {
    oneTimePrekeys: 100,
    failureReply: false, // the driver counts replies: one per message that does not throw
    unsafeTestingExposeKeys: keys.port2,
    unsafeTestingTap: (_direction, message) => crossed.push(message),
  });
  t.after(() => bot.close());

  const canary = getCrypto().randomBytes(16); // bytes only, until the scans
  const customers = new Worker(new URL('./fixtures/customer-worker.mjs', import.meta.url), {
    workerData: { relayUrl: relay.url, bot: bot.deviceId, canary, conversations: CONVERSATIONS, perConversation: PER_CONVERSATION, throwEvery: 10 },
  });
  const report = await new Promise<{ expected: number; replies: number; echoed: number; errors: number }>((resolve, reject) => {
    customers.once('message', resolve);
    customers.once('error', reject);
  });
  await customers.terminate();
  assert.equal(report.replies, report.expected, 'every message answered');
  assert.equal(report.echoed, report.expected, 'the handler saw the canary (it echoed it)');
  assert.equal(report.errors, 0);
  assert.ok(bot.stats.handlerFailures > 0, 'error paths ran (handler threw with the canary in its message)');

  // 1. Host heap snapshot, taken before this thread learns any key or the canary as text.
  const snapshotPath = join(dir, 'host.heapsnapshot');
  writeHeapSnapshot(snapshotPath);
  const heap = readFileSync(snapshotPath, 'latin1');
  rmSync(snapshotPath);

  // 2. Now the secrets: ask the enclave over the test port.
  keys.port1.postMessage('dump');
  let dump: { secrets: Uint8Array[]; parsedAccounts: number; parsedSessions: number; parseFailures: number } | undefined;
  for (let i = 0; i < 500 && !dump; i++) {
    dump = receiveMessageOnPort(keys.port1)?.message as typeof dump;
    if (!dump) await sleep(10);
  }
  assert.ok(dump, 'the enclave answered the key dump');
  assert.equal(dump.parseFailures, 0);
  assert.ok(dump.parsedSessions >= CONVERSATIONS, 'session records were parsed for keys');
  const secrets = dump.secrets;
  assert.ok(secrets.length > 100, `collected ${secrets.length} private keys`);
  const canaryText = Buffer.from(canary).toString('hex');
  const canaryBytes = new TextEncoder().encode(canaryText);
  const logs = logger.text();
  assert.ok(logs.length > 0);

  const hits = { heapCanary: countText(heap, canaryText), logCanary: countText(logs, canaryText), messageCanary: 0, heapKeys: 0, logKeys: 0, messageKeys: 0 };
  const binaries = crossed.flatMap((m) => binariesIn(m));
  assert.ok(binaries.length > CONVERSATIONS * PER_CONVERSATION, 'the tap saw the traffic');
  for (const b of binaries) hits.messageCanary += countBytes(b, canaryBytes);
  const scanner = new SecretScanner(secrets);
  hits.heapKeys = scanner.countInText(heap);
  hits.logKeys = scanner.countInText(logs);
  for (const b of binaries) hits.messageKeys += scanner.countInBytes(b);
  assert.deepEqual(hits, { heapCanary: 0, logCanary: 0, messageCanary: 0, heapKeys: 0, logKeys: 0, messageKeys: 0 });

  // Positive controls: the scanners do see what is there.
  const held = [`${canaryText} held by the host`];
  const controlPath = join(dir, 'control.heapsnapshot');
  writeHeapSnapshot(controlPath);
  assert.ok(countText(readFileSync(controlPath, 'latin1'), canaryText) > 0, 'snapshot scanner sees a held canary');
  rmSync(controlPath);
  assert.equal(scanner.countInBytes(new Uint8Array([1, ...secrets[5]!, 2])), 1, 'byte scanner control');
  for (const enc of encodings(secrets[7]!)) assert.equal(scanner.countInText(`x"${enc}"y`), 1, 'text scanner control');
  assert.equal(held.length, 1);
});
