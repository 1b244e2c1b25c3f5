/**
 * The {@link ConversationBook}: one device's conversations with several members. It builds the
 * frames this device sends and validates and applies the frames it receives, enforcing the
 * membership rules (docs/architecture.md "Conversations with several members", docs/threats.md
 * C18, C19, C25, H1–H3). It does not encrypt or send: the caller fans each prepared frame out
 * as engine payloads of type `'conversation'` over its 1:1 sessions, and hands every received one
 * to {@link ConversationBook.receive}.
 *
 * Persistence goes through the {@link KeyValueStore} only (keys in `state.ts`); everything is
 * loaded in {@link ConversationBook.open}, and each call is one atomic write (a refusal or a
 * failed write leaves both the store and the in-memory view unchanged).
 */
import { ParleyError, type OutgoingContent } from '@parley/protocol';
import { DEVICE_ID_PATTERN, TICKET_ID_PATTERN, TICKET_NAME_PATTERN } from '@parley/protocol/wire';
import type { KeyValueStore } from '../store.js';
import { ConsentLedger, type ConsentEntry, type ConsentRequestView, type ConsentSigner, type FormRequestBody } from './consent.js';
import type { ConsentRequestBody } from '@parley/protocol';
import { addReceipt, checkRequest, loadTombstones, retentionOrUsage, signReceipt, signRequest, statusOf, tombBytes, tombKey, type ErasureSigner, type ErasureStatus, type Tombstone } from './erasure.js';
import { alreadyReceived, dueGaps, markReported, noteReceived, type SeqRecord } from '../gaps.js';
import { assertMessageId } from '../payload.js';
import {
  MAX_MEMBERS,
  MAX_REASON_CHARS,
  checkMembers,
  decodeFrame,
  encodeFrame,
  toFrameContent,
  toMessageContent,
} from './frame.js';
import { diffMembers, membersHash, randomConversationId } from './members.js';
import { appendHistory, earliestSentAt, entryToMessage, messageToItem, orderedMessages, type NewEntry } from './history.js';
import {
  CK,
  MAX_HELD,
  MAX_PENDING,
  MAX_TICKETS,
  loadState,
  recordBytes,
  type ConversationRecord,
  type HeldMessage,
  type HistoryEntry,
  type JoinOffer,
  type PendingClaim,
} from './state.js';
import type {
  ConversationEvent,
  ConversationGap,
  ConversationInfo,
  ConversationMessage,
  Frame,
  HistoryItem,
  Member,
  PreparedFrame,
  PreparedMessage,
  ReceiveFacts,
} from './types.js';

/** Options of {@link ConversationBook.open}. */
export interface ConversationBookOptions {
  /** Where the conversations are kept (keys under `conv/`); the same store as the engine's is fine. */
  readonly store: KeyValueStore;
  /** This device's id. */
  readonly deviceId: string;
  /** Clock (tests). */
  readonly now?: () => number;
  /** Signs this device's consent receipts and finds peers' keys to verify theirs; without it receipts are refused. */
  readonly consent?: ConsentSigner;
  /** Signs and verifies erasure statements (`erase`, `deletionReceipt` frames); without it those frames are refused. */
  readonly erasure?: ErasureSigner;
}

/** One pending state change: the records it replaces, written in one batch. */
interface Change {
  conv?: ConversationRecord;
  history?: HistoryEntry[];
  claims?: PendingClaim[];
  offers?: JoinOffer[];
  held?: HeldMessage[];
  writes: [string, Uint8Array][];
}

const clone = <T>(v: T): T => structuredClone(v);

function forbidden(reason: 'notOwner' | 'notMember' | 'notClaimant', message: string, peer?: string): ParleyError {
  return new ParleyError('FORBIDDEN', message, { details: peer === undefined ? { reason } : { reason, peer } });
}

function untrusted(reason: 'notOwner' | 'wrongConversation' | 'unsolicited', message: string, peer: string): ParleyError {
  return new ParleyError('UNTRUSTED_SOURCE', message, { details: { reason, peer } });
}

function usage(message: string): ParleyError {
  return new ParleyError('USAGE', message);
}

/**
 * One device's conversations. Use one book per device (the client and the bot enclave each own
 * one); calls are serialised internally.
 *
 * @example
 * const book = await ConversationBook.open({ store, deviceId: engine.deviceId });
 * const conv = await book.create([{ deviceId: bot, role: 'bot', name: 'Helper' }], { deviceId: engine.deviceId, role: 'customer', name: 'Ann' });
 * const first = await book.prepareAnnounce(conv.id);            // tell the bot about it
 * const { recipients, frame } = await book.prepareMessage(conv.id, 'hello', 'm-1');
 * // encrypt `frame` as type 'conversation' with message id 'm-1' to each recipient
 */
export class ConversationBook {
  readonly #store: KeyValueStore;
  readonly #self: string;
  readonly #now: () => number;
  #conversations: Map<string, ConversationRecord>;
  #history: Map<string, HistoryEntry[]>;
  #claims: PendingClaim[];
  #offers: JoinOffer[];
  #held: HeldMessage[];
  #queue: Promise<unknown> = Promise.resolve();
  #consentSigner: ConsentSigner | undefined;
  #consentLedger: ConsentLedger | undefined;
  readonly #signer: ErasureSigner | undefined;
  #tombs: Map<string, Tombstone> = new Map();

  private constructor(o: ConversationBookOptions, loaded: Awaited<ReturnType<typeof loadState>>) {
    this.#signer = o.erasure;
    this.#store = o.store;
    this.#consentSigner = o.consent;
    this.#self = o.deviceId;
    this.#now = o.now ?? Date.now;
    this.#conversations = loaded.conversations;
    this.#history = loaded.history;
    this.#claims = loaded.claims;
    this.#offers = loaded.offers;
    this.#held = loaded.held;
  }

  /**
   * Opens the book of device `deviceId`, loading every conversation from `store`. Call
   * `initCrypto()` (from `@parley/protocol`) first, as for the engine: member-list hashes use it.
   * @throws ParleyError `USAGE` for a bad device id, `STORAGE_INTEGRITY` for an altered record.
   */
  static async open(o: ConversationBookOptions): Promise<ConversationBook> {
    if (!DEVICE_ID_PATTERN.test(o.deviceId)) throw usage('deviceId must be a device id (32 hex chars)');
    const book = new ConversationBook(o, await loadState(o.store));
    book.#tombs = await loadTombstones(o.store);
    book.#consentLedger = await ConsentLedger.load(o.store, o.deviceId, o.consent, book.#now);
    return book;
  }

  /** This device's id. */
  get deviceId(): string {
    return this.#self;
  }

  /** All known conversations (also ones this device was removed from or left). */
  list(): ConversationInfo[] {
    return [...this.#conversations.values()].map(info);
  }

  /** One conversation, or `undefined` when unknown. */
  get(id: string): ConversationInfo | undefined {
    const rec = this.#conversations.get(id);
    return rec && info(rec);
  }

  /** True when this device is in the conversation's current member list and did not leave. */
  isMember(id: string): boolean {
    const rec = this.#conversations.get(id);
    return !!rec && !rec.left && rec.members.some((m) => m.deviceId === this.#self); // ct-ok: public device ids
  }

  /**
   * Customer side: the join offers received (`join` events) and not answered yet by
   * {@link prepareMembers} with their ticket or {@link prepareDecline}: to ask again after a restart.
   */
  pendingOffers(): { ticket: string; agent: string; conversation: string; ref: string }[] {
    return this.#offers.map((o) => ({ ...o }));
  }

  /** Staff side: the claims this device sent a `join` for and that were not answered yet (admitted or declined). */
  pendingClaims(): { ticket: string; customer: string; ref: string; at: number }[] {
    return this.#claims.map((c) => ({ ...c }));
  }

  /**
   * Owner side: a new conversation with `members` and this device (`self`, added as
   * `customer`, the owner). Epoch 1. Send {@link prepareAnnounce}'s frame to the members next.
   * @throws ParleyError `USAGE` for a bad list (more than 20 members, a device twice, a bad id
   *   or name) or when `self` is not this device.
   */
  async create(members: readonly Member[], self: Member, opts: { retentionDays?: number } = {}): Promise<ConversationInfo> {
    return this.#serial(async () => {
      if (self.deviceId !== this.#self) throw usage('create: self must be this device'); // ct-ok: public device ids
      const list = this.#checkList([{ deviceId: self.deviceId, role: 'customer', name: self.name }, ...members.filter((m) => m.deviceId !== this.#self)]); // ct-ok: public ids
      if (list.some((m, i) => i > 0 && m.role === 'customer')) throw usage('create: only the owner is listed as customer'); // ct-ok: public roles
      const id = randomConversationId();
      const rec: ConversationRecord = {
        v: 1, id, owner: this.#self, epoch: 1, hash: membersHash(id, this.#self, 1, list), members: list, tickets: [],
        sendSeq: 0, peers: {}, joinedTickets: [], historyTickets: [], histNext: 0,
      };
      rec.createdAt = this.#now();
      if (opts.retentionDays !== undefined) rec.retentionDays = retentionOrUsage(opts.retentionDays);
      await this.#apply({ conv: rec, history: [], writes: [[CK.state(id), recordBytes(rec)]] });
      return info(rec);
    });
  }

  /**
   * Owner side: the `members` frame of the current epoch, to every other member: how the
   * members of a conversation just created learn of it (a bot accepts it as the customer's
   * first frame, epoch 1; staff only through a claim, see {@link receive}).
   * @throws ParleyError `FORBIDDEN` `notOwner` when this device is not the owner.
   */
  async prepareAnnounce(id: string): Promise<PreparedFrame> {
    return this.#serial(async () => {
      const rec = this.#own(id);
      const next = clone(rec);
      next.sendSeq += 1;
      const frame = encodeFrame({ v: 1, c: id, e: next.epoch, h: next.hash, s: next.sendSeq, k: 'members', members: next.members, ...(next.retentionDays ? { ret: next.retentionDays } : {}) });
      await this.#apply({ conv: next, writes: [[CK.state(id), recordBytes(next)]] });
      return { recipients: this.#others(next.members), frame };
    });
  }

  /**
   * Any member: the frame of a new message and its recipients (every other member); persists
   * the sequence number and this device's own history item. Encrypt the frame to each recipient
   * with message id `messageId`.
   * @throws ParleyError `FORBIDDEN` `notMember` when this device is not (or no longer) a member,
   *   `PAYLOAD_TOO_LARGE` above 48 KiB, `USAGE` for an unknown conversation or a bad id.
   */
  async prepareMessage(id: string, content: OutgoingContent, messageId: string): Promise<PreparedMessage> {
    return this.#serial(async () => {
      assertMessageId(messageId);
      const rec = this.#member(id);
      const next = clone(rec);
      next.sendSeq += 1;
      const ownIndex = rec.ownMessages ?? (this.#history.get(id) ?? []).filter((e) => e.from === this.#self).length; // ct-ok: public ids
      const m = toFrameContent(content);
      const frame = encodeFrame({ v: 1, c: id, e: next.epoch, h: next.hash, s: next.sendSeq, k: 'message', m });
      const me = next.members.find((x) => x.deviceId === this.#self)!; // ct-ok: public ids
      const own: NewEntry = { from: this.#self, id: messageId, seq: next.sendSeq, sentAt: this.#now(), m, shared: false, sender: { ...me } };
      const h = appendHistory(next, this.#history.get(id) ?? [], [own]);
      const entry = h.appended[0];
      // A message id used before (the same message prepared again) counts once.
      if (entry) next.ownMessages = ownIndex + 1;
      await this.#apply({ conv: next, history: h.list, writes: [[CK.state(id), recordBytes(next)], ...h.writes] });
      const message = entryToMessage(id, entry ?? { ...own, n: -1 });
      return { recipients: this.#others(next.members), frame, message, ownIndex: entry ? ownIndex : undefined };
    });
  }

  /**
   * When the conversation's earliest message was sent, as this device knows (also past the
   * history's cap); `undefined` before any message. The archive gate compares disclosures with it.
   */
  firstMessageAt(id: string): number | undefined {
    const rec = this.#conversations.get(id);
    if (!rec) return undefined;
    return rec.firstMessageAt ?? earliestSentAt(this.#history.get(id) ?? []);
  }

  /**
   * Any member: a handoff request (to the owner, who opens the ticket). Not sequenced (only the
   * owner receives it).
   * @throws ParleyError `FORBIDDEN` `notMember`, `USAGE` for a bad queue name or a reason over 500 chars.
   */
  async prepareHandoff(id: string, queue: string, reason: string): Promise<{ recipients: string[]; frame: Uint8Array }> {
    return this.#serial(async () => {
      if (!TICKET_NAME_PATTERN.test(queue)) throw usage('queue must be 1-64 chars of [A-Za-z0-9_-]');
      if (typeof reason !== 'string' || reason.length > MAX_REASON_CHARS) throw usage(`reason must be at most ${MAX_REASON_CHARS} chars`);
      const rec = this.#member(id);
      if (rec.owner === this.#self) throw usage('the owner opens a ticket itself: it needs no handoff frame'); // ct-ok: public ids
      const frame = encodeFrame({ v: 1, c: id, e: rec.epoch, h: rec.hash, s: 0, k: 'handoff', queue, reason });
      return { recipients: [rec.owner], frame };
    });
  }

  /**
   * Owner side: a new member list (epoch + 1) and its frame, to the old and new members but
   * this device. This device stays in the list as `customer` (added when missing). `ticket`: the
   * ticket whose claimant this change admits (one noted with {@link noteTicket}); its pending
   * join offer is forgotten.
   * @throws ParleyError `FORBIDDEN` `notOwner`, `USAGE` for a bad list or an unknown ticket.
   */
  async prepareMembers(
    id: string,
    members: readonly Member[],
    ticket?: string,
  ): Promise<{ recipients: string[]; frame: Uint8Array; joined: Member[]; left: Member[] }> {
    return this.#serial(async () => {
      const rec = this.#own(id);
      const me = rec.members.find((m) => m.deviceId === this.#self)!; // ct-ok: public ids
      const list = this.#checkList([me, ...members.filter((m) => m.deviceId !== this.#self)]); // ct-ok: public ids
      if (list.some((m, i) => i > 0 && m.role === 'customer')) throw usage('only the owner is listed as customer'); // ct-ok: public roles
      if (ticket !== undefined && !rec.tickets.some((t) => t.id === ticket)) { // ct-ok: public ticket ids
        throw usage('prepareMembers: unknown ticket (note it with noteTicket after opening it)');
      }
      const next = clone(rec);
      next.epoch += 1;
      next.members = list;
      next.hash = membersHash(id, this.#self, next.epoch, list);
      next.sendSeq += 1;
      const { joined, left } = diffMembers(rec.members, list);
      for (const m of left) delete next.peers[m.deviceId];
      const frame = encodeFrame({
        v: 1, c: id, e: next.epoch, h: next.hash, s: next.sendSeq, k: 'members', members: list,
        ...(next.retentionDays ? { ret: next.retentionDays } : {}),
        ...(ticket === undefined ? {} : { ticket }),
      });
      const recipients = [...new Set([...this.#others(rec.members), ...this.#others(list)])];
      const change: Change = { conv: next, writes: [[CK.state(id), recordBytes(next)]] };
      if (ticket !== undefined) this.#setOffers(change, this.#offers.filter((o) => o.ticket !== ticket)); // ct-ok: public ticket ids
      await this.#apply(change);
      return { recipients, frame, joined, left };
    });
  }

  /**
   * Owner side: the history bundle for `agent` (a current member admitted through `ticket`):
   * the last `n` messages (all when `n` is undefined, none when 0), oldest first. When they do
   * not fit one 48 KiB frame, the oldest are left out (see `items`).
   * @throws ParleyError `FORBIDDEN` `notOwner`, `FORBIDDEN` `notMember` when `agent` is not a
   *   member, `USAGE` for an unknown ticket.
   */
  async prepareHistory(id: string, agent: string, ticket: string, n?: number): Promise<{ recipients: [string]; frame: Uint8Array; items: HistoryItem[] }> {
    return this.#serial(async () => {
      const rec = this.#own(id);
      if (!rec.members.some((m) => m.deviceId === agent)) throw forbidden('notMember', 'history is shared only with a current member: add the agent first', agent); // ct-ok: public ids
      if (!TICKET_ID_PATTERN.test(ticket)) throw usage('ticket must be a ticket id');
      if (n !== undefined && (!Number.isSafeInteger(n) || n < 0)) throw usage('n must be a whole number ≥ 0');
      let items = n === 0 ? [] : orderedMessages(id, this.#history.get(id) ?? [], n).slice(-500).map(messageToItem);
      for (;;) {
        try {
          const frame = encodeFrame({ v: 1, c: id, e: rec.epoch, h: rec.hash, s: 0, k: 'history', items, ticket });
          return { recipients: [agent] as [string], frame, items };
        } catch (e) {
          if (!(e instanceof ParleyError && e.code === 'PAYLOAD_TOO_LARGE') || items.length === 0) throw e;
          items = items.slice(Math.max(1, Math.floor(items.length / 10)));
        }
      }
    });
  }

  /**
   * Member: a `leave` frame to every other member; this device then sends nothing more in the
   * conversation (the owner removes it with its next member list).
   * @throws ParleyError `FORBIDDEN` `notMember`.
   */
  async prepareLeave(id: string): Promise<{ recipients: string[]; frame: Uint8Array }> {
    return this.#serial(async () => {
      const rec = this.#member(id);
      const next = clone(rec);
      next.sendSeq += 1;
      next.left = true;
      const frame = encodeFrame({ v: 1, c: id, e: next.epoch, h: next.hash, s: next.sendSeq, k: 'leave' });
      await this.#apply({ conv: next, writes: [[CK.state(id), recordBytes(next)]] });
      return { recipients: this.#others(next.members), frame };
    });
  }

  /**
   * Agent side, after claiming `ticket` at the relay: a `join` frame to its customer. Remembers
   * the pending claim (persisted), so the customer's member list admitting this device through
   * this ticket is accepted.
   * @throws ParleyError `USAGE` for a bad ticket.
   */
  async prepareJoin(ticket: { id: string; customer: string; ref: string }): Promise<{ recipients: [string]; frame: Uint8Array }> {
    return this.#serial(async () => {
      if (!TICKET_ID_PATTERN.test(ticket.id) || !DEVICE_ID_PATTERN.test(ticket.customer) || !TICKET_NAME_PATTERN.test(ticket.ref)) {
        throw usage('prepareJoin: the ticket needs an id, a customer device id and a ref');
      }
      const frame = encodeFrame({ v: 1, e: 0, h: '', s: 0, k: 'join', ref: ticket.ref, ticket: ticket.id });
      const claims = this.#claims.filter((c) => c.ticket !== ticket.id); // ct-ok: public ticket ids
      claims.push({ ticket: ticket.id, customer: ticket.customer, ref: ticket.ref, at: this.#now() });
      const change: Change = { writes: [] };
      this.#setClaims(change, claims.slice(-MAX_PENDING));
      await this.#apply(change);
      return { recipients: [ticket.customer] as [string], frame };
    });
  }

  /**
   * Customer side: a `decline` frame to `agent` for `ticket`; forgets the pending offer.
   * @throws ParleyError `USAGE` for a bad device or ticket id.
   */
  async prepareDecline(agent: string, ticket: string): Promise<{ recipients: [string]; frame: Uint8Array }> {
    return this.#serial(async () => {
      if (!DEVICE_ID_PATTERN.test(agent) || !TICKET_ID_PATTERN.test(ticket)) throw usage('prepareDecline: needs a device id and a ticket id');
      const frame = encodeFrame({ v: 1, e: 0, h: '', s: 0, k: 'decline', ticket });
      const change: Change = { writes: [] };
      this.#setOffers(change, this.#offers.filter((o) => !(o.ticket === ticket && o.agent === agent))); // ct-ok: public ids
      await this.#apply(change);
      return { recipients: [agent] as [string], frame };
    });
  }

  /**
   * Customer side: remembers that relay ticket `ticket` (opened with `ticketOpen`) belongs to
   * conversation `id`, so a `join` naming its ref is recognised.
   * @throws ParleyError `FORBIDDEN` `notOwner`, `USAGE` for a bad ticket.
   */
  async noteTicket(id: string, ticket: { id: string; ref: string }): Promise<void> {
    return this.#serial(async () => {
      if (!TICKET_ID_PATTERN.test(ticket.id) || !TICKET_NAME_PATTERN.test(ticket.ref)) throw usage('noteTicket: needs a ticket id and ref');
      const rec = this.#own(id);
      const next = clone(rec);
      next.tickets = [...next.tickets.filter((t) => t.id !== ticket.id), { id: ticket.id, ref: ticket.ref }].slice(-MAX_TICKETS); // ct-ok: public ids
      await this.#apply({ conv: next, writes: [[CK.state(id), recordBytes(next)]] });
    });
  }

  /**
   * Validates and applies a frame received from `from` (an engine message of type
   * `'conversation'`). A refusal changes nothing; report it and drop the frame.
   *
   * Rules: `members` only from the owner; a `members` frame for an unknown conversation is
   * accepted only when it lists this device and either this device holds a pending claim
   * (`prepareJoin`) for `frame.ticket` whose customer is the sender, or it is a new
   * conversation's first list (epoch 1) naming the sender as `customer` and this device as
   * `bot` (how a customer starts a conversation with a bot); an epoch not above the known one
   * is a duplicate. `message` and `leave` only from current members, to a current member.
   * `handoff` from a member. `history` only from the owner, for the ticket this device was
   * admitted through, once. `join` only from verified staff (agent or supervisor) naming a
   * ticket of a conversation this device owns. `decline` only from the customer of a pending
   * claim. A sequence number already received is a duplicate; one skipped is tracked as a gap.
   *
   * @throws ParleyError `MALFORMED_MESSAGE` (bad frame), `FORBIDDEN` (`notOwner`, `notMember`,
   *   `notClaimant`), `UNTRUSTED_SOURCE` (`notOwner`, `wrongConversation`, `unsolicited`).
   */
  async receive(from: string, frame: Uint8Array, facts: ReceiveFacts): Promise<ConversationEvent> {
    return this.#serial(async () => {
      const f = decodeFrame(frame);
      switch (f.k) {
        case 'members':
          return this.#onMembers(from, f);
        case 'message':
          return this.#onMessage(from, f, facts);
        case 'handoff':
          return this.#onHandoff(from, f);
        case 'leave':
          return this.#onLeave(from, f);
        case 'history':
          return this.#onHistory(from, f);
        case 'join':
          return this.#onJoin(from, f, facts);
        case 'decline':
          return this.#onDecline(from, f);
        case 'consentRequest':
        case 'consentReceipt':
        case 'formRequest':
        case 'formValues':
          return this.#onConsent(from, f);
        case 'erase':
          return this.#onErase(from, f);
        case 'deletionReceipt':
          return this.#onDeletionReceipt(from, f);
      }
    });
  }

  // --- consent (consent.ts) ---------------------------------------------------------------

  /**
   * A member but the owner (a bot, an agent): a `consentRequest` frame for the owner.
   * @throws ParleyError `USAGE` (bad request, id used, this device is the owner), `FORBIDDEN` `notMember`.
   */
  async prepareConsentRequest(id: string, request: ConsentRequestBody): Promise<PreparedFrame> {
    return this.#serial(async () => this.#encodeConsent(await (await this.#ledger()).request(this.#member(id), request)));
  }

  /**
   * Owner side: answers consent request `requestId` with a receipt signed by this device's
   * identity key, for every other member (`entry` is the stored receipt).
   * @throws ParleyError `USAGE` (unknown or answered request, no consent signer), `FORBIDDEN`.
   */
  async prepareConsentAnswer(id: string, requestId: string, grant: boolean): Promise<PreparedFrame & { entry: ConsentEntry }> {
    return this.#serial(async () => {
      const out = await (await this.#ledger()).answer(this.#member(id), requestId, grant);
      return { ...this.#encodeConsent(out), entry: out.entry };
    });
  }

  /**
   * Owner side: withdraws granted receipt `receiptId` (a signed `withdrawn` receipt), for every other member.
   * @throws ParleyError `USAGE` for an unknown, denied or already withdrawn receipt.
   */
  async prepareConsentWithdraw(id: string, receiptId: string): Promise<PreparedFrame & { entry: ConsentEntry }> {
    return this.#serial(async () => {
      const out = await (await this.#ledger()).withdraw(this.#member(id), receiptId);
      return { ...this.#encodeConsent(out), entry: out.entry };
    });
  }

  /**
   * A member but the owner: a `formRequest` frame for the owner.
   * @throws ParleyError `USAGE` (bad form, id used), `FORBIDDEN` `notMember`.
   */
  async prepareFormRequest(id: string, form: FormRequestBody): Promise<PreparedFrame> {
    return this.#serial(async () => this.#encodeConsent(await (await this.#ledger()).requestForm(this.#member(id), form)));
  }

  /**
   * Owner side: the `formValues` frame for the form's requester, built only when a granted,
   * unwithdrawn receipt of this conversation for the form's consent request covers every field.
   * @throws ParleyError `FORBIDDEN` `noConsent` (`details.why`), nothing built.
   */
  async prepareFormValues(id: string, formId: string, values: Readonly<Record<string, string>>): Promise<PreparedFrame> {
    return this.#serial(async () => this.#encodeConsent(await (await this.#ledger()).formValues(this.#member(id), formId, values)));
  }

  /** The consent receipts of conversation `id` this device holds (oldest first), with `valid` and `withdrawn`. */
  consents(id: string): ConsentEntry[] {
    return this.#conversations.has(id) && this.#consentLedger ? this.#consentLedger.consents(id) : [];
  }

  /** Owner side: the consent requests received in conversation `id` (with `answered` once answered). */
  consentRequests(id: string): ConsentRequestView[] {
    return this.#conversations.has(id) && this.#consentLedger ? this.#consentLedger.requests(id) : [];
  }

  async #ledger(): Promise<ConsentLedger> {
    this.#consentLedger ??= await ConsentLedger.load(this.#store, this.#self, this.#consentSigner, this.#now);
    return this.#consentLedger;
  }

  #encodeConsent(out: { recipients: string[]; frame: Frame }): PreparedFrame {
    return { recipients: out.recipients, frame: encodeFrame(out.frame) };
  }

  async #onConsent(from: string, f: Frame): Promise<ConversationEvent> {
    const rec = this.#fromMember(from, f, f.k);
    return (await this.#ledger()).receive(from, f, rec);
  }

  /** Messages of the conversation (own, received, imported history marked `shared`), oldest first, the last `limit`. */
  history(id: string, limit?: number): ConversationMessage[] {
    return orderedMessages(id, this.#history.get(id) ?? [], limit);
  }

  /** Gaps: per conversation and member, sequence numbers missing for `timeoutMs` or longer and not reported yet. */
  dueGaps(timeoutMs: number): ConversationGap[] {
    const before = this.#now() - timeoutMs;
    const out: ConversationGap[] = [];
    for (const rec of this.#conversations.values()) {
      for (const [member, seq] of Object.entries(rec.peers)) {
        const due = dueGaps(seq, before);
        if (due) out.push({ conversation: rec.id, member, seqs: due.seqs });
      }
    }
    return out;
  }

  /** Records that the app was told of these missing sequence numbers. */
  async markGapsReported(conversation: string, member: string, seqs: readonly number[]): Promise<void> {
    return this.#serial(async () => {
      const rec = this.#conversations.get(conversation);
      if (!rec?.peers[member]) return;
      const next = clone(rec);
      markReported(next.peers[member]!, seqs);
      await this.#apply({ conv: next, writes: [[CK.state(conversation), recordBytes(next)]] });
    });
  }

  // --- erasure (erasure.ts) ---------------------------------------------------------------

  /**
   * Owner side: erases conversation `id` on this device and returns the signed `erase` frame
   * for every other member. Its records (state, history, held messages, join offers) are
   * deleted; a tombstone (id, members, the request, the receipts to come) is all that stays.
   * @throws ParleyError `FORBIDDEN` `notOwner`, `USAGE` for an unknown conversation or a book
   *   opened without `erasure`.
   */
  async prepareErase(id: string): Promise<PreparedFrame & { status: ErasureStatus }> {
    return this.#serial(async () => {
      const signer = this.#needSigner();
      const rec = this.#own(id);
      const signed = signRequest(signer, id, this.#self, rec.members, this.#now());
      const tomb: Tombstone = { v: 1, id, owner: this.#self, members: rec.members.map((m) => ({ ...m })), request: signed.request, hash: signed.hash, signature: signed.signature, receipts: [] };
      const frame = encodeFrame({ v: 1, c: id, e: rec.epoch, h: rec.hash, s: 0, k: 'erase', at: signed.request.at, to: [...signed.request.members], sig: signed.signature });
      await this.#store.setMany([[tombKey(id), tombBytes(tomb)]]);
      this.#tombs.set(id, tomb);
      await this.#forgetConversation(id);
      return { recipients: [...signed.request.members], frame, status: statusOf(tomb) };
    });
  }

  /** Owner side: where the erasure of `id` stands, or `undefined` when it was not erased. */
  erasure(id: string): ErasureStatus | undefined {
    const t = this.#tombs.get(id);
    return t && statusOf(t);
  }

  /** Owner side: every erasure this device asked for. */
  erasures(): ErasureStatus[] {
    return [...this.#tombs.values()].map(statusOf);
  }

  /** Owner side: ids of the conversations whose retention ran out (created `retentionDays` days ago or more): erase them. */
  dueForErasure(): string[] {
    const now = this.#now();
    return [...this.#conversations.values()]
      .filter((r) => r.owner === this.#self && r.retentionDays !== undefined && r.createdAt !== undefined && r.createdAt + r.retentionDays * 86_400_000 <= now) // ct-ok: public ids
      .map((r) => r.id);
  }

  #needSigner(): ErasureSigner {
    if (!this.#signer) throw usage('this book was opened without an erasure signer (ConversationBookOptions.erasure)');
    return this.#signer;
  }

  /** Deletes every record of conversation `id` (state, history, held messages, offers) from the store and memory. */
  async #forgetConversation(id: string): Promise<void> {
    const keys = await this.#store.keys(`conv/${id}/`);
    const writes: [string, Uint8Array][] = [];
    const held = this.#held.filter((x) => x.c !== id); // ct-ok: public ids
    const offers = this.#offers.filter((o) => o.conversation !== id); // ct-ok: public ids
    if (held.length !== this.#held.length) writes.push([CK.held, recordBytes(held)]);
    if (offers.length !== this.#offers.length) writes.push([CK.offers, recordBytes(offers)]);
    if (writes.length > 0) await this.#store.setMany(writes);
    if (keys.length > 0) await this.#store.delMany(keys);
    this.#held = held;
    this.#offers = offers;
    this.#conversations.delete(id);
    this.#history.delete(id);
  }

  async #onErase(from: string, f: Frame): Promise<ConversationEvent> {
    const signer = this.#needSigner();
    const rec = this.#conversations.get(f.c!);
    if (!rec) throw forbidden('notMember', 'erasure request refused: it is for a conversation this device does not hold; the frame was dropped', from);
    if (from !== rec.owner) throw forbidden('notOwner', 'erasure request refused: only the conversation\'s owner (the customer\'s device) may ask; the frame was dropped', from); // ct-ok: public ids
    const request = checkRequest(signer, rec.id, from, this.#self, f.to!, f.at!, f.sig!);
    const { receipt, signature } = signReceipt(signer, request, this.#self, this.#now());
    const frame = encodeFrame({ v: 1, c: rec.id, e: f.e, h: f.h, s: 0, k: 'deletionReceipt', at: receipt.at, req: receipt.request, sig: signature });
    await this.#forgetConversation(rec.id);
    return { kind: 'erased', conversation: rec.id, owner: from, reply: { recipients: [from], frame } };
  }

  async #onDeletionReceipt(from: string, f: Frame): Promise<ConversationEvent> {
    const signer = this.#needSigner();
    const tomb = this.#tombs.get(f.c!);
    if (!tomb) throw forbidden('notMember', 'deletion receipt refused: this device asked for no erasure of that conversation; the frame was dropped', from);
    const next = addReceipt(signer, tomb, from, f.req!, f.at!, f.sig!);
    await this.#store.setMany([[tombKey(tomb.id), tombBytes(next)]]);
    this.#tombs.set(tomb.id, next);
    return { kind: 'deletionReceipt', conversation: tomb.id, member: from, status: statusOf(next) };
  }

  // --- receiving -------------------------------------------------------------------------

  async #onMembers(from: string, f: Frame): Promise<ConversationEvent> {
    const id = f.c!;
    const list = f.members!;
    const rec = this.#conversations.get(id);
    const listed = list.some((m) => m.deviceId === this.#self); // ct-ok: public ids
    const ownerEntry = list.find((m) => m.deviceId === from); // ct-ok: public ids
    if (!ownerEntry || ownerEntry.role !== 'customer' || list.filter((m) => m.role === 'customer').length !== 1) { // ct-ok: public roles
      throw forbidden('notOwner', 'member-list change refused: the sender is not the conversation\'s customer; the frame was dropped', from);
    }
    if (membersHash(id, from, f.e, list) !== f.h) throw new ParleyError('MALFORMED_MESSAGE', 'member-list frame refused: its hash does not match its list; the frame was dropped'); // ct-ok: public hash
    const change: Change = { writes: [] };
    let created = false;
    let next: ConversationRecord;
    let claim: PendingClaim | undefined;
    if (rec) {
      if (from !== rec.owner) { // ct-ok: public ids
        throw forbidden('notOwner', 'member-list change refused: only the conversation\'s owner (the customer\'s device) changes members; the frame was dropped', from);
      }
      if (this.#seqDuplicate(rec, from, f.s)) return { kind: 'duplicate' };
      if (f.e <= rec.epoch) {
        // Overtaken by a newer list: nothing to apply, but its number arrived (closes its gap).
        const seen = clone(rec);
        if (seen.peers[from]) this.#noteSeq(seen, from, f.s);
        await this.#apply({ conv: seen, writes: [[CK.state(id), recordBytes(seen)]] });
        return { kind: 'duplicate' };
      }
      next = clone(rec);
      const wasMember = rec.members.some((m) => m.deviceId === this.#self); // ct-ok: public ids
      if (listed && !wasMember) {
        next.peers = {};
        delete next.left;
        claim = this.#claimFor(f.ticket, from);
      }
    } else {
      if (!listed) throw forbidden('notOwner', 'member-list frame refused: it is for a conversation this device is not in; the frame was dropped', from);
      claim = this.#claimFor(f.ticket, from);
      const selfRole = list.find((m) => m.deviceId === this.#self)!.role; // ct-ok: public ids
      if (!claim && !(f.e === 1 && selfRole === 'bot')) { // ct-ok: public roles
        throw forbidden('notOwner', 'member-list frame refused: this device did not claim a ticket of this customer (or it is not a new conversation with a bot); the frame was dropped', from);
      }
      created = true;
      next = { v: 1, id, owner: from, epoch: 0, hash: '', members: [], tickets: [], sendSeq: 0, peers: {}, joinedTickets: [], historyTickets: [], histNext: 0 };
    }
    const { joined, left } = diffMembers(next.members, list);
    next.epoch = f.e;
    next.members = list.map((m) => ({ ...m }));
    next.hash = f.h;
    if (f.ret !== undefined) next.retentionDays = f.ret;
    for (const m of left) delete next.peers[m.deviceId];
    this.#noteSeq(next, from, f.s);
    if (claim) {
      next.joinedTickets = [...next.joinedTickets.filter((t) => t !== claim.ticket), claim.ticket].slice(-MAX_TICKETS); // ct-ok: public ids
      // A new claim asks for a history again (a transfer back to this device on the same ticket).
      next.historyTickets = next.historyTickets.filter((t) => t !== claim.ticket); // ct-ok: public ids
      this.#setClaims(change, this.#claims.filter((c) => c !== claim));
    }
    const released = this.#release(next, rec ? (this.#history.get(id) ?? []) : [], change);
    if (released.messages.length > 0 || created) change.history = released.history;
    change.conv = next;
    change.writes.push([CK.state(id), recordBytes(next)]);
    await this.#apply(change);
    return { kind: 'members', conversation: info(next), joined, left, created, ...(released.messages.length > 0 ? { released: released.messages } : {}) };
  }

  async #onMessage(from: string, f: Frame, facts: ReceiveFacts): Promise<ConversationEvent> {
    assertMessageIdIn(facts.messageId);
    const known = this.#conversations.get(f.c!);
    if (!known?.members.some((m) => m.deviceId === from) && this.#mayHold(known, f)) return this.#hold(from, f, facts); // ct-ok: public ids
    const rec = this.#fromMember(from, f, 'message');
    if (this.#seqDuplicate(rec, from, f.s)) return { kind: 'duplicate' };
    const next = clone(rec);
    const { closedReported } = this.#noteSeq(next, from, f.s);
    const sender = rec.members.find((m) => m.deviceId === from)!; // ct-ok: public ids
    const entry: NewEntry = { from, id: facts.messageId, seq: f.s, sentAt: facts.sentAt, m: f.m!, shared: false, sender: { ...sender } };
    const h = appendHistory(next, this.#history.get(rec.id) ?? [], [entry]);
    await this.#apply({ conv: next, history: h.list, writes: [[CK.state(rec.id), recordBytes(next)], ...h.writes] });
    const message: ConversationMessage = h.appended[0]
      ? entryToMessage(rec.id, h.appended[0])
      : { conversation: rec.id, from, id: facts.messageId, seq: f.s, sentAt: facts.sentAt, content: toMessageContent(f.m!), shared: false, sender: { ...sender } };
    return { kind: 'message', message, ...this.#mismatch(rec, f), ...(closedReported ? { gapClosed: true } : {}) };
  }

  async #onHandoff(from: string, f: Frame): Promise<ConversationEvent> {
    const rec = this.#fromMember(from, f, 'handoff');
    return { kind: 'handoff', conversation: info(rec), from, queue: f.queue!, reason: f.reason!, ...this.#mismatch(rec, f) };
  }

  async #onLeave(from: string, f: Frame): Promise<ConversationEvent> {
    // A leave sent under an older list by a device the current list no longer has (an agent's
    // transfer crossing the owner's list that removed it): already done; it changes nothing,
    // so it is dropped quietly rather than reported as an intrusion.
    const known = this.#conversations.get(f.c!);
    if (known && f.e < known.epoch && !known.members.some((m) => m.deviceId === from)) return { kind: 'duplicate' }; // ct-ok: public ids
    const rec = this.#fromMember(from, f, 'leave');
    if (this.#seqDuplicate(rec, from, f.s)) return { kind: 'duplicate' };
    const next = clone(rec);
    this.#noteSeq(next, from, f.s);
    await this.#apply({ conv: next, writes: [[CK.state(rec.id), recordBytes(next)]] });
    return { kind: 'leave', conversation: info(next), member: from, ...this.#mismatch(rec, f) };
  }

  async #onHistory(from: string, f: Frame): Promise<ConversationEvent> {
    const ticket = f.ticket!;
    const rec = this.#conversations.get(f.c!);
    const claimedElsewhere = () =>
      this.#claims.some((c) => c.ticket === ticket) || [...this.#conversations.values()].some((r) => r.joinedTickets.includes(ticket)); // ct-ok: public ids
    if (!rec) {
      throw untrusted(claimedElsewhere() ? 'wrongConversation' : 'unsolicited', 'shared history refused: it is for a conversation this device is not in; nothing was imported', from);
    }
    if (from !== rec.owner) { // ct-ok: public ids
      throw untrusted('notOwner', 'shared history refused: only the conversation\'s owner (the customer\'s device) shares history; nothing was imported', from);
    }
    if (rec.historyTickets.includes(ticket)) {
      throw untrusted('unsolicited', 'shared history refused: the history for this ticket arrived already; nothing was imported', from);
    }
    if (!rec.joinedTickets.includes(ticket)) {
      throw untrusted(claimedElsewhere() ? 'wrongConversation' : 'unsolicited', 'shared history refused: this device did not join this conversation through that ticket; nothing was imported', from);
    }
    if (rec.left || !rec.members.some((m) => m.deviceId === this.#self)) { // ct-ok: public ids
      throw untrusted('unsolicited', 'shared history refused: this device is not a member any more; nothing was imported', from);
    }
    const next = clone(rec);
    next.historyTickets = [...next.historyTickets, ticket].slice(-MAX_TICKETS);
    const added: NewEntry[] = f.items!.map((it) => ({
      from: it.from, id: it.id, seq: 0, sentAt: it.sentAt, m: it.m, shared: true, sender: { deviceId: it.from, name: it.name, role: it.role },
    }));
    const h = appendHistory(next, this.#history.get(rec.id) ?? [], added);
    await this.#apply({ conv: next, history: h.list, writes: [[CK.state(rec.id), recordBytes(next)], ...h.writes] });
    return { kind: 'history', conversation: info(next), items: h.appended.map((e) => entryToMessage(rec.id, e)) };
  }

  async #onJoin(from: string, f: Frame, facts: ReceiveFacts): Promise<ConversationEvent> {
    const roles = facts.senderStaff?.roles ?? [];
    if (!roles.includes('agent') && !roles.includes('supervisor')) {
      throw forbidden('notClaimant', 'join refused: the sender holds no verified agent or supervisor credential; the frame was dropped', from);
    }
    const ticket = f.ticket!;
    const ref = f.ref!;
    const rec = [...this.#conversations.values()].find(
      (r) => r.owner === this.#self && r.tickets.some((t) => t.id === ticket && t.ref === ref), // ct-ok: public ids
    );
    if (!rec) throw forbidden('notClaimant', 'join refused: it names no ticket this device opened; the frame was dropped', from);
    const offers = this.#offers.filter((o) => !(o.ticket === ticket && o.agent === from)); // ct-ok: public ids
    offers.push({ ticket, agent: from, conversation: rec.id, ref });
    const change: Change = { writes: [] };
    this.#setOffers(change, offers.slice(-MAX_PENDING));
    await this.#apply(change);
    return { kind: 'join', conversation: info(rec), agent: from, ticket, ref };
  }

  async #onDecline(from: string, f: Frame): Promise<ConversationEvent> {
    const ticket = f.ticket!;
    const claim = this.#claims.find((c) => c.ticket === ticket && c.customer === from); // ct-ok: public ids
    if (!claim) throw forbidden('notOwner', 'decline refused: it is not from the customer of a ticket this device claimed; the frame was dropped', from);
    const change: Change = { writes: [] };
    this.#setClaims(change, this.#claims.filter((c) => c !== claim));
    await this.#apply(change);
    return { kind: 'decline', ticket };
  }

  /**
   * Whether a message from a device not in the list may be held: this device is a member and
   * the sender names a newer epoch, or the conversation is unknown while this device waits for
   * a claim's member list.
   */
  #mayHold(rec: ConversationRecord | undefined, f: Frame): boolean {
    if (rec) return !rec.left && rec.members.some((m) => m.deviceId === this.#self) && f.e > rec.epoch; // ct-ok: public ids
    return this.#claims.length > 0;
  }

  async #hold(from: string, f: Frame, facts: ReceiveFacts): Promise<ConversationEvent> {
    if (this.#held.some((x) => x.c === f.c && x.from === from && x.s === f.s)) return { kind: 'duplicate' }; // ct-ok: public ids
    const held = [...this.#held, { c: f.c!, from, e: f.e, h: f.h, s: f.s, m: f.m!, messageId: facts.messageId, sentAt: facts.sentAt }];
    const change: Change = { writes: [] };
    this.#setHeld(change, held.slice(-MAX_HELD));
    await this.#apply(change);
    return { kind: 'held' };
  }

  /**
   * Applies (on `next`, a copy) the held messages of its conversation whose senders it now
   * lists; keeps those naming a still newer epoch; drops the rest. Adds the writes to `change`.
   */
  #release(next: ConversationRecord, history: readonly HistoryEntry[], change: Change): { messages: ConversationMessage[]; history: HistoryEntry[] } {
    const mine = this.#held.filter((x) => x.c === next.id); // ct-ok: public ids
    if (mine.length === 0) return { messages: [], history: [...history] };
    const member = next.members.some((m) => m.deviceId === this.#self) && !next.left; // ct-ok: public ids
    const keep = this.#held.filter((x) => x.c !== next.id || (member && x.e > next.epoch)); // ct-ok: public ids
    const added: NewEntry[] = [];
    for (const x of [...mine].sort((a, b) => a.s - b.s)) {
      const sender = next.members.find((m) => m.deviceId === x.from); // ct-ok: public ids
      if (!member || x.e > next.epoch || !sender || this.#seqDuplicate(next, x.from, x.s)) continue;
      this.#noteSeq(next, x.from, x.s);
      added.push({ from: x.from, id: x.messageId, seq: x.s, sentAt: x.sentAt, m: x.m, shared: false, sender: { ...sender } });
    }
    this.#setHeld(change, keep);
    const h = appendHistory(next, history, added);
    change.writes.push(...h.writes);
    return { messages: h.appended.map((e) => entryToMessage(next.id, e)), history: h.list };
  }

  // --- helpers ---------------------------------------------------------------------------

  /** The conversation of a frame whose sender must be a current member (and this device too). */
  #fromMember(from: string, f: Frame, what: string): ConversationRecord {
    const rec = this.#conversations.get(f.c!);
    if (!rec) throw forbidden('notMember', `${what} refused: it is for a conversation this device is not in; the frame was dropped`, from);
    if (!rec.members.some((m) => m.deviceId === from)) { // ct-ok: public ids
      throw forbidden('notMember', `${what} refused: the sender is not a member of the conversation; the frame was dropped`, from);
    }
    if (!rec.members.some((m) => m.deviceId === this.#self)) { // ct-ok: public ids
      throw forbidden('notMember', `${what} refused: this device is no longer a member of the conversation; the frame was dropped`, from);
    }
    return rec;
  }

  #mismatch(rec: ConversationRecord, f: Frame): { membersMismatch?: true } {
    return f.e === rec.epoch && f.h !== rec.hash ? { membersMismatch: true } : {}; // ct-ok: public hash
  }

  #claimFor(ticket: string | undefined, customer: string): PendingClaim | undefined {
    if (ticket === undefined) return undefined;
    return this.#claims.find((c) => c.ticket === ticket && c.customer === customer); // ct-ok: public ids
  }

  /** True when `seq` from `member` was received already. */
  #seqDuplicate(rec: ConversationRecord, member: string, seq: number): boolean {
    const s = rec.peers[member];
    return !!s && alreadyReceived(s, seq);
  }

  /** Notes `seq` on `rec` (a copy); the first one seen from a member is its baseline. */
  #noteSeq(rec: ConversationRecord, member: string, seq: number): { closedReported: boolean } {
    const s: SeqRecord = rec.peers[member] ?? { recvSeq: seq - 1 };
    const r = noteReceived(s, seq, this.#now());
    rec.peers[member] = s;
    return r;
  }

  #own(id: string): ConversationRecord {
    const rec = this.#conversations.get(id);
    if (!rec) throw usage('unknown conversation');
    if (rec.owner !== this.#self) throw forbidden('notOwner', 'only the conversation\'s owner (the customer\'s device) may do this'); // ct-ok: public ids
    return rec;
  }

  #member(id: string): ConversationRecord {
    const rec = this.#conversations.get(id);
    if (!rec) throw usage('unknown conversation');
    if (rec.left || !rec.members.some((m) => m.deviceId === this.#self)) { // ct-ok: public ids
      throw forbidden('notMember', 'this device is not a member of the conversation (it left or was removed): nothing was sent');
    }
    return rec;
  }

  #others(members: readonly Member[]): string[] {
    return members.map((m) => m.deviceId).filter((d) => d !== this.#self); // ct-ok: public ids
  }

  #checkList(members: readonly Member[]): Member[] {
    if (members.length > MAX_MEMBERS) throw usage(`a conversation has at most ${MAX_MEMBERS} members`);
    try {
      return checkMembers(members.map((m) => ({ deviceId: m.deviceId, role: m.role, name: m.name })));
    } catch (cause) {
      throw new ParleyError('USAGE', 'bad member list: check the device ids (32 hex chars), roles, names (at most 100 chars) and that no device is listed twice', { cause });
    }
  }

  #setClaims(change: Change, claims: PendingClaim[]): void {
    change.claims = claims;
    change.writes.push([CK.claims, recordBytes(claims)]);
  }

  #setHeld(change: Change, held: HeldMessage[]): void {
    change.held = held;
    change.writes.push([CK.held, recordBytes(held)]);
  }

  #setOffers(change: Change, offers: JoinOffer[]): void {
    change.offers = offers;
    change.writes.push([CK.offers, recordBytes(offers)]);
  }

  /** Writes a change in one batch, then replaces the in-memory records. */
  async #apply(change: Change): Promise<void> {
    if (change.writes.length > 0) await this.#store.setMany(change.writes);
    if (change.conv) this.#conversations.set(change.conv.id, change.conv);
    if (change.conv && change.history) this.#history.set(change.conv.id, change.history);
    if (change.claims) this.#claims = change.claims;
    if (change.offers) this.#offers = change.offers;
    if (change.held) this.#held = change.held;
  }

  /** Runs `fn` after every earlier call finished (one change at a time). */
  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn);
    this.#queue = run.catch(() => undefined);
    return run;
  }
}

function assertMessageIdIn(id: string): void {
  try {
    assertMessageId(id);
  } catch {
    throw new ParleyError('MALFORMED_MESSAGE', 'conversation message refused: its message id has the wrong form; the frame was dropped');
  }
}

function info(rec: ConversationRecord): ConversationInfo {
  return {
    id: rec.id,
    owner: rec.owner,
    epoch: rec.epoch,
    hash: rec.hash,
    members: rec.members.map((m) => ({ ...m })),
    tickets: rec.tickets.map((t) => ({ ...t })),
    ...(rec.retentionDays ? { retentionDays: rec.retentionDays } : {}),
  };
}
