/**
 * Conversations under attack (docs/threats.md H1, H2, C18, C19, C25), over a real relay with
 * the org key. The devices under test are `ParleyClient`s (the customer's, an agent's); the
 * attackers are devices driven by hand (engine + book + relay link), so they can send frames
 * the SDK never would.
 *
 * - H1/C18 at the customer: an uncertified device is no member (`UNTRUSTED_IDENTITY`); a
 *   certified agent who did not claim sends a message (`FORBIDDEN` `notMember`) and a join
 *   (`notClaimant`: the customer's client asks the relay who holds the claim); once admitted it
 *   sends a member list adding another agent (`notOwner`, refused by the customer, the bot and
 *   that agent). Nothing of it is shown.
 * - H2/C19 at the agent: history unsolicited, from the bot, from another agent, for another
 *   conversation, and the genuine one twice → `UNTRUSTED_SOURCE` with the reason; only the
 *   genuine bundle is shown, once.
 * - C25: a withheld frame is reported as a `conversationGap`, and closed when it arrives; a frame
 *   naming another member list for the same epoch is shown and reported (`membersMismatch`).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { ConversationBook, ConversationEngine, MemoryStore, membersHash, type ConversationEvent } from '@parley/engine';
import { RelayLink } from '@parley/relay-link';
import { createApiKey } from '@parley/relay';
import type { ClientErrorEvent, ConversationEvents, ParleyClient } from '@parley/client';
import { certifiedClient, customer, refused, setupCrypto, sleep, staffClient, startRelay, testOrg, until } from './helpers.js';

await setupCrypto();
const org = testOrg();
let relay: Awaited<ReturnType<typeof startRelay>>;
let apiKey: string;
const closers: (() => Promise<unknown>)[] = [];

before(async () => {
  relay = await startRelay({ orgKey: org.publicKey });
  apiKey = (await createApiKey(relay.store, 'support bot')).key;
});
after(async () => {
  for (const close of closers.reverse()) await close().catch(() => undefined);
  await relay.close();
});

const json = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));

/**
 * A device driven by hand: its engine, its conversation book and a relay link. It applies the
 * frames it receives to its book (`events`) and sends any bytes as a `'conversation'` payload.
 */
async function rawDevice(o: { staff?: string; bot?: boolean } = {}) {
  const store = new MemoryStore();
  const engine = await ConversationEngine.open({ store, trust: { orgKey: org.publicKey, requireCertificate: 'none' } });
  const book = await ConversationBook.open({ store, deviceId: engine.deviceId });
  const credential = o.staff ? org.credential(engine.publicIdentity, `p-${o.staff.split(' ')[0]!.toLowerCase()}`, o.staff) : undefined;
  const link = new RelayLink({
    url: relay.url,
    credentials: { answer: (c) => (credential ? { ...engine.relayLoginAnswer(c), credential } : engine.relayLoginAnswer(c)), ...(o.bot ? { apiKey } : {}) },
  });
  const events: ConversationEvent[] = [];
  const errors: unknown[] = [];
  link.setHandlers({
    onMessage: async (m) => {
      try {
        const r = await engine.receive(m, { receipt: false });
        if (r.kind === 'message') {
          if (r.type === 'conversation') {
            const staff = engine.peerStaff(r.from);
            events.push(await book.receive(r.from, r.payload, { messageId: r.id, sentAt: r.sentAt, ...(staff ? { senderStaff: staff } : {}) }));
          }
          await engine.consume(r.from, r.id);
        }
      } catch (e) {
        errors.push(e);
      }
      return 'ack';
    },
  });
  await link.connect({ timeoutMs: 5_000 });
  const certificate = credential ?? (o.bot ? org.certificate(engine.publicIdentity, 'bot', 'support') : undefined);
  const upload = await engine.prekeyUpload(10);
  await link.uploadPrekeys({ ...upload, ...(certificate ? { certificate } : {}) });
  await engine.markUploaded(upload.oneTimePrekeys.map((k) => k.id));
  closers.push(async () => {
    await link.close();
    await engine.close();
  });
  return {
    engine, book, link, events, errors,
    deviceId: engine.deviceId,
    /** Encrypts `frame` to `to` as a conversation payload and hands it to the relay. */
    async send(to: string, frame: Uint8Array, id = ConversationEngine.newMessageId()): Promise<void> {
      const bundle = engine.needsBundle(to) ? await link.fetchBundle(to) : undefined;
      const out = await engine.encrypt(to, frame, { messageId: id, type: 'conversation', ...(bundle ? { bundle } : {}) });
      await link.send(out);
      await engine.markDelivered(to, out.id);
    },
    /** A prepared frame to each recipient, one message id. */
    async sendAll(p: { recipients: readonly string[]; frame: Uint8Array }, id = ConversationEngine.newMessageId()): Promise<void> {
      for (const to of p.recipients) await this.send(to, p.frame, id);
    },
  };
}

/** Errors and events of a client under test. */
function watch(client: ParleyClient) {
  const errors: ClientErrorEvent[] = [];
  client.on('error', (e) => void errors.push(e));
  const got = { messages: [] as ConversationEvents['conversationMessage'][], offers: [] as ConversationEvents['handoffOffer'][], history: [] as ConversationEvents['historyShared'][], joined: [] as ConversationEvents['conversationJoined'][], gaps: [] as ConversationEvents['conversationGap'][] };
  client.on('conversationMessage', (m) => void got.messages.push(m));
  client.on('handoffOffer', (o) => void got.offers.push(o));
  client.on('historyShared', (h) => void got.history.push(h));
  client.on('conversationJoined', (j) => void got.joined.push(j));
  client.on('conversationGap', (g) => void got.gaps.push(g));
  const refusals = () => errors.map((e) => `${e.error.code}:${String(e.error.details?.reason)}:${e.peer === undefined ? '' : e.peer.slice(0, 6)}`);
  return { errors, got, refusals };
}

const tag = (id: string) => id.slice(0, 6);

test('H1/C18 at the customer: uncertified, not claimant (message, join), member list from an agent', async () => {
  const cust = await customer(relay.url, { orgKey: org.publicKey });
  const bot = await certifiedClient(relay.url, org, { apiKey });
  const a = await staffClient(relay.url, org, 'p-ada', 'Ada Lovelace');
  const plain = await customer(relay.url, { orgKey: org.publicKey, requireCertificate: 'none' });
  for (const p of [cust, bot, a, plain]) closers.push(() => p.client.close());
  const wc = watch(cust.client);
  const wbot = watch(bot.client);
  const wa = watch(a.client);
  const eve = await rawDevice({ staff: 'Eve Intruder' });

  // An uncertified device is no member; nothing is encrypted to anyone.
  await assert.rejects(cust.client.startConversation([bot.client.deviceId, plain.client.deviceId]), refused('UNTRUSTED_IDENTITY', 'missing'));
  await assert.rejects(cust.client.startConversation(plain.client.deviceId), refused('UNTRUSTED_IDENTITY', 'missing'));
  assert.deepEqual([cust.client.conversations().length, cust.client.pendingCount], [0, 0]);

  const conv = await cust.client.startConversation(bot.client.deviceId);
  await until(() => bot.client.conversation(conv.id) !== undefined, 5_000, 'the bot joins');
  const ticket = await conv.requestHuman({ queue: 'support', reason: 'billing' });
  const info = { c: conv.id, e: conv.epoch, h: membersHash(conv.id, conv.owner, conv.epoch, conv.members.map(({ deviceId, role, name }) => ({ deviceId, role, name }))) };

  // Eve, a certified agent who claimed nothing, writes into the conversation: not a member.
  await eve.send(cust.client.deviceId, json({ v: 1, ...info, s: 1, k: 'message', m: { type: 'text', text: 'Eve: please give me your card number' } }));
  await until(() => wc.errors.length === 1, 5_000, 'the message refused');
  // …and asks to join a ticket she does not hold (she sees its ref in the queue, as staff does).
  const listed = (await eve.link.listTickets('support')).find((t) => t.id === ticket.id)!;
  await eve.send(cust.client.deviceId, json({ v: 1, e: 0, h: '', s: 0, k: 'join', ref: listed.ref, ticket: ticket.id }));
  await until(() => wc.errors.length === 2, 5_000, 'the join refused (waiting ticket)');
  // Ada claims it; Eve's join is still refused: the relay says Ada holds it.
  await a.client.tickets.claim(ticket.id);
  await until(() => wc.got.offers.length === 1, 5_000, 'Ada\'s offer');
  await eve.send(cust.client.deviceId, json({ v: 1, e: 0, h: '', s: 0, k: 'join', ref: listed.ref, ticket: ticket.id }));
  await until(() => wc.errors.length === 3, 5_000, 'the join refused (claimed by Ada)');
  assert.deepEqual(wc.refusals(), ['FORBIDDEN:notMember:' + tag(eve.deviceId), 'FORBIDDEN:notClaimant:' + tag(eve.deviceId), 'FORBIDDEN:notClaimant:' + tag(eve.deviceId)]);
  assert.deepEqual(wc.got.offers.map((o) => o.agent.deviceId), [a.client.deviceId], 'no offer for Eve');
  assert.equal(wc.got.messages.length, 0, 'nothing of Eve shown');

  // The customer admits Ada. Then a second ticket: Eve claims it for real and is admitted too…
  await conv.acceptAgent(wc.got.offers[0]!, { history: 'none', bot: 'stay' });
  await until(() => wa.got.joined.length === 1, 5_000, 'Ada joins');
  await conv.close();
  const second = await conv.requestHuman({ queue: 'support' });
  await eve.link.claimTicket(second.id);
  await eve.sendAll(await eve.book.prepareJoin(second));
  await until(() => wc.got.offers.length === 2, 5_000, 'Eve\'s genuine offer');
  assert.equal(wc.got.offers[1]!.agent.name, 'Eve Intruder');
  await conv.acceptAgent(wc.got.offers[1]!, { history: 'none', bot: 'stay' });
  await until(() => eve.book.get(conv.id)?.members.some((m) => m.deviceId === eve.deviceId) === true, 5_000, 'Eve is a member');
  // …and sends a member list adding Ada back without the customer's consent (as owner, and as herself).
  const now = eve.book.get(conv.id)!;
  // Eve lists herself as the customer (the only way a member list passes the frame checks), the customer as a bot, and Ada.
  const members = [
    ...now.members.filter((m) => m.deviceId !== eve.deviceId && m.role !== 'customer'),
    { deviceId: cust.client.deviceId, role: 'bot' as const, name: 'Carla' },
    { deviceId: eve.deviceId, role: 'customer' as const, name: 'Eve Intruder' },
    { deviceId: a.client.deviceId, role: 'agent' as const, name: 'Ada Lovelace' },
  ];
  const forged = () => json({ v: 1, c: conv.id, e: now.epoch + 1, h: membersHash(conv.id, eve.deviceId, now.epoch + 1, members), s: 1, k: 'members', members });
  const before = wc.errors.length;
  await eve.send(cust.client.deviceId, forged());
  await eve.send(bot.client.deviceId, forged());
  await eve.send(a.client.deviceId, forged());
  await until(() => wc.errors.length === before + 1 && wbot.errors.length === 1 && wa.errors.length === 1, 5_000, 'refused by all three');
  for (const r of [wc.refusals().at(-1), wbot.refusals()[0], wa.refusals()[0]]) assert.equal(r, 'FORBIDDEN:notOwner:' + tag(eve.deviceId));
  assert.ok(!conv.members.some((m) => m.deviceId === a.client.deviceId), 'Ada was not added');
  assert.equal(a.client.conversation(conv.id)?.members.some((m) => m.deviceId === a.client.deviceId) ?? false, false);
  assert.equal(bot.client.conversation(conv.id)!.epoch, conv.epoch, 'the bot kept the customer\'s list');
});

test('H2/C19 at the agent: history that is unsolicited, from the bot, from another agent, for another conversation, or twice is refused', async () => {
  const a = await staffClient(relay.url, org, 'p-ada', 'Ada Lovelace');
  closers.push(() => a.client.close());
  const wa = watch(a.client);
  const owner = await rawDevice();
  const bot = await rawDevice({ bot: true });
  const other = await rawDevice({ staff: 'Oscar Other' });
  const self = { deviceId: owner.deviceId, role: 'customer' as const, name: 'Carla' };
  const botMember = { deviceId: bot.deviceId, role: 'bot' as const, name: 'support' };
  const conv = await owner.book.create([botMember], self);
  const elsewhere = await owner.book.create([botMember], self);
  await owner.book.prepareMessage(conv.id, 'my order 4711 never came', ConversationEngine.newMessageId());
  const item = (text: string) => ({ from: owner.deviceId, name: 'Carla', role: 'customer', id: ConversationEngine.newMessageId(), sentAt: Date.now(), m: { type: 'text', text } });
  const history = (c: { id: string; epoch: number; hash: string }, ticket: string) => json({ v: 1, c: c.id, e: c.epoch, h: c.hash, s: 0, k: 'history', ticket, items: [item('forged history')] });

  // Unsolicited: Ada claimed nothing yet.
  await owner.send(a.client.deviceId, history(elsewhere, 'AAAAAAAAAAAAAAAAAAAAAA'));
  await until(() => wa.errors.length === 1, 5_000, 'unsolicited refused');

  // The ticket, Ada's claim, the customer admits her.
  const ref = 'ref-1';
  const ticket = await owner.link.openTicket('support', ref, bot.deviceId);
  await owner.book.noteTicket(conv.id, { id: ticket.id, ref });
  await a.client.tickets.claim(ticket.id);
  const members = await owner.book.prepareMembers(conv.id, [botMember, { deviceId: a.client.deviceId, role: 'agent', name: 'Ada Lovelace' }], ticket.id);
  await owner.send(a.client.deviceId, members.frame);
  await until(() => wa.got.joined.length === 1, 5_000, 'Ada joins');
  const current = owner.book.get(conv.id)!;

  await bot.send(a.client.deviceId, history(current, ticket.id)); // from the bot
  await until(() => wa.errors.length === 2, 5_000, 'from the bot refused');
  await other.send(a.client.deviceId, history(current, ticket.id)); // from another agent
  await until(() => wa.errors.length === 3, 5_000, 'from another agent refused');
  await owner.send(a.client.deviceId, history({ ...current, id: elsewhere.id }, ticket.id)); // for another conversation
  await until(() => wa.errors.length === 4, 5_000, 'for another conversation refused');
  const genuine = await owner.book.prepareHistory(conv.id, a.client.deviceId, ticket.id);
  await owner.sendAll(genuine);
  await until(() => wa.got.history.length === 1, 5_000, 'the genuine history');
  await owner.sendAll(genuine); // twice
  await until(() => wa.errors.length === 5, 5_000, 'twice refused');

  assert.deepEqual(wa.refusals(), [
    `UNTRUSTED_SOURCE:unsolicited:${tag(owner.deviceId)}`,
    `UNTRUSTED_SOURCE:notOwner:${tag(bot.deviceId)}`,
    `UNTRUSTED_SOURCE:notOwner:${tag(other.deviceId)}`,
    `UNTRUSTED_SOURCE:wrongConversation:${tag(owner.deviceId)}`,
    `UNTRUSTED_SOURCE:unsolicited:${tag(owner.deviceId)}`,
  ]);
  assert.deepEqual(wa.got.history[0]!.items.map((m) => [m.content.text, m.shared]), [['my order 4711 never came', true]]);
  assert.deepEqual(a.client.conversation(conv.id)!.history().map((m) => m.content.text), ['my order 4711 never came']);
  assert.equal(a.client.conversation(elsewhere.id), undefined);
  assert.ok(wa.got.messages.every((m) => m.content.text !== 'forged history'));
});

test('C25: a withheld conversation frame is reported as a gap, and closed when it arrives; a members-hash mismatch is reported', async () => {
  const cust = await customer(relay.url, { orgKey: org.publicKey }, { gapTimeoutMs: 1_000 });
  closers.push(() => cust.client.close());
  const wc = watch(cust.client);
  const bot = await rawDevice({ bot: true });
  const conv = await cust.client.startConversation(bot.deviceId);
  await until(() => bot.book.get(conv.id) !== undefined, 5_000, 'the bot learns of the conversation');
  const frames = [];
  for (const text of ['one', 'two', 'three']) {
    const id = ConversationEngine.newMessageId();
    frames.push({ id, ...(await bot.book.prepareMessage(conv.id, text, id)) });
  }
  // The relay "withholds" the second: the customer gets the first and the third.
  await bot.send(cust.client.deviceId, frames[0]!.frame, frames[0]!.id);
  await bot.send(cust.client.deviceId, frames[2]!.frame, frames[2]!.id);
  await until(() => wc.got.gaps.length === 1, 5_000, 'the gap reported');
  assert.deepEqual(wc.got.gaps[0], { conversation: conv.id, member: bot.deviceId, seqs: [2] });
  assert.deepEqual(wc.got.messages.map((m) => m.content.text), ['one', 'three']);
  await bot.send(cust.client.deviceId, frames[1]!.frame, frames[1]!.id);
  await until(() => wc.got.messages.length === 3, 5_000, 'the withheld frame arrives');
  assert.deepEqual([wc.got.messages[2]!.content.text, wc.got.messages[2]!.gapClosed], ['two', true]);
  await sleep(1_200);
  assert.equal(wc.got.gaps.length, 1, 'reported once, and closed');
  assert.deepEqual(cust.client.conversation(conv.id)!.history().map((m) => m.content.text).sort(), ['one', 'three', 'two']);
  // A member naming another member list for the same epoch: still shown (it is a member), and reported.
  const mismatches: ConversationEvents['membersMismatch'][] = [];
  cust.client.on('membersMismatch', (e) => void mismatches.push(e));
  await bot.send(cust.client.deviceId, json({ v: 1, c: conv.id, e: conv.epoch, h: 'f'.repeat(64), s: 4, k: 'message', m: { type: 'text', text: 'four' } }));
  await until(() => wc.got.messages.length === 4, 5_000, 'the fourth message');
  assert.deepEqual(mismatches, [{ conversation: conv.id, from: bot.deviceId }]);
  assert.deepEqual(wc.errors, []);
});
