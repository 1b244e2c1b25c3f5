/**
 * Consent and forms in a bot handler (README "Consent and forms in a handler"; THREATS P1), over
 * real sockets on 127.0.0.1: one relay, one real bot in its enclave (fixture
 * `consent-handler.mjs`), and a real customer `ParleyClient`.
 *
 * - `ctx.requestConsent` reaches the customer (`consentRequested`, asked by the bot); the signed
 *   receipt runs the handler with `message.consent`; `ctx.requestForm` reaches the customer
 *   (`formRequested`); the covered values run the handler with `message.form`.
 * - A denial runs the handler with `decision: 'denied'` (no form); bad requests are `USAGE`.
 * - A crash during a run that asked for consent: the re-run gets the same request id and the
 *   customer sees one request.
 * - Values whose consent was withdrawn while their run was interrupted by a crash never reach
 *   the handler again: the re-run is refused (`FORBIDDEN` `noConsent`), and the handler, which
 *   keeps every value it sees, kept none of them.
 * - A customer device that does not play by the rules (the engine and its book, sending
 *   `formValues` frames it builds itself): values beyond the receipt, naming no receipt, for a
 *   form never asked for, or after a withdrawal are refused in the enclave and never reach the
 *   handler (a canary value is seen 0 times); covered values it builds the same way do (the
 *   control). One to one, `ctx.requestConsent` / `ctx.requestForm` are `USAGE`.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { ConversationBook, ConversationEngine, MemoryStore, type ConversationEvent, type Member } from '@parley/engine';
import { RelayLink } from '@parley/relay-link';
import type { RelayMessage } from '@parley/protocol/wire';
import { createRelay, type Relay } from '../../relay/src/index.js';
import { ParleyClient, type Conversation, type ConversationEvents } from '../../client/src/index.js';
import type { TestingBot } from '../src/testing.js';
import { TEST_RELAY_LIMITS, startBot } from './harness.js';
import { captureLogger, setupCrypto, tempDir, waitFor } from './helpers.js';

const HANDLER = new URL('./fixtures/consent-handler.mjs', import.meta.url);
let relay: Relay;
let bot: TestingBot;
let botLog: ReturnType<typeof captureLogger>;
let client: ParleyClient;
let conv: Conversation;
const requested: ConversationEvents['consentRequested'][] = [];
const forms: ConversationEvents['formRequested'][] = [];

before(async () => {
  await setupCrypto();
  relay = await createRelay({ logLevel: 'silent', limits: TEST_RELAY_LIMITS });
  ({ bot, logger: botLog } = await startBot(relay, tempDir(), { handler: HANDLER }));
  client = await ParleyClient.create({ relayUrl: relay.url, store: new MemoryStore(), trust: { requireCertificate: 'none' }, transport: { reconnectDelayMs: 50, maxReconnectDelayMs: 400 } });
  await client.connect();
  client.on('consentRequested', (r) => void requested.push(r));
  client.on('formRequested', (f) => void forms.push(f));
  client.on('conversationMessage', () => undefined);
  conv = await client.startConversation(bot.deviceId);
});
after(async () => {
  await client?.close();
  await bot?.close();
  await relay?.close();
});

/** The JSON replies of the bot in the conversation, oldest first. */
function replies(): Record<string, unknown>[] {
  return conv.history().flatMap((m) => (m.from === bot.deviceId && m.content.type === 'json' ? [m.content.json as Record<string, unknown>] : []));
}

async function reply(match: (r: Record<string, unknown>) => boolean, what: string): Promise<Record<string, unknown>> {
  await waitFor(() => replies().some(match), 15_000, what);
  return replies().find(match)!;
}

/** Asks the bot for consent ('return'), returns the request as the customer sees it. */
async function ask(text = 'return'): Promise<string> {
  const before = requested.length;
  await conv.send(text);
  await waitFor(() => requested.length > before, 15_000, 'consentRequested');
  const r = requested.at(-1)!;
  assert.equal(r.conversation, conv.id);
  assert.equal(r.request.from, bot.deviceId);
  assert.equal(r.request.requestedBy.role, 'bot');
  await reply((x) => x.requested === r.request.id, 'the reply naming the request');
  return r.request.id;
}

test('requestConsent → granted receipt runs the handler → requestForm → covered values run the handler', async () => {
  const requestId = await ask();
  const r = requested.at(-1)!.request;
  assert.equal(r.purpose, 'Arrange your return');
  assert.deepEqual(r.fields, ['name', 'address']);
  assert.equal(r.retentionDays, 30);
  assert.equal(r.controller, 'Acme Ltd');

  const receipt = await conv.answerConsent(requestId, { grant: true });
  const granted = await reply((x) => x.consent === 'granted' && x.requestId === requestId, 'the handler run for the receipt');
  assert.equal(granted.type, 'json');
  const consents = granted.consents as { id: string; requestId: string; decision: string; valid: boolean; withdrawn: boolean; fields: string[] }[];
  assert.deepEqual(consents.map((c) => [c.id, c.requestId, c.decision, c.valid, c.withdrawn]), [[receipt.id, requestId, 'granted', true, false]]);
  const formId = granted.formId as string;
  await waitFor(() => forms.some((f) => f.form.id === formId), 15_000, 'formRequested');
  const form = forms.find((f) => f.form.id === formId)!.form;
  assert.equal(form.consentRequest, requestId);
  assert.deepEqual(form.covered, ['name', 'address']);

  await conv.submitForm(formId, { name: 'Carla', address: '1 Main St' });
  const got = await reply((x) => x.form === formId, 'the handler run for the values');
  assert.deepEqual(got, { form: formId, receipt: receipt.id, fields: ['address', 'name'], type: 'json', redelivered: false });
  await conv.send('report');
  const report = await reply((x) => Array.isArray(x.seen), 'the report');
  assert.deepEqual(report.seen, ['Carla', '1 Main St']);
});

test('a denial runs the handler with decision denied; bad requests are USAGE', async () => {
  const requestId = await ask();
  const formsBefore = forms.length;
  await conv.answerConsent(requestId, { grant: false });
  const denied = await reply((x) => x.consent === 'denied' && x.requestId === requestId, 'the handler run for the denial');
  assert.equal(denied.type, 'json');
  assert.equal(forms.length, formsBefore, 'no form after a denial');

  await conv.send('bad-consent');
  const bad = await reply((x) => Array.isArray(x.errors), 'the bad-request reply');
  assert.deepEqual(bad.errors, ['USAGE', 'USAGE', 'USAGE', 'USAGE']);
});

test('a crash during a run that asked for consent: the re-run asks under the same id, the customer sees one request', async () => {
  const before = requested.length;
  await conv.send('crash-consent');
  const first = await reply((x) => typeof x.requested === 'string' && x.redelivered === false, 'the first run');
  const crashes = bot.stats.crashes;
  await bot.supervisor.unsafeTestingTerminate();
  await waitFor(() => bot.stats.crashes === crashes + 1, 5_000, 'the crash noticed');
  const after = await reply((x) => x.after !== undefined, 'the re-run');
  assert.equal(after.redelivered, true);
  assert.equal(after.after, first.requested, 'the re-run got the same request id');
  assert.equal(requested.length, before + 1);
  assert.equal(requested.at(-1)!.request.id, first.requested);
});

test('values whose consent was withdrawn while their run was interrupted never reach the handler again', async () => {
  const requestId = await ask();
  const receipt = await conv.answerConsent(requestId, { grant: true });
  const granted = await reply((x) => x.consent === 'granted' && x.requestId === requestId, 'the handler run for the receipt');
  const formId = granted.formId as string;
  await waitFor(() => forms.some((f) => f.form.id === formId), 15_000, 'formRequested');
  // The first run replies, then sleeps: the customer withdraws, the bot takes the withdrawal, the enclave crashes.
  await conv.submitForm(formId, { name: 'slow', address: '2 Side St' });
  await reply((x) => x.form === formId && x.redelivered === false, 'the first run of the values');
  await conv.withdrawConsent(receipt.id);
  await waitFor(() => conv.consents().some((c) => c.withdrawn), 5_000, 'the withdrawal recorded');
  // The relay holds nothing more for the bot: it took (and committed) the withdrawal.
  const pending = async () => relay.store.countPending(bot.deviceId);
  for (let i = 0; i < 500 && (await pending()) > 0; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(await pending(), 0);
  const crashes = bot.stats.crashes;
  await bot.supervisor.unsafeTestingTerminate();
  await waitFor(() => bot.stats.crashes === crashes + 1, 5_000, 'the crash noticed');
  await reply((x) => x.consent === 'withdrawn' && x.requestId === requestId, 'the handler run for the withdrawal');
  await conv.send('report');
  await waitFor(() => replies().filter((x) => Array.isArray(x.seen)).length === 2, 15_000, 'the second report');
  const report = replies().filter((x) => Array.isArray(x.seen)).at(-1)!;
  assert.equal((report.seen as string[]).filter((v) => v === 'slow' || v === '2 Side St').length, 0, 'no withdrawn value was kept');
  assert.equal(replies().filter((x) => x.form === formId && x.redelivered === true).length, 0, 'no re-run of the values');
  assert.ok(botLog.lines.some((l) => l.includes('"code":"FORBIDDEN"') && l.includes('withdrawn')), 'the refusal is logged');
});

/** A customer device on the engine and its book (with a consent signer), over the relay link: it can send frames its client would refuse to build. */
class RogueCustomer {
  readonly events: ConversationEvent[] = [];
  readonly direct: unknown[] = [];
  #lock: Promise<unknown> = Promise.resolve();

  private constructor(
    readonly engine: ConversationEngine,
    readonly book: ConversationBook,
    readonly link: RelayLink,
  ) {}

  static async connect(relayUrl: string): Promise<RogueCustomer> {
    const store = new MemoryStore();
    const engine = await ConversationEngine.open({ store });
    const consent = { sign: (r: Parameters<ConversationEngine['signConsent']>[0]) => engine.signConsent(r), signingKey: (p: string) => engine.peerIdentity(p)?.signingKey };
    const book = await ConversationBook.open({ store, deviceId: engine.deviceId, consent });
    const link = new RelayLink({ url: relayUrl, credentials: { answer: (c) => engine.relayLoginAnswer(c) } });
    const d = new RogueCustomer(engine, book, link);
    link.setHandlers({ onMessage: (m) => d.#onMessage(m) });
    await link.connect();
    await link.uploadPrekeys(await engine.prekeyUpload(5));
    return d;
  }

  async #onMessage(m: RelayMessage): Promise<'ack'> {
    const r = await this.engine.receive({ from: m.from, id: m.id, envelope: new Uint8Array(m.envelope) }).catch(() => undefined);
    if (!r || r.kind !== 'message') return 'ack';
    if (r.type === 'conversation') {
      const ev = await this.book.receive(r.from, r.payload, { messageId: r.id, sentAt: r.sentAt }).catch(() => undefined);
      if (ev) this.events.push(ev);
    } else if (r.type === 'json') {
      this.direct.push(JSON.parse(new TextDecoder().decode(r.payload)));
    }
    await this.engine.consume(r.from, r.id);
    return 'ack';
  }

  /** Encrypts one payload to each recipient (a session from its bundle when there is none) and stores it on the relay. */
  send(recipients: readonly string[], body: Uint8Array, type: 'conversation' | 'text'): Promise<void> {
    const run = this.#lock.then(async () => {
      const messageId = ConversationEngine.newMessageId();
      for (const to of recipients) {
        const bundle = this.engine.needsBundle(to) ? await this.link.fetchBundle(to) : undefined;
        const out = await this.engine.encrypt(to, body, { messageId, type, ...(bundle ? { bundle } : {}) });
        await this.link.send({ to: out.to, id: out.id, envelope: out.envelope });
        await this.engine.markDelivered(out.to, out.id);
      }
    });
    this.#lock = run.catch(() => undefined);
    return run;
  }

  async say(c: string, text: string): Promise<void> {
    const { recipients, frame } = await this.book.prepareMessage(c, text, ConversationEngine.newMessageId());
    await this.send(recipients, frame, 'conversation');
  }

  /** A `formValues` frame built by hand (the book would refuse to build an uncovered one). */
  async forge(c: string, to: string, values: { formId: string; receipt: string; values: Record<string, string> }): Promise<void> {
    const info = this.book.get(c)!;
    const frame = { v: 1, c, e: info.epoch, h: info.hash, s: 0, k: 'formValues', values };
    await this.send([to], new TextEncoder().encode(JSON.stringify(frame)), 'conversation');
  }

  /** The JSON messages of `from` in the conversations. */
  jsonFrom(from: string): Record<string, unknown>[] {
    return this.events.flatMap((e) => (e.kind === 'message' && e.message.from === from && e.message.content.type === 'json' ? [e.message.content.json as Record<string, unknown>] : []));
  }
}

test('forged form values the receipts do not cover never reach the handler; covered ones do', async () => {
  const CANARY = 'canary-consent-handler-5d1c';
  const rogue = await RogueCustomer.connect(relay.url);
  try {
    // One to one: no conversation, no consent.
    await rogue.send([bot.deviceId], new TextEncoder().encode('hello'), 'text');
    await waitFor(() => rogue.direct.length === 1, 15_000, 'the one-to-one reply');
    assert.deepEqual(rogue.direct[0], { oneToOne: ['USAGE', 'USAGE'], consents: [] });

    const botMember: Member = { deviceId: bot.deviceId, role: 'bot', name: 'Helper' };
    const c = (await rogue.book.create([botMember], { deviceId: rogue.engine.deviceId, role: 'customer', name: 'Rita' })).id;
    const announce = await rogue.book.prepareAnnounce(c);
    await rogue.send(announce.recipients, announce.frame, 'conversation');
    await rogue.say(c, 'return-wide');
    await waitFor(() => rogue.events.some((e) => e.kind === 'consentRequest'), 15_000, 'the consent request');
    const request = rogue.events.find((e) => e.kind === 'consentRequest')!;
    assert.ok(request.kind === 'consentRequest');
    const answer = await rogue.book.prepareConsentAnswer(c, request.request.id, true);
    await rogue.send(answer.recipients, answer.frame, 'conversation');
    await waitFor(() => rogue.events.some((e) => e.kind === 'formRequest'), 15_000, 'the form request (name, address, phone)');
    const form = rogue.events.find((e) => e.kind === 'formRequest')!;
    assert.ok(form.kind === 'formRequest');
    assert.deepEqual(form.form.fields, ['name', 'address', 'phone']);
    const receipt = answer.entry.receipt.id;

    const refusedBefore = botLog.lines.filter((l) => l.includes('deliver.rejected') && l.includes('FORBIDDEN')).length;
    // A field beyond the receipt, no receipt, a form never asked for: refused in the enclave.
    await rogue.forge(c, bot.deviceId, { formId: form.form.id, receipt, values: { name: 'Rita', phone: CANARY } });
    await rogue.forge(c, bot.deviceId, { formId: form.form.id, receipt: 'no-such-receipt', values: { name: CANARY } });
    await rogue.forge(c, bot.deviceId, { formId: 'never-asked', receipt, values: { name: CANARY } });
    // The control: covered values built the same way reach the handler.
    await rogue.forge(c, bot.deviceId, { formId: form.form.id, receipt, values: { name: 'Rita', address: '3 High St' } });
    await waitFor(() => rogue.jsonFrom(bot.deviceId).some((x) => x.form === form.form.id), 15_000, 'the handler run for the covered values');
    // Withdrawn, then the same covered values again: refused.
    const withdrawal = await rogue.book.prepareConsentWithdraw(c, receipt);
    await rogue.send(withdrawal.recipients, withdrawal.frame, 'conversation');
    await waitFor(() => rogue.jsonFrom(bot.deviceId).some((x) => x.consent === 'withdrawn'), 15_000, 'the handler run for the withdrawal');
    await rogue.forge(c, bot.deviceId, { formId: form.form.id, receipt, values: { name: CANARY, address: CANARY } });
    await waitFor(() => botLog.lines.filter((l) => l.includes('deliver.rejected') && l.includes('FORBIDDEN')).length === refusedBefore + 4, 15_000, 'four refusals logged');
    const whys = botLog.lines
      .filter((l) => l.includes('deliver.rejected') && l.includes('FORBIDDEN'))
      .slice(refusedBefore)
      .map((l) => (JSON.parse(l) as { error: { details: { reason: string; why: string } } }).error.details)
      .map((d) => `${d.reason}/${d.why}`);
    assert.deepEqual(whys.sort(), ['noConsent/fieldsNotCovered', 'noConsent/noForm', 'noConsent/noReceipt', 'noConsent/withdrawn']);

    await rogue.say(c, 'report');
    await waitFor(() => rogue.jsonFrom(bot.deviceId).some((x) => Array.isArray(x.seen)), 15_000, 'the report');
    const report = rogue.jsonFrom(bot.deviceId).find((x) => Array.isArray(x.seen))!;
    assert.deepEqual(report.seen, ['Rita', '3 High St']);
    assert.equal(JSON.stringify(rogue.jsonFrom(bot.deviceId)).split(CANARY).length - 1, 0, 'no canary value reached the handler');
    assert.equal(botLog.text().split(CANARY).length - 1, 0, 'no canary value in the host log');
    assert.equal(rogue.jsonFrom(bot.deviceId).filter((x) => x.form !== undefined).length, 1);
  } finally {
    await rogue.link.close();
  }
});
