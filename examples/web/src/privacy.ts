/**
 * The widget's privacy flows over the SDK's issue-14 calls (names as in the SDK contract):
 *
 * - `consentRequested` → the consent dialog (`privacy-dialog.ts`) → `conversation.answerConsent(id,
 *   { grant })`: the SDK signs the receipt with this device's identity key and sends it to every
 *   member;
 * - `formRequested` → the form with the fields a valid, unwithdrawn receipt covers →
 *   `conversation.submitForm(formId, values)` (the SDK refuses anything else: `FORBIDDEN`
 *   `noConsent`, nothing sent);
 * - the Privacy panel (`privacy-panel.ts`): `conversation.consents()` with Withdraw
 *   (`withdrawConsent`), the archive disclosure (`conversation.archive`), Export
 *   (`conversation.export()` → JSON download and HTML page) and Erase (`conversation.erase()`,
 *   then `erasureStatus` / `conversation.erasure()`: receipts and the members still missing).
 *
 * The calls are looked up on the conversation at run time, so the widget still starts against an
 * SDK build without them (the panel then says the feature is not available).
 */
import { isParleyError } from '@parley/protocol';
import type { Conversation, ParleyClient } from '@parley/client';
import { errorReason, errorText } from './error-text.js';
import { askDataConsent, askForm, type ConsentRequestView, type FormFieldView } from './privacy-dialog.js';
import { PrivacyPanel, download, type ArchiveView, type ErasureView, type ReceiptView } from './privacy-panel.js';

/** The SDK's privacy calls on a conversation, as this widget uses them (all optional: looked up at run time). */
interface PrivacyCalls {
  answerConsent?(requestId: string, o: { grant: boolean }): Promise<unknown>;
  withdrawConsent?(receiptId: string): Promise<unknown>;
  consents?(): readonly unknown[] | Promise<readonly unknown[]>;
  submitForm?(formId: string, values: Record<string, string>): Promise<unknown>;
  erase?(): Promise<unknown>;
  erasure?(): unknown;
  export?(): { json: string; html: string } | Promise<{ json: string; html: string }>;
  readonly archive?: unknown;
}

type Loose = Record<string, unknown>;

/** The widget's words for a refusal: the code, its short reason, never the error's message. */
function why(err: unknown): string {
  const e = isParleyError(err) ? err : undefined;
  if (e?.code === 'FORBIDDEN' && e.details?.reason === 'noConsent') return 'FORBIDDEN (noConsent): your consent does not cover this, so nothing was sent.';
  const r = errorReason(e);
  return errorText(e, r ? ` (${r})` : '');
}
const isObj = (v: unknown): v is Loose => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown, d = ''): string => (typeof v === 'string' ? v : d);
const num = (v: unknown, d = 0): number => (typeof v === 'number' && Number.isFinite(v) ? v : d);
const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);

/** A receipt as listed: `{ receipt, valid, withdrawn }` or the receipt's fields with `valid`, `withdrawn`. */
export function toReceiptView(x: unknown): ReceiptView | undefined {
  if (!isObj(x)) return undefined;
  const r = isObj(x.receipt) ? x.receipt : x;
  const id = str(r.id);
  if (!id) return undefined;
  return {
    id,
    purpose: str(r.purpose),
    fields: strings(r.fields),
    decision: str(r.decision),
    at: num(r.at, Date.now()),
    valid: x.valid !== false,
    withdrawn: x.withdrawn === true,
  };
}

/** The fields a valid, unwithdrawn, granted receipt covers. */
export function coveredFields(list: readonly ReceiptView[]): Set<string> {
  const out = new Set<string>();
  for (const r of list) if (r.valid && !r.withdrawn && r.decision === 'granted') for (const f of r.fields) out.add(f);
  return out;
}

export interface PrivacyDeps {
  readonly client: ParleyClient;
  /** The dialogs' host (the widget). */
  readonly host: HTMLElement;
  /** The panel goes after this element ("Security details"). */
  readonly after: HTMLElement;
  readonly conversation: () => Conversation | undefined;
  /** A member's shown name (certified), by device id. */
  readonly nameOf: (deviceId: string) => string;
  /** A line in the transcript. */
  readonly note: (text: string) => Promise<void>;
  /** The SDK erased the conversation: the widget drops its own copy of the transcript. */
  readonly onErased: () => Promise<void>;
}

export class Privacy {
  readonly panel: PrivacyPanel;
  readonly #d: PrivacyDeps;
  #dialogs: Promise<void> = Promise.resolve();
  /** The conversation erased last (its status keeps updating as receipts arrive). */
  #erased: string | undefined;

  constructor(d: PrivacyDeps) {
    this.#d = d;
    this.panel = new PrivacyPanel(d.after, {
      withdraw: (id) => void this.#withdraw(id),
      exportJson: () => void this.#export('json'),
      exportHtml: () => void this.#export('html'),
      erase: () => void this.#erase(),
    });
    const on = (d.client as unknown as { on(event: string, fn: (e: unknown) => void): void }).on.bind(d.client);
    on('consentRequested', (e) => {
      this.#dialogs = this.#dialogs.then(() => this.#consent(e)).catch(() => undefined);
    });
    on('formRequested', (e) => {
      this.#dialogs = this.#dialogs.then(() => this.#form(e)).catch(() => undefined);
    });
    on('erasureStatus', (e) => {
      if (isObj(e) && str(e.conversation) === this.#erased) this.panel.showErasure(this.#erasureView(e));
    });
    for (const ev of ['consentAnswered', 'membersChanged', 'conversationMessage']) on(ev, () => void this.refresh());
  }

  #calls(): (Conversation & PrivacyCalls) | undefined {
    return this.#d.conversation() as (Conversation & PrivacyCalls) | undefined;
  }

  /** Re-reads receipts and the archive disclosure of the current conversation. */
  async refresh(): Promise<void> {
    const c = this.#calls();
    this.panel.enable({ export: typeof c?.export === 'function', erase: typeof c?.erase === 'function' });
    this.panel.showArchive(this.#archiveView(c?.archive));
    this.panel.showReceipts(await this.#receipts(c));
  }

  async #receipts(c: PrivacyCalls | undefined): Promise<ReceiptView[]> {
    if (!c?.consents) return [];
    try {
      return (await c.consents()).map(toReceiptView).filter((r): r is ReceiptView => r !== undefined);
    } catch {
      return []; // erased meanwhile
    }
  }

  #archiveView(a: unknown): ArchiveView | undefined {
    if (!isObj(a)) return undefined;
    if (a.enabled === false || a.on === false) return undefined;
    const d = isObj(a.disclosure) ? a.disclosure : a;
    return { retentionDays: num(d.retentionDays), openers: strings(d.openers) };
  }

  #erasureView(e: Loose): ErasureView {
    const receipts = Array.isArray(e.receipts) ? e.receipts.filter(isObj) : [];
    // Names as listed when erasing (the conversation itself is gone by now).
    const members = Array.isArray(e.members) ? e.members.filter(isObj) : [];
    const name = (deviceId: string): string => {
      const m = members.find((x) => x.deviceId === deviceId);
      if (!m) return this.#d.nameOf(deviceId);
      return m.role === 'bot' ? 'The support bot' : `${str(m.name, 'A member')} (${str(m.role)})`;
    };
    return {
      receipts: receipts.map((r) => ({ name: name(str(r.member)), at: num(r.at) })),
      missing: strings(e.missing).map(name),
    };
  }

  async #consent(e: unknown): Promise<void> {
    if (!isObj(e) || !isObj(e.request)) return;
    const r = e.request;
    const c = this.#calls();
    if (!c?.answerConsent || c.id !== str(e.conversation)) return;
    const by = isObj(r.requestedBy) ? r.requestedBy : {};
    const view: ConsentRequestView = {
      id: str(r.id),
      purpose: str(r.purpose),
      fields: strings(r.fields),
      retentionDays: num(r.retentionDays),
      controller: str(r.controller),
      requestedBy: { name: str(by.name, this.#d.nameOf(str(r.from))), role: str(by.role, 'member') },
    };
    const grant = await askDataConsent(this.#d.host, view);
    try {
      await c.answerConsent(view.id, { grant });
      await this.#d.note(grant ? `You allowed: ${view.purpose} (a signed receipt was sent).` : `You declined: ${view.purpose}.`);
    } catch (err) {
      await this.#d.note(`Your answer was not sent: ${why(err)}`);
    }
    await this.refresh();
  }

  async #form(e: unknown): Promise<void> {
    if (!isObj(e)) return;
    const f = isObj(e.form) ? e.form : e;
    const formId = str(f.id, str(f.formId));
    const c = this.#calls();
    if (!formId || !c?.submitForm || c.id !== str(e.conversation)) return;
    // The SDK says which fields a valid receipt covers (`covered`); else from the receipts.
    const covered = Array.isArray(f.covered) ? new Set(strings(f.covered)) : coveredFields(await this.#receipts(c));
    const fields: FormFieldView[] = (Array.isArray(f.fields) ? f.fields : []).flatMap((x): FormFieldView[] => {
      const name = typeof x === 'string' ? x : isObj(x) ? str(x.name) : '';
      if (!name) return [];
      const label = isObj(x) && typeof x.label === 'string' ? x.label : undefined;
      return [{ name, covered: covered.has(name), ...(label ? { label } : {}) }];
    });
    const values = await askForm(this.#d.host, { formId, title: str(f.title, 'Your details'), fields });
    if (!values) {
      await this.#d.note('You did not send the form.');
      return;
    }
    try {
      await c.submitForm(formId, values);
      await this.#d.note(`Sent securely: ${Object.keys(values).length} fields you consented to.`);
    } catch (err) {
      await this.#d.note(`The form was not sent: ${why(err)}`);
    }
  }

  async #withdraw(receiptId: string): Promise<void> {
    const c = this.#calls();
    try {
      if (!c?.withdrawConsent) throw new Error('unavailable');
      await c.withdrawConsent(receiptId);
      await this.#d.note('You withdrew your consent (a signed withdrawal was sent to every member).');
    } catch (err) {
      this.panel.showError(`Not withdrawn: ${why(err)}`);
    }
    await this.refresh();
  }

  async #export(kind: 'json' | 'html'): Promise<void> {
    const c = this.#calls();
    try {
      if (!c?.export) throw new Error('unavailable');
      const out = await c.export();
      const name = `conversation-${c.id}.${kind}`;
      if (kind === 'json') download(name, out.json, 'application/json');
      else download(name, out.html, 'text/html');
    } catch (err) {
      this.panel.showError(`Export failed: ${why(err)}`);
    }
  }

  async #erase(): Promise<void> {
    const c = this.#calls();
    try {
      if (!c?.erase) throw new Error('unavailable');
      this.#erased = c.id;
      await c.erase();
      await this.#d.onErased();
      const status = c.erasure?.();
      this.panel.showErasure(isObj(status) ? this.#erasureView(status) : { receipts: [], missing: [] });
      this.panel.enable({ export: false, erase: false });
      this.panel.showReceipts([]);
    } catch (err) {
      this.panel.showError(`Not erased: ${why(err)}`);
    }
  }
}
