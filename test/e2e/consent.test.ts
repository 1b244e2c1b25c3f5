/**
 * Consent receipts and consent-gated forms over real sockets (THREATS P1): a customer and a
 * bot-like device (a `ParleyClient` the org certified as `bot`) in two conversations A and B.
 * The bot asks for consent in A; the customer's signed receipt reaches it (`consentAnswered`);
 * a form before consent, fields beyond the receipt, a form in B (the receipt is A's) and a form
 * after withdrawal are refused on the customer's device with `FORBIDDEN` `noConsent`, and the
 * canary value never reaches the bot (it sees only the covered values).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createApiKey } from '@parley/relay';
import { isParleyError } from '@parley/protocol';
import type { ConversationEvents } from '@parley/client';
import { certifiedClient, customer, setupCrypto, startRelay, testOrg, until } from './helpers.js';

await setupCrypto();
const org = testOrg();
let relay: Awaited<ReturnType<typeof startRelay>>;
let apiKey: string;
const closers: (() => Promise<unknown>)[] = [];
const CANARY = 'canary-p1-consent-3e8b';

before(async () => {
  relay = await startRelay({ orgKey: org.publicKey });
  apiKey = (await createApiKey(relay.store, 'support bot')).key;
});
after(async () => {
  for (const close of closers.reverse()) await close().catch(() => undefined);
  await relay.close();
});

const noConsent = (why: string) => (e: unknown) => isParleyError(e, 'FORBIDDEN') && e.details?.reason === 'noConsent' && (e.details as { why?: string }).why === why && !e.message.includes(CANARY);

test('consent → receipt → form over a relay; every uncovered value stays on the customer device', async () => {
  const cust = await customer(relay.url, { orgKey: org.publicKey });
  const bot = await certifiedClient(relay.url, org, { apiKey });
  for (const p of [cust, bot]) closers.push(() => p.client.close());
  const requested: ConversationEvents['consentRequested'][] = [];
  const forms: ConversationEvents['formRequested'][] = [];
  const answered: ConversationEvents['consentAnswered'][] = [];
  const values: ConversationEvents['formValues'][] = [];
  cust.client.on('consentRequested', (r) => void requested.push(r));
  cust.client.on('formRequested', (f) => void forms.push(f));
  bot.client.on('consentAnswered', (a) => void answered.push(a));
  bot.client.on('formValues', (v) => void values.push(v));

  const a = await cust.client.startConversation(bot.client.deviceId, { name: 'Carla' });
  const b = await cust.client.startConversation(bot.client.deviceId, { name: 'Carla' });
  await until(() => bot.client.conversation(a.id) !== undefined && bot.client.conversation(b.id) !== undefined, 5_000, 'the bot learns of both');
  const botA = bot.client.conversation(a.id)!;
  const botB = bot.client.conversation(b.id)!;

  // A form before consent: the customer's SDK sends nothing.
  const f0 = await botA.requestForm({ fields: ['name'], consentRequest: 'ret' });
  await until(() => forms.length === 1, 5_000, 'formRequested');
  assert.deepEqual(forms[0]!.form.covered, []);
  await assert.rejects(a.submitForm(f0.id, { name: CANARY }), noConsent('noReceipt'));

  // Consent asked and granted: the bot gets the customer's signed receipt.
  await botA.requestConsent({ id: 'ret', purpose: 'Arrange your return', fields: ['name', 'address'], retentionDays: 30, controller: 'Acme Ltd' });
  await until(() => requested.length === 1, 5_000, 'consentRequested');
  assert.deepEqual(requested[0]!.request.requestedBy.role, 'bot');
  assert.deepEqual(requested[0]!.request.fields, ['name', 'address']);
  const receipt = await a.answerConsent('ret', { grant: true });
  assert.equal(receipt.valid, true);
  await until(() => answered.length === 1, 5_000, 'consentAnswered');
  assert.equal(answered[0]!.receipt.id, receipt.id);
  assert.equal(answered[0]!.receipt.signer, cust.client.deviceId);
  assert.deepEqual(botA.consents().map((r) => r.valid), [true]);
  assert.deepEqual(botB.consents(), [], 'the receipt of A is not one of B');

  // Fields beyond the receipt: refused on the customer's device; covered ones pass.
  const f1 = await botA.requestForm({ fields: ['name', 'address', 'phone'], consentRequest: 'ret' });
  await until(() => forms.length === 2, 5_000, 'formRequested');
  assert.deepEqual(forms[1]!.form.covered, ['name', 'address']);
  await assert.rejects(a.submitForm(f1.id, { name: 'Carla', phone: CANARY }), noConsent('fieldsNotCovered'));
  await a.submitForm(f1.id, { name: 'Carla', address: '1 Main St' });
  await until(() => values.length === 1, 5_000, 'formValues');
  assert.deepEqual(values[0]!.values, { name: 'Carla', address: '1 Main St' });
  assert.equal(values[0]!.receipt, receipt.id);

  // The same form in B: the receipt of A does not cover it.
  const fb = await botB.requestForm({ fields: ['name'], consentRequest: 'ret' });
  await until(() => forms.length === 3, 5_000, 'formRequested in B');
  await assert.rejects(b.submitForm(fb.id, { name: CANARY }), noConsent('noReceipt'));

  // Withdrawn: the bot learns it, and nothing more is sent.
  const w = await a.withdrawConsent(receipt.id);
  assert.equal(w.decision, 'withdrawn');
  await until(() => answered.length === 2, 5_000, 'the withdrawal reaches the bot');
  assert.deepEqual(botA.consents().map((r) => [r.decision, r.valid, r.withdrawn]), [['granted', false, true], ['withdrawn', false, false]]);
  await assert.rejects(a.submitForm(f1.id, { name: CANARY }), noConsent('withdrawn'));
  assert.deepEqual(a.consents().map((r) => r.withdrawn), [true, false]);

  // A bounded wait for anything in flight: the bot saw exactly one set of values, none holding the canary.
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(values.length, 1);
  assert.ok(!JSON.stringify(values).includes(CANARY));
  assert.deepEqual(cust.errors, []);
});
