/**
 * The {@link Conversation} handle: a thin, live view over the hub (which holds the book and the
 * send path). Fields are read from the book at every access, so a handle never goes stale.
 */
import type { OutgoingContent } from '@parley/protocol';
import type { ConversationMessage } from '@parley/engine';
import type { Ticket } from '@parley/protocol/wire';
import type { ConversationHub } from './hub.js';
import type { ConversationArchive } from './types.js';
import type { ConsentReceiptInfo, ConsentRequestInput, FormRequestInput } from './types.js';
import type { ConversationErasure } from './erasure.js';
import type { ConversationExport } from './export.js';
import type { AcceptAgentOptions, Conversation, ConversationMember, ConversationSendResult, HandoffOffer } from './types.js';

export class ConversationHandle implements Conversation {
  readonly id: string;
  readonly #hub: ConversationHub;

  constructor(id: string, hub: ConversationHub) {
    this.id = id;
    this.#hub = hub;
  }

  get owner(): string {
    return this.#hub.info(this.id).owner;
  }

  get epoch(): number {
    return this.#hub.info(this.id).epoch;
  }

  get retentionDays(): number | undefined {
    return this.#hub.info(this.id).retentionDays;
  }

  get members(): readonly ConversationMember[] {
    return this.#hub.members(this.#hub.info(this.id));
  }

  send(content: OutgoingContent): Promise<ConversationSendResult> {
    return this.#hub.send(this.id, content);
  }

  history(limit?: number): ConversationMessage[] {
    return this.#hub.history(this.id, limit);
  }

  requestHuman(o: { readonly queue: string; readonly reason?: string }): Promise<Ticket> {
    return this.#hub.requestHuman(this.id, o);
  }

  handoff(o: { readonly queue: string; readonly reason?: string }): Promise<void> {
    return this.#hub.handoff(this.id, o);
  }

  acceptAgent(offer: HandoffOffer, o: AcceptAgentOptions): Promise<void> {
    return this.#hub.acceptAgent(this.id, offer, o);
  }

  declineAgent(offer: HandoffOffer): Promise<void> {
    return this.#hub.declineAgent(offer);
  }

  transfer(o?: { readonly queue?: string }): Promise<void> {
    return this.#hub.transfer(this.id, o);
  }

  close(): Promise<void> {
    return this.#hub.close(this.id);
  }

  archive(): ConversationArchive {
    return this.#hub.archive(this.id);
  }

  erase(): Promise<ConversationErasure> {
    return this.#hub.erase(this.id);
  }

  erasure(): ConversationErasure | undefined {
    return this.#hub.erasure(this.id);
  }

  export(): ConversationExport {
    return this.#hub.export(this.id);
  }

  requestConsent(request: ConsentRequestInput): Promise<{ id: string }> {
    return this.#hub.consent('request', this.id, request) as Promise<{ id: string }>;
  }

  answerConsent(requestId: string, answer: { readonly grant: boolean }): Promise<ConsentReceiptInfo> {
    return this.#hub.consent('answer', this.id, requestId, answer) as Promise<ConsentReceiptInfo>;
  }

  withdrawConsent(receiptId: string): Promise<ConsentReceiptInfo> {
    return this.#hub.consent('withdraw', this.id, receiptId) as Promise<ConsentReceiptInfo>;
  }

  consents(): ConsentReceiptInfo[] {
    return this.#hub.consents(this.id);
  }

  requestForm(form: FormRequestInput): Promise<{ id: string }> {
    return this.#hub.consent('form', this.id, form) as Promise<{ id: string }>;
  }

  async submitForm(formId: string, values: Readonly<Record<string, string>>): Promise<void> {
    await this.#hub.consent('submit', this.id, formId, values);
  }

  toJSON(): { id: string } {
    return { id: this.id };
  }
}
