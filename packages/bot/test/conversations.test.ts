/**
 * Conversations with several members and the handoff, the bot's side (issue 13), over real
 * sockets on 127.0.0.1: one relay (short `ticketUnclaimedMs`), one real bot in its enclave, and
 * devices built on the engine (`ConversationEngine` + `ConversationBook` over `RelayLink`): the
 * customer who owns the conversation, and a second device admitted through a ticket.
 *
 * - The handler sees `message.conversation` (id, members, epoch) and `ctx.members()`; its replies
 *   reach every member but the bot as conversation messages, one id for all copies (the bot
 *   fetched the second member's bundle to reach it).
 * - `ctx.handoff` reaches the owner as a `handoff` frame; outside a conversation it is `USAGE`.
 * - A ticket naming the bot to notify that waits unclaimed: `handoffUnclaimed` event each time,
 *   the configured reply once per ticket.
 * - A message that overtakes the member list admitting its sender is held, then handled.
 * - A handler re-run (after a failure, after an enclave crash) sends no reply twice and leaves no
 *   gap; after the owner removed the bot, its reply is refused (`FORBIDDEN`, `notMember`) and
 *   reaches no one.
 * - A canary plaintext of the conversation is found 0 times in the host's sealed blob files and log.
 * - The same conversation with the enclave in its own process (`enclave: 'process'`).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ConversationBook, ConversationEngine, MemoryStore, type ConversationEvent, type Member } from '@parley/engine';
import { RelayLink } from '@parley/relay-link';
import { isParleyError, type MessageContent } from '@parley/protocol';
import type { RelayMessage, Ticket } from '@parley/protocol/wire';
import { createRelay, type Relay } from '../../relay/src/index.js';
import { ParleyClient } from '../../client/src/index.js';
import type { HandlerFailedEvent, HandoffUnclaimedEvent } from '../src/index.js';
import type { TestingBot } from '../src/testing.js';
import { parseParams } from '../src/rpc/messages.js';
import { TEST_RELAY_LIMITS, startBot } from './harness.js';
import { captureLogger, countBytes, setupCrypto, tempDir, waitFor } from './helpers.js';

const HANDLER = new URL('./fixtures/conversation-handler.mjs', import.meta.url);
const UNCLAIMED_MS = 300;
const UNCLAIMED_REPLY = 'Everyone is busy right now. You are still in the queue; an agent will join as soon as one is free.';
const CANARY = `canary-${randomBytes(12).toString('hex')}`;

/** A device on the engine and a conversation book, over the relay link. */
class Device {
  readonly events: { from: string; id: string; ev: ConversationEvent }[] = [];
  readonly direct: { from: string; content: MessageContent }[] = [];
  readonly errors: unknown[] = [];
  duplicates = 0;
  #lock: Promise<unknown> = Promise.resolve();

  private constructor(
    readonly engine: ConversationEngine,
    readonly book: ConversationBook,
    readonly link: RelayLink,
  ) {}

  static async connect(relayUrl: string): Promise<Device> {
    const store = new MemoryStore();
    const engine = await ConversationEngine.open({ store });
    const book = await ConversationBook.open({ store, deviceId: engine.deviceId });
    const link = new RelayLink({ url: relayUrl, credentials: { answer: (c) => engine.relayLoginAnswer(c) } });
    const d = new Device(engine, book, link);
    link.setHandlers({ onMessage: (m) => d.#onMessage(m) });
    await link.connect();
    await link.uploadPrekeys(await engine.prekeyUpload(5));
    return d;
  }

  get id(): string {
    return this.engine.deviceId;
  }

  async #onMessage(m: RelayMessage): Promise<'ack'> {
    let r;
    try {
      r = await this.engine.receive({ from: m.from, id: m.id, envelope: new Uint8Array(m.envelope) });
    } catch (e) {
      this.errors.push(e);
      return 'ack';
    }
    if (r.kind === 'duplicate') {
      this.duplicates++;
      return 'ack';
    }
    if (r.kind === 'sessionReset') return 'ack';
    if (r.type === 'conversation') {
      try {
        this.events.push({ from: r.from, id: r.id, ev: await this.book.receive(r.from, r.payload, { messageId: r.id, sentAt: r.sentAt }) });
      } catch (e) {
        this.errors.push(e);
      }
    } else if (r.type === 'text' || r.type === 'json') {
      const body = new TextDecoder().decode(r.payload);
      this.direct.push({ from: r.from, content: r.type === 'text' ? { type: 'text', text: body } : { type: 'json', json: JSON.parse(body) } });
    }
    await this.engine.consume(r.from, r.id);
    return 'ack';
  }

  /** Encrypts one engine payload to each recipient (a session from its bundle when there is none) and stores it on the relay. */
  send(recipients: readonly string[], body: Uint8Array, type: 'conversation' | 'text', id = ConversationEngine.newMessageId()): Promise<string> {
    const run = this.#lock.then(async () => {
      for (const to of recipients) {
        const bundle = this.engine.needsBundle(to) ? await this.link.fetchBundle(to) : undefined;
        const out = await this.engine.encrypt(to, body, { messageId: id, type, ...(bundle ? { bundle } : {}) });
        await this.link.send({ to: out.to, id: out.id, envelope: out.envelope });
        await this.engine.markDelivered(out.to, out.id);
      }
      return id;
    });
    this.#lock = run.catch(() => undefined);
    return run;
  }

  /** Says `text` in conversation `conv` (fan-out to every other member). */
  async say(conv: string, text: string): Promise<string> {
    const id = ConversationEngine.newMessageId();
    const { recipients, frame } = await this.book.prepareMessage(conv, text, id);
    return this.send(recipients, frame, 'conversation', id);
  }

  /** The conversation messages received from `from`. */
  messagesFrom(from: string): { id: string; content: MessageContent }[] {
    return this.events.flatMap((e) => (e.ev.kind === 'message' && e.from === from ? [{ id: e.id, content: e.ev.message.content }] : []));
  }

  textsFrom(from: string): string[] {
    return this.messagesFrom(from).flatMap((m) => (m.content.type === 'text' ? [m.content.text] : []));
  }

  jsonFrom(from: string): Record<string, unknown>[] {
    return this.messagesFrom(from).flatMap((m) => (m.content.type === 'json' ? [m.content.json as Record<string, unknown>] : []));
  }

  close(): Promise<void> {
    return this.link.close();
  }
}

await setupCrypto();
let relay: Relay;
let bot: TestingBot;
let botLog: ReturnType<typeof captureLogger>;
let botDir: string;
let customer: Device;
let second: Device;
let conv: string;
const unclaimed: HandoffUnclaimedEvent[] = [];
const failed: HandlerFailedEvent[] = [];
let ticket: Ticket;

before(async () => {
  relay = await createRelay({ logLevel: 'silent', limits: TEST_RELAY_LIMITS, ticketUnclaimedMs: UNCLAIMED_MS, customersMayMessageCustomers: true });
  botDir = tempDir();
  ({ bot, logger: botLog } = await startBot(relay, botDir, { handler: HANDLER }));
  bot.on('handoffUnclaimed', (e) => void unclaimed.push(e));
  bot.on('handlerFailed', (e) => void failed.push(e));
  customer = await Device.connect(relay.url);
  second = await Device.connect(relay.url);
});
after(async () => {
  await customer?.close();
  await second?.close();
  await bot?.close();
  await relay?.close();
});

const botMember = (): Member => ({ deviceId: bot.deviceId, role: 'bot', name: 'Helper' });

test('the handler sees message.conversation and ctx.members(); its reply reaches the customer as a conversation message', async () => {
  const created = await customer.book.create([botMember()], { deviceId: customer.id, role: 'customer', name: 'Ann' });
  conv = created.id;
  const announce = await customer.book.prepareAnnounce(conv);
  await customer.send(announce.recipients, announce.frame, 'conversation');
  await customer.say(conv, `hello ${CANARY}`);
  await waitFor(() => customer.jsonFrom(bot.deviceId).length === 1, 10_000, 'the reply');
  const seen = customer.jsonFrom(bot.deviceId)[0]!;
  assert.equal(seen.got, `hello ${CANARY}`);
  assert.equal(seen.from, customer.id);
  const c = seen.conversation as { id: string; epoch: number; members: Member[] };
  assert.equal(c.id, conv);
  assert.equal(c.epoch, 1);
  assert.deepEqual(c.members.map((m) => m.deviceId).sort(), [bot.deviceId, customer.id].sort());
  assert.deepEqual(seen.members, c.members);
  assert.deepEqual(customer.errors, []);
});

test('one to one, ctx.handoff is USAGE and ctx.members() is empty; in a conversation a bad queue is USAGE', async () => {
  await customer.send([bot.deviceId], new TextEncoder().encode('direct'), 'text');
  await waitFor(() => customer.direct.length === 1, 10_000, 'the one-to-one reply');
  assert.deepEqual(customer.direct[0]!.content, { type: 'json', json: { oneToOne: true, handoffError: { code: 'USAGE', name: 'ParleyError' }, members: [] } });
  await customer.say(conv, 'bad-queue');
  await waitFor(() => customer.jsonFrom(bot.deviceId).some((j) => 'badQueue' in j), 10_000, 'the bad-queue answer');
  assert.equal(customer.jsonFrom(bot.deviceId).find((j) => 'badQueue' in j)!.badQueue, 'USAGE');
});

test('ctx.handoff reaches the owner as a handoff frame; an unclaimed ticket gives an event each time and the reply once', async () => {
  await customer.say(conv, 'handoff');
  await waitFor(() => customer.textsFrom(bot.deviceId).includes('I asked for a person.'), 10_000, 'the handoff');
  const handoffs = customer.events.flatMap((e) => (e.ev.kind === 'handoff' ? [e.ev] : []));
  assert.equal(handoffs.length, 1);
  assert.equal(handoffs[0]!.from, bot.deviceId);
  assert.equal(handoffs[0]!.queue, 'support');
  assert.equal(handoffs[0]!.reason, 'the customer asked for a person');
  assert.equal(handoffs[0]!.conversation.id, conv);
  // What the customer's client does on a handoff frame: open the ticket, naming the bot to notify.
  ticket = await customer.link.openTicket('support', 'ref-1', bot.deviceId);
  await customer.book.noteTicket(conv, { id: ticket.id, ref: ticket.ref });
  await waitFor(() => unclaimed.length === 1 && customer.textsFrom(bot.deviceId).includes(UNCLAIMED_REPLY), 10_000, 'the unclaimed reply');
  assert.equal(unclaimed[0]!.ticketId, ticket.id);
  assert.equal(unclaimed[0]!.customer, customer.id);
  assert.equal(unclaimed[0]!.queue, 'support');
  assert.ok(unclaimed[0]!.waitingMs >= UNCLAIMED_MS);
  // Back to waiting (a declined claim): the relay reports it again; the bot tells the app, not the customer.
  await customer.link.releaseTicket(ticket.id);
  await waitFor(() => unclaimed.length === 2, 10_000, 'the second unclaimed report');
  await bot.idle();
  assert.equal(customer.textsFrom(bot.deviceId).filter((t) => t === UNCLAIMED_REPLY).length, 1);
  // The call comes from the (untrusted) host: checked by the enclave, and it only ever sends the
  // configured text, once per ticket, into a conversation the named customer owns with the bot.
  assert.deepEqual(await bot.supervisor.call('handoffUnclaimed', { ticketId: ticket.id, customer: customer.id, waitingMs: 1 }), { sent: false });
  assert.deepEqual(await bot.supervisor.call('handoffUnclaimed', { ticketId: 'A'.repeat(22), customer: second.id, waitingMs: 1 }), { sent: false });
  for (const bad of [{ ticketId: 'short', customer: customer.id, waitingMs: 1 }, { ticketId: ticket.id, customer: 'not-a-device', waitingMs: 1 }, { ticketId: ticket.id, customer: customer.id, waitingMs: -1, text: 'x' }]) {
    assert.throws(() => parseParams('handoffUnclaimed', bad), (e: unknown) => isParleyError(e, 'MALFORMED_MESSAGE'));
  }
  assert.equal(customer.textsFrom(bot.deviceId).filter((t) => t === UNCLAIMED_REPLY).length, 1);
});

test('a member admitted through the ticket gets the bot’s replies (its bundle fetched); the handler runs for its messages too', async () => {
  await second.book.prepareJoin({ id: ticket.id, customer: customer.id, ref: ticket.ref });
  const change = await customer.book.prepareMembers(conv, [botMember(), { deviceId: second.id, role: 'agent', name: 'Agent B' }], ticket.id);
  await customer.send(change.recipients, change.frame, 'conversation');
  await waitFor(() => second.events.some((e) => e.ev.kind === 'members'), 10_000, 'the second member admitted');
  await customer.say(conv, 'who is here');
  await waitFor(() => second.jsonFrom(bot.deviceId).length === 1, 10_000, 'the reply at the second member');
  await waitFor(() => customer.jsonFrom(bot.deviceId).some((j) => j.got === 'who is here'), 10_000, 'the reply at the customer');
  const atSecond = second.messagesFrom(bot.deviceId)[0]!;
  const atCustomer = customer.messagesFrom(bot.deviceId).find((m) => m.content.type === 'json' && (m.content.json as { got?: string }).got === 'who is here')!;
  assert.equal(atSecond.id, atCustomer.id, 'one message id for every copy');
  const seen = second.jsonFrom(bot.deviceId)[0]!;
  assert.equal((seen.conversation as { epoch: number }).epoch, 2);
  assert.equal((seen.members as Member[]).length, 3);
  // The second member writes: the handler runs with message.from = that member; both others get the answer.
  await second.say(conv, 'from the agent');
  await waitFor(() => customer.jsonFrom(bot.deviceId).some((j) => j.got === 'from the agent') && second.jsonFrom(bot.deviceId).some((j) => j.got === 'from the agent'), 10_000, 'the answer to the second member');
  assert.equal(customer.jsonFrom(bot.deviceId).find((j) => j.got === 'from the agent')!.from, second.id);
  assert.deepEqual(customer.textsFrom(second.id), ['from the agent'], 'the customer got the agent’s message itself');
  assert.deepEqual([...customer.errors, ...second.errors], []);
});

test('a message that overtakes the member list admitting its sender is held, then handled once the list arrives', async () => {
  const third = await Device.connect(relay.url);
  try {
    await third.book.prepareJoin({ id: ticket.id, customer: customer.id, ref: ticket.ref });
    const list = [botMember(), { deviceId: second.id, role: 'agent' as const, name: 'Agent B' }, { deviceId: third.id, role: 'supervisor' as const, name: 'Supervisor C' }];
    const change = await customer.book.prepareMembers(conv, list, ticket.id);
    const id = ConversationEngine.newMessageId();
    // The new list reaches everyone but the bot first; the newcomer writes at once.
    await customer.send(change.recipients.filter((r) => r !== bot.deviceId), change.frame, 'conversation', id);
    await waitFor(() => third.events.some((e) => e.ev.kind === 'members'), 10_000, 'the third member admitted');
    await third.say(conv, 'early bird');
    await waitFor(() => customer.textsFrom(third.id).includes('early bird'), 10_000, 'the customer got it');
    await bot.idle();
    assert.ok(!customer.jsonFrom(bot.deviceId).some((j) => j.got === 'early bird'), 'held: not handled before the list admitting its sender');
    await customer.send([bot.deviceId], change.frame, 'conversation', id);
    await waitFor(() => third.jsonFrom(bot.deviceId).some((j) => j.got === 'early bird'), 10_000, 'the released message answered');
    const seen = third.jsonFrom(bot.deviceId).find((j) => j.got === 'early bird')!;
    assert.equal(seen.from, third.id);
    assert.equal((seen.conversation as { epoch: number }).epoch, 3);
    await bot.idle();
    assert.equal(customer.jsonFrom(bot.deviceId).filter((j) => j.got === 'early bird').length, 1);
  } finally {
    await third.close();
  }
});

test('a handler re-run sends no reply twice and leaves no gap', async () => {
  await customer.say(conv, 'twice');
  await waitFor(() => customer.textsFrom(bot.deviceId).includes('once-B') && second.textsFrom(bot.deviceId).includes('once-B'), 15_000, 'the re-run');
  await bot.idle();
  for (const d of [customer, second]) {
    const texts = d.textsFrom(bot.deviceId);
    assert.equal(texts.filter((t) => t === 'once-A').length, 1);
    assert.equal(texts.filter((t) => t === 'once-B').length, 1);
    assert.equal(texts.filter((t) => t.startsWith('Sorry, something went wrong')).length, 1, 'the failure reply, once');
    assert.deepEqual(d.book.dueGaps(0), [], 'no sequence number of the bot is missing');
  }
  assert.equal(failed.length, 1);
  assert.equal(failed[0]!.failures, 1);
});

test('an enclave crash during a run: the restarted enclave runs the message again, each reply reaches each member once', async () => {
  await customer.say(conv, 'crash-wait');
  await waitFor(() => customer.textsFrom(bot.deviceId).includes('before the crash'), 10_000, 'the first reply');
  const crashes = bot.stats.crashes;
  await bot.supervisor.unsafeTestingTerminate();
  await waitFor(() => bot.stats.crashes === crashes + 1, 5_000, 'the crash noticed');
  await bot.supervisor.whenReady();
  await waitFor(() => customer.textsFrom(bot.deviceId).includes('after the crash (redelivered: true)') && second.textsFrom(bot.deviceId).includes('after the crash (redelivered: true)'), 15_000, 'the re-run');
  await bot.idle();
  for (const d of [customer, second]) {
    const texts = d.textsFrom(bot.deviceId);
    assert.equal(texts.filter((t) => t === 'before the crash').length, 1);
    assert.deepEqual(texts.filter((t) => t.startsWith('after the crash')), ['after the crash (redelivered: true)']);
    assert.deepEqual(d.book.dueGaps(0), []);
  }
});

test('after the owner removed the bot, ctx.reply is refused (FORBIDDEN notMember) and reaches no one', async () => {
  await customer.say(conv, 'wait-removed');
  const change = await customer.book.prepareMembers(conv, [{ deviceId: second.id, role: 'agent', name: 'Agent B' }]);
  await customer.send(change.recipients, change.frame, 'conversation');
  await waitFor(() => failed.some((f) => f.quarantined), 15_000, 'the refused replies');
  const refusals = failed.slice(1);
  assert.ok(refusals.length >= 1);
  for (const f of refusals) {
    assert.equal(f.code, 'FORBIDDEN');
    assert.equal(f.reason, 'notMember');
    assert.equal(f.failureReplySent, false);
  }
  await bot.idle();
  for (const d of [customer, second]) assert.ok(!d.textsFrom(bot.deviceId).includes('after removal'));
});

test('the canary plaintext is in no sealed blob file and no log line of the host', async () => {
  const files: string[] = [];
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) walk(p);
      else files.push(p);
    }
  };
  walk(botDir);
  const blobs = files.map((f) => new Uint8Array(readFileSync(f)));
  assert.ok(files.some((f) => f.endsWith(join('sealed', 'log'))) && blobs.reduce((n, b) => n + b.length, 0) > 10_000, 'the sealed state is there');
  const needle = new TextEncoder().encode(CANARY);
  assert.equal(blobs.reduce((n, b) => n + countBytes(b, needle), 0), 0);
  assert.ok(!botLog.text().includes(CANARY));
});

test('a customer ParleyClient: startConversation, the handoff opens a ticket naming the bot, the unclaimed reply arrives once', async () => {
  const client = await ParleyClient.create({ relayUrl: relay.url, store: new MemoryStore(), trust: { requireCertificate: 'none' }, transport: { reconnectDelayMs: 50, maxReconnectDelayMs: 400 } });
  try {
    await client.connect();
    const got: { from: string; text?: string; json?: unknown; conversation: string }[] = [];
    client.on('conversationMessage', (m) => void got.push({ from: m.from, conversation: m.conversation, ...(m.content.type === 'text' ? { text: m.content.text } : m.content.type === 'json' ? { json: m.content.json } : {}) }));
    const requested: { queue: string; reason: string; by: string; notify?: string; ticketId: string }[] = [];
    client.on('handoffRequested', (h) => void requested.push({ queue: h.queue, reason: h.reason, by: h.by, ticketId: h.ticket.id, ...(h.ticket.notify ? { notify: h.ticket.notify } : {}) }));
    const c = await client.startConversation(bot.deviceId);
    await c.send('hello from the client');
    await waitFor(() => got.some((m) => m.from === bot.deviceId && m.json !== undefined), 10_000, 'the reply');
    const seen = got.find((m) => m.json !== undefined)!;
    assert.equal(seen.conversation, c.id);
    assert.equal(((seen.json as { conversation: { id: string } }).conversation).id, c.id);
    const before = unclaimed.length;
    await c.send('handoff');
    await waitFor(() => requested.length === 1, 10_000, 'the ticket');
    assert.deepEqual(requested[0], { queue: 'support', reason: 'the customer asked for a person', by: bot.deviceId, notify: bot.deviceId, ticketId: requested[0]!.ticketId });
    await waitFor(() => unclaimed.length > before && got.some((m) => m.text === UNCLAIMED_REPLY), 10_000, 'the unclaimed reply');
    assert.equal(unclaimed.at(-1)!.ticketId, requested[0]!.ticketId);
    assert.equal(unclaimed.at(-1)!.customer, client.deviceId);
    await bot.idle();
    assert.equal(got.filter((m) => m.text === UNCLAIMED_REPLY).length, 1);
    assert.equal(got.filter((m) => m.text === 'I asked for a person.').length, 1);
  } finally {
    await client.close();
  }
});

test("with enclave: 'process' the conversation works the same", async () => {
  const dir = tempDir();
  const { bot: other } = await startBot(relay, dir, { handler: HANDLER, enclave: 'process' });
  try {
    const c = await customer.book.create([{ deviceId: other.deviceId, role: 'bot', name: 'Other' }], { deviceId: customer.id, role: 'customer', name: 'Ann' });
    const announce = await customer.book.prepareAnnounce(c.id);
    await customer.send(announce.recipients, announce.frame, 'conversation');
    await customer.say(c.id, 'in process mode');
    await waitFor(() => customer.jsonFrom(other.deviceId).length === 1, 15_000, 'the reply');
    assert.equal((customer.jsonFrom(other.deviceId)[0]!.conversation as { id: string }).id, c.id);
  } finally {
    await other.close();
  }
});
