/**
 * THREATS R8 / I4 / I5 across packages: a customer (`ParleyClient`) talks to a bot (`createBot`)
 * through a relay running as a child process on the embedded SQLite store. The relay is
 * SIGKILLed at random points while the customer sends and the bot answers, and restarted on the
 * same database file and port each time. Afterwards: every message the customer's app sent is
 * answered, each reply reaches the app exactly once (app-level `message` events counted by
 * `(from, id)`), and nothing is left in the customer's outbox: 0 lost, 0 duplicates.
 *
 * The relay process is the relay's own durability fixture (packages/relay/test/fixtures/relay-child.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { createApiKey, SqliteStore } from '@parley/relay';
import { computeMeasurement } from '@parley/bot';
import { FAQ_HANDLER, customer, orgKey, setupCrypto, sleep, startBot, tempDir, until } from './helpers.js';

const root = join(import.meta.dirname, '..', '..');
const fixture = join(root, 'packages', 'relay', 'test', 'fixtures', 'relay-child.ts');
const extended = process.env.PARLEY_TEST_SCALE === 'extended';
const MESSAGES = extended ? 300 : 60;
const KILLS = extended ? 20 : 5;

await setupCrypto();

/** Starts the relay child on `db` (and `port`, 0 = any); resolves once it listens. Retries a busy port. */
async function spawnRelay(db: string, port: number): Promise<{ child: ChildProcess; url: string }> {
  for (let attempt = 1; ; attempt++) {
    const child = spawn(process.execPath, ['--import', 'tsx', fixture, db, String(port)], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => void (stderr += d.toString()));
    try {
      const line = await new Promise<string>((resolve, reject) => {
        createInterface({ input: child.stdout! }).once('line', resolve);
        child.once('exit', (code) => reject(new Error(`relay child exited early (${code}): ${stderr.slice(0, 500)}`)));
      });
      return { child, url: (JSON.parse(line) as { url: string }).url };
    } catch (e) {
      if (attempt >= 10 || !/EADDRINUSE/.test(String(e))) throw e;
      await sleep(100);
    }
  }
}

function kill(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

test(`R8 end to end: ${KILLS} SIGKILLs of the SQLite relay under a live customer ⇄ bot conversation lose nothing and duplicate nothing`, { timeout: 180_000 }, async (t) => {
  const dir = tempDir();
  const db = join(dir, 'relay.db');
  // The bot's API key, created with the relay's own code on the relay's database file.
  const admin = new SqliteStore(db);
  const { key } = await createApiKey(admin, 'bot');
  await admin.close();

  let relay = await spawnRelay(db, 0);
  const port = Number(new URL(relay.url).port);
  const url = relay.url;
  t.after(() => kill(relay.child));

  const org = await orgKey(dir);
  const bot = await startBot(url, key, join(dir, 'bot'), { oneTimePrekeys: 50 });
  t.after(() => bot.close());
  await bot.setCertificate(await org.certify(bot.identityHex));
  const pinned = (await computeMeasurement(FAQ_HANDLER)).hex;

  const alice = await customer(url, { orgKey: org.publicKeyHex, botMeasurement: pinned });
  t.after(() => alice.client.close());
  // The first message starts the session (it needs the bot's bundle from a live relay).
  await alice.client.send(bot.deviceId, 'm0');

  let seed = Date.now() >>> 0;
  const rand = (n: number) => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % n);
  let sending = true;
  let kills = 0;
  let sent = 1;
  /** Where each kill landed: messages sent and replies received so far. */
  const landed: { sent: number; replies: number }[] = [];
  const killer = (async () => {
    while (kills < KILLS && sending) {
      // Let traffic flow again first (both sides reconnected: a new reply arrived), then kill at
      // a random point, so kills land mid-send, mid-reply and mid-ack rather than on an idle relay.
      const before = alice.got.length;
      const end = Date.now() + 8000;
      while (alice.got.length === before && alice.got.length < MESSAGES && Date.now() < end) await sleep(10);
      await sleep(rand(250));
      landed.push({ sent, replies: alice.got.length });
      await kill(relay.child);
      kills++;
      if (rand(2) === 1) await sleep(rand(300)); // sometimes stay down a little
      relay = await spawnRelay(db, port);
    }
  })();

  for (let k = 1; k < MESSAGES; k++) {
    // Resolves once the envelope is in the outbox and, when the relay is up, acked by it.
    await alice.client.send(bot.deviceId, `m${k}`);
    sent++;
    // Spread the sends over the kill window, so kills land mid-send, mid-reply and mid-ack.
    await sleep(20 + rand(80));
  }
  // Keep killing until the planned number of kills happened, replies still flowing.
  while (kills < KILLS) await sleep(50);
  sending = false;
  await killer;

  await until(() => alice.got.length >= MESSAGES, 90_000, `${MESSAGES} replies (got ${alice.got.length})`).catch(async (e) => {
    console.log({ got: alice.got.length, pending: alice.client.pendingCount, errors: alice.errors.slice(0, 10), stats: bot.stats });
    throw e;
  });
  await sleep(500); // a late duplicate would show up here
  const texts = alice.got.map((m) => m.text);
  const expected = Array.from({ length: MESSAGES }, (_, k) => `echo:m${k}`);
  assert.deepEqual([...texts].sort(), [...expected].sort(), 'every message answered exactly once');
  assert.equal(alice.duplicates(), 0, 'no (from, id) reached the app twice');
  assert.equal(new Set(alice.got.map((m) => m.id)).size, MESSAGES);
  assert.equal(alice.client.pendingCount, 0, 'nothing left unacked in the customer outbox');
  if (process.env.PARLEY_E2E_DEBUG) console.log({ landed, messages: MESSAGES });
  assert.equal(kills, KILLS);
  assert.ok(landed.some((l) => l.sent < MESSAGES), `some kills landed while the customer was still sending: ${JSON.stringify(landed)}`);
  assert.equal(bot.stats.crashes, 0);
});
