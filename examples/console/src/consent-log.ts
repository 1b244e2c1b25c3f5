/**
 * The agent's consent requests, form requests and the form values received, per conversation
 * (public client SDK only, docs/threats.md P1): `conversation.requestConsent` asks the customer;
 * the customer's signed answer arrives as `consentAnswered` and stays in `conversation.consents()`;
 * `conversation.requestForm` asks for the fields a granted receipt covers; the values arrive as
 * `formValues`, which the SDK emits only when a valid, unwithdrawn receipt of this conversation
 * covers them. This log remembers what this page sent and received (memory only: personal data is
 * not written to the console's storage).
 */
import type { ConsentReceiptInfo, Conversation, ParleyClient } from '@parley/client';

/** What the agent asks consent for (the fields of `conversation.requestConsent`). */
export interface ConsentAsk {
  readonly purpose: string;
  readonly fields: readonly string[];
  readonly retentionDays: number;
  readonly controller: string;
}

/** A consent request this page sent. */
export interface SentConsent extends ConsentAsk {
  readonly conversation: string;
  readonly id: string;
  readonly at: number;
}

/** A form this page asked for. */
export interface SentForm {
  readonly conversation: string;
  readonly id: string;
  readonly consentRequest: string;
  readonly fields: readonly string[];
  readonly at: number;
}

/** Form values the SDK delivered (covered by a valid receipt). */
export interface ReceivedForm {
  readonly conversation: string;
  readonly formId: string;
  readonly receipt: string;
  readonly values: Readonly<Record<string, string>>;
  readonly at: number;
}

/** Where one consent request stands, as the panel shows it. */
export type ConsentStatus = 'waiting' | 'granted' | 'denied' | 'withdrawn';

/** A consent request of the conversation (sent by this page or by another member) and its receipt. */
export interface ConsentRow {
  readonly requestId: string;
  readonly purpose: string;
  readonly fields: readonly string[];
  readonly retentionDays: number;
  readonly controller: string;
  readonly status: ConsentStatus;
  /** Sent by this page (since it loaded: the SDK does not say who asked for a receipt's request). */
  readonly mine: boolean;
  /** The customer's receipt (the granted or denied answer), once it arrived. */
  readonly receipt?: ConsentReceiptInfo;
  /** A form this page asked for under this request. */
  readonly form?: SentForm;
}

export class ConsentLog {
  readonly #sent: SentConsent[] = [];
  readonly #forms: SentForm[] = [];
  readonly #received: ReceivedForm[] = [];

  constructor(client: ParleyClient, changed: () => void) {
    client.on('consentAnswered', () => changed());
    client.on('formValues', ({ conversation, formId, receipt, values }) => {
      this.#received.push({ conversation, formId, receipt, values: { ...values }, at: Date.now() });
      changed();
    });
  }

  /** Asks the customer of `conv` for consent; remembers the request. */
  async requestConsent(conv: Conversation, ask: ConsentAsk): Promise<SentConsent> {
    const { id } = await conv.requestConsent({ purpose: ask.purpose, fields: [...ask.fields], retentionDays: ask.retentionDays, controller: ask.controller });
    const sent: SentConsent = { ...ask, fields: [...ask.fields], conversation: conv.id, id, at: Date.now() };
    this.#sent.push(sent);
    return sent;
  }

  /** Asks for the fields the granted receipt `receipt` covers. */
  async requestForm(conv: Conversation, receipt: ConsentReceiptInfo): Promise<SentForm> {
    const { id } = await conv.requestForm({ fields: [...receipt.fields], consentRequest: receipt.requestId });
    const form: SentForm = { conversation: conv.id, id, consentRequest: receipt.requestId, fields: [...receipt.fields], at: Date.now() };
    this.#forms.push(form);
    return form;
  }

  /** The consent requests of `conv`, oldest first: this page's, and any another member's the customer answered. */
  rows(conv: Conversation): ConsentRow[] {
    let receipts: ConsentReceiptInfo[];
    try {
      receipts = conv.consents();
    } catch {
      receipts = []; // erased meanwhile
    }
    const answers = receipts.filter((r) => r.decision !== 'withdrawn');
    const answerOf = (requestId: string): ConsentReceiptInfo | undefined => answers.filter((r) => r.requestId === requestId).pop();
    const formOf = (requestId: string): SentForm | undefined => this.#forms.filter((f) => f.conversation === conv.id && f.consentRequest === requestId).pop();
    const row = (requestId: string, ask: ConsentAsk, mine: boolean): ConsentRow => {
      const receipt = answerOf(requestId);
      const status: ConsentStatus = !receipt ? 'waiting' : receipt.decision === 'denied' ? 'denied' : receipt.withdrawn ? 'withdrawn' : receipt.valid ? 'granted' : 'denied';
      const form = formOf(requestId);
      return { requestId, purpose: ask.purpose, fields: ask.fields, retentionDays: ask.retentionDays, controller: ask.controller, status, mine, ...(receipt ? { receipt } : {}), ...(form ? { form } : {}) };
    };
    const mine = this.#sent.filter((s) => s.conversation === conv.id);
    const rows = mine.map((s) => row(s.id, s, true));
    const seen = new Set(mine.map((s) => s.id));
    for (const r of answers) {
      if (seen.has(r.requestId)) continue;
      seen.add(r.requestId);
      rows.push(row(r.requestId, r, false));
    }
    return rows;
  }

  /** The form values received in `conv`, oldest first. */
  received(conversation: string): ReceivedForm[] {
    return this.#received.filter((f) => f.conversation === conversation);
  }
}
