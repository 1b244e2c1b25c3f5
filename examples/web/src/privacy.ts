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
 *   (`withdrawConsent`), the archive disclosure (`conversation.archive()`), Export
 *   (`conversation.export()` → JSON download and HTML page) and Erase (`conversation.erase()`,
 *   then `erasureStatus` / `conversation.erasure()`: receipts and the members still missing).
 *
 */
import { isParleyError } from '@parley/protocol';
import type { ConsentReceiptInfo, ConsentRequestInfo, Conversation, ConversationArchive, ConversationErasure, FormRequestInfo, ParleyClient } from '@parley/client';
import { errorReason, errorText } from './error-text.js';
import { askDataConsent, askForm, type FormFieldView } from './privacy-dialog.js';
import { PrivacyPanel, download, type ArchiveView, type ErasureView, type ReceiptView } from './privacy-panel.js';

/** The widget's words for a refusal: the code, its short reason, never the error's message. */
function why(err: unknown): string {
  const e = isParleyError(err) ? err : undefined;
  if (e?.code === 'FORBIDDEN' && e.details?.reason === 'noConsent') return 'FORBIDDEN (noConsent): your consent does not cover this, so nothing was sent.';
  const r = errorReason(e);
  return errorText(e, r ? ` (${r})` : '');
}

/** A receipt as the panel lists it. */
export function toReceiptView(r: ConsentReceiptInfo): ReceiptView {
  return { id: r.id, purpose: r.purpose, fields: r.fields, decision: r.decision, at: r.at, valid: r.valid, withdrawn: r.withdrawn };
}

/** The archive line: shown when disclosed; a refusal note when a member's disclosure is missing or late. */
export function toArchiveView(a: ConversationArchive): ArchiveView | undefined {
  if (a.disclosed) return { retentionDays: a.retentionDays ?? 0, openers: a.openers ?? [] };
  return undefined;
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
    const c = d.client;
    c.on('consentRequested', ({ conversation, request }) => {
      this.#dialogs = this.#dialogs.then(() => this.#consent(conversation, request)).catch(() => undefined);
    });
    c.on('formRequested', ({ conversation, form }) => {
      this.#dialogs = this.#dialogs.then(() => this.#form(conversation, form)).catch(() => undefined);
    });
    c.on('erasureStatus', (e) => {
      if (e.conversation === this.#erased) this.panel.showErasure(this.#erasureView(e));
    });
    c.on('archiveOpened', (o) => {
      if (o.conversation === this.#calls()?.id) this.panel.showArchiveOpened(o);
    });
    c.on('consentAnswered', () => void this.refresh());
    c.on('membersChanged', () => void this.refresh());
    c.on('conversationMessage', () => void this.refresh());
  }

  #calls(): Conversation | undefined {
    return this.#d.conversation();
  }

  /** Re-reads receipts and the archive disclosure of the current conversation. */
  async refresh(): Promise<void> {
    const c = this.#calls();
    this.panel.enable({ export: c !== undefined, erase: c !== undefined });
    this.panel.showArchive(c ? this.#archiveView(c) : undefined);
    this.panel.showRetention(c?.retentionDays);
    this.panel.showReceipts(await this.#receipts(c));
  }

  async #receipts(c: Conversation | undefined): Promise<ReceiptView[]> {
    if (!c) return [];
    try {
      return (await c.consents()).map(toReceiptView);
    } catch {
      return []; // erased meanwhile
    }
  }

  #archiveView(c: Conversation): ArchiveView | undefined {
    try {
      return toArchiveView(c.archive());
    } catch {
      return undefined;
    }
  }

  #erasureView(e: ConversationErasure): ErasureView {
    // Names as listed when erasing (the conversation itself is gone by now).
    const name = (deviceId: string): string => {
      const m = e.members.find((x) => x.deviceId === deviceId);
      if (!m) return this.#d.nameOf(deviceId);
      return m.role === 'bot' ? 'The support bot' : `${m.name} (${m.role})`;
    };
    return {
      receipts: e.receipts.map((r) => ({ name: name(r.member), at: r.at })),
      missing: e.missing.map(name),
      archive: e.archive,
    };
  }

  async #consent(conversation: string, request: ConsentRequestInfo): Promise<void> {
    const c = this.#calls();
    if (!c || c.id !== conversation) return;
    const grant = await askDataConsent(this.#d.host, request);
    try {
      await c.answerConsent(request.id, { grant });
      await this.#d.note(grant ? `You allowed: ${request.purpose} (a signed receipt was sent).` : `You declined: ${request.purpose}.`);
    } catch (err) {
      await this.#d.note(`Your answer was not sent: ${why(err)}`);
    }
    await this.refresh();
  }

  async #form(conversation: string, form: FormRequestInfo): Promise<void> {
    const c = this.#calls();
    if (!c || c.id !== conversation) return;
    // Only the fields a valid, unwithdrawn receipt covers can be sent (the SDK says which).
    const covered = new Set(form.covered);
    const fields: FormFieldView[] = form.fields.map((name) => ({ name, covered: covered.has(name) }));
    const formId = form.id;
    const values = await askForm(this.#d.host, { formId, title: 'Your details', fields });
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
      if (!c) throw new Error('no conversation');
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
      if (!c) throw new Error('no conversation');
      const out = c.export();
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
      if (!c) throw new Error('no conversation');
      this.#erased = c.id;
      await c.erase();
      await this.#d.onErased();
      const status = c.erasure();
      this.panel.showErasure(status ? this.#erasureView(status) : { receipts: [], missing: [], archive: 'none' });
      this.panel.enable({ export: false, erase: false });
      this.panel.showReceipts([]);
      this.panel.showRetention(undefined);
    } catch (err) {
      this.panel.showError(`Not erased: ${why(err)}`);
    }
  }
}
