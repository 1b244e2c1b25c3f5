/**
 * Crash injection under load (docs/threats.md B2, I4, I5): the enclave worker is terminated again and
 * again while customers keep talking to the bot, at the await points that matter: while the
 * host is making a sealed batch durable (mid-commit), right after a delivery was handed in,
 * right after the enclave emitted a reply (before the relay stored it), and at random times.
 * Every message is answered, and each customer sees each reply exactly once, in order.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { TestingBot } from '../src/testing.js';
import { Customer } from './customer.js';
import { startBot, startRelay } from './harness.js';
import { setupCrypto, sleep, tempDir, waitFor } from './helpers.js';

await setupCrypto();

const CRASHES = Number(process.env.PARLEY_BOT_CRASHES ?? 20);

type Trigger = (direction: 'toEnclave' | 'fromEnclave', message: { type?: string; method?: string }) => boolean;
const TRIGGERS: [string, Trigger | undefined][] = [
  ['mid-commit (persist sent, not acked)', (d, m) => d === 'fromEnclave' && m.type === 'persist'],
  ['delivery handed in', (d, m) => d === 'toEnclave' && m.method === 'deliver'],
  ['reply emitted, not yet stored by the relay', (d, m) => d === 'fromEnclave' && m.type === 'send'],
  ['random time', undefined],
];

test(`${CRASHES} worker crashes injected mid-traffic: no message lost, no reply duplicated`, { timeout: 300_000 }, async (t) => {
  const dir = tempDir(t);
  const relay = await startRelay();
  t.after(() => relay.close());
  let armed = undefined as Trigger | undefined;
  let fired = 0;
  let botRef: TestingBot | undefined;
  const { bot, logger } = await startBot(relay, dir, {
    oneTimePrekeys: 100,
    restartBackoffMs: { min: 20, max: 200 },
    unsafeTestingTap: (direction, message) => {
      if (armed && typeof message === 'object' && message !== null && armed(direction, message as never)) {
        armed = undefined;
        fired++;
        void botRef?.supervisor.unsafeTestingTerminate();
      }
    },
  });
  botRef = bot;
  t.after(() => bot.close());
  const sup = bot.supervisor;
  const restarted: number[] = [];
  bot.on('enclaveRestarted', (e) => restarted.push(e.crashes));
  const customers = await Promise.all(Array.from({ length: 6 }, () => Customer.connect(relay.url)));
  t.after(() => customers.forEach((c) => c.close()));
  const MIN = 8;
  // Bounded: on a loaded machine the crash phase lasts longer, and unbounded senders would queue
  // more than the bot can answer within the wait below (a slow test, not a lost message).
  const MAX = 250;
  const sent = customers.map(() => 0);

  let crashing = true;
  const senders = Promise.all(
    customers.map(async (c, i) => {
      for (let k = 0; (crashing && k < MAX) || k < MIN; k++) {
        await c.send(bot.deviceId, `c${i}-m${k}`);
        sent[i] = k + 1;
        await sleep(30 + ((i * 7 + k * 13) % 60));
      }
    }),
  );

  for (let crash = 0; crash < CRASHES; crash++) {
    await sup.whenReady();
    await sleep(10 + ((crash * 37) % 80));
    const [, trigger] = TRIGGERS[crash % TRIGGERS.length]!;
    const before = sup.stats.crashes;
    if (trigger) {
      armed = trigger;
      const end = Date.now() + 3000;
      while (armed !== undefined && Date.now() < end) await sleep(5);
      if ((armed as Trigger | undefined) !== undefined) {
        armed = undefined;
        await sup.unsafeTestingTerminate();
      }
    } else {
      await sup.unsafeTestingTerminate();
    }
    await waitFor(() => sup.stats.crashes > before, 2000, 'crash noticed');
  }
  crashing = false;
  await senders;
  await waitFor(() => customers.every((c, i) => c.replies.length >= sent[i]!), 60_000, 'every reply').catch((e) => {
    console.log(sent, customers.map((c) => c.replies.length), logger.lines.filter((l) => !l.includes('"info"')).slice(-20));
    throw e;
  });
  await sleep(300); // a late duplicate would show up here
  customers.forEach((c, i) => {
    assert.deepEqual(
      c.replies.map((r) => r.text),
      Array.from({ length: sent[i]! }, (_, k) => `echo:c${i}-m${k}`),
      `customer ${i}: each reply once, in order`,
    );
    assert.equal(c.errors, 0);
  });
  assert.equal(bot.stats.crashes, CRASHES);
  assert.deepEqual(restarted, Array.from({ length: CRASHES }, (_, k) => k + 1), 'one enclaveRestarted event per crash, counting');
  assert.ok(fired >= CRASHES / 2, `most crashes hit their await point (${fired}/${CRASHES})`);
  assert.doesNotMatch(logger.text(), /persistFailed|invalidMessage/);
});
