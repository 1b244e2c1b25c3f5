/**
 * The client side of consent receipts and consent-gated forms (docs/threats.md P1): carries the
 * book's consent frames over the pairwise send path and turns its verdicts into events. The book
 * (`@parley/engine` conversations/consent.ts) keeps the receipts and enforces the gate: a form's
 * values leave this device only for fields a granted, unwithdrawn receipt of the same
 * conversation covers, and values received without one never reach the app.
 */
import { ParleyError, getCrypto, toHex, type ConsentReceipt } from '@parley/protocol';
import type { ConsentEntry, ConsentEvent, ConversationBook } from '@parley/engine';
import type { ConversationPort } from './port.js';
import type { ConsentRequestInput, ConsentReceiptInfo, FormRequestInput } from './types.js';

function newId(): string {
  return toHex(getCrypto().randomBytes(8));
}

/** A receipt as the app sees it: the signed fields, `valid` (granted, not withdrawn) and `withdrawn`. */
export function toReceiptInfo(e: ConsentEntry): ConsentReceiptInfo {
  return { ...(e.receipt as ConsentReceipt), fields: [...e.receipt.fields], valid: e.valid, withdrawn: e.withdrawn };
}

async function send(port: ConversationPort, out: { recipients: readonly string[]; frame: Uint8Array }): Promise<void> {
  const id = port.newMessageId();
  const failed = await port.fanOut(out.recipients, out.frame, id);
  if (failed.length > 0 && failed.length === out.recipients.length) throw failed[0]!.error;
  for (const f of failed) port.report(f.error, { peer: f.peer, id });
}

/** A member but the owner: asks the customer for consent. Returns the request id. */
export async function requestConsent(book: ConversationBook, port: ConversationPort, id: string, r: ConsentRequestInput): Promise<{ id: string }> {
  const body = { id: r.id ?? newId(), purpose: r.purpose, fields: [...r.fields], retentionDays: r.retentionDays, controller: r.controller };
  await send(port, await book.prepareConsentRequest(id, body));
  return { id: body.id };
}

/** Owner: answers a consent request with a receipt signed by this device's identity key. */
export async function answerConsent(book: ConversationBook, port: ConversationPort, id: string, requestId: string, o: { grant: boolean }): Promise<ConsentReceiptInfo> {
  if (typeof o?.grant !== 'boolean') throw new ParleyError('USAGE', 'answerConsent needs { grant: true | false }');
  const out = await book.prepareConsentAnswer(id, requestId, o.grant);
  await send(port, out);
  return toReceiptInfo(out.entry);
}

/** Owner: withdraws a granted receipt (a signed `withdrawn` receipt to every member). */
export async function withdrawConsent(book: ConversationBook, port: ConversationPort, id: string, receiptId: string): Promise<ConsentReceiptInfo> {
  const out = await book.prepareConsentWithdraw(id, receiptId);
  await send(port, out);
  return toReceiptInfo(out.entry);
}

/** The receipts of the conversation this device holds, oldest first. */
export function consents(book: ConversationBook, id: string): ConsentReceiptInfo[] {
  return book.consents(id).map(toReceiptInfo);
}

/** A member but the owner: asks the customer for a form covered by consent request `consentRequest`. */
export async function requestForm(book: ConversationBook, port: ConversationPort, id: string, f: FormRequestInput): Promise<{ id: string }> {
  const body = { id: f.id ?? newId(), fields: [...f.fields], consentRequest: f.consentRequest };
  await send(port, await book.prepareFormRequest(id, body));
  return { id: body.id };
}

/**
 * Owner: sends a form's values, only when a granted, unwithdrawn receipt of this conversation
 * covers every field given. Otherwise `FORBIDDEN` `noConsent` and nothing leaves this device.
 */
export async function submitForm(book: ConversationBook, port: ConversationPort, id: string, formId: string, values: Readonly<Record<string, string>>): Promise<void> {
  const out = await book.prepareFormValues(id, formId, values);
  const msg = port.newMessageId();
  const failed = await port.fanOut(out.recipients, out.frame, msg);
  if (failed.length > 0) throw failed[0]!.error;
}

/** Emits the event of a consent frame the book applied. */
export async function onConsentEvent(book: ConversationBook, port: ConversationPort, from: string, event: ConsentEvent): Promise<void> {
  switch (event.kind) {
    case 'consentRequest': {
      const { hash: _hash, answered: _answered, ...request } = event.request;
      port.emit('consentRequested', { conversation: event.conversation, request });
      return;
    }
    case 'consentReceipt':
      port.emit('consentAnswered', { conversation: event.conversation, from, receipt: toReceiptInfo(event.entry) });
      return;
    case 'formRequest': {
      const valid = book.consents(event.conversation).filter((e) => e.valid && e.receipt.requestId === event.form.consentRequest); // ct-ok: public ids
      const covered = event.form.fields.filter((f) => valid.some((e) => e.receipt.fields.includes(f)));
      port.emit('formRequested', { conversation: event.conversation, form: { ...event.form, fields: [...event.form.fields], covered } });
      return;
    }
    case 'formValues':
      port.emit('formValues', { conversation: event.conversation, from: event.from, formId: event.formId, receipt: event.receipt, values: event.values });
      return;
  }
}
