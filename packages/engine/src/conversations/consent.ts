/**
 * Consent receipts and consent-gated forms inside a conversation (docs/threats.md P1), the
 * {@link ConversationBook}'s part for the frame kinds `consentRequest`, `consentReceipt`,
 * `formRequest` and `formValues`. None is sequenced (`s` = 0).
 *
 * - A member other than the owner (a bot, an agent) sends a `consentRequest` to the owner.
 * - The owner (the customer's device) answers with a `consentReceipt` signed by its identity key
 *   (`@parley/protocol` consent.ts) to every other member; a withdrawal is a receipt too.
 * - A member sends a `formRequest` (fields, the consent request it relies on) to the owner.
 * - The owner sends `formValues` to the form's requester only for fields that a granted,
 *   unwithdrawn receipt of this conversation for that request covers; the receiver checks the
 *   same against the receipts it holds (verified on arrival) before any value is handed over.
 *
 * Every refusal is `FORBIDDEN` `noConsent` (with `details.why`), `INVALID_SIGNATURE` (tampered
 * receipt) or `MALFORMED_MESSAGE`; it changes nothing. Error messages never hold a value.
 *
 * Persistence: `conv/<id>/consent` (one JSON record per conversation; the conversation's erasure
 * deletes it with the rest of `conv/<id>/`).
 */
import {
  ParleyError,
  checkConsentReceipt,
  checkConsentRequest,
  consentReceiptFor,
  consentRequestHash,
  verifyConsentReceipt,
  withConsentSignature,
  CONSENT_FIELD_PATTERN,
  CONSENT_ID_PATTERN,
  MAX_CONSENT_FIELDS,
  getCrypto,
  toHex,
  type ConsentReceipt,
  type ConsentRequestBody,
  type UnsignedConsentReceipt,
} from '@parley/protocol';
import type { KeyValueStore } from '../store.js';
import type { Frame, FrameKind, Member, MemberRole } from './types.js';

/** Longest form value, in characters. */
export const MAX_FORM_VALUE_CHARS = 1000;
/** Most requests, receipts and forms kept per conversation (the oldest are dropped). */
export const MAX_CONSENT_RECORDS = 100;

/** Signs this device's receipts and finds a peer's key to verify theirs. */
export interface ConsentSigner {
  /** Signs a receipt with this device's identity key (`engine.signConsent`). */
  sign(receipt: UnsignedConsentReceipt): Uint8Array;
  /** The Ed25519 identity key of `peer`, when known (`engine.peerIdentity(peer)?.signingKey`). */
  signingKey(peer: string): Uint8Array | undefined;
}

/** A form request: the fields asked for and the consent request whose receipt must cover them. */
export interface FormRequestBody {
  /** 1-64 chars of [A-Za-z0-9_-], unique per conversation. */
  readonly id: string;
  readonly fields: readonly string[];
  /** The id of the consent request whose granted receipt covers the values. */
  readonly consentRequest: string;
}

/** The values of a form, as sent: the form, the receipt covering them, field → value. */
export interface FormValuesBody {
  readonly formId: string;
  readonly receipt: string;
  readonly values: Readonly<Record<string, string>>;
}

/** Who asked, as the member list names them. */
export interface ConsentRequester {
  readonly name: string;
  readonly role: MemberRole;
}

/** A consent request as the customer's app shows it. */
export interface ConsentRequestView extends ConsentRequestBody {
  /** Device id of the requester. */
  readonly from: string;
  readonly requestedBy: ConsentRequester;
  /** SHA-256 (hex) of the request (what its receipt is bound to). */
  readonly hash: string;
  /** The id of the receipt answering it, once answered. */
  readonly answered?: string;
}

/** A receipt this device holds, and where it stands. */
export interface ConsentEntry {
  readonly receipt: ConsentReceipt;
  /** Granted and not withdrawn (the signature was verified on arrival). */
  readonly valid: boolean;
  /** A later receipt withdrew it. */
  readonly withdrawn: boolean;
}

/** A form request as the customer's app shows it. */
export interface FormRequestView extends FormRequestBody {
  readonly from: string;
  readonly requestedBy: ConsentRequester;
}

/** What the book makes of the consent frames (part of `ConversationEvent`). */
export type ConsentEvent =
  /** Owner side: a member asks for consent. */
  | { readonly kind: 'consentRequest'; readonly conversation: string; readonly request: ConsentRequestView }
  /** Any member: a verified receipt (an answer or a withdrawal) from the owner. */
  | { readonly kind: 'consentReceipt'; readonly conversation: string; readonly entry: ConsentEntry }
  /** Owner side: a member asks for a form. */
  | { readonly kind: 'formRequest'; readonly conversation: string; readonly form: FormRequestView }
  /** Requester side: form values covered by a valid receipt of this conversation. */
  | { readonly kind: 'formValues'; readonly conversation: string; readonly from: string; readonly formId: string; readonly receipt: string; readonly values: Record<string, string> };

/** Why a form or its values were refused (`FORBIDDEN` `noConsent` `details.why`). */
export type NoConsentWhy = 'noReceipt' | 'denied' | 'withdrawn' | 'fieldsNotCovered' | 'noForm' | 'otherConversation' | 'otherRequest';

interface StoredRequest {
  body: ConsentRequestBody;
  hash: string;
  from: string;
  requestedBy: ConsentRequester;
  at: number;
  answered?: string;
}

interface StoredForm {
  body: FormRequestBody;
  from: string;
  requestedBy: ConsentRequester;
  at: number;
}

interface ConsentRecord {
  v: 1;
  requests: StoredRequest[];
  receipts: ConsentReceipt[];
  forms: StoredForm[];
}

/** The conversation facts the ledger needs (from the book's record). */
export interface ConsentConversation {
  readonly id: string;
  readonly owner: string;
  readonly members: readonly Member[];
  readonly epoch: number;
  readonly hash: string;
}

/** What a prepare call returns: the frame object (the book encodes it) and its recipients. */
export interface ConsentOut {
  readonly recipients: string[];
  readonly frame: Frame;
}

const KEY = (id: string) => `conv/${id}/consent`;
const enc = new TextEncoder();
const dec = new TextDecoder('utf-8', { fatal: true });

export function noConsent(why: NoConsentWhy, message: string, extra: Record<string, unknown> = {}): ParleyError {
  return new ParleyError('FORBIDDEN', message, { details: { reason: 'noConsent', why, ...extra } });
}

function bad(what: string): never {
  throw new ParleyError('MALFORMED_MESSAGE', `conversation frame refused: ${what}; the frame was dropped`);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function checkFieldList(v: unknown, fail: (w: string) => never): string[] {
  if (!Array.isArray(v) || v.length === 0 || v.length > MAX_CONSENT_FIELDS) fail(`fields must name 1-${MAX_CONSENT_FIELDS} fields`);
  for (const f of v) if (typeof f !== 'string' || !CONSENT_FIELD_PATTERN.test(f)) fail('a field name has the wrong form');
  if (new Set(v).size !== v.length) fail('a field is named twice');
  return [...(v as string[])];
}

/** Validates a form request body. */
export function checkFormRequest(v: unknown, fail: (w: string) => never = bad): FormRequestBody {
  if (!isRecord(v) || Object.keys(v).length !== 3) fail('form request');
  const r = v as Record<string, unknown>;
  if (typeof r.id !== 'string' || !CONSENT_ID_PATTERN.test(r.id)) fail('form id has the wrong form');
  if (typeof r.consentRequest !== 'string' || !CONSENT_ID_PATTERN.test(r.consentRequest)) fail('form consent request id has the wrong form');
  return { id: r.id as string, fields: checkFieldList(r.fields, fail), consentRequest: r.consentRequest as string };
}

/** Validates form values (field names of the consent format, string values of at most 1000 chars). */
export function checkFormValues(v: unknown, fail: (w: string) => never = bad): FormValuesBody {
  if (!isRecord(v) || Object.keys(v).length !== 3) fail('form values');
  const r = v as Record<string, unknown>;
  if (typeof r.formId !== 'string' || !CONSENT_ID_PATTERN.test(r.formId)) fail('form id has the wrong form');
  if (typeof r.receipt !== 'string' || !CONSENT_ID_PATTERN.test(r.receipt)) fail('receipt id has the wrong form');
  if (!isRecord(r.values)) fail('values');
  const values: Record<string, string> = {};
  const names = Object.keys(r.values);
  if (names.length === 0 || names.length > MAX_CONSENT_FIELDS) fail(`values must hold 1-${MAX_CONSENT_FIELDS} fields`);
  for (const name of names) {
    const val = r.values[name];
    if (!CONSENT_FIELD_PATTERN.test(name) || typeof val !== 'string' || val.length > MAX_FORM_VALUE_CHARS) fail('a form value has the wrong form');
    values[name] = val;
  }
  return { formId: r.formId as string, receipt: r.receipt as string, values };
}

/** The consent frame kinds. */
export const CONSENT_KINDS = ['consentRequest', 'consentReceipt', 'formRequest', 'formValues'] as const;
/** The frame field of each consent kind. */
export const CONSENT_FRAME_FIELDS = { consentRequest: ['consent'], consentReceipt: ['receipt'], formRequest: ['form'], formValues: ['values'] } as const;

/** Frame-level validation of the consent kinds' fields (called by `checkFrame`). */
export function checkConsentFields(k: FrameKind, v: Record<string, unknown>): Partial<Frame> {
  switch (k) {
    case 'consentRequest':
      return { consent: checkConsentRequest(v.consent, 'MALFORMED_MESSAGE') };
    case 'consentReceipt':
      return { receipt: checkConsentReceipt(v.receipt) };
    case 'formRequest':
      return { form: checkFormRequest(v.form) };
    case 'formValues':
      return { values: checkFormValues(v.values) };
    default:
      return bad('not a consent frame');
  }
}

function usage(message: string): ParleyError {
  return new ParleyError('USAGE', message);
}

function randomId(): string {
  return toHex(getCrypto().randomBytes(12));
}

function withdrawnIds(rec: ConsentRecord): Set<string> {
  return new Set(rec.receipts.filter((r) => r.decision === 'withdrawn').map((r) => r.withdraws!)); // ct-ok: public decision
}

function entries(rec: ConsentRecord): ConsentEntry[] {
  const gone = withdrawnIds(rec);
  return rec.receipts.map((r) => ({ receipt: r, withdrawn: gone.has(r.id), valid: r.decision === 'granted' && !gone.has(r.id) })); // ct-ok: public decision
}

function trim<T>(list: T[]): T[] {
  return list.slice(-MAX_CONSENT_RECORDS);
}

/**
 * The receipts, requests and forms of every conversation of one device. Used by the book,
 * inside its serialised calls; each call is one write of the conversation's record.
 */
export class ConsentLedger {
  readonly #store: KeyValueStore;
  readonly #self: string;
  readonly #signer: ConsentSigner | undefined;
  readonly #now: () => number;
  readonly #records: Map<string, ConsentRecord>;

  private constructor(store: KeyValueStore, self: string, signer: ConsentSigner | undefined, now: () => number, records: Map<string, ConsentRecord>) {
    this.#store = store;
    this.#self = self;
    this.#signer = signer;
    this.#now = now;
    this.#records = records;
  }

  /**
   * Loads every conversation's consent record.
   * @throws ParleyError `STORAGE_INTEGRITY` for a record that does not parse.
   */
  static async load(store: KeyValueStore, self: string, signer: ConsentSigner | undefined, now: () => number): Promise<ConsentLedger> {
    const records = new Map<string, ConsentRecord>();
    for (const key of await store.keys('conv/')) {
      if (!key.endsWith('/consent')) continue;
      const bytes = await store.get(key);
      if (!bytes) continue;
      try {
        const v = JSON.parse(dec.decode(bytes)) as ConsentRecord;
        if (v.v !== 1 || !Array.isArray(v.requests) || !Array.isArray(v.receipts) || !Array.isArray(v.forms)) throw new Error('shape');
        v.receipts = v.receipts.map((r) => checkConsentReceipt(r));
        records.set(key.slice('conv/'.length, -'/consent'.length), v);
      } catch (cause) {
        throw new ParleyError('STORAGE_INTEGRITY', 'a stored consent record does not parse', { cause });
      }
    }
    return new ConsentLedger(store, self, signer, now, records);
  }

  /** The receipts of conversation `id`, oldest first, with where each stands. */
  consents(id: string): ConsentEntry[] {
    const rec = this.#records.get(id);
    return rec ? entries(rec) : [];
  }

  /** Owner side: the consent requests received in `id` (answered or not). */
  requests(id: string): ConsentRequestView[] {
    return (this.#records.get(id)?.requests ?? []).filter((r) => r.from !== this.#self).map(view); // ct-ok: public ids
  }

  /** Forgets a conversation's record in memory (its store key goes with the conversation's erasure). */
  forget(id: string): void {
    this.#records.delete(id);
  }

  // --- sending ---------------------------------------------------------------------------

  /** A member but the owner: asks the owner for consent. */
  async request(conv: ConsentConversation, body: ConsentRequestBody): Promise<ConsentOut> {
    const b = checkConsentRequest(body);
    if (conv.owner === this.#self) throw usage('the owner (the customer\'s device) answers consent requests; it sends none'); // ct-ok: public ids
    const rec = this.#get(conv.id);
    if (rec.requests.some((r) => r.body.id === b.id)) throw usage('requestConsent: this conversation has a request with that id already'); // ct-ok: public ids
    const me = conv.members.find((m) => m.deviceId === this.#self)!; // ct-ok: public ids
    rec.requests = trim([...rec.requests, { body: b, hash: consentRequestHash(b), from: this.#self, requestedBy: { name: me.name, role: me.role }, at: this.#now() }]);
    await this.#write(conv.id, rec);
    return { recipients: [conv.owner], frame: { ...head(conv), k: 'consentRequest', consent: b } };
  }

  /** Owner side: answers request `requestId` with a signed receipt, to every other member. */
  async answer(conv: ConsentConversation, requestId: string, grant: boolean): Promise<ConsentOut & { entry: ConsentEntry }> {
    const signer = this.#needSigner();
    if (conv.owner !== this.#self) throw usage('only the conversation\'s owner (the customer\'s device) answers consent requests'); // ct-ok: public ids
    const rec = this.#get(conv.id);
    const req = rec.requests.find((r) => r.body.id === requestId && r.from !== this.#self); // ct-ok: public ids
    if (!req) throw usage('answerConsent: no consent request with that id in this conversation');
    if (req.answered !== undefined) throw usage('answerConsent: this request was answered already (withdraw the receipt instead)');
    const u = consentReceiptFor(req.body, { id: randomId(), conversation: conv.id, signer: this.#self, decision: grant ? 'granted' : 'denied', at: this.#now() });
    const receipt = withConsentSignature(u, signer.sign(u));
    req.answered = receipt.id;
    rec.receipts = trim([...rec.receipts, receipt]);
    await this.#write(conv.id, rec);
    return { recipients: others(conv, this.#self), frame: { ...head(conv), k: 'consentReceipt', receipt }, entry: entries(rec).find((e) => e.receipt.id === receipt.id)! }; // ct-ok: public ids
  }

  /** Owner side: withdraws granted receipt `receiptId` (a signed `withdrawn` receipt), to every other member. */
  async withdraw(conv: ConsentConversation, receiptId: string): Promise<ConsentOut & { entry: ConsentEntry }> {
    const signer = this.#needSigner();
    if (conv.owner !== this.#self) throw usage('only the conversation\'s owner (the customer\'s device) withdraws consent'); // ct-ok: public ids
    const rec = this.#get(conv.id);
    const entry = entries(rec).find((e) => e.receipt.id === receiptId); // ct-ok: public ids
    if (!entry || !entry.valid) throw usage('withdrawConsent: no granted, unwithdrawn receipt with that id in this conversation');
    const r = entry.receipt;
    const body: ConsentRequestBody = { id: r.requestId, purpose: r.purpose, fields: r.fields, retentionDays: r.retentionDays, controller: r.controller };
    const u = consentReceiptFor(body, { id: randomId(), conversation: conv.id, signer: this.#self, decision: 'withdrawn', withdraws: r.id, at: this.#now() });
    const receipt = withConsentSignature(u, signer.sign(u));
    rec.receipts = trim([...rec.receipts, receipt]);
    await this.#write(conv.id, rec);
    return { recipients: others(conv, this.#self), frame: { ...head(conv), k: 'consentReceipt', receipt }, entry: entries(rec).find((e) => e.receipt.id === receipt.id)! }; // ct-ok: public ids
  }

  /** A member but the owner: asks the owner for a form. */
  async requestForm(conv: ConsentConversation, body: FormRequestBody): Promise<ConsentOut> {
    const b = checkFormRequest(body, (w) => {
      throw usage(`requestForm: ${w}`);
    });
    if (conv.owner === this.#self) throw usage('the owner (the customer\'s device) fills forms; it asks for none'); // ct-ok: public ids
    const rec = this.#get(conv.id);
    if (rec.forms.some((f) => f.body.id === b.id)) throw usage('requestForm: this conversation has a form with that id already'); // ct-ok: public ids
    const me = conv.members.find((m) => m.deviceId === this.#self)!; // ct-ok: public ids
    rec.forms = trim([...rec.forms, { body: b, from: this.#self, requestedBy: { name: me.name, role: me.role }, at: this.#now() }]);
    await this.#write(conv.id, rec);
    return { recipients: [conv.owner], frame: { ...head(conv), k: 'formRequest', form: b } };
  }

  /**
   * Owner side: the values of form `formId`, only when a granted, unwithdrawn receipt of this
   * conversation for the form's consent request covers every field given; else nothing is built.
   * @throws ParleyError `FORBIDDEN` `noConsent` (`why`: `noForm`, `noReceipt`, `withdrawn`,
   *   `denied`, `fieldsNotCovered`, with `details.fields` the names not covered), `USAGE`.
   */
  async formValues(conv: ConsentConversation, formId: string, values: Readonly<Record<string, string>>): Promise<ConsentOut> {
    if (conv.owner !== this.#self) throw usage('only the conversation\'s owner (the customer\'s device) submits forms'); // ct-ok: public ids
    const body = checkFormValues({ formId, receipt: 'x', values }, (w) => {
      throw usage(`submitForm: ${w}`);
    });
    const rec = this.#get(conv.id);
    const form = rec.forms.find((f) => f.body.id === formId && f.from !== this.#self); // ct-ok: public ids
    if (!form) throw noConsent('noForm', 'form values not sent: no form with that id was asked for in this conversation; nothing was sent');
    const names = Object.keys(body.values);
    const outside = names.filter((n) => !form.body.fields.includes(n));
    if (outside.length > 0) throw noConsent('fieldsNotCovered', 'form values not sent: some fields are not in the form; nothing was sent', { fields: outside });
    const entry = this.#covering(rec, form.body.consentRequest, names, this.#self);
    if (!conv.members.some((m) => m.deviceId === form.from)) throw new ParleyError('FORBIDDEN', 'form values not sent: the form\'s requester is no longer a member; nothing was sent', { details: { reason: 'notMember', peer: form.from } }); // ct-ok: public ids
    return { recipients: [form.from], frame: { ...head(conv), k: 'formValues', values: { formId, receipt: entry.receipt.id, values: body.values } } };
  }

  /** The granted, unwithdrawn receipt for `requestId` by `signer` covering `names`, or a typed refusal. */
  #covering(rec: ConsentRecord, requestId: string, names: readonly string[], signer: string): ConsentEntry {
    const mine = entries(rec).filter((e) => e.receipt.requestId === requestId && e.receipt.signer === signer && e.receipt.decision !== 'withdrawn'); // ct-ok: public ids
    if (mine.length === 0) throw noConsent('noReceipt', 'form values refused: no consent receipt of this conversation answers the form\'s consent request; nothing was sent or kept');
    const valid = mine.filter((e) => e.valid);
    if (valid.length === 0) {
      const why = mine.some((e) => e.withdrawn) ? 'withdrawn' : 'denied';
      throw noConsent(why, `form values refused: the consent for the form was ${why}; nothing was sent or kept`);
    }
    const best = valid[valid.length - 1]!;
    const outside = names.filter((n) => !best.receipt.fields.includes(n));
    if (outside.length > 0) throw noConsent('fieldsNotCovered', 'form values refused: the consent receipt does not cover every field; nothing was sent or kept', { fields: outside });
    return best;
  }

  // --- receiving -------------------------------------------------------------------------

  /** Applies a received consent frame of conversation `conv` (sender and this device checked as members by the book). */
  async receive(from: string, f: Frame, conv: ConsentConversation): Promise<ConsentEvent | { kind: 'duplicate' }> {
    const rec = this.#get(conv.id);
    const sender = conv.members.find((m) => m.deviceId === from)!; // ct-ok: public ids
    switch (f.k) {
      case 'consentRequest': {
        this.#toOwner(conv, from, 'consent request');
        const b = f.consent!;
        const hash = consentRequestHash(b);
        const old = rec.requests.find((r) => r.body.id === b.id); // ct-ok: public ids
        if (old) {
          if (old.hash === hash && old.from === from) return { kind: 'duplicate' }; // ct-ok: public hashes
          throw bad('a consent request id was used twice');
        }
        const stored: StoredRequest = { body: b, hash, from, requestedBy: { name: sender.name, role: sender.role }, at: this.#now() };
        rec.requests = trim([...rec.requests, stored]);
        await this.#write(conv.id, rec);
        return { kind: 'consentRequest', conversation: conv.id, request: view(stored) };
      }
      case 'consentReceipt': {
        if (from !== conv.owner) throw new ParleyError('FORBIDDEN', 'consent receipt refused: only the conversation\'s owner (the customer\'s device) signs receipts; the frame was dropped', { details: { reason: 'notOwner', peer: from } }); // ct-ok: public ids
        const key = this.#needSigner().signingKey(from);
        if (!key) throw new ParleyError('INVALID_SIGNATURE', 'consent receipt refused: the signer\'s identity is not known to this device', { details: { reason: 'consentReceipt' } });
        const asked = rec.requests.find((r) => r.body.id === f.receipt!.requestId && r.from === this.#self); // ct-ok: public ids
        const r = verifyConsentReceipt(f.receipt, key, { conversation: conv.id, ...(asked ? { request: asked.hash } : {}) });
        if (r.signer !== from) throw new ParleyError('INVALID_SIGNATURE', 'consent receipt refused: it names another signer than its sender', { details: { reason: 'consentReceipt' } }); // ct-ok: public ids
        const old = rec.receipts.find((x) => x.id === r.id); // ct-ok: public ids
        if (old) {
          if (old.sig === r.sig) return { kind: 'duplicate' }; // ct-ok: public signatures
          throw bad('a consent receipt id was used twice');
        }
        if (r.decision === 'withdrawn' && !rec.receipts.some((x) => x.id === r.withdraws && x.requestId === r.requestId)) { // ct-ok: public ids
          throw noConsent('noReceipt', 'consent withdrawal refused: it withdraws no receipt of this conversation; the frame was dropped');
        }
        if (asked && r.decision !== 'withdrawn') asked.answered = r.id; // ct-ok: public decision
        rec.receipts = trim([...rec.receipts, r]);
        await this.#write(conv.id, rec);
        return { kind: 'consentReceipt', conversation: conv.id, entry: entries(rec).find((e) => e.receipt.id === r.id)! }; // ct-ok: public ids
      }
      case 'formRequest': {
        this.#toOwner(conv, from, 'form request');
        const b = f.form!;
        const old = rec.forms.find((x) => x.body.id === b.id); // ct-ok: public ids
        if (old) {
          if (old.from === from && JSON.stringify(old.body) === JSON.stringify(b)) return { kind: 'duplicate' }; // ct-ok: public form
          throw bad('a form id was used twice');
        }
        const stored: StoredForm = { body: b, from, requestedBy: { name: sender.name, role: sender.role }, at: this.#now() };
        rec.forms = trim([...rec.forms, stored]);
        await this.#write(conv.id, rec);
        return { kind: 'formRequest', conversation: conv.id, form: { ...b, fields: [...b.fields], from, requestedBy: stored.requestedBy } };
      }
      case 'formValues': {
        if (from !== conv.owner) throw noConsent('noForm', 'form values refused: only the conversation\'s owner (the customer\'s device) fills forms; nothing was kept', { peer: from }); // ct-ok: public ids
        const v = f.values!;
        const form = rec.forms.find((x) => x.body.id === v.formId && x.from === this.#self); // ct-ok: public ids
        if (!form) throw noConsent('noForm', 'form values refused: this device asked for no form with that id in this conversation; nothing was kept');
        const names = Object.keys(v.values);
        const outside = names.filter((n) => !form.body.fields.includes(n));
        if (outside.length > 0) throw noConsent('fieldsNotCovered', 'form values refused: some fields are not in the form; nothing was kept', { fields: outside });
        const receipt = rec.receipts.find((x) => x.id === v.receipt); // ct-ok: public ids
        if (!receipt) throw noConsent('noReceipt', 'form values refused: they name no consent receipt of this conversation; nothing was kept');
        if (receipt.requestId !== form.body.consentRequest) throw noConsent('otherRequest', 'form values refused: their receipt answers another consent request; nothing was kept'); // ct-ok: public ids
        const entry = this.#covering(rec, form.body.consentRequest, names, conv.owner);
        if (entry.receipt.id !== receipt.id) throw noConsent('withdrawn', 'form values refused: their receipt is no longer the valid one; nothing was kept'); // ct-ok: public ids
        return { kind: 'formValues', conversation: conv.id, from, formId: v.formId, receipt: receipt.id, values: { ...v.values } };
      }
      default:
        return bad('not a consent frame');
    }
  }

  #toOwner(conv: ConsentConversation, from: string, what: string): void {
    if (conv.owner !== this.#self) throw new ParleyError('FORBIDDEN', `${what} refused: only the conversation's owner (the customer's device) receives it; the frame was dropped`, { details: { reason: 'notOwner', peer: from } }); // ct-ok: public ids
    if (from === conv.owner) throw bad(`${what} from the owner`); // ct-ok: public ids
  }

  #needSigner(): ConsentSigner {
    if (!this.#signer) throw usage('this book was opened without a consent signer (ConversationBookOptions.consent)');
    return this.#signer;
  }

  /** A copy of conversation `id`'s record (changes are applied by {@link #write}). */
  #get(id: string): ConsentRecord {
    const rec = this.#records.get(id);
    return rec ? structuredClone(rec) : { v: 1, requests: [], receipts: [], forms: [] };
  }

  async #write(id: string, rec: ConsentRecord): Promise<void> {
    await this.#store.setMany([[KEY(id), enc.encode(JSON.stringify(rec))]]);
    this.#records.set(id, rec);
  }
}

function head(conv: ConsentConversation): { v: 1; c: string; e: number; h: string; s: 0 } {
  return { v: 1, c: conv.id, e: conv.epoch, h: conv.hash, s: 0 };
}

function others(conv: ConsentConversation, self: string): string[] {
  return conv.members.map((m) => m.deviceId).filter((d) => d !== self); // ct-ok: public ids
}

function view(r: StoredRequest): ConsentRequestView {
  return { ...r.body, fields: [...r.body.fields], from: r.from, requestedBy: { ...r.requestedBy }, hash: r.hash, ...(r.answered === undefined ? {} : { answered: r.answered }) };
}
