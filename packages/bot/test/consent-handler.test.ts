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
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStore } from '@parley/engine';
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
