/**
 * The bot seals its own conversation messages to the compliance archive (README "Compliance
 * archive: the bot's messages"), over real sockets on 127.0.0.1: a relay on a SQLite file, a
 * real bot (enclave worker) publishing an org-signed archive disclosure with the org key pinned,
 * and a customer `ParleyClient` that verified the disclosure before its first message (so it
 * archives what it sends too).
 * - Both sides' messages are in the conversation's chain (under `archiveRef(id)`), each sender
 *   appending what it sent; `parley-compliance verify` says OK and `open` prints both sides in
 *   the order they were said.
 * - A crash between the relay's append and the enclave dropping the submission (the `archived`
 *   call is lost, then the enclave is killed): the restarted enclave posts the kept submission
 *   again as a retry, byte for byte, and the relay answers with the entry it holds: the chain
 *   has no second copy (which `verify` would report as a sender sequence gap).
 * - The host carries sealed bytes only: no message text in any submission crossing the boundary.
 * - Erasure: a submission still in the bot's sealed archive outbox when the customer erases the
 *   conversation (its `archived` call lost, then the enclave killed, so it is posted again after
 *   the purge) is refused by the relay (`archiveErased`): the chain stays empty, the host logs
 *   `archive.erasedRef` at info (no `archive.refused` error) and settles it (the enclave drops it).
 * - Without the org key pinned the bot publishes the disclosure but seals nothing (a warning).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { archiveRef, decodeArchiveEntry, generateOrgKey, getCrypto, signArchiveDisclosure, signOrgCertificate, toBase64, toHex } from '@parley/protocol';
import { MemoryStore } from '@parley/engine';
import { createRelay, SqliteStore, type Relay } from '../../relay/src/index.js';
import { main as compliance } from '../../relay/src/compliance/cli.js';
import { ParleyClient } from '../../client/src/index.js';
import type { TestingBot } from '../src/testing.js';
import { TEST_RELAY_LIMITS, startBot } from './harness.js';
import { captureLogger, countBytes, setupCrypto, tempDir, waitFor } from './helpers.js';

await setupCrypto();
const dir = tempDir();
const db = join(dir, 'relay.db');
const org = generateOrgKey();
const compliancePair = getCrypto().x25519Generate();
const disclosure = signArchiveDisclosure(org.seed, { label: 'support', archiveKey: compliancePair.publicKey, retentionDays: 30, openers: ['compliance'], issuedAt: Date.now() - 60_000 });
const keyFile = join(dir, 'compliance.key');
writeFileSync(keyFile, JSON.stringify({ format: 'parley-compliance-key', version: 1, privateKey: toHex(compliancePair.privateKey), publicKey: toHex(compliancePair.publicKey) }), { mode: 0o600 });

let relay: Relay;
let bot: TestingBot;
let botLog: ReturnType<typeof captureLogger>;
/** While true, the host's `archived` calls never reach the enclave (the answer is lost). */
let loseArchived = false;
const lostKeys: string[] = [];
const retried: string[] = [];
/** Every archive submission the enclave handed to the host. */
const crossed: Uint8Array[] = [];
const closers: (() => Promise<unknown>)[] = [];

before(async () => {
  relay = await createRelay({ logLevel: 'silent', limits: TEST_RELAY_LIMITS, store: new SqliteStore(db) });
  ({ bot, logger: botLog } = await startBot(relay, dir, {
    orgKey: org.publicKey,
    archiveDisclosure: toBase64(disclosure),
    restartBackoffMs: { min: 20, max: 100 },
    unsafeTestingTap: (direction, m) => {
      const msg = m as { type?: string; method?: string; params?: { key?: string }; key?: string; retry?: boolean; submission?: Uint8Array };
      if (direction === 'fromEnclave' && msg.type === 'archive' && msg.submission) crossed.push(msg.submission);
      if (direction === 'fromEnclave' && msg.type === 'archive' && msg.retry === true && msg.key) retried.push(msg.key);
      if (direction === 'toEnclave' && msg.type === 'call' && msg.method === 'archived' && loseArchived) {
        lostKeys.push(msg.params?.key ?? '');
        throw new Error('test: the archived call is lost');
      }
    },
  }));
  // The org certifies the enclave's identity (as `parley-org certify` would): the customer pins the org key.
  await bot.setCertificate(signOrgCertificate(org.seed, { role: 'bot', label: 'support', signingKey: bot.identity.signingKey, dhKey: bot.identity.dhKey, expiresAt: Date.now() + 3600_000 }));
});
after(async () => {
  for (const close of closers.reverse()) await close().catch(() => undefined);
  await bot?.close();
  await relay?.close();
});

/** `parley-compliance <args>`: exit code and output. */
async function cli(args: string[]): Promise<{ code: number; out: string }> {
  let out = '';
  const io = { out: (s: string) => void (out += s), err: (s: string) => void (out += s) };
  const code = await compliance(['node', 'parley-compliance', ...args], io);
  return { code, out };
}

test('the bot archives its replies beside the customer\'s messages; a lost append answer after a crash adds no second entry', async () => {
  const client = await ParleyClient.create({ relayUrl: relay.url, store: new MemoryStore(), trust: { orgKey: org.publicKey, requireCertificate: 'none' } });
  closers.push(() => client.close());
  client.on('conversationMessage', () => undefined);
  await client.connect();
  const c = await client.startConversation(bot.deviceId);
  assert.equal(c.archive().disclosed, true, 'the customer verified the bot\'s disclosure before the first message');
  const ref = archiveRef(c.id);
  const entries = async (): Promise<Uint8Array[]> => relay.store.archiveEntries(ref);
  const said: string[] = [];
  const exchange = async (text: string): Promise<void> => {
    await c.send(text);
    said.push(text, `echo:${text}`);
    await waitFor(() => c.history().some((m) => m.content.type === 'text' && m.content.text === `echo:${text}`), 15_000, `the reply to ${text}`);
  };

  await exchange('hello');
  await bot.idle();
  assert.equal((await entries()).length, 2, 'the customer\'s message and the bot\'s reply');

  // The relay appends the bot's next submission, but the enclave never hears of it; then it crashes.
  loseArchived = true;
  await exchange('my order is late');
  await waitFor(() => lostKeys.length === 1, 15_000, 'the lost archived call');
  assert.equal((await entries()).length, 4);
  await bot.supervisor.unsafeTestingTerminate();
  loseArchived = false;
  await waitFor(() => retried.includes(lostKeys[0]!), 15_000, 'the restarted enclave posts the kept submission again');
  await bot.idle();
  assert.equal((await entries()).length, 4, 'the retry was answered with the entry the relay holds: no second copy');

  await exchange('thanks');
  await bot.idle();
  const stored = await entries();
  assert.equal(stored.length, 6);
  const senders = new Set(stored.map((e) => toHex(decodeArchiveEntry(e).submission.senderKey)));
  assert.equal(senders.size, 2, 'both sides appended');
  // The bot's sequence numbers: 0, 1, 2 (no gap, no repeat).
  const botKey = toHex(bot.identity.signingKey);
  assert.deepEqual(stored.map((e) => decodeArchiveEntry(e).submission).filter((s) => toHex(s.senderKey) === botKey).map((s) => s.senderSeq), [0, 1, 2]);

  // The host carried sealed bytes only: no reply text in any submission that crossed the boundary.
  assert.ok(crossed.length >= 3);
  for (const text of said) assert.equal(crossed.reduce((n, b) => n + countBytes(b, new TextEncoder().encode(text)), 0), 0, text);

  const verified = await cli(['verify', '--db', db, '--ref', ref]);
  assert.equal(verified.code, 0, verified.out);
  assert.match(verified.out, /OK \(6 entries\)/);
  const opened = await cli(['open', '--db', db, '--key', keyFile, '--ref', ref, '--audit', join(dir, 'audit.log'), '--opener', 'carol', '--reason', 'audit of the bot archive test']);
  assert.equal(opened.code, 0, opened.out);
  const lines = opened.out.trim().split('\n');
  assert.equal(lines.length, 6, opened.out);
  said.forEach((text, i) => {
    assert.ok(lines[i]!.endsWith(`: ${text}`), `line ${i} is "${text}": ${lines[i]}`);
    assert.ok(lines[i]!.includes(i % 2 === 0 ? client.deviceId : bot.deviceId), `line ${i} names its sender`);
  });
});

test('a submission still queued when the customer erases is refused by the relay and dropped (info log, not an error)', async () => {
  const client = await ParleyClient.create({ relayUrl: relay.url, store: new MemoryStore(), trust: { orgKey: org.publicKey, requireCertificate: 'none' } });
  closers.push(() => client.close());
  client.on('conversationMessage', () => undefined);
  const errors: unknown[] = [];
  client.on('error', (e) => void errors.push(e));
  await client.connect();
  const c = await client.startConversation(bot.deviceId);
  const ref = archiveRef(c.id);
  // The relay appends the bot's reply, but the enclave never hears of it: it stays in the sealed outbox.
  loseArchived = true;
  const lost = lostKeys.length;
  await c.send('erase me');
  await waitFor(() => c.history().some((m) => m.content.type === 'text' && m.content.text === 'echo:erase me'), 15_000, 'the reply');
  await waitFor(() => lostKeys.length === lost + 1, 15_000, 'the lost archived call');
  assert.equal((await relay.store.archiveEntries(ref)).length, 2);
  const erasure = await c.erase();
  assert.equal(erasure.archive, 'purged');
  assert.equal((await relay.store.archiveEntries(ref)).length, 0);
  // The enclave restarts and posts the kept submission again: the relay refuses it for good.
  const key = lostKeys[lost]!;
  await bot.supervisor.unsafeTestingTerminate();
  loseArchived = false;
  await waitFor(() => botLog.lines.some((l) => l.includes('"archive.erasedRef"')), 15_000, 'the erased-ref log line');
  await bot.idle();
  assert.ok(retried.includes(key), 'the kept submission was posted again after the purge');
  assert.equal((await relay.store.archiveEntries(ref)).length, 0, 'nothing of the erased conversation went back into the archive');
  const line = JSON.parse(botLog.lines.find((l) => l.includes('"archive.erasedRef"'))!) as { level: string; ref: string };
  assert.deepEqual([line.level, line.ref], ['info', ref]);
  assert.equal(botLog.lines.filter((l) => l.includes('"archive.refused"')).length, 0, 'not an error-level alarm');
  assert.deepEqual(errors, []);
});

test('without the org key pinned the disclosure is published but nothing is sealed (a warning says so)', async () => {
  const logger = captureLogger();
  const { bot: unpinned } = await startBot(relay, join(dir, 'unpinned'), { archiveDisclosure: toBase64(disclosure), logger });
  closers.push(() => unpinned.close());
  assert.deepEqual((await relay.store.getIdentity(unpinned.deviceId))?.disclosure, disclosure);
  assert.match(logger.text(), /archive\.notSealing/);
});
