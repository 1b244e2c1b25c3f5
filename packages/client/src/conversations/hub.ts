/**
 * The client side of conversations with several members and of the handoff to a person
 * (docs/architecture.md "Conversations with several members", "Handoff from the bot to a human
 * agent"): the engine's {@link ConversationBook} keeps the state and enforces who may say what;
 * this hub carries its frames over the client's pairwise send path, checks what only the relay
 * can tell (who holds a ticket's claim), runs the ticket calls, and turns the book's verdicts
 * into the client's events.
 *
 * Exactly once: a frame reaches the hub from the engine's durable inbox and leaves it only after
 * the book applied it; the book drops a (sender, seq) it already has, so a frame fed again after a
 * crash between the two is not shown twice.
 */
import { ParleyError, fromHex, isParleyError, type OutgoingContent } from '@parley/protocol';
import type { ConversationBook, ConversationEvent, ConversationInfo, ConversationMessage, Member, ReceivedMessage } from '@parley/engine';
import type { Ticket } from '@parley/protocol/wire';
import { handoffRef, peekFrame, randomRef } from './frames.js';
import { agentMember, checkClaim, isRetryable, staffMemberRole, verifiedMember } from './peers.js';
import type { ConversationPort } from './port.js';
import type { AcceptAgentOptions, ClientTickets, Conversation, ConversationMember, ConversationSendResult, HandoffOffer } from './types.js';
import type { ConversationArchive } from './types.js';
import { archiveSent } from './archiver.js';
import { ConversationHandle } from './handle.js';
import * as consent from './consent.js';
import type { ConsentReceiptInfo } from './types.js';
import { eraseConversation, onDeletionReceipt, onErased, toErasure, type ConversationErasure } from './erasure.js';
import { buildExport, type ConversationExport } from './export.js';

/** What became of a frame from the inbox: applied (or refused for good: consume it), or to be tried again later. */
export type FrameOutcome = 'done' | 'keep';

export class ConversationHub {
  readonly #book: ConversationBook;
  readonly #port: ConversationPort;
  readonly #handles = new Map<string, ConversationHandle>();
  /** Agent side: tickets this device claimed in this run, by id (the relay is asked when one is not here). */
  readonly #claimed = new Map<string, Ticket>();
  readonly #safetyNumbers = new Map<string, string>();
  readonly tickets: ClientTickets;

  constructor(book: ConversationBook, port: ConversationPort) {
    this.#book = book;
    this.#port = port;
    this.tickets = {
      list: (queue) => port.link.listTickets(queue),
      claim: (ticketId) => this.#claim(ticketId),
    };
  }

  // ---------------------------------------------------------------- handles

  /** A new conversation owned by this device with `peers`, each verified before anything is encrypted. */
  async start(peers: string | readonly string[], o: { name?: string; retentionDays?: number } = {}): Promise<Conversation> {
    const list = [...new Set(typeof peers === 'string' ? [peers] : peers)];
    if (list.length === 0) throw new ParleyError('USAGE', 'a conversation needs at least one other member');
    if (list.includes(this.#port.deviceId)) throw new ParleyError('USAGE', 'this device is a member of its conversations already');
    const members: Member[] = [];
    for (const peer of list) members.push(await verifiedMember(this.#port, peer));
    const self: Member = { deviceId: this.#port.deviceId, role: 'customer', name: o.name ?? 'Customer' };
    const info = await this.#book.create(members, self, o.retentionDays === undefined ? {} : { retentionDays: o.retentionDays });
    // Every member learns the list (and that this device owns it) from the first members frame.
    const out = await this.#book.prepareAnnounce(info.id);
    await this.#fanOut(out.recipients, out.frame);
    this.#emitMembers(info, info.members.filter((m) => m.deviceId !== self.deviceId), []); // ct-ok: public device ids
    return this.#handle(info.id);
  }

  get(id: string): Conversation | undefined {
    return this.#book.get(id) ? this.#handle(id) : undefined;
  }

  list(): Conversation[] {
    return this.#book.list().map((c) => this.#handle(c.id));
  }

  #handle(id: string): ConversationHandle {
    let h = this.#handles.get(id);
    if (!h) this.#handles.set(id, (h = new ConversationHandle(id, this)));
    return h;
  }

  /** The book's current view of `id`. @throws ParleyError `USAGE` for an unknown conversation. */
  info(id: string): ConversationInfo {
    return this.#info(id);
  }

  #info(id: string): ConversationInfo {
    const info = this.#book.get(id);
    if (!info) throw new ParleyError('USAGE', 'unknown conversation');
    return info;
  }

  /**
   * The conversation's archive status (engine `archiveStatus`): its members other than the owner
   * against the time of its first message (the earliest kept; none yet: now).
   */
  archive(id: string): ConversationArchive {
    const info = this.#info(id);
    const peers = info.members.map((m) => m.deviceId).filter((d) => d !== info.owner); // ct-ok: public device ids
    const s = this.#port.archiveStatus?.(peers, this.#book.firstMessageAt(id));
    if (!s || !s.disclosed) return { disclosed: false, undisclosed: s ? [...s.undisclosed] : [] };
    return { disclosed: true, retentionDays: s.retentionDays ?? 0, openers: [...(s.openers ?? [])], undisclosed: [] };
  }

  /** Members with the safety number of each other member this device has met. */
  members(info: ConversationInfo): ConversationMember[] {
    return info.members.map((m) => {
      if (m.deviceId === this.#port.deviceId) return { ...m }; // ct-ok: public device ids
      const safetyNumber = this.#safetyNumber(m.deviceId);
      return safetyNumber ? { ...m, safetyNumber } : { ...m };
    });
  }

  /**
   * The safety number with `peer`, computed once per device (10,400 hash rounds): a device id
   * is the hash of its identity keys, so the number of a device id never changes.
   */
  #safetyNumber(peer: string): string | undefined {
    let n = this.#safetyNumbers.get(peer);
    if (n === undefined) {
      n = this.#port.safetyNumber(peer);
      if (n !== undefined) this.#safetyNumbers.set(peer, n);
    }
    return n;
  }

  history(id: string, limit?: number) {
    this.#info(id);
    return this.#book.history(id, limit);
  }

  // ---------------------------------------------------------------- actions

  async send(id: string, content: OutgoingContent): Promise<ConversationSendResult> {
    const messageId = this.#port.newMessageId();
    const out = await this.#book.prepareMessage(id, content, messageId);
    const failed = await this.#port.fanOut(out.recipients, out.frame, messageId);
    if (failed.length > 0 && failed.length === out.recipients.length) throw failed[0]!.error;
    for (const f of failed) this.#port.report(f.error, { peer: f.peer, id: messageId });
    if (out.ownIndex !== undefined) await this.#archiveSent(out.message, out.ownIndex);
    return { id: messageId, failed };
  }

  /**
   * With the archive on for this conversation (customer: disclosed by every other member before
   * the first message; bot/agent: it publishes a disclosure), seals the sent message to the
   * compliance key and appends it at the relay. A failure is reported, never thrown: the message
   * was sent. The relay's `FORBIDDEN` `archiveErased` is not reported: the conversation's owner
   * erased it (this device's own `erase()`, or the owner's while this append was on its way), and
   * the relay refuses to archive erased content again, as it should.
   */
  async #archiveSent(m: ConversationMessage, ownIndex: number): Promise<void> {
    const hooks = this.#port.archiveHooks;
    if (!hooks) return;
    const id = m.conversation;
    try {
      const info = this.#info(id);
      let key: Uint8Array | undefined;
      if (info.owner === this.#port.deviceId) { // ct-ok: public device ids
        const peers = info.members.map((x) => x.deviceId).filter((d) => d !== info.owner); // ct-ok: public device ids
        const s = this.#port.archiveStatus?.(peers, this.#book.firstMessageAt(id));
        key = s?.disclosed && s.archiveKey !== undefined ? fromHex(s.archiveKey) : undefined;
      } else {
        key = hooks.ownArchiveKey();
      }
      if (!key) return;
      // The sender sequence is the book's count of this device's messages (not their position in
      // the history, which keeps only the newest).
      await archiveSent(hooks, key, { conversation: id, id: m.id, from: m.from, at: m.sentAt, content: m.content }, ownIndex);
    } catch (e) {
      if (isParleyError(e, 'FORBIDDEN') && e.details?.reason === 'archiveErased') return; // ct-ok: public error reason
      this.#port.report(e, { id: m.id });
    }
  }
  async requestHuman(id: string, o: { queue: string; reason?: string }): Promise<Ticket> {
    const info = this.#info(id);
    if (info.owner !== this.#port.deviceId) throw new ParleyError('USAGE', 'only the conversation\'s owner opens tickets; other members use handoff()'); // ct-ok: public device ids
    const bot = info.members.find((m) => m.role === 'bot');
    const ref = randomRef();
    const ticket = await this.#port.link.openTicket(o.queue, ref, bot?.deviceId);
    await this.#book.noteTicket(id, { id: ticket.id, ref });
    return ticket;
  }

  async handoff(id: string, o: { queue: string; reason?: string }): Promise<void> {
    const out = await this.#book.prepareHandoff(id, o.queue, o.reason ?? '');
    await this.#fanOutOrThrow(out.recipients, out.frame);
  }

  async acceptAgent(id: string, offer: HandoffOffer, o: AcceptAgentOptions): Promise<void> {
    const info = this.#info(id);
    const agent = offer.agent.deviceId;
    // Checked again now (THREATS C18, H1): a verified staff device that holds the claim at the relay.
    const member = agentMember(this.#port, agent);
    await checkClaim(this.#port, agent, offer.ticket);
    const members = info.members.filter((m) => {
      if (m.deviceId === agent) return false; // ct-ok: public device ids
      if (o.bot === 'leave' && m.role === 'bot') return false;
      // One person at a time: a transfer or an escalation replaces the agent before.
      return m.role !== 'agent' && m.role !== 'supervisor';
    });
    members.push(member);
    const out = await this.#book.prepareMembers(id, members, offer.ticket);
    await this.#fanOut(out.recipients, out.frame);
    this.#emitMembers(this.#info(id), out.joined, out.left);
    const n = o.history === 'none' ? 0 : o.history === 'all' ? undefined : o.history.last;
    if (n !== undefined && (!Number.isInteger(n) || n < 0)) throw new ParleyError('USAGE', 'history.last must be a whole number ≥ 0');
    const history = await this.#book.prepareHistory(id, agent, offer.ticket, n);
    await this.#fanOutOrThrow(history.recipients, history.frame);
  }

  async declineAgent(offer: HandoffOffer): Promise<void> {
    try {
      await this.#port.link.releaseTicket(offer.ticket);
    } catch (e) {
      // Released or closed already (the agent gave it up): the agent is still told.
      if (isRetryable(e)) throw e;
    }
    const out = await this.#book.prepareDecline(offer.agent.deviceId, offer.ticket);
    await this.#fanOutOrThrow(out.recipients, out.frame);
  }

  async transfer(id: string, o: { queue?: string } = {}): Promise<void> {
    const info = this.#info(id);
    const ticket = await this.#agentTicket(info);
    await this.#port.link.releaseTicket(ticket, o.queue);
    this.#forget(ticket);
    await this.#leave(id);
  }

  async close(id: string): Promise<void> {
    const info = this.#info(id);
    if (info.owner === this.#port.deviceId) { // ct-ok: public device ids
      const ticket = info.tickets.at(-1);
      if (ticket) await this.#closeTicket(ticket.id);
      const members = info.members.filter((m) => m.role !== 'agent' && m.role !== 'supervisor');
      if (members.length === info.members.length) return;
      const out = await this.#book.prepareMembers(id, members);
      await this.#fanOut(out.recipients, out.frame);
      this.#emitMembers(this.#info(id), out.joined, out.left);
      return;
    }
    // Removed already (the customer closed first): nothing left to end or leave.
    if (!info.members.some((m) => m.deviceId === this.#port.deviceId)) return; // ct-ok: public device ids
    const ticket = await this.#agentTicket(info).catch(() => undefined);
    if (ticket) {
      await this.#closeTicket(ticket);
      this.#forget(ticket);
    }
    await this.#leave(id);
  }

  async #leave(id: string): Promise<void> {
    const out = await this.#book.prepareLeave(id);
    await this.#fanOut(out.recipients, out.frame);
  }

  async #closeTicket(ticket: string): Promise<void> {
    try {
      await this.#port.link.closeTicket(ticket);
    } catch (e) {
      // Closed already (by the other side): nothing left to end.
      if (!(isParleyError(e, 'USAGE') && e.details?.reason === 'noSuchTicket')) throw e;
    }
  }

  /** Agent side: the ticket this device holds for the conversation (remembered, else asked of the relay). */
  async #agentTicket(info: ConversationInfo): Promise<string> {
    for (const t of this.#claimed.values()) if (t.customer === info.owner) return t.id; // ct-ok: public device ids
    const held = (await this.#port.link.listTickets()).find((t) => t.customer === info.owner && t.claimedBy === this.#port.deviceId); // ct-ok: public device ids
    if (!held) throw new ParleyError('USAGE', 'this device holds no ticket for the conversation');
    return held.id;
  }

  #forget(ticket: string): void {
    this.#claimed.delete(ticket);
  }

  async #claim(ticketId: string): Promise<Ticket> {
    const ticket = await this.#port.link.claimTicket(ticketId);
    this.#claimed.set(ticket.id, ticket);
    const out = await this.#book.prepareJoin({ id: ticket.id, customer: ticket.customer, ref: ticket.ref });
    await this.#fanOutOrThrow(out.recipients, out.frame);
    return ticket;
  }

  async #fanOut(recipients: readonly string[], frame: Uint8Array): Promise<void> {
    const id = this.#port.newMessageId();
    for (const f of await this.#port.fanOut(recipients, frame, id)) this.#port.report(f.error, { peer: f.peer, id });
  }

  async #fanOutOrThrow(recipients: readonly string[], frame: Uint8Array): Promise<void> {
    const id = this.#port.newMessageId();
    const failed = await this.#port.fanOut(recipients, frame, id);
    if (failed.length > 0) throw failed[0]!.error;
  }

  #emitMembers(info: ConversationInfo, joined: Member[], left: Member[]): void {
    this.#port.emit('membersChanged', { conversation: info.id, epoch: info.epoch, members: this.members(info), joined, left });
  }

  /** Owner: erases the conversation (conversations/erasure.ts). */
  erase(id: string): Promise<ConversationErasure> {
    // Archived: the archive was on for this device here (customer: disclosed; bot/agent: its own).
    const archived = this.#book.get(id) !== undefined && (this.archive(id).disclosed || this.#port.archiveHooks?.ownArchiveKey() !== undefined);
    return eraseConversation(this.#book, this.#port, this.#port.erasureHooks, id, archived);
  }

  /** The conversation as JSON and a self-contained HTML page (conversations/export.ts). */
  export(id: string): ConversationExport {
    return buildExport({ info: this.#info(id), messages: this.#book.history(id), consents: this.consents(id), ...(this.erasure(id) ? { erasure: this.erasure(id)! } : {}), exportedAt: Date.now() });
  }

  /** Owner: erases every conversation whose retention ran out (the client's timer calls it). */
  async eraseDue(): Promise<void> {
    for (const id of this.#book.dueForErasure()) {
      try {
        await this.erase(id);
      } catch (e) {
        this.#port.report(e);
      }
    }
  }

  /** Owner: where the erasure of `id` stands, or `undefined` when it was not erased. */
  erasure(id: string): ConversationErasure | undefined {
    const s = this.#book.erasure(id);
    return s && toErasure(s, this.#port.erasureHooks?.archiveLog?.get(id));
  }

  /** The consent receipts of `id` this device holds (conversations/consent.ts). */
  consents(id: string): ConsentReceiptInfo[] {
    return consent.consents(this.#book, id);
  }

  /** Consent actions (conversations/consent.ts); the handle's methods call this. */
  consent(op: 'request' | 'answer' | 'withdraw' | 'form' | 'submit', id: string, ...args: unknown[]): Promise<unknown> {
    const [a, b] = args as [never, never];
    switch (op) {
      case 'request':
        return consent.requestConsent(this.#book, this.#port, id, a);
      case 'answer':
        return consent.answerConsent(this.#book, this.#port, id, a, b);
      case 'withdraw':
        return consent.withdrawConsent(this.#book, this.#port, id, a);
      case 'form':
        return consent.requestForm(this.#book, this.#port, id, a);
      case 'submit':
        return consent.submitForm(this.#book, this.#port, id, a, b);
    }
  }

  // ---------------------------------------------------------------- receiving

  /**
   * Applies a `'conversation'` payload from the inbox. `keep`: the relay could not be asked
   * (try again later); `done`: applied, or refused and reported as an `error` event.
   */
  async receive(m: ReceivedMessage): Promise<FrameOutcome> {
    const peek = peekFrame(m.payload);
    let opened: Ticket | undefined;
    try {
      if (peek.k === 'join' && peek.ticket !== undefined) {
        // The relay's word on the claim, before any offer is shown (THREATS H1).
        if (!staffMemberRole(this.#port.peerStaff(m.from))) throw new ParleyError('FORBIDDEN', 'a join from a device that is not a verified agent', { details: { reason: 'notClaimant' } });
        await checkClaim(this.#port, m.from, peek.ticket);
      }
      if (peek.k === 'handoff' && peek.c !== undefined && peek.queue !== undefined) opened = await this.#openFor(m, peek.c, peek.queue);
    } catch (e) {
      if (isRetryable(e)) return 'keep';
      this.#port.report(e, { peer: m.from, id: m.id });
      return 'done';
    }
    const staff = this.#port.peerStaff(m.from);
    let event: ConversationEvent;
    try {
      event = await this.#book.receive(m.from, m.payload, {
        messageId: m.id,
        sentAt: m.sentAt,
        ...(staff ? { senderStaff: { roles: staff.roles, displayName: staff.displayName } } : {}),
      });
    } catch (e) {
      if (isParleyError(e, 'STORAGE_QUOTA')) return 'keep';
      this.#port.report(e, { peer: m.from, id: m.id });
      return 'done';
    }
    try {
      await this.#apply(m, event, opened);
    } catch (e) {
      this.#port.report(e, { peer: m.from, id: m.id });
    }
    return 'done';
  }

  /**
   * Owner side, a handoff request from a member: opens the ticket first (idempotent on its
   * reference, so a retry after a relay failure opens the same one), with the requester told of
   * its changes. Undefined when the sender is not a member (the book refuses the frame then).
   */
  async #openFor(m: ReceivedMessage, conversation: string, queue: string): Promise<Ticket | undefined> {
    const info = this.#book.get(conversation);
    if (!info || info.owner !== this.#port.deviceId || !info.members.some((x) => x.deviceId === m.from)) return undefined; // ct-ok: public device ids
    return this.#port.link.openTicket(queue, handoffRef(conversation, m.id), m.from);
  }

  async #apply(m: ReceivedMessage, event: ConversationEvent, opened: Ticket | undefined): Promise<void> {
    const port = this.#port;
    switch (event.kind) {
      case 'duplicate':
        return;
      case 'message': {
        const info = this.#book.get(event.message.conversation);
        port.emit('conversationMessage', { ...event.message, ...(info ? { conversationInfo: info } : {}), ...(event.gapClosed ? { gapClosed: true } : {}) });
        if (event.membersMismatch) port.emit('membersMismatch', { conversation: event.message.conversation, from: m.from });
        return;
      }
      case 'members': {
        const info = event.conversation;
        this.#emitMembers(info, event.joined, event.left);
        if (info.owner !== port.deviceId && event.joined.some((x) => x.deviceId === port.deviceId)) { // ct-ok: public device ids
          port.emit('conversationJoined', { conversation: info.id, members: this.members(info) });
        }
        return;
      }
      case 'handoff': {
        if (event.membersMismatch) port.emit('membersMismatch', { conversation: event.conversation.id, from: m.from });
        const ticket = opened ?? (await port.link.openTicket(event.queue, handoffRef(event.conversation.id, m.id), event.from));
        const ref = handoffRef(event.conversation.id, m.id);
        // Fed again after a crash: the ticket is noted already, and was announced.
        if (event.conversation.tickets.some((t) => t.id === ticket.id)) return;
        await this.#book.noteTicket(event.conversation.id, { id: ticket.id, ref });
        port.emit('handoffRequested', { conversation: event.conversation.id, queue: event.queue, reason: event.reason, by: event.from, ticket });
        return;
      }
      case 'join': {
        const staff = port.peerStaff(event.agent);
        const safetyNumber = this.#safetyNumber(event.agent) ?? '';
        port.emit('handoffOffer', {
          conversation: event.conversation.id,
          ticket: event.ticket,
          agent: { deviceId: event.agent, name: staff?.displayName ?? '', roles: staff?.roles ?? [], safetyNumber },
        });
        return;
      }
      case 'decline':
        this.#forget(event.ticket);
        port.emit('handoffDeclined', { ticket: event.ticket });
        return;
      case 'erased':
        return onErased(port, event);
      case 'deletionReceipt':
        return onDeletionReceipt(port, event);
      case 'consentRequest':
      case 'consentReceipt':
      case 'formRequest':
      case 'formValues':
        return consent.onConsentEvent(this.#book, port, m.from, event);
      case 'history':
        port.emit('historyShared', { conversation: event.conversation.id, from: m.from, items: event.items });
        return;
      case 'leave': {
        if (event.membersMismatch) port.emit('membersMismatch', { conversation: event.conversation.id, from: m.from });
        const info = event.conversation;
        if (info.owner !== port.deviceId) return; // ct-ok: public device ids
        // The owner confirms the departure with a new member list.
        const members = info.members.filter((x) => x.deviceId !== event.member); // ct-ok: public device ids
        if (members.length === info.members.length) return;
        const out = await this.#book.prepareMembers(info.id, members);
        await this.#fanOut(out.recipients, out.frame);
        this.#emitMembers(this.#info(info.id), out.joined, out.left);
        return;
      }
    }
  }

  /** Reports each conversation gap that outlived `timeoutMs`, once. */
  async reportGaps(timeoutMs: number): Promise<void> {
    for (const gap of this.#book.dueGaps(timeoutMs)) {
      try {
        await this.#book.markGapsReported(gap.conversation, gap.member, gap.seqs);
      } catch (e) {
        this.#port.report(e, { peer: gap.member });
        continue;
      }
      this.#port.emit('conversationGap', { conversation: gap.conversation, member: gap.member, seqs: gap.seqs });
    }
  }
}
