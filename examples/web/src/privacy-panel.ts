/**
 * The widget's "Privacy" panel (issue 14): the consent receipts of the current conversation (each
 * with Withdraw while it stands), the compliance-archive disclosure when the conversation is
 * archived, **Export** (the SDK's JSON download, the readable HTML page) and **Erase** (a
 * confirmation, then the deletion receipts: who confirmed, and who has not, by name).
 *
 * Only display and buttons: the SDK signs, verifies, erases and exports; `main.ts` wires the
 * calls. Plain DOM with `textContent` only (an export's HTML is opened as a Blob document, never
 * put into this page).
 */
import { fieldLabel, retentionText } from './privacy-dialog.js';

/** One consent receipt as listed (from `conversation.consents()`). */
export interface ReceiptView {
  readonly id: string;
  readonly purpose: string;
  readonly fields: readonly string[];
  readonly decision: string;
  readonly at: number;
  /** Granted, verified and not withdrawn (the SDK's `valid`). */
  readonly valid: boolean;
  /** A later receipt withdrew it. */
  readonly withdrawn: boolean;
}

/** The state of an erasure (from `erasureStatus` / `conversation.erasure()`), with member names. */
export interface ErasureView {
  readonly receipts: readonly { readonly name: string; readonly at: number }[];
  readonly missing: readonly string[];
  /** What the relay did with the conversation's compliance archive: purged, kept under a legal hold, or there was none. */
  readonly archive: 'purged' | 'held' | 'none';
}

/** The erase status's archive line, or nothing when the conversation was not archived. */
function archiveOutcome(archive: ErasureView['archive']): HTMLElement[] {
  if (archive === 'none') return [];
  const text = archive === 'held'
    ? "The organisation's compliance archive of this conversation is kept: it is under a legal hold (a legal obligation overrides erasure there). It is erased when the hold is released and its retention ends."
    : "The organisation's compliance archive of this conversation was erased at the relay.";
  return [el('p', { id: 'privacy-erase-archive', 'data-archive': archive }, text)];
}

/** The archive disclosure the SDK verified for this conversation. */
export interface ArchiveView {
  readonly retentionDays: number;
  readonly openers: readonly string[];
}

export interface PrivacyActions {
  withdraw(receiptId: string): void;
  exportJson(): void;
  exportHtml(): void;
  erase(): void;
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string> = {}, ...children: (Node | string)[]): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  e.append(...children);
  return e;
}

const time = (ms: number): string => new Date(ms).toLocaleString();

export class PrivacyPanel {
  readonly root: HTMLDetailsElement;
  readonly #archive: HTMLParagraphElement;
  readonly #opened = el('ul', { id: 'privacy-archive-opened', class: 'hint', 'aria-live': 'polite' });
  readonly #retention: HTMLParagraphElement;
  readonly #receipts: HTMLUListElement;
  readonly #status: HTMLDivElement;
  readonly #exportButtons: HTMLButtonElement[];
  readonly #erase: HTMLButtonElement;
  readonly #actions: PrivacyActions;

  /** Builds the panel and inserts it after `after` (the "Security details"). */
  constructor(after: HTMLElement, actions: PrivacyActions) {
    this.#actions = actions;
    this.#archive = el('p', { id: 'privacy-archive', class: 'archive-line' });
    this.#archive.hidden = true;
    this.#opened.hidden = true;
    this.#retention = el('p', { id: 'privacy-retention', class: 'hint' });
    this.#retention.hidden = true;
    this.#receipts = el('ul', { id: 'privacy-receipts', class: 'receipts', 'aria-label': 'Your consent receipts' });
    this.#status = el('div', { id: 'privacy-erase-status', role: 'status', 'aria-live': 'polite' });
    const exportJson = el('button', { type: 'button', id: 'privacy-export-json', class: 'secondary' }, 'Export (JSON)');
    const exportHtml = el('button', { type: 'button', id: 'privacy-export-html', class: 'secondary' }, 'Export (readable page)');
    const erase = el('button', { type: 'button', id: 'privacy-erase', class: 'danger' }, 'Erase this conversation');
    exportJson.addEventListener('click', () => actions.exportJson());
    exportHtml.addEventListener('click', () => actions.exportHtml());
    erase.addEventListener('click', () => this.#confirmErase(erase));
    this.#exportButtons = [exportJson, exportHtml];
    this.#erase = erase;
    this.root = el('details', { class: 'trust privacy', id: 'privacy' },
      el('summary', {}, 'Privacy'),
      this.#retention,
      this.#archive,
      this.#opened,
      el('h3', {}, 'Consents you gave'),
      this.#receipts,
      el('div', { class: 'actions' }, exportJson, exportHtml, erase),
      this.#status,
    );
    after.after(this.root);
    this.showReceipts([]);
    this.enable({ export: false, erase: false });
  }

  /** Export and Erase need a conversation (and an SDK that has them). */
  enable(on: { readonly export: boolean; readonly erase: boolean }): void {
    for (const b of this.#exportButtons) b.disabled = !on.export;
    this.#erase.disabled = !on.erase;
  }

  /** The archive line: shown only when the conversation is archived (the disclosure was verified before the first message). */
  showArchive(a: ArchiveView | undefined): void {
    this.#archive.hidden = a === undefined;
    if (!a) return;
    this.#archive.textContent = `This conversation is archived by the organisation for ${retentionText(a.retentionDays)} (a legal record, encrypted to its compliance key). Who may open it: ${a.openers.join(', ') || 'nobody named'}. Every opening is logged.`;
  }

  /** An opening of the archive (the SDK's `archiveOpened`): one line each, with the organisation's reason (text, never markup). */
  showArchiveOpened(o: { readonly at: number; readonly reason: string }): void {
    this.#opened.hidden = false;
    this.#opened.append(el('li', { 'data-opened': String(o.at) }, `The organisation opened this conversation's archive on ${time(o.at)}. Reason given: ${o.reason}`));
  }

  /** The conversation's retention (the owner's client erases it then), when one is set. */
  showRetention(days: number | undefined): void {
    this.#retention.hidden = days === undefined;
    if (days !== undefined) this.#retention.textContent = `This conversation is erased automatically after ${retentionText(days)}, on every member's device.`;
  }

  showReceipts(list: readonly ReceiptView[]): void {
    const shown = list.filter((r) => r.decision !== 'withdrawn');
    if (shown.length === 0) {
      this.#receipts.replaceChildren(el('li', { class: 'hint' }, 'None in this conversation.'));
      return;
    }
    this.#receipts.replaceChildren(...shown.map((r) => {
      const state = r.withdrawn ? 'withdrawn' : r.decision;
      const li = el('li', { 'data-receipt': r.id, 'data-state': state },
        el('strong', {}, r.purpose), ' ',
        el('span', { class: 'hint' }, `${r.fields.map(fieldLabel).join(', ')} · ${state} · ${time(r.at)}`),
      );
      if (r.valid && !r.withdrawn && r.decision === 'granted') {
        const w = el('button', { type: 'button', class: 'secondary', 'data-action': 'withdraw', 'aria-label': `Withdraw consent: ${r.purpose}` }, 'Withdraw');
        w.addEventListener('click', () => {
          w.disabled = true;
          this.#actions.withdraw(r.id);
        });
        li.append(' ', w);
      }
      return li;
    }));
  }

  /** Asks once more, inline (a second button), before erasing. */
  #confirmErase(erase: HTMLButtonElement): void {
    const yes = el('button', { type: 'button', id: 'privacy-erase-confirm', class: 'danger' }, 'Yes, erase everywhere');
    const no = el('button', { type: 'button', id: 'privacy-erase-cancel', class: 'secondary' }, 'Keep it');
    const box = el('div', { class: 'confirm', role: 'alertdialog', 'aria-labelledby': 'privacy-erase-q' },
      el('p', { id: 'privacy-erase-q' }, 'Erase this conversation on this device and ask every member to delete it? This cannot be undone. Export it first if you want a copy.'),
      el('div', { class: 'actions' }, yes, no),
    );
    this.#status.replaceChildren(box);
    yes.focus();
    no.addEventListener('click', () => {
      this.#status.replaceChildren();
      erase.focus();
    });
    yes.addEventListener('click', () => {
      this.#status.replaceChildren(el('p', {}, 'Erasing…'));
      this.#actions.erase();
    });
  }

  /** The deletion receipts: confirmed members with the time, missing members by name. */
  showErasure(s: ErasureView): void {
    const done = s.missing.length === 0;
    this.#status.replaceChildren(
      el('p', { id: 'privacy-erase-summary', 'data-done': String(done) },
        done ? 'Erased: every member confirmed the deletion.' : `Erased on this device. Waiting for ${s.missing.length} of ${s.missing.length + s.receipts.length} members to confirm.`),
      el('ul', { id: 'privacy-erase-receipts' },
        ...s.receipts.map((r) => el('li', { 'data-state': 'confirmed' }, `${r.name}: deleted (signed receipt, ${time(r.at)})`)),
        ...s.missing.map((name) => el('li', { 'data-state': 'missing' }, `${name}: no deletion receipt yet`)),
      ),
      ...archiveOutcome(s.archive),
    );
  }

  /** A failure of an export or an erasure, by code. */
  showError(text: string): void {
    this.#status.replaceChildren(el('p', { class: 'error' }, text));
  }
}

/** Starts a download of `text` as `name` (a Blob URL, revoked after the click). */
export function download(name: string, text: string, type: string): void {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = el('a', { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
