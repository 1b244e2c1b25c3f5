/**
 * The disclosed compliance archive over a real relay (THREATS P2): a bot (a `ParleyClient` the
 * org certified as `bot`) publishes the org-signed archive disclosure with its statements
 * (`setArchiveDisclosure`); the customer's client verifies it against its pinned org key.
 * - disclosed before the first message: `conversation.archive()` is disclosed, with the
 *   retention and the openers the widget shows;
 * - turned on after the conversation started (published, then fetched by the customer after the
 *   first message): not disclosed, the bot is named;
 * - removed from the statements: not disclosed.
 * While disclosed, each member seals what it sends to the compliance key and appends it to the
 * relay's archive (SQLite): `parley-compliance verify` says OK and `open` prints both sides'
 * messages; the customer appends nothing to the conversation whose archive came late. The
 * tampering cases of P3 are tested at the relay (packages/relay/test/archive.test.ts).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { archiveRef, decodeArchiveEntry, generateOrgKey, getCrypto, signArchiveDisclosure, signOrgCertificate, toHex } from '@parley/protocol';
import { SqliteStore } from '@parley/relay';
import { main as compliance } from '../../packages/relay/src/compliance/cli.js';
import { ConversationEngine, MemoryStore } from '@parley/engine';
import { ParleyClient, type ConversationEvents } from '@parley/client';
import { RelayLink } from '@parley/relay-link';
import { customer, setupCrypto, startRelay, tempDir, until } from './helpers.js';

await setupCrypto();
const org = generateOrgKey();
let relay: Awaited<ReturnType<typeof startRelay>>;
const closers: (() => Promise<unknown>)[] = [];
const compliancePair = getCrypto().x25519Generate();
const archiveKey = compliancePair.publicKey;
const dir = tempDir();
const db = join(dir, 'relay.db');
const keyFile = join(dir, 'compliance.key');
const disclosure = signArchiveDisclosure(org.seed, { label: 'support', archiveKey, retentionDays: 180, openers: ['compliance'], issuedAt: Date.now() - 60_000 });

before(async () => {
  relay = await startRelay({ store: new SqliteStore(db), archiveNoticeIntervalMs: 100 });
});
after(async () => {
  for (const close of closers.reverse()) await close().catch(() => undefined);
  await relay.close();
});

/** A client certified by the org as the `support` bot. */
async function orgBot(): Promise<ParleyClient> {
  const store = new MemoryStore();
  const engine = await ConversationEngine.open({ store });
  const link = new RelayLink({ url: relay.url, credentials: { answer: (c) => engine.relayLoginAnswer(c) } });
  await link.connect({ timeoutMs: 5_000 });
  const certificate = signOrgCertificate(org.seed, { role: 'bot', label: 'support', ...engine.publicIdentity, expiresAt: Date.now() + 3600_000 });
  await link.uploadPrekeys({ ...(await engine.prekeyUpload(0)), certificate });
  await link.close();
  await engine.close();
  const client = await ParleyClient.create({ relayUrl: relay.url, store, trust: { orgKey: org.publicKey, requireCertificate: 'none' } });
  // Deliveries wait for the app's first listener.
  client.on('conversationMessage', () => undefined);
  await client.connect();
  closers.push(() => client.close());
  return client;
}

test('P2: the archive is accepted only when disclosed before the first message', async () => {
  const cust = await customer(relay.url, { orgKey: org.publicKey });
  closers.push(() => cust.client.close());
  cust.client.on('conversationMessage', () => undefined);

  // Disclosed before the conversation: shown to the customer.
  const disclosed = await orgBot();
  await disclosed.setArchiveDisclosure(disclosure);
  const c1 = await cust.client.startConversation(disclosed.deviceId, { name: 'Carla' });
  await c1.send('hello');
  assert.deepEqual(c1.archive(), { disclosed: true, retentionDays: 180, openers: ['compliance'], undisclosed: [] });
  await until(() => disclosed.conversation(c1.id) !== undefined, 10_000, 'the bot learns of the conversation');
  await until(() => disclosed.conversation(c1.id)!.history().length === 1, 10_000, 'the bot gets the message');
  await disclosed.conversation(c1.id)!.send('hi, how can I help?');
  await until(() => c1.history().length === 2, 10_000, 'the reply arrives');
  await c1.send('my order is late');
  // Each sender appended what it sent, in relay order.
  // Appended under the opaque ref, not the conversation id.
  assert.equal(archiveRef(c1.id), createHash('sha256').update(`parley/v1/archive-ref${c1.id}`).digest('base64url').slice(0, 22));
  assert.deepEqual(await relay.store.archiveEntries(c1.id), []);
  assert.equal((await relay.store.archiveEntries(archiveRef(c1.id))).length, 3);
  writeFileSync(keyFile, JSON.stringify({ format: 'parley-compliance-key', version: 1, privateKey: toHex(compliancePair.privateKey), publicKey: toHex(archiveKey) }), { mode: 0o600 });
  let out = '';
  const io = { out: (s: string) => void (out += s), err: (s: string) => void (out += s) };
  assert.equal(await compliance(['node', 'parley-compliance', 'verify', '--db', db, '--conversation', c1.id], io), 0, out);
  assert.match(out, /OK \(3 entries\)/);
  out = '';
  assert.equal(await compliance(['node', 'parley-compliance', 'open', '--db', db, '--key', keyFile, '--ref', archiveRef(c1.id), '--audit', join(dir, 'audit.log'), '--opener', 'carol', '--reason', 'case 7'], io), 0, out);
  for (const text of ['hello', 'hi, how can I help?', 'my order is late']) assert.ok(out.includes(text), text);

  // Turned on after the conversation started: refused for it.
  const late = await orgBot();
  const c2 = await cust.client.startConversation(late.deviceId, { name: 'Carla' });
  await c2.send('hello');
  await until(() => c2.history().length === 1, 5_000, 'the first message is kept');
  assert.deepEqual(c2.archive(), { disclosed: false, undisclosed: [] });
  await late.setArchiveDisclosure(disclosure);
  await cust.client.refreshPeerStatements(late.deviceId);
  assert.deepEqual(c2.archive(), { disclosed: false, undisclosed: [late.deviceId] });
  await c2.send('still here');
  assert.deepEqual(await relay.store.archiveEntries(archiveRef(c2.id)), [], 'the customer seals nothing to a late archive');

  // Removed from the statements: refused.
  await disclosed.setArchiveDisclosure(null);
  await cust.client.refreshPeerStatements(disclosed.deviceId);
  assert.equal(c1.archive().disclosed, false);
});

test('P4: erasure purges the archive (a legal hold keeps it); an opening reaches the customer once, also across a restart', async () => {
  const store = new MemoryStore();
  const opened: ConversationEvents['archiveOpened'][] = [];
  const start = async () => {
    const c = await customer(relay.url, { orgKey: org.publicKey }, { store });
    c.client.on('conversationMessage', () => undefined);
    c.client.on('archiveOpened', (e) => void opened.push(e));
    return c;
  };
  let cust = await start();
  const bot = await orgBot();
  await bot.setArchiveDisclosure(disclosure);
  // The relay's SQLite rows of a ref (archive_entries, through its store).
  const rows = async (ref: string): Promise<number> => (await relay.store.archiveEntries(ref)).length;
  let count = -1;
  // Two archived conversations, each message sealed by its sender.
  const talk = async (text: string) => {
    const c = await cust.client.startConversation(bot.deviceId, { name: 'Carla' });
    await c.send(text);
    await until(() => bot.conversation(c.id)?.history().length === 1, 10_000, 'the bot gets it');
    await bot.conversation(c.id)!.send(`re: ${text}`);
    await until(() => {
      void rows(archiveRef(c.id)).then((n) => (count = n));
      return count === 2;
    }, 10_000, 'both sides archived');
    count = -1;
    return c.id;
  };
  const keptId = await talk('keep this');
  const goneId = await talk('forget this');
  let out = '';
  const io = { out: (s: string) => void (out += s), err: (s: string) => void (out += s) };
  const cli = (...args: string[]) => compliance(['node', 'parley-compliance', ...args], io);

  // Opened while the customer is online: one event, mapped back to the conversation.
  assert.equal(await cli('open', '--db', db, '--key', keyFile, '--conversation', keptId, '--audit', join(dir, 'audit.log'), '--opener', 'carol', '--reason', 'complaint 12'), 0, out);
  await until(() => opened.length === 1, 5_000, 'archiveOpened');
  assert.equal(opened[0]!.conversation, keptId);
  assert.equal(opened[0]!.reason, 'complaint 12');
  // Opened while it is offline: at its next start, once; the first is not repeated.
  await cust.client.close();
  assert.equal(await cli('export', '--db', db, '--key', keyFile, '--conversation', goneId, '--audit', join(dir, 'audit.log'), '--opener', 'carol', '--reason', 'regulator request 3'), 0, out);
  cust = await start();
  closers.push(() => cust.client.close());
  await until(() => opened.length === 2, 5_000, 'archiveOpened after the restart');
  assert.deepEqual([opened[1]!.conversation, opened[1]!.reason], [goneId, 'regulator request 3']);
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(opened.length, 2, 'each opening once');

  // A legal hold keeps one; the other's entries are purged by the customer's erasure.
  assert.equal(await cli('hold', '--db', db, '--conversation', keptId, '--reason', 'litigation 7', '--audit', join(dir, 'audit.log'), '--by', 'dora'), 0, out);
  const canary = decodeArchiveEntry((await relay.store.archiveEntries(archiveRef(goneId)))[1]!).submission.sealed;
  const inFiles = (): boolean => [db, `${db}-wal`].filter(existsSync).some((f) => readFileSync(f).includes(Buffer.from(canary)));
  assert.equal(inFiles(), true);
  const held = await cust.client.conversation(keptId)!.erase();
  assert.equal(held.archive, 'held');
  assert.equal(await rows(archiveRef(keptId)), 2);
  const gone = cust.client.conversation(goneId)!;
  const purged = await gone.erase();
  assert.equal(purged.archive, 'purged');
  assert.equal(gone.erasure()?.archive, 'purged');
  assert.equal(await rows(archiveRef(goneId)), 0);
  assert.equal(inFiles(), false, 'the sealed bytes are gone from the relay\'s files');
});
