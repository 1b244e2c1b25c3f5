/**
 * The agent's side of handoffs, on the device's `ParleyClient` (public SDK only): the live queue
 * (`client.tickets.list` + `ticket` events), claims (`client.tickets.claim`: the relay's atomic
 * claim, then the customer's consent: `conversationJoined` with the history they chose to share,
 * or `handoffDeclined`), and the conversations this device is a member of.
 *
 * One session per device client; pages subscribe to its changes and render from it.
 */
import type { Conversation, ParleyClient, ParleyError, Ticket } from '@parley/client';
import { device } from './device.js';
import { state } from './state.js';
import { ConsentLog, type ConsentAsk } from './consent-log.js';

/** The last claim's outcome, as the page shows it. */
export interface ClaimStatus {
  readonly ticket: string;
  /** `pending`: claimed at the relay, waiting for the customer's consent. */
  status: 'pending' | 'joined' | 'declined' | 'failed';
  /** The typed error of a failed claim (e.g. `CONFLICT`: another agent holds it). */
  error?: ParleyError;
  conversation?: string;
}

export class AgentSession {
  readonly client: ParleyClient;
  /** Open tickets, by id (what the relay told this device). */
  readonly tickets = new Map<string, Ticket>();
  claim: ClaimStatus | undefined;
  /** The conversation shown (one this device joined). */
  current: string | undefined;
  /** Tickets of conversations this device joined (for the relay view and close/transfer). */
  readonly ticketOf = new Map<string, Ticket>();
  /** Notes for the conversation view (transfers, closes, declines), newest last. */
  readonly notes: string[] = [];
  /** The last error the client reported (its code; shown in the alert line). */
  lastError: ParleyError | undefined;
  /** Consent and form requests this page sent, and the form values received. */
  readonly consent: ConsentLog;
  readonly #listeners = new Set<() => void>();
  /** Conversations this device left (transfer, close), until the customer's new member list says so too. */
  readonly #left = new Set<string>();

  constructor(client: ParleyClient) {
    this.client = client;
    this.consent = new ConsentLog(client, () => this.#changed());
    client.on('ticket', ({ ticket, change }) => {
      if (change === 'closed') this.tickets.delete(ticket.id);
      else this.tickets.set(ticket.id, ticket);
      for (const [conv, t] of this.ticketOf) if (t.id === ticket.id && change !== 'closed') this.ticketOf.set(conv, ticket);
      this.#changed();
    });
    client.on('conversationJoined', ({ conversation }) => {
      this.#left.delete(conversation); // admitted again (a later claim of the same customer)
      if (this.claim?.status === 'pending') {
        this.claim.status = 'joined';
        this.claim.conversation = conversation;
        const t = this.tickets.get(this.claim.ticket);
        if (t) this.ticketOf.set(conversation, t);
      }
      this.current = conversation;
      this.notes.length = 0;
      this.#changed();
    });
    client.on('historyShared', () => this.#changed());
    client.on('conversationMessage', () => this.#changed());
    client.on('membersChanged', () => this.#changed());
    client.on('handoffDeclined', ({ ticket }) => {
      if (this.claim?.ticket === ticket) this.claim.status = 'declined';
      this.#changed();
    });
    client.on('error', ({ error }) => {
      this.lastError = error;
      this.#changed();
    });
    client.on('connected', () => void this.refreshQueue().catch((e: unknown) => this.#failed(e)));
  }

  /** Calls `fn` after every change; returns the unsubscribe function. */
  subscribe(fn: () => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  #failed(e: unknown): void {
    this.lastError = e as ParleyError;
    this.#changed();
  }

  #changed(): void {
    this.#publish();
    for (const fn of this.#listeners) fn();
  }

  /** The open tickets, oldest waiting first. */
  queue(): Ticket[] {
    return [...this.tickets.values()].sort((a, b) => a.waitingSince - b.waitingSince);
  }

  /** Conversations this device is a member of. */
  conversations(): Conversation[] {
    const self = this.client.deviceId;
    return this.client.conversations().filter((c) => c.owner !== self && !this.#left.has(c.id) && c.members.some((m) => m.deviceId === self));
  }

  /** The conversation shown, while this device is a member of it (after a reload: the first one it is in). */
  shown(): Conversation | undefined {
    const c = this.current && !this.#left.has(this.current) ? this.client.conversation(this.current) : undefined;
    if (c && c.members.some((m) => m.deviceId === this.client.deviceId)) return c;
    const first = this.conversations()[0];
    this.current = first?.id;
    return first;
  }

  /** The ticket of a conversation this device joined: remembered from the claim, else the one it holds for that customer. */
  ticketFor(conv: Conversation): Ticket | undefined {
    const self = this.client.deviceId;
    const remembered = this.ticketOf.get(conv.id);
    const live = remembered ? this.tickets.get(remembered.id) : this.queue().find((t) => t.claimedBy === self && t.customer === conv.owner);
    return live ?? remembered;
  }

  /** Loads the queue from the relay (live updates follow as `ticket` events). */
  async refreshQueue(): Promise<void> {
    const list = await this.client.tickets.list();
    this.tickets.clear();
    for (const t of list) this.tickets.set(t.id, t);
    this.#changed();
  }

  /** Claims a ticket: the relay's claim is atomic; then the customer is asked for consent. */
  async claimTicket(ticketId: string): Promise<void> {
    this.claim = { ticket: ticketId, status: 'pending' };
    this.#changed();
    try {
      const t = await this.client.tickets.claim(ticketId);
      this.tickets.set(t.id, t);
    } catch (e) {
      this.claim = { ticket: ticketId, status: 'failed', error: e as ParleyError };
    }
    this.#changed();
  }

  /** Asks the shown conversation's customer for consent (`conversation.requestConsent`). */
  async requestConsent(ask: ConsentAsk): Promise<void> {
    const c = this.shown();
    if (!c) return;
    await this.consent.requestConsent(c, ask);
    this.#changed();
  }

  /** Asks the shown conversation's customer for the fields granted receipt `receiptId` covers. */
  async requestForm(receiptId: string): Promise<void> {
    const c = this.shown();
    const receipt = c?.consents().find((r) => r.id === receiptId && r.valid);
    if (!c || !receipt) return;
    await this.consent.requestForm(c, receipt);
    this.#changed();
  }

  /** Hands the shown conversation on to `queue` (the customer is asked again for the next agent). */
  async transfer(queue: string): Promise<void> {
    const c = this.shown();
    if (!c) return;
    await c.transfer({ queue });
    this.notes.push(`You handed this conversation to the "${queue}" queue. You are no longer a member.`);
    this.#leave(c.id);
  }

  /** Closes the shown conversation's ticket and leaves it. */
  async close(): Promise<void> {
    const c = this.shown();
    if (!c) return;
    await c.close();
    this.notes.push('You closed this conversation.');
    this.#leave(c.id);
  }

  #leave(id: string): void {
    this.#left.add(id);
    this.ticketOf.delete(id);
    if (this.claim?.conversation === id) this.claim = undefined;
    this.current = this.conversations().find((c) => c.id !== id)?.id;
    this.#changed();
  }

  /** What tests read (`window.parleyConsole`): ids, counts, states; no message content. */
  #publish(): void {
    state.queue = this.queue().map((t) => ({ id: t.id, queue: t.queue, state: t.state, ...(t.claimedBy ? { claimedBy: t.claimedBy } : {}) }));
    if (this.claim) state.claim = { ticket: this.claim.ticket, status: this.claim.status, ...(this.claim.error ? { code: this.claim.error.code } : {}) };
    else delete state.claim;
    const c = this.shown();
    if (c) {
      const h = c.history();
      state.conversation = { id: c.id, members: c.members.map((m) => ({ deviceId: m.deviceId, role: m.role, name: m.name })), messages: h.length, shared: h.filter((m) => m.shared).length };
      state.consent = { requests: this.consent.rows(c).map((r) => ({ id: r.requestId, status: r.status, ...(r.form ? { form: r.form.id } : {}) })), forms: this.consent.received(c.id).length };
    } else {
      delete state.conversation;
      delete state.consent;
    }
  }
}

let session: Promise<AgentSession> | undefined;

/** The device's agent session (created with the device client, listeners wired before it connects). */
export function agentSession(orgKey: string): Promise<AgentSession> {
  const make = async (): Promise<AgentSession> => {
    return new AgentSession(await device(orgKey));
  };
  // A new device client (after sign-out) gets a new session.
  if (session) {
    session = session.then(async (s) => ((await device(orgKey)) === s.client ? s : make()));
  } else session = make();
  return session;
}

/** Forget the session (sign-out). */
export function forgetAgentSession(): void {
  session = undefined;
}
