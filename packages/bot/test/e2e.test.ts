/**
 * Stories over a real relay: customers (the client's engine over socket.io) talk to a bot whose
 * keys and handler run in the enclave worker.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { safetyNumber } from '@parley/protocol';
import { verifyAttestation } from '../src/attestation.js';
import { computeMeasurement } from '../src/index.js';
import { Customer } from './customer.js';
import { startBot, startRelay } from './harness.js';
import { ECHO_HANDLER, setupCrypto, tempDir, waitFor } from './helpers.js';

await setupCrypto();

test('a customer checks the bot attestation against the pinned measurement, then chats with it', async (t) => {
  const dir = tempDir(t);
  const relay = await startRelay();
  t.after(() => relay.close());
  const { bot } = await startBot(relay, dir);
  t.after(() => bot.close());
  const pinned = (await computeMeasurement(ECHO_HANDLER)).hex;
  assert.equal(bot.measurement, pinned);
  // Before sending: the attestation, published out of band next to the bot's bundle.
  verifyAttestation(bot.attestation(), pinned, bot.identity);

  const alice = await Customer.connect(relay.url);
  t.after(() => alice.close());
  await alice.send(bot.deviceId, 'hello');
  await alice.send(bot.deviceId, { order: 42 });
  await alice.send(bot.deviceId, 'safety');
  await waitFor(() => alice.replies.length >= 3, 10_000, 'three replies');
  assert.deepEqual(alice.replies.slice(0, 2).map((r) => r.text ?? r.json), ['echo:hello', { echo: { order: 42 } }]);
  // Same safety number on both sides.
  assert.equal(alice.replies[2]!.text, safetyNumber(alice.engine.publicIdentity, bot.identity));
  assert.equal(alice.errors, 0);
});

test('many concurrent conversations: every message answered once, in order per conversation', async (t) => {
  const dir = tempDir(t);
  const relay = await startRelay();
  t.after(() => relay.close());
  const { bot, logger } = await startBot(relay, dir, { oneTimePrekeys: 100 });
  t.after(() => bot.close());
  t.after(() => assert.doesNotMatch(logger.text(), /persistFailed|invalidMessage/));
  const customers = await Promise.all(Array.from({ length: 12 }, () => Customer.connect(relay.url)));
  t.after(() => customers.forEach((c) => c.close()));
  const PER = 6;
  await Promise.all(
    customers.map(async (c, i) => {
      for (let k = 0; k < PER; k++) await c.send(bot.deviceId, `c${i}-m${k}`);
    }),
  );
  await waitFor(() => customers.every((c) => c.replies.length >= PER), 30_000, 'all replies');
  customers.forEach((c, i) => {
    assert.deepEqual(
      c.replies.map((r) => r.text),
      Array.from({ length: PER }, (_, k) => `echo:c${i}-m${k}`),
    );
    assert.equal(c.errors, 0);
  });
  assert.equal(bot.stats.crashes, 0);
});

test('the bot acknowledges delivery like a device: every message gets a receipt, once', async (t) => {
  const dir = tempDir(t);
  const relay = await startRelay();
  t.after(() => relay.close());
  const { bot } = await startBot(relay, dir);
  t.after(() => bot.close());
  const c = await Customer.connect(relay.url);
  t.after(() => c.close());
  const sent: string[] = [];
  for (let k = 0; k < 5; k++) sent.push(await c.send(bot.deviceId, `m${k}`));
  await waitFor(() => sent.every((id) => c.delivered.includes(id)), 10_000, 'a receipt for every message');
  assert.equal(new Set(c.delivered).size, c.delivered.length, 'each id acknowledged once');
  await waitFor(() => c.replies.length >= 5, 10_000, 'five replies');
  assert.deepEqual(c.replies.map((r) => r.text), ['echo:m0', 'echo:m1', 'echo:m2', 'echo:m3', 'echo:m4'], 'receipts are not replies');
  assert.equal(c.duplicates, 0);
});

test('a handler that throws is reported as a typed error without its message, and the bot keeps going', async (t) => {
  const dir = tempDir(t);
  const relay = await startRelay();
  t.after(() => relay.close());
  // One failure quarantines the message (no re-run); the customer gets the default failure reply.
  const { bot, logger } = await startBot(relay, dir, { maxHandlerFailures: 1 });
  t.after(() => bot.close());
  const c = await Customer.connect(relay.url);
  t.after(() => c.close());
  await c.send(bot.deviceId, 'throw');
  await c.send(bot.deviceId, 'after');
  await waitFor(() => c.replies.length >= 2, 10_000, 'reply after the failure');
  assert.deepEqual(c.replies.map((r) => r.text), ['Sorry, something went wrong on our side. Please try again.', 'echo:after']);
  await waitFor(() => bot.stats.handlerFailures === 1, 5000, 'failure reported');
  assert.match(logger.text(), /"code":"INTERNAL"/);
  assert.doesNotMatch(logger.text(), /handler failed on/, 'the error message (which quotes plaintext) stayed in the enclave');
});

test('the bot restarts (new process, same state dir) with the same identity and keeps its conversations', async (t) => {
  const dir = tempDir(t);
  const relay = await startRelay();
  t.after(() => relay.close());
  const first = await startBot(relay, dir);
  const c = await Customer.connect(relay.url);
  t.after(() => c.close());
  await c.send(first.bot.deviceId, 'one');
  await waitFor(() => c.replies.length >= 1, 10_000, 'first reply');
  await first.bot.close();
  // Sent while the bot is offline: queued by the relay.
  await c.send(first.bot.deviceId, 'two');
  const second = await startBot(relay, dir);
  t.after(() => second.bot.close());
  assert.equal(second.bot.deviceId, first.bot.deviceId);
  await waitFor(() => c.replies.length >= 2, 10_000, 'second reply').catch((e) => {
    console.log(second.logger.text(), first.logger.text());
    throw e;
  });
  assert.deepEqual(c.replies.map((r) => r.text), ['echo:one', 'echo:two']);
});
