/**
 * Consent and forms in a handler (README "Consent and forms in a handler"), the enclave's
 * part: which consent frames run the handler, what the handler sees of them, the ids of the
 * requests it sends, and the check a form's values pass again before every run. Runs only
 * inside the enclave; pure (the conversation book holds the receipts).
 *
 * - A verified `consentReceipt` from the owner runs the handler with `message.consent`.
 * - `formValues` the book accepted (a granted, unwithdrawn receipt of this conversation covers
 *   every field) run it with `message.form`. Before each run (the first, a re-run after a
 *   failure, a re-run after a crash) {@link formRefusal} checks again against the receipts the
 *   book holds then: a withdrawal that arrived in between means no run.
 */
import { ParleyError, concatBytes, getCrypto, toHex, utf8 } from '@parley/protocol';
import type { ConsentEntry, ConversationEvent, Frame } from '@parley/engine';
import type { BotConsentAnswer, BotConsentEntry, BotFormValues } from '../handler-api.js';
import type { ReceivedFrame, ReceivedMessage } from './engine.js';

/** What a consent frame adds to a handler run (`message.consent` or `message.form`). */
export type ConsentFields = { readonly consent?: BotConsentAnswer; readonly form?: BotFormValues };

/**
 * The id of the consent request or form the handler asks for with the `index`th reply of
 * message `id` from `from`: deterministic, so a re-run asks under the same id (the customer's
 * book sees a duplicate), and never a reply's message id.
 */
export function consentRequestId(from: string, id: string, index: number): string {
  const digest = getCrypto().sha256(concatBytes(utf8('parley/v1/bot-consent-request'), new Uint8Array([0]), utf8(from), new Uint8Array([0]), utf8(id), new Uint8Array([index >> 8, index & 0xff])));
  return toHex(digest.subarray(0, 16));
}

/** `message.consent` of a receipt. */
function answerOf(r: ConsentEntry['receipt']): BotConsentAnswer {
  return { requestId: r.requestId, decision: r.decision, receipt: r.id, fields: [...r.fields], ...(r.withdraws !== undefined ? { withdraws: r.withdraws } : {}) };
}

/** The handler run of a consent frame: `type: 'json'` with the same object as `consent` / `form`. */
function runOf(f: { from: string; id: string; sentAt: number }, extra: { consent: BotConsentAnswer } | { form: BotFormValues }): ReceivedMessage & ConsentFields {
  const json = 'consent' in extra ? extra.consent : extra.form;
  return { type: 'json', json, from: f.from, id: f.id, sentAt: f.sentAt, ...extra };
}

/** The run of a book event for a consent frame just received, if it runs the handler. */
export function consentRunOfEvent(f: ReceivedFrame, ev: ConversationEvent): (ReceivedMessage & ConsentFields & { conversation: string }) | undefined {
  if (ev.kind === 'consentReceipt') return { ...runOf(f, { consent: answerOf(ev.entry.receipt) }), conversation: ev.conversation };
  if (ev.kind === 'formValues') return { ...runOf(f, { form: { formId: ev.formId, receipt: ev.receipt, values: { ...ev.values } } }), conversation: ev.conversation };
  return undefined;
}

/**
 * The run of a consent frame a crash left unconsumed, if it still runs the handler: a receipt
 * the book holds (it was applied in the frame's commit), or form values (checked again before
 * the run by {@link formRefusal}).
 */
export function consentRunOfFrame(f: ReceivedFrame, frame: Frame, held: readonly ConsentEntry[]): (ReceivedMessage & ConsentFields & { conversation: string }) | undefined {
  if (frame.c === undefined) return undefined;
  if (frame.k === 'consentReceipt' && frame.receipt) {
    const r = frame.receipt;
    if (!held.some((e) => e.receipt.id === r.id && e.receipt.sig === r.sig)) return undefined; // ct-ok: public receipt ids and signatures
    return { ...runOf(f, { consent: answerOf(r) }), conversation: frame.c };
  }
  if (frame.k === 'formValues' && frame.values) {
    const v = frame.values;
    return { ...runOf(f, { form: { formId: v.formId, receipt: v.receipt, values: { ...v.values } } }), conversation: frame.c };
  }
  return undefined;
}

/**
 * Why form values may no longer reach the handler, against the receipts the book holds now:
 * `FORBIDDEN` `noConsent` (`details.why`: `withdrawn`, `denied`, `noReceipt`,
 * `fieldsNotCovered`); `undefined` when their receipt is still granted, unwithdrawn and covers
 * every field. The error names no value.
 */
export function formRefusal(form: BotFormValues, held: readonly ConsentEntry[]): ParleyError | undefined {
  const entry = held.find((e) => e.receipt.id === form.receipt); // ct-ok: public receipt ids
  const refuse = (why: string, message: string): ParleyError => new ParleyError('FORBIDDEN', `form values not handed to the handler: ${message}; they were consumed without a run`, { details: { reason: 'noConsent', why } });
  if (!entry) return refuse('noReceipt', 'their consent receipt is no longer held (the conversation was erased?)');
  if (entry.withdrawn) return refuse('withdrawn', 'the consent that covered them was withdrawn');
  if (!entry.valid) return refuse('denied', 'their receipt grants nothing');
  const outside = Object.keys(form.values).filter((n) => !entry.receipt.fields.includes(n));
  if (outside.length > 0) return refuse('fieldsNotCovered', 'their receipt does not cover every field');
  return undefined;
}

/** `ctx.consents()`: the book's entries as the handler sees them. */
export function consentEntries(held: readonly ConsentEntry[]): BotConsentEntry[] {
  return held.map(({ receipt: r, valid, withdrawn }) => ({
    id: r.id,
    requestId: r.requestId,
    decision: r.decision,
    purpose: r.purpose,
    fields: [...r.fields],
    retentionDays: r.retentionDays,
    controller: r.controller,
    at: r.at,
    ...(r.withdraws !== undefined ? { withdraws: r.withdraws } : {}),
    valid,
    withdrawn,
  }));
}

/**
 * A refusal as it may cross to the host: the RPC boundary takes only string, number and boolean
 * details, so a list (the engine's `noConsent` `details.fields`: the field names not covered,
 * never values) is joined with commas. Without this the host would drop the whole answer.
 */
export function boundaryRefusal(e: ParleyError): ParleyError {
  const details = e.details;
  if (!details || Object.values(details).every((v) => typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean')) return e;
  const plain: Record<string, string | number | boolean> = {};
  for (const [k, v] of Object.entries(details) as [string, unknown][]) {
    if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') plain[k] = v;
    else if (Array.isArray(v) && v.every((x) => typeof x === 'string')) plain[k] = v.join(',');
  }
  return new ParleyError(e.code, e.message, { details: plain });
}
