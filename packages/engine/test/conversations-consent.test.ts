/**
 * Consent receipts and consent-gated forms in the ConversationBook (THREATS P1): a form before
 * consent, fields beyond the receipt, a receipt from conversation A presented in B, a tampered
 * receipt, a withdrawn or denied receipt are refused on both sides with typed errors, the
 * refusal changes nothing, and the owner builds no frame with values it may not send.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { IdentityKeyPair, consentReceiptPayload, isParleyError, type ConsentRequestBody } from '@parley/protocol';
import { ConversationBook, MemoryStore, type ConversationEvent, type Member } from '../src/index.js';
import { BOT, CUSTOMER, STRANGER, deliverAll, digest, mid, type Party } from './helpers/conversations.js';
import { setupCrypto } from './helpers/engines.js';

before(setupCrypto);

const CANARY = 'canary-consent-91c2';
const REQ: ConsentRequestBody = { id: 'ret', purpose: 'Arrange your return', fields: ['name', 'address'], retentionDays: 30, controller: 'Acme Ltd' };
const enc = new TextEncoder();
const dec = new TextDecoder();

async function parties(): Promise<[Party, Party, Party]> {
  const keys = new Map<string, IdentityKeyPair>();
  const out: Party[] = [];
  for (const [id, role, name] of [[CUSTOMER, 'customer', 'Ann'], [BOT, 'bot', 'Helper'], [STRANGER, 'bot', 'Other']] as const) {
    const kp = IdentityKeyPair.generate();
    keys.set(id, kp);
    const store = new MemoryStore();
    const clock = { now: 1_000_000 };
    const book = await ConversationBook.open({
      store, deviceId: id, now: () => clock.now,
      consent: { sign: (u) => kp.sign('consentReceipt', consentReceiptPayload(u)), signingKey: (peer) => keys.get(peer)?.publicIdentity.signingKey },
    });
    out.push({ book, store, id, member: { deviceId: id, role, name } as Member, clock });
  }
  return out as [Party, Party, Party];
}

function edit(frame: Uint8Array, fn: (f: Record<string, any>) => void): Uint8Array {
  const f = JSON.parse(dec.decode(frame)) as Record<string, any>;
  fn(f);
  return enc.encode(JSON.stringify(f));
}

const noConsent = (why: string) => (e: unknown) => isParleyError(e, 'FORBIDDEN') && e.details?.reason === 'noConsent' && (e.details as { why?: string }).why === why;

async function refused(p: Party, from: string, frame: Uint8Array, check: (e: unknown) => boolean): Promise<void> {
  const before = digest(p.store);
  await assert.rejects(p.book.receive(from, frame, { messageId: mid(), sentAt: 1 }), (e) => {
    assert.ok(check(e), String(e) + JSON.stringify((e as { details?: unknown }).details));
    assert.ok(!String((e as Error).message).includes(CANARY), 'no value in the error message');
    return true;
  });
  assert.equal(digest(p.store), before, 'a refusal changes nothing');
}

test('consent → receipt → form → values; every P1 refusal on both sides changes nothing', async () => {
  const [customer, bot, other] = await parties();
  const conv = await customer.book.create([bot.member], customer.member);
  await deliverAll(customer, await customer.book.prepareAnnounce(conv.id), [bot]);
  const convB = await customer.book.create([bot.member, other.member], customer.member);
  await deliverAll(customer, await customer.book.prepareAnnounce(convB.id), [bot, other]);

  // A form before consent: the customer has the form but no receipt; nothing is built.
  await deliverAll(bot, await bot.book.prepareFormRequest(conv.id, { id: 'f0', fields: ['name'], consentRequest: 'ret' }), [customer]);
  await assert.rejects(customer.book.prepareFormValues(conv.id, 'f0', { name: CANARY }), noConsent('noReceipt'));

  // The request reaches the customer with who asked.
  const asked = (await deliverAll(bot, await bot.book.prepareConsentRequest(conv.id, REQ), [customer])).get(CUSTOMER) as Extract<ConversationEvent, { kind: 'consentRequest' }>;
  assert.equal(asked.kind, 'consentRequest');
  assert.deepEqual(asked.request.requestedBy, { name: 'Helper', role: 'bot' });
  assert.deepEqual(asked.request.fields, ['name', 'address']);
  // Only the owner answers; the bot may not.
  await assert.rejects(bot.book.prepareConsentAnswer(conv.id, 'ret', true), (e) => isParleyError(e, 'USAGE'));

  const answer = await customer.book.prepareConsentAnswer(conv.id, 'ret', true);
  assert.deepEqual(answer.recipients, [BOT]);
  assert.equal(answer.entry.valid, true);

  // A tampered receipt (fields widened after signing) is INVALID_SIGNATURE; a receipt of conv A presented in B is noConsent.
  await refused(bot, CUSTOMER, edit(answer.frame, (f) => f.receipt.fields.push('phone')), (e) => isParleyError(e, 'INVALID_SIGNATURE'));
  await refused(bot, CUSTOMER, edit(answer.frame, (f) => { f.receipt.decision = 'granted'; f.receipt.retentionDays = 3650; }), (e) => isParleyError(e, 'INVALID_SIGNATURE'));
  await refused(bot, CUSTOMER, edit(answer.frame, (f) => { f.c = convB.id; f.e = 1; f.h = convB.hash; }), noConsent('otherConversation'));
  // A receipt sent by another member than the owner is refused.
  await refused(bot, STRANGER, edit(answer.frame, (f) => { f.c = convB.id; f.h = convB.hash; }), (e) => isParleyError(e, 'FORBIDDEN') && e.details?.reason === 'notOwner');

  const got = (await deliverAll(customer, answer, [bot])).get(BOT) as Extract<ConversationEvent, { kind: 'consentReceipt' }>;
  assert.equal(got.kind, 'consentReceipt');
  assert.equal(got.entry.valid, true);
  assert.deepEqual((bot.book.consents(conv.id)).map((e) => e.valid), [true]);
  assert.deepEqual(bot.book.consents(convB.id), [], 'the receipt of A is not one of B');

  // The form: fields beyond the receipt are refused on the customer's side, nothing built.
  await deliverAll(bot, await bot.book.prepareFormRequest(conv.id, { id: 'f1', fields: ['name', 'address', 'phone'], consentRequest: 'ret' }), [customer]);
  await assert.rejects(customer.book.prepareFormValues(conv.id, 'f1', { name: 'Ann', phone: CANARY }), noConsent('fieldsNotCovered'));
  const ok = await customer.book.prepareFormValues(conv.id, 'f1', { name: 'Ann', address: '1 Main St' });
  assert.deepEqual(ok.recipients, [BOT]);
  const values = (await deliverAll(customer, ok, [bot])).get(BOT) as Extract<ConversationEvent, { kind: 'formValues' }>;
  assert.deepEqual(values, { kind: 'formValues', conversation: conv.id, from: CUSTOMER, formId: 'f1', receipt: answer.entry.receipt.id, values: { name: 'Ann', address: '1 Main St' } });

  // The bot's side refuses values beyond the receipt, values naming no receipt of this
  // conversation, a form it did not ask for, and values in conversation B, before any value is handed over.
  await refused(bot, CUSTOMER, edit(ok.frame, (f) => { f.values.values.phone = CANARY; }), noConsent('fieldsNotCovered'));
  await refused(bot, CUSTOMER, edit(ok.frame, (f) => { f.values.receipt = 'nosuch'; }), noConsent('noReceipt'));
  await refused(bot, CUSTOMER, edit(ok.frame, (f) => { f.values.formId = 'f9'; }), noConsent('noForm'));
  await refused(bot, CUSTOMER, edit(ok.frame, (f) => { f.c = convB.id; f.h = convB.hash; }), noConsent('noForm'));
  await deliverAll(bot, await bot.book.prepareFormRequest(convB.id, { id: 'f1', fields: ['name'], consentRequest: 'ret' }), [customer]);
  await refused(bot, CUSTOMER, edit(ok.frame, (f) => { f.c = convB.id; f.h = convB.hash; f.values.values = { name: CANARY }; }), noConsent('noReceipt'));
  // … and the customer's side sends nothing in B (no receipt there).
  await assert.rejects(customer.book.prepareFormValues(convB.id, 'f1', { name: CANARY }), noConsent('noReceipt'));

  // Withdrawn: both sides refuse afterwards.
  const wd = await customer.book.prepareConsentWithdraw(conv.id, answer.entry.receipt.id);
  assert.equal(wd.entry.receipt.decision, 'withdrawn');
  const cEntries = customer.book.consents(conv.id);
  assert.deepEqual(cEntries.map((e) => [e.receipt.decision, e.valid, e.withdrawn]), [['granted', false, true], ['withdrawn', false, false]]);
  await assert.rejects(customer.book.prepareFormValues(conv.id, 'f1', { name: CANARY }), noConsent('withdrawn'));
  await deliverAll(customer, wd, [bot]);
  assert.deepEqual((bot.book.consents(conv.id)).map((e) => e.withdrawn), [true, false]);
  await refused(bot, CUSTOMER, ok.frame, noConsent('withdrawn'));

  // Denied: a new request answered no; its form values are refused on both sides.
  await deliverAll(bot, await bot.book.prepareConsentRequest(conv.id, { ...REQ, id: 'ret2' }), [customer]);
  await deliverAll(customer, await customer.book.prepareConsentAnswer(conv.id, 'ret2', false), [bot]);
  await deliverAll(bot, await bot.book.prepareFormRequest(conv.id, { id: 'f2', fields: ['name'], consentRequest: 'ret2' }), [customer]);
  await assert.rejects(customer.book.prepareFormValues(conv.id, 'f2', { name: CANARY }), noConsent('denied'));

  // Receipts survive a restart (store-backed).
  const reopened = await ConversationBook.open({ store: bot.store, deviceId: BOT, consent: { sign: () => new Uint8Array(64), signingKey: () => undefined } });
  assert.equal((reopened.consents(conv.id)).length, 3);
});
