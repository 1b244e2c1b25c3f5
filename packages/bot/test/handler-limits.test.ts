/**
 * Handler limits (THREATS B6): a run that never settles, busy-loops, throws or asks for an
 * oversize reply is cut, the customer gets the failure reply (once per message), the operator
 * sees a `handlerFailed` event, a log line and a metric, and a message that keeps failing is
 * quarantined: never run again, across enclave and bot restarts. Dev mode shows the handler's
 * error with file and line on the host; without it the error's text never crosses.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import type { HandlerFailedEvent } from '../src/host/events.js';
import { createBotForTesting } from '../src/testing.js';
import { computeMeasurement } from '../src/index.js';
import { DEFAULT_FAILURE_REPLY } from '../src/host/handler-options.js';
import { Customer } from './customer.js';
import { startBot, startRelay } from './harness.js';
import { captureLogger, setupCrypto, sleep, tempDir, waitFor } from './helpers.js';

await setupCrypto();

const LIMITS = new URL('./fixtures/limits-handler.mjs', import.meta.url);
const DEV = new URL('./fixtures/dev-error-handler.mjs', import.meta.url);
const FAIL = 'FAILED-REPLY';

const relay = await startRelay();
test.after(() => relay.close());

interface FailureLine {
  event: string;
  kind?: string;
  failures?: number;
  quarantined?: boolean;
  code?: string;
  messageId?: string;
}
const failureLines = (text: string): FailureLine[] =>
  text
    .split('\n')
    .filter((l) => l.includes('"handler.failed"'))
    .map((l) => JSON.parse(l) as FailureLine);

test('a run that never settles is cut at handlerTimeoutMs: failure reply once, late replies never sent, quarantined after maxHandlerFailures, the conversation goes on', async (t) => {
  const dir = tempDir(t);
  const { bot, logger } = await startBot(relay, dir, { handler: LIMITS, handlerTimeoutMs: 300, maxHandlerFailures: 2, failureReply: FAIL });
  t.after(() => bot.close());
  const events: HandlerFailedEvent[] = [];
  bot.on('handlerFailed', (e) => events.push(e));
  const c = await Customer.connect(relay.url);
  t.after(() => c.close());
  const started = Date.now();
  const id = await c.send(bot.deviceId, 'hang');
  await c.send(bot.deviceId, 'after');
  await waitFor(() => c.replies.some((r) => r.text?.startsWith('echo:after')), 10_000, 'the next message answered');
  const elapsed = Date.now() - started;
  assert.ok(elapsed >= 600, `two runs of 300 ms each were waited for (${elapsed} ms)`);
  await sleep(800); // the abandoned runs' late replies (900 ms after each run started) would have arrived by now
  assert.deepEqual(
    c.replies.map((r) => r.text),
    [FAIL, 'echo:after redelivered=false'],
    'one failure reply for two failed runs, no late reply of an abandoned run',
  );
  assert.equal(c.duplicates, 0, 'the failure reply was encrypted once');
  assert.deepEqual(
    events.map((e) => ({ kind: e.kind, messageId: e.messageId, failures: e.failures, quarantined: e.quarantined, failureReplySent: e.failureReplySent, dev: e.dev })),
    [
      { kind: 'timeout', messageId: id, failures: 1, quarantined: false, failureReplySent: true, dev: undefined },
      { kind: 'timeout', messageId: id, failures: 2, quarantined: true, failureReplySent: true, dev: undefined },
    ],
  );
  assert.equal(events[0]!.peer, c.engine.deviceId);
  assert.deepEqual(
    { handlerFailures: bot.stats.handlerFailures, handlerTimeouts: bot.stats.handlerTimeouts, quarantined: bot.stats.quarantined, crashes: bot.stats.crashes },
    { handlerFailures: 2, handlerTimeouts: 2, quarantined: 1, crashes: 0 },
  );
  assert.deepEqual(
    failureLines(logger.text()).map((l) => [l.kind, l.failures, l.quarantined, l.messageId]),
    [
      ['timeout', 1, false, id],
      ['timeout', 2, true, id],
    ],
  );
});

test('a busy loop is cut by restarting the handler worker; a run of another conversation it interrupted runs again (not a failure)', async (t) => {
  const dir = tempDir(t);
  const { bot } = await startBot(relay, dir, { handler: LIMITS, handlerTimeoutMs: 1000, maxHandlerFailures: 1, failureReply: FAIL });
  t.after(() => bot.close());
  const events: HandlerFailedEvent[] = [];
  bot.on('handlerFailed', (e) => events.push(e));
  const a = await Customer.connect(relay.url);
  const b = await Customer.connect(relay.url);
  t.after(() => [a, b].forEach((c) => c.close()));
  await a.send(bot.deviceId, 'busy');
  // At its limit the busy run is abandoned; its worker then has as long again to answer a probe.
  // A run of another conversation posted now is stuck behind the loop, and is interrupted.
  await waitFor(() => events.length === 1, 10_000, 'the busy run timed out');
  await b.send(bot.deviceId, 'slow');
  await waitFor(() => b.replies.length >= 1, 15_000, 'the interrupted run ran again');
  assert.deepEqual(b.replies.map((r) => r.text), ['slow redelivered=true']);
  await a.send(bot.deviceId, 'after');
  await waitFor(() => a.replies.length >= 2, 10_000, 'the busy conversation goes on');
  assert.deepEqual(a.replies.map((r) => r.text), [FAIL, 'echo:after redelivered=false']);
  assert.deepEqual(events.map((e) => [e.kind, e.failures, e.quarantined]), [['timeout', 1, true]]);
  assert.deepEqual({ failures: bot.stats.handlerFailures, timeouts: bot.stats.handlerTimeouts, crashes: bot.stats.crashes }, { failures: 1, timeouts: 1, crashes: 0 }, 'the enclave itself never restarted');
});

test('a handler that throws, or asks for an oversize reply (swallowed or not), fails: failure reply, event kinds threw / oversize, the error text withheld', async (t) => {
  const dir = tempDir(t);
  const { bot, logger } = await startBot(relay, dir, { handler: LIMITS, maxHandlerFailures: 1 });
  t.after(() => bot.close());
  const events: HandlerFailedEvent[] = [];
  bot.on('handlerFailed', (e) => events.push(e));
  const c = await Customer.connect(relay.url);
  t.after(() => c.close());
  for (const text of ['throw', 'huge', 'big', 'after']) await c.send(bot.deviceId, text);
  await waitFor(() => c.replies.length >= 4, 15_000, 'four replies');
  assert.deepEqual(c.replies.map((r) => r.text), [DEFAULT_FAILURE_REPLY, DEFAULT_FAILURE_REPLY, DEFAULT_FAILURE_REPLY, 'echo:after redelivered=false']);
  assert.deepEqual(
    events.map((e) => [e.kind, e.code, e.quarantined]),
    [
      ['threw', undefined, true],
      ['oversize', 'PAYLOAD_TOO_LARGE', true],
      ['oversize', 'PAYLOAD_TOO_LARGE', true],
    ],
  );
  assert.ok(events.every((e) => e.dev === undefined));
  assert.doesNotMatch(logger.text(), /secret-text-in-error|boom on/, 'without dev mode the error text stays in the enclave');
  assert.match(logger.text(), /unexpected TypeError \(message withheld at the enclave boundary\)/);
});

test('a poison message is quarantined after maxHandlerFailures; the count survives an enclave crash, and a bot restart never runs it again', async (t) => {
  const dir = tempDir(t);
  const first = await startBot(relay, dir, { handler: LIMITS, handlerTimeoutMs: 300, maxHandlerFailures: 3, failureReply: FAIL, restartBackoffMs: { min: 10, max: 50 } });
  const events: HandlerFailedEvent[] = [];
  first.bot.on('handlerFailed', (e) => events.push(e));
  const c = await Customer.connect(relay.url);
  t.after(() => c.close());
  await c.send(first.bot.deviceId, 'hang');
  await waitFor(() => events.length === 1, 10_000, 'the first failure');
  // The enclave dies during the second run: the restarted one continues the sealed count.
  await first.bot.supervisor.unsafeTestingTerminate();
  await waitFor(() => events.some((e) => e.quarantined), 15_000, 'quarantined');
  assert.deepEqual(events.map((e) => [e.failures, e.quarantined]), [[1, false], [2, false], [3, true]]);
  assert.equal(first.bot.stats.crashes, 1);
  await first.bot.idle();
  await first.bot.close();

  const logger = captureLogger();
  const second = await createBotForTesting({ ...first.options, logger });
  t.after(() => second.close());
  const later: HandlerFailedEvent[] = [];
  second.on('handlerFailed', (e) => later.push(e));
  await c.send(second.deviceId, 'after');
  await waitFor(() => c.replies.some((r) => r.text?.startsWith('echo:after')), 10_000, 'the next message answered');
  await sleep(500);
  assert.deepEqual(later, [], 'the quarantined message never ran again');
  assert.equal(second.stats.handlerFailures, 0);
  assert.deepEqual(c.replies.map((r) => r.text), [FAIL, 'echo:after redelivered=false']);
});

test('dev mode shows the handler error with message, file and line on the host; the option is validated', async (t) => {
  const dir = tempDir(t);
  const { bot, logger } = await startBot(relay, dir, { handler: DEV, dev: true, maxHandlerFailures: 1 });
  t.after(() => bot.close());
  const events: HandlerFailedEvent[] = [];
  bot.on('handlerFailed', (e) => events.push(e));
  const printed: string[] = [];
  const original = console.error;
  console.error = (...args: unknown[]) => void printed.push(args.map(String).join(' '));
  t.after(() => (console.error = original));
  const c = await Customer.connect(relay.url);
  t.after(() => c.close());
  await c.send(bot.deviceId, 'fail please');
  await waitFor(() => events.length === 1, 10_000, 'the failure');
  console.error = original;
  const file = fileURLToPath(DEV);
  assert.equal(events[0]!.dev?.file, file);
  assert.equal(events[0]!.dev?.line, 4);
  assert.equal(events[0]!.dev?.message, 'RangeError: could not handle "fail please"');
  assert.match(printed.join('\n'), new RegExp(`handler failed: RangeError: could not handle "fail please" \\(${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:4\\)`));
  assert.match(logger.text(), /"event":"handler.dev".*could not handle/);
  // Dev mode is part of the measurement: a dev bot never passes for the production code.
  assert.notEqual(bot.measurement, (await computeMeasurement(DEV)).hex);

  for (const bad of [{ handlerTimeoutMs: 10 }, { handlerTimeoutMs: 1.5 }, { maxHandlerFailures: 0 }, { failureReply: '' }, { dev: 'yes' as unknown as boolean }]) {
    await assert.rejects(startBot(relay, tempDir(t), { handler: DEV, ...bad }), (e: { code?: string }) => e.code === 'USAGE', JSON.stringify(bad));
  }
});
