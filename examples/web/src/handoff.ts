/**
 * Handing the chat to a person, on the customer's side, with the public SDK only:
 *
 * - "Talk to a person" opens a ticket (`conversation.requestHuman({ queue: 'support' })`); the
 *   bot can ask for one too (`handoffRequested`: this client opened the ticket for it). The relay
 *   learns the queue and an opaque reference, nothing of the chat.
 * - While nobody has claimed it: "waiting for an agent", and a notice when the relay says it has
 *   waited long (`ticketUnclaimed`).
 * - An agent claims it (`handoffOffer`): the consent dialog shows the certified name, role and
 *   safety number; the customer chooses the history to share and whether the bot stays, then
 *   `acceptAgent` or `declineAgent`. Nothing is shared before that.
 * - The member list in the header and join/leave notices follow `membersChanged`; a transfer
 *   (the ticket released) puts the customer back in the queue, and the next agent needs consent
 *   again.
 */
import { isParleyError } from '@parley/protocol';
import type { Conversation, ConversationMember, HandoffOffer, Member, ParleyClient, Ticket } from '@parley/client';
import type { WidgetState } from './widget-state.js';
import type { ChatItem, WidgetView } from './ui.js';
import { askConsent, roleLabel } from './consent-dialog.js';
import { errorText } from './error-text.js';

/** The queue "Talk to a person" asks in. */
export const HANDOFF_QUEUE = 'support';

export interface HandoffDeps {
  readonly client: ParleyClient;
  readonly view: WidgetView;
  readonly state: WidgetState;
  readonly botId: () => string;
  readonly conversation: () => Conversation | undefined;
  readonly ensureConversation: () => Promise<Conversation>;
  readonly addItem: (item: Omit<ChatItem, 'key'>) => Promise<ChatItem>;
  /** The element the consent dialog covers. */
  readonly host: HTMLElement;
  /** A member's name became known (the relay panel shows names instead of device ids). */
  readonly onMember?: (deviceId: string, name: string) => void;
}

const isPerson = (m: { role: string }): boolean => m.role === 'agent' || m.role === 'supervisor';

export class Handoff {
  readonly #d: HandoffDeps;
  readonly #button: HTMLButtonElement;
  readonly #status: HTMLElement;
  /** The ticket open for the current conversation (as far as this page saw). */
  #ticket: Ticket | undefined;
  /** Tickets this page declined (their `released` is ours, not a transfer). */
  readonly #declined = new Set<string>();
  /** Consent dialogs, one at a time. */
  #dialogs: Promise<void> = Promise.resolve();
  #offerOpen = false;
  /** Names of members seen, also after they left (for notices). */
  readonly #names = new Map<string, { name: string; role: string }>();

  constructor(d: HandoffDeps) {
    this.#d = d;
    this.#button = document.getElementById('talk-to-person') as HTMLButtonElement;
    this.#status = document.getElementById('handoff-status')!;
    d.state.consents = { accepted: 0, declined: 0 };
    this.#button.addEventListener('click', () => void this.requestHuman());
    const c = d.client;
    c.on('membersChanged', (e) => this.#membersChanged(e.conversation, e.epoch, e.members, e.joined, e.left));
    c.on('handoffRequested', (e) => {
      if (e.conversation !== this.#d.conversation()?.id) return;
      this.#ticket = e.ticket;
      void this.#note(`${this.#nameOf(e.by)} asked for a person for you. You are in the queue; an agent will join as soon as one is free.`);
      this.#refresh();
    });
    c.on('handoffOffer', (offer) => {
      this.#dialogs = this.#dialogs.then(() => this.#consent(offer)).catch(() => undefined);
    });
    c.on('ticket', ({ ticket, change }) => this.#ticketChanged(ticket, change));
    c.on('ticketUnclaimed', ({ ticket, waitingMs }) => {
      if (ticket.customer !== c.deviceId) return;
      this.#ticket = ticket;
      const waited = waitingMs < 60_000 ? `${Math.round(waitingMs / 1000)} s` : `${Math.round(waitingMs / 60_000)} min`;
      void this.#note(`No agent has picked up your request yet (waiting ${waited}). You stay in the queue.`);
      this.#refresh();
    });
    this.#refresh();
  }

  /** Enables the button once the page is ready. */
  enable(on: boolean): void {
    this.#button.dataset.ready = on ? 'true' : 'false';
    this.#refresh();
  }

  /** The certified name of a member (or one that left), for notices. */
  nameOf(deviceId: string): string {
    return this.#nameOf(deviceId);
  }

  /** "Talk to a person": opens a ticket for the current conversation. */
  async requestHuman(): Promise<void> {
    if (this.#ticket || this.#button.disabled) return;
    this.#button.disabled = true;
    try {
      const conv = await this.#d.ensureConversation();
      this.#ticket = await conv.requestHuman({ queue: HANDOFF_QUEUE, reason: 'The customer asked for a person.' });
      await this.#note('You asked for a person. You are in the queue; an agent will join as soon as one is free.');
    } catch (e) {
      await this.#note(`Could not ask for a person: ${errorText(isParleyError(e) ? e : undefined)}`);
    }
    this.#refresh();
  }

  /** Shows the current conversation's members in the header. */
  showMembers(members?: readonly ConversationMember[]): void {
    const list = members ?? this.#d.conversation()?.members ?? [];
    const self = this.#d.client.deviceId;
    for (const m of list) {
      this.#names.set(m.deviceId, { name: m.name, role: m.role });
      if (m.deviceId !== self) this.#d.onMember?.(m.deviceId, m.name);
    }
    this.#d.state.members = list.map((m) => ({ deviceId: m.deviceId, role: m.role, name: m.name }));
    this.#d.view.setMembers(list.map((m) => ({ deviceId: m.deviceId, name: m.name, role: m.role, self: m.deviceId === self })));
    this.#refresh();
  }

  #nameOf(deviceId: string): string {
    const known = this.#names.get(deviceId);
    if (!known) return 'A member';
    return known.role === 'bot' ? 'The support bot' : known.name;
  }

  async #note(text: string): Promise<void> {
    await this.#d.addItem({ who: 'system', at: Date.now(), text });
  }

  #membersChanged(id: string, epoch: number, members: readonly ConversationMember[], joined: readonly Member[], left: readonly Member[]): void {
    if (id !== this.#d.conversation()?.id) return;
    this.showMembers(members);
    const self = this.#d.client.deviceId;
    if (epoch <= 1) return; // the conversation was just created: no news
    for (const m of joined) {
      if (m.deviceId === self) continue;
      void this.#note(`${m.role === 'bot' ? 'The support bot' : m.name} (${m.role}) joined the chat.`);
    }
    for (const m of left) {
      if (m.deviceId === self) continue;
      void this.#note(`${m.role === 'bot' ? 'The support bot' : m.name} (${m.role}) left the chat.`);
    }
  }

  #ticketChanged(ticket: Ticket, change: 'opened' | 'claimed' | 'released' | 'closed'): void {
    if (ticket.customer !== this.#d.client.deviceId) return;
    if (this.#ticket && this.#ticket.id !== ticket.id && change !== 'opened') return;
    if (change === 'closed') {
      this.#ticket = undefined;
      void this.#note('The request for a person is closed.');
    } else {
      this.#ticket = ticket;
      if (change === 'released' && !this.#declined.delete(ticket.id)) {
        void this.#note(`You are back in the queue (${ticket.queue}): the next free person will ask you again before joining.`);
      }
      if (change === 'claimed' && !this.#agentIsMember()) this.#status.textContent = 'An agent picked up your request…';
    }
    this.#refresh();
  }

  #agentIsMember(): boolean {
    return (this.#d.conversation()?.members ?? []).some(isPerson);
  }

  async #consent(offer: HandoffOffer): Promise<void> {
    const conv = this.#d.client.conversation(offer.conversation);
    if (!conv) return;
    this.#offerOpen = true;
    this.#refresh();
    const botIsMember = conv.members.some((m) => m.role === 'bot');
    this.#names.set(offer.agent.deviceId, { name: offer.agent.name, role: roleLabel(offer.agent.roles) });
    const answer = await askConsent(this.#d.host, { agentName: offer.agent.name, roles: offer.agent.roles, safetyNumber: offer.agent.safetyNumber, botIsMember });
    try {
      if (answer.accept) {
        await conv.acceptAgent(offer, { history: answer.history, bot: botIsMember ? answer.bot : 'stay' });
        this.#d.state.consents!.accepted++;
        const shared = answer.history === 'none' ? 'nothing of the chat so far' : answer.history === 'all' ? 'the whole chat so far' : answer.history.last === 1 ? 'the last message' : `the last ${answer.history.last} messages`;
        await this.#note(`You let ${offer.agent.name} join and shared ${shared}.`);
      } else {
        this.#declined.add(offer.ticket);
        await conv.declineAgent(offer);
        this.#d.state.consents!.declined++;
        await this.#note(`You declined ${offer.agent.name}. Nothing was shared; you are still in the queue.`);
      }
    } catch (e) {
      await this.#note(`${answer.accept ? 'Could not add' : 'Could not decline'} ${offer.agent.name}: ${errorText(isParleyError(e) ? e : undefined)}`);
    } finally {
      this.#offerOpen = false;
      this.#refresh();
    }
  }

  /** Button, status line and `state.handoff` from what is known now. */
  #refresh(): void {
    const s = this.#d.state;
    const person = (this.#d.conversation()?.members ?? []).find(isPerson);
    s.handoff = this.#offerOpen ? 'offer' : person ? 'joined' : this.#ticket ? 'waiting' : 'none';
    if (this.#ticket) s.ticketId = this.#ticket.id;
    else delete s.ticketId;
    const ready = this.#button.dataset.ready === 'true';
    this.#button.disabled = !ready || s.handoff !== 'none';
    this.#status.textContent =
      s.handoff === 'joined' ? `${person!.name} (${person!.role}) is helping you.`
        : s.handoff === 'offer' ? 'An agent asks to join: see the dialog.'
          : s.handoff === 'waiting' ? (this.#ticket?.state === 'claimed' ? 'An agent picked up your request…' : 'Waiting for an agent…')
            : '';
    document.body.dataset.handoff = s.handoff;
  }
}
