/**
 * Conversations with several members and the consented handoff (issue 13), over real sockets on
 * 127.0.0.1: one relay with the org key; a customer pinning only the org key; a bot-like device
 * (a `ParleyClient` the org certified with role `bot`, logged in with an API key); agents A and B
 * (staff credentials of an issuer the org certified).
 *
 * - The bot asks for a person; the customer's client opens the ticket; both agents see it; A
 *   claims, B's claim is refused (`CONFLICT`); the customer's offer shows A's certified name,
 *   role and safety number; it admits A with the last 5 messages; A reads exactly those, marked
 *   shared; the three-way conversation reaches every member exactly once; B reads nothing.
 * - A transfers; B claims; the customer is asked again and shares the last 2 (and lets the bot
 *   go): B reads exactly those; A reads nothing after it left; the bot may not send any more;
 *   B closes: the ticket ends and the customer's list drops B.
 * - Declined consent: nothing shared, the agent is not added, the ticket is back to waiting (and
 *   the claim check of the agent's join, while the relay cannot answer it, is tried again).
 * - Exactly once: a crash between the book's commit and the inbox delete shows nothing twice.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { ParleyError } from '@parley/protocol';
import { createApiKey } from '@parley/relay';
import { MemoryStore, type ConversationEvents, type KeyValueStore, type ParleyClient } from '@parley/client';
import { certifiedClient, customer, refused, setupCrypto, staffClient, startRelay, testOrg, until } from './helpers.js';

await setupCrypto();
const org = testOrg();
let relay: Awaited<ReturnType<typeof startRelay>>;
let apiKey: string;
const closers: (() => Promise<unknown>)[] = [];
/** The relay's `ticketUnclaimedMs`: long enough for the claims below, short enough to see it fire. */
const UNCLAIMED_MS = 1_500;

before(async () => {
  relay = await startRelay({ orgKey: org.publicKey, ticketUnclaimedMs: UNCLAIMED_MS });
  apiKey = (await createApiKey(relay.store, 'support bot')).key;
});
after(async () => {
  for (const close of closers.reverse()) await close().catch(() => undefined);
  await relay.close();
});

type Events = { [K in keyof ConversationEvents]: ConversationEvents[K][] };

/** Records every conversation event of `client`; `shown(from, id)` counts the `conversationMessage` events of one message. */
function record(client: ParleyClient) {
  const names: (keyof ConversationEvents)[] = [
    'conversationMessage', 'membersChanged', 'handoffRequested', 'handoffOffer', 'handoffDeclined', 'historyShared',
    'conversationJoined', 'conversationGap', 'membersMismatch', 'ticket', 'ticketUnclaimed',
  ];
  const got = Object.fromEntries(names.map((n) => [n, []])) as unknown as Events;
  for (const n of names) client.on(n, (v) => void (got[n] as unknown[]).push(v));
  const texts = () => got.conversationMessage.map((m) => m.content.text);
  const shown = (from: string, id: string) => got.conversationMessage.filter((m) => m.from === from && m.id === id).length;
  return { got, texts, shown };
}

async function people() {
  const cust = await customer(relay.url, { orgKey: org.publicKey });
  const bot = await certifiedClient(relay.url, org, { apiKey });
  const a = await staffClient(relay.url, org, 'p-ada', 'Ada Lovelace');
  const b = await staffClient(relay.url, org, 'p-bob', 'Bob Babbage');
  for (const p of [cust, bot, a, b]) closers.push(() => p.client.close());
  return { cust, bot, a, b, rc: record(cust.client), rbot: record(bot.client), ra: record(a.client), rb: record(b.client) };
}

test('bot → ticket → A claims (B conflicts) → consent with the last 5 → three-way, exactly once → transfer to B with the last 2', async () => {
  const { cust, bot, a, b, rc, rbot, ra, rb } = await people();
  const conv = await cust.client.startConversation(bot.client.deviceId, { name: 'Carla' });
  assert.deepEqual(conv.members.map((m) => `${m.role}:${m.name}`).sort(), ['bot:support', 'customer:Carla']);
  assert.equal(conv.owner, cust.client.deviceId);
  await until(() => rbot.got.conversationJoined.length === 1, 5_000, 'the bot learns of the conversation');
  const atBot = bot.client.conversation(conv.id)!;
  assert.equal(atBot.owner, cust.client.deviceId);

  // Seven messages, in turn: customer, bot, customer…
  for (let i = 1; i <= 7; i++) {
    if (i % 2 === 1) {
      await conv.send(`customer ${i}`);
      await until(() => rbot.texts().includes(`customer ${i}`), 5_000, `the bot gets customer ${i}`);
    } else {
      await atBot.send(`bot ${i}`);
      await until(() => rc.texts().includes(`bot ${i}`), 5_000, `the customer gets bot ${i}`);
    }
  }
  assert.equal(conv.history().length, 7);

  // The bot asks for a person: the customer's client opens the ticket (notify: the bot).
  await atBot.handoff({ queue: 'support', reason: 'refund' });
  await until(() => rc.got.handoffRequested.length === 1, 5_000, 'handoffRequested');
  const requested = rc.got.handoffRequested[0]!;
  assert.deepEqual({ c: requested.conversation, q: requested.queue, r: requested.reason, by: requested.by, n: requested.ticket.notify, s: requested.ticket.state }, {
    c: conv.id, q: 'support', r: 'refund', by: bot.client.deviceId, n: bot.client.deviceId, s: 'waiting',
  });
  const ticketId = requested.ticket.id;
  await until(() => ra.got.ticket.some((t) => t.ticket.id === ticketId) && rb.got.ticket.some((t) => t.ticket.id === ticketId), 5_000, 'both agents see the ticket');
  assert.ok((await a.client.tickets.list('support')).some((t) => t.id === ticketId));

  // A claims; B's claim loses.
  const claimed = await a.client.tickets.claim(ticketId);
  assert.equal(claimed.claimedBy, a.client.deviceId);
  await assert.rejects(b.client.tickets.claim(ticketId), refused('CONFLICT', 'claimed'));

  // The customer's offer: A's certified name and role, and the safety number both sides compute.
  await until(() => rc.got.handoffOffer.length === 1, 5_000, 'handoffOffer');
  const offer = rc.got.handoffOffer[0]!;
  assert.deepEqual(offer, {
    conversation: conv.id, ticket: ticketId,
    agent: { deviceId: a.client.deviceId, name: 'Ada Lovelace', roles: ['agent'], safetyNumber: a.client.safetyNumber(cust.client.deviceId) },
  });
  const lastFive = conv.history(5).map((m) => m.id);
  await conv.acceptAgent(offer, { history: { last: 5 }, bot: 'stay' });
  await until(() => ra.got.historyShared.length === 1, 5_000, 'A gets the shared history');
  assert.equal(ra.got.conversationJoined.length, 1);
  assert.deepEqual(ra.got.historyShared[0]!.items.map((m) => [m.id, m.shared]), lastFive.map((id) => [id, true]));
  assert.deepEqual(ra.got.historyShared[0]!.items.map((m) => m.content.text), ['customer 3', 'bot 4', 'customer 5', 'bot 6', 'customer 7']);
  const atA = a.client.conversation(conv.id)!;
  assert.deepEqual(atA.history().map((m) => m.id), lastFive);
  assert.deepEqual(atA.members.map((m) => m.role).sort(), ['agent', 'bot', 'customer']);
  await until(() => bot.client.conversation(conv.id)!.members.length === 3, 5_000, 'the bot sees A join');

  // Three-way: every message reaches both other members exactly once.
  const fromCust = await conv.send('customer to all');
  const fromA = await atA.send('Ada here');
  const fromBot = await atBot.send('bot still here');
  await until(() => rc.shown(a.client.deviceId, fromA.id) === 1 && rc.shown(bot.client.deviceId, fromBot.id) === 1, 5_000, 'the customer gets A and the bot');
  await until(() => ra.shown(cust.client.deviceId, fromCust.id) === 1 && ra.shown(bot.client.deviceId, fromBot.id) === 1, 5_000, 'A gets the customer and the bot');
  await until(() => rbot.shown(cust.client.deviceId, fromCust.id) === 1 && rbot.shown(a.client.deviceId, fromA.id) === 1, 5_000, 'the bot gets the customer and A');
  await Promise.all([cust.client.idle(), a.client.idle(), bot.client.idle()]);
  for (const r of [rc, ra, rbot]) {
    const counts = new Map<string, number>();
    for (const m of r.got.conversationMessage) counts.set(`${m.from}/${m.id}`, (counts.get(`${m.from}/${m.id}`) ?? 0) + 1);
    assert.deepEqual([...counts.values()].filter((n) => n !== 1), [], 'every message shown once');
  }
  // B holds nothing and read nothing.
  assert.deepEqual([rb.got.conversationMessage.length, rb.got.historyShared.length, b.client.conversations().length], [0, 0, 0]);

  // Transfer A → B: the ticket goes back to the queue, A leaves, the customer is asked again.
  await atA.transfer();
  await until(() => conv.members.length === 2, 5_000, 'the customer drops A from the list');
  const again = await b.client.tickets.claim(ticketId);
  assert.equal(again.claimedBy, b.client.deviceId);
  await until(() => rc.got.handoffOffer.length === 2, 5_000, 'a second offer');
  const offerB = rc.got.handoffOffer[1]!;
  assert.equal(offerB.agent.name, 'Bob Babbage');
  const lastTwo = conv.history(2).map((m) => m.id);
  await conv.acceptAgent(offerB, { history: { last: 2 }, bot: 'leave' });
  await until(() => rb.got.historyShared.length === 1, 5_000, 'B gets the history shared then');
  assert.deepEqual(rb.got.historyShared[0]!.items.map((m) => m.id), lastTwo);
  assert.deepEqual(b.client.conversation(conv.id)!.history().map((m) => m.id), lastTwo);
  assert.deepEqual(conv.members.map((m) => m.role).sort(), ['agent', 'customer']);
  // The bot was let go: it may not send any more; A, gone, reads nothing new.
  await until(() => !bot.client.conversation(conv.id)!.members.some((m) => m.deviceId === bot.client.deviceId), 5_000, 'the bot learns it left');
  await assert.rejects(atBot.send('still there?'), refused('FORBIDDEN', 'notMember'));
  const aBefore = ra.got.conversationMessage.length;
  const toB = await conv.send('hello Bob');
  await until(() => rb.shown(cust.client.deviceId, toB.id) === 1, 5_000, 'B gets the customer');
  await cust.client.idle();
  assert.equal(ra.got.conversationMessage.length, aBefore, 'A reads nothing after it left');
  // B closes: the ticket ends at the relay, B leaves, the customer's list drops it.
  await b.client.conversation(conv.id)!.close();
  await until(() => conv.members.length === 1, 5_000, 'the customer drops B');
  assert.equal((await a.client.tickets.list()).some((t) => t.id === ticketId), false, 'the ticket is gone');
  assert.deepEqual([...cust.errors, ...a.errors.map((e) => e.code), ...b.errors.map((e) => e.code)], []);
});

test('declined consent: nothing shared, the agent is not added, the ticket is waiting again', async () => {
  const { cust, bot, a, rc, ra, rbot } = await people();
  const conv = await cust.client.startConversation(bot.client.deviceId);
  await conv.send('my parcel is late');
  const ticket = await conv.requestHuman({ queue: 'support', reason: 'late parcel' });
  assert.equal(ticket.notify, bot.client.deviceId);
  // The relay cannot answer the customer's claim check for a while: the join waits in the inbox and is tried again.
  const getTicket = relay.store.getTicket.bind(relay.store);
  let failedChecks = 0;
  relay.store.getTicket = async (id) => {
    failedChecks++;
    throw new Error(`store unavailable (${id.length})`);
  };
  await a.client.tickets.claim(ticket.id);
  await until(() => failedChecks >= 2, 5_000, 'the claim check is tried again');
  assert.deepEqual([rc.got.handoffOffer.length, cust.errors], [0, []]);
  relay.store.getTicket = getTicket;
  await until(() => rc.got.handoffOffer.length === 1, 5_000, 'handoffOffer once the relay answers');
  await conv.declineAgent(rc.got.handoffOffer[0]!);
  await until(() => ra.got.handoffDeclined.length === 1, 5_000, 'A is told');
  assert.deepEqual(ra.got.handoffDeclined[0], { ticket: ticket.id });
  const back = (await a.client.tickets.list('support')).find((t) => t.id === ticket.id);
  assert.equal(back?.state, 'waiting');
  assert.equal(back?.claimedBy, undefined);
  await a.client.idle();
  assert.deepEqual([ra.got.historyShared.length, ra.got.conversationJoined.length, ra.got.conversationMessage.length, a.client.conversations().length], [0, 0, 0, 0]);
  assert.deepEqual(conv.members.map((m) => m.role).sort(), ['bot', 'customer']);
  // Back in the queue and nobody claims it: the customer and the bot (notify) hear of it once.
  await until(() => rc.got.ticketUnclaimed.length === 1 && rbot.got.ticketUnclaimed.length === 1, UNCLAIMED_MS + 3_000, 'ticketUnclaimed');
  const unclaimed = rc.got.ticketUnclaimed[0]!;
  assert.deepEqual([unclaimed.ticket.id, unclaimed.ticket.state, unclaimed.waitingMs >= UNCLAIMED_MS], [ticket.id, 'waiting', true]);
  assert.deepEqual(rc.got.ticket.map((t) => t.change), ['opened', 'claimed', 'released'], 'the customer follows its ticket');
});

/** A store that fails the inbox delete while `crash` is set: the state a crash between the book's commit and the consume leaves. */
class CrashBeforeConsume implements KeyValueStore {
  crash = false;
  constructor(readonly inner: MemoryStore) {}
  get(key: string) {
    return this.inner.get(key);
  }
  setMany(entries: [string, Uint8Array][]) {
    return this.inner.setMany(entries);
  }
  async delMany(keys: string[]) {
    if (this.crash && keys.some((k) => k.startsWith('inbox/'))) throw new ParleyError('STORAGE_QUOTA', 'simulated crash before the inbox delete');
    return this.inner.delMany(keys);
  }
  keys(prefix: string) {
    return this.inner.keys(prefix);
  }
}

test('exactly once: a frame fed again after a crash between the book commit and the inbox delete is not shown twice', async () => {
  // No receipts from the bot: the one delivery the customer gets is the frame.
  const bot = await certifiedClient(relay.url, org, { apiKey, extra: { receipts: false } });
  closers.push(() => bot.client.close());
  const rbot = record(bot.client);
  const inner = new MemoryStore();
  const store = new CrashBeforeConsume(inner);
  const first = await customer(relay.url, { orgKey: org.publicKey }, { store });
  const r1 = record(first.client);
  const conv = await first.client.startConversation(bot.client.deviceId);
  await until(() => rbot.got.conversationJoined.length === 1, 5_000, 'the bot learns of the conversation');
  store.crash = true;
  const sent = await bot.client.conversation(conv.id)!.send('only once');
  await until(() => r1.shown(bot.client.deviceId, sent.id) === 1 && first.errors.includes('STORAGE_QUOTA'), 5_000, 'shown, then the delete fails');
  assert.equal((await inner.keys('inbox/')).length, 1, 'the frame is still in the inbox');
  await first.client.close();
  store.crash = false;
  // Restart on the same state: the frame is fed to the book again, which has it already.
  const second = await customer(relay.url, { orgKey: org.publicKey }, { store });
  closers.push(() => second.client.close());
  const r2 = record(second.client);
  const deadline = Date.now() + 5_000;
  while ((await inner.keys('inbox/')).length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  assert.equal((await inner.keys('inbox/')).length, 0, 'consumed after the restart');
  assert.equal(r2.shown(bot.client.deviceId, sent.id), 0, 'not shown again');
  assert.equal(second.client.conversation(conv.id)!.history().filter((m) => m.id === sent.id).length, 1);
});
