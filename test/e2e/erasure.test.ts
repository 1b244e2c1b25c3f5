/**
 * Erasure over real sockets (THREATS P4): a customer, a bot-like device (a `ParleyClient` the
 * org certified as `bot`) and an agent admitted through a ticket share a conversation holding a
 * canary text. The agent goes offline; the customer erases: no byte of the canary stays in the
 * customer's store or the bot's; the bot's signed deletion receipt arrives (`erasureStatus`); the
 * agent, which withholds its receipt while offline, is listed as missing; the envelope still
 * queued for it at the relay (SQLite) is purged: none of its bytes in the db, -wal or -shm files.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { SqliteStore, createApiKey } from '@parley/relay';
import type { ConversationEvents, KeyValueStore } from '@parley/client';
import { fromHex } from '@parley/protocol';
import { computeMeasurement } from '@parley/bot';
import { readTree } from '../../packages/client/test/helpers/disk-scan.js';
import { FAQ_HANDLER, certifiedClient, customer, setupCrypto, staffClient, startBot, startRelay, tempDir, testOrg, until } from './helpers.js';

await setupCrypto();
const org = testOrg();
let relay: Awaited<ReturnType<typeof startRelay>>;
let apiKey: string;
let db: string;
const closers: (() => Promise<unknown>)[] = [];
const CANARY = 'canary-p4-erasure-5d1c';

before(async () => {
  db = join(tempDir(), 'relay.db');
  relay = await startRelay({ orgKey: org.publicKey, store: new SqliteStore(db) });
  apiKey = (await createApiKey(relay.store, 'support bot')).key;
});
after(async () => {
  for (const close of closers.reverse()) await close().catch(() => undefined);
  await relay.close();
});

/** Records of `store` whose key or value holds `needle`. */
async function hits(store: KeyValueStore, needle: string): Promise<string[]> {
  const out: string[] = [];
  for (const key of await store.keys('')) {
    const v = await store.get(key);
    if (key.includes(needle) || (v && Buffer.from(v).toString('latin1').includes(needle))) out.push(key);
  }
  return out;
}

test('erase: customer and bot hold no canary byte; the bot signs a receipt; the offline agent is missing', async () => {
  const cust = await customer(relay.url, { orgKey: org.publicKey });
  const bot = await certifiedClient(relay.url, org, { apiKey });
  const agent = await staffClient(relay.url, org, 'p-ada', 'Ada Lovelace');
  for (const p of [cust, bot, agent]) closers.push(() => p.client.close());
  const statuses: ConversationEvents['erasureStatus'][] = [];
  const erasedAt: ConversationEvents['conversationErased'][] = [];
  cust.client.on('erasureStatus', (s) => void statuses.push(s));
  bot.client.on('conversationErased', (e) => void erasedAt.push(e));
  const botTexts: string[] = [];
  bot.client.on('conversationMessage', (m) => void botTexts.push(m.content.text ?? ''));
  const offers: ConversationEvents['handoffOffer'][] = [];
  cust.client.on('handoffOffer', (o) => void offers.push(o));
  let agentHistory = 0;
  agent.client.on('historyShared', (h) => void (agentHistory += h.items.length));

  const conv = await cust.client.startConversation(bot.client.deviceId, { name: 'Carla' });
  await until(() => bot.client.conversation(conv.id) !== undefined, 5_000, 'the bot learns of the conversation');
  await conv.send(`${CANARY} my card`);
  await until(() => botTexts.some((t) => t.includes(CANARY)), 5_000, 'the bot gets the canary');
  await bot.client.conversation(conv.id)!.send(`${CANARY} noted`);
  await until(() => conv.history().length === 2, 5_000, 'the customer gets the reply');

  // An agent joins through a ticket and gets the history, then goes offline.
  const ticket = await conv.requestHuman({ queue: 'support' });
  await agent.client.tickets.claim(ticket.id);
  await until(() => offers.length === 1, 5_000, 'handoffOffer');
  await conv.acceptAgent(offers[0]!, { history: 'all', bot: 'stay' });
  await until(() => agentHistory === 2, 5_000, 'the agent gets the history');
  await agent.client.close();
  // A message while the agent is offline: its envelope waits at the relay.
  await conv.send(`${CANARY} while you were away`);
  const queued = await relay.store.listPending(agent.client.deviceId, 0, 100);
  assert.equal(queued.length, 1, 'one envelope queued for the offline agent');
  const needle = Buffer.from(queued[0]!.envelope.subarray(queued[0]!.envelope.length - 48));

  assert.ok((await hits(cust.store, CANARY)).length > 0, 'the scan sees the canary before erasure');
  assert.ok((await hits(bot.store, CANARY)).length > 0, 'the scan sees the canary on the bot before erasure');

  // Export before erasing: the customer's copy holds the messages and members.
  const copy = JSON.parse(conv.export().json) as { members: unknown[]; messages: { content: { text?: string } }[] };
  assert.equal(copy.members.length, 3);
  assert.equal(copy.messages.filter((m) => m.content.text?.includes(CANARY)).length, 3);

  const started = await conv.erase();
  assert.deepEqual([...started.missing].sort(), [agent.client.deviceId, bot.client.deviceId].sort());
  assert.deepEqual(await hits(cust.store, CANARY), [], 'no canary byte in the customer store');
  assert.equal(cust.client.conversation(conv.id), undefined, 'the conversation is gone');

  await until(() => statuses.some((s) => s.receipts.length === 1), 5_000, 'the bot\'s deletion receipt');
  const last = conv.erasure()!;
  assert.deepEqual(last.receipts.map((r) => r.member), [bot.client.deviceId]);
  assert.deepEqual(last.missing, [agent.client.deviceId], 'the offline agent withholds its receipt and is listed');
  assert.deepEqual(erasedAt, [{ conversation: conv.id, owner: cust.client.deviceId }]);
  assert.equal(bot.client.conversation(conv.id), undefined);
  assert.deepEqual(await hits(bot.store, CANARY), [], 'no canary byte in the bot store');
  assert.deepEqual(await hits(cust.store, CANARY), []);
  assert.deepEqual(cust.errors, []);

  // The relay: the queued envelope is gone, and none of its bytes stays in the database files.
  // What waits for the agent now is the erasure request alone (it gets it when it comes back).
  const left = await relay.store.listPending(agent.client.deviceId, 0, 100);
  assert.equal(left.length, 1);
  assert.notEqual(left[0]!.id, queued[0]!.id, 'the purged envelope is not queued any more');
  for (const f of [db, `${db}-wal`, `${db}-shm`].filter((f) => existsSync(f))) {
    assert.equal(readFileSync(f).indexOf(needle), -1, `no byte of the purged envelope in ${f}`);
  }
  assert.match(relay.logs(), /"event":"purge"[^\n]*"envelopes":[1-9][^\n]*"tickets":1/);
});

test('the real bot (enclave): a valid erase deletes the conversation and answers a signed deletion receipt; its state folder holds no canary', async () => {
  const dir = tempDir();
  const bot = await startBot(relay.url, apiKey, join(dir, 'bot'));
  closers.push(() => bot.close());
  const id = fromHex(bot.identityHex);
  await bot.setCertificate(org.certificate({ signingKey: id.subarray(0, 32), dhKey: id.subarray(32), binding: new Uint8Array(64) }));
  const botMeasurement = (await computeMeasurement(FAQ_HANDLER)).hex;
  const cust = await customer(relay.url, { orgKey: org.publicKey, botMeasurement });
  closers.push(() => cust.client.close());
  const statuses: ConversationEvents['erasureStatus'][] = [];
  cust.client.on('erasureStatus', (s) => void statuses.push(s));

  const conv = await cust.client.startConversation(bot.deviceId, { name: 'Carla' });
  await conv.send(`${CANARY} bot`);
  await until(() => conv.history().some((m) => m.from === bot.deviceId), 10_000, 'the bot answers');
  await conv.erase();
  await until(() => statuses.some((s) => s.receipts.length === 1), 10_000, 'the bot\'s deletion receipt');
  assert.deepEqual(conv.erasure()!.receipts.map((r) => r.member), [bot.deviceId]);
  assert.deepEqual(conv.erasure()!.missing, []);
  assert.deepEqual(await hits(cust.store, CANARY), []);
  for (const { file, bytes } of await readTree(join(dir, 'bot'))) assert.equal(bytes.indexOf(CANARY), -1, `no canary in ${file}`);
});

test('retention: a conversation older than its retentionDays is erased by the client\'s timer; members see the retention', async () => {
  const clock = { offset: 0 };
  const cust = await customer(relay.url, { orgKey: org.publicKey }, { now: () => Date.now() + clock.offset, gapTimeoutMs: 1_000 });
  const bot = await certifiedClient(relay.url, org, { apiKey });
  for (const p of [cust, bot]) closers.push(() => p.client.close());
  const statuses: ConversationEvents['erasureStatus'][] = [];
  cust.client.on('erasureStatus', (s) => void statuses.push(s));
  bot.client.on('conversationMessage', () => undefined);
  const conv = await cust.client.startConversation(bot.client.deviceId, { retentionDays: 1 });
  await until(() => bot.client.conversation(conv.id) !== undefined, 5_000, 'the bot learns of the conversation');
  assert.equal(bot.client.conversation(conv.id)!.retentionDays, 1, 'the member sees the retention');
  assert.equal(conv.retentionDays, 1);
  await conv.send(`${CANARY} retention`);
  await new Promise((r) => setTimeout(r, 700));
  assert.equal(statuses.length, 0, 'not due yet');
  clock.offset = 86_400_000 + 1_000;
  // The customer's clock is now a day ahead of the bot's (past its 24 h certificate, and its
  // envelopes' send times too far ahead): the bot's side of the erasure is the tests above.
  await until(() => statuses.length === 1, 5_000, 'erased when due');
  assert.deepEqual(statuses[0]!.missing, [bot.client.deviceId]);
  assert.equal(cust.client.conversation(conv.id), undefined);
  assert.deepEqual(await hits(cust.store, CANARY), []);
});
