/**
 * The public shapes of conversations with several members on a {@link ParleyClient}: the
 * {@link Conversation} handle, handoff offers, and the events the client emits for them
 * (docs/architecture.md "Conversations with several members", "Handoff from the bot to a human
 * agent").
 */
import type { ArchiveOpenedEvent } from './archive-notices.js';
import type { OutgoingContent, ParleyError } from '@parley/protocol';
import type { Ticket, TicketChange } from '@parley/protocol/wire';
import type { ConversationInfo, ConversationMessage, Member } from '@parley/engine';
import type { ConsentDecision, ConsentReceipt } from '@parley/protocol';
import type { ConversationErasure } from './erasure.js';
import type { ConversationExport } from './export.js';

export type { Ticket, TicketChange } from '@parley/protocol/wire';
export type { ConversationInfo, ConversationMessage, Member, HistoryItem } from '@parley/engine';

/** A member as the app shows it: its certified role and name, and the safety number with this device when there is a session. */
export interface ConversationMember extends Member {
  /** 60 digits in groups of five, identical on both devices (absent for this device itself and before any contact). */
  readonly safetyNumber?: string;
}

/**
 * An agent who claimed this customer's ticket and asks to join (customer side). Everything in
 * it was checked: the agent's staff credential against the pinned org key (`name`, `roles`),
 * and that the relay's ticket is claimed by exactly this device. Show it in a consent dialog,
 * then call {@link Conversation.acceptAgent} or {@link Conversation.declineAgent}.
 */
export interface HandoffOffer {
  /** The conversation the ticket was opened for. */
  readonly conversation: string;
  /** The ticket id. */
  readonly ticket: string;
  readonly agent: {
    readonly deviceId: string;
    /** The certified display name (the issuer's word, never the relay's). */
    readonly name: string;
    readonly roles: readonly string[];
    /** The safety number with the agent's device. */
    readonly safetyNumber: string;
  };
}

/** What the customer shares with an agent it admits, and whether the bot stays. */
export interface AcceptAgentOptions {
  /** `'none'`, `'all'` (the last 500 kept), or the last `n` messages. */
  readonly history: 'none' | 'all' | { readonly last: number };
  /** `'stay'`: the bot keeps reading (and may answer); `'leave'`: it is removed from the member list. */
  readonly bot: 'stay' | 'leave';
}

/** The outcome of a fan-out: the message id, and the members it could not be encrypted to (each also reported as an `error` event). */
/** A conversation's compliance archive as the customer's client sees it ({@link Conversation.archive}). */
export interface ConversationArchive {
  readonly disclosed: boolean;
  /** Days the org keeps the archived messages (when disclosed). */
  readonly retentionDays?: number;
  /** Who may open the archive (staff roles, when disclosed). */
  readonly openers?: readonly string[];
  /** Members whose disclosure is missing, late or different (when some member disclosed one). */
  readonly undisclosed: readonly string[];
}

export interface ConversationSendResult {
  readonly id: string;
  readonly failed: readonly { readonly peer: string; readonly error: ParleyError }[];
}

/**
 * One conversation, as a thin handle over the device's conversation book and its send path.
 * Its fields are read live (epoch and members change as frames arrive).
 */
/** What `conversation.requestConsent` asks for (docs/threats.md P1). */
export interface ConsentRequestInput {
  /** Request id (1-64 chars of [A-Za-z0-9_-]); random when absent. */
  readonly id?: string;
  /** Why, in the customer's words (at most 200 chars). */
  readonly purpose: string;
  /** The personal-data fields asked for (1-32 names: a letter, then [A-Za-z0-9_]). */
  readonly fields: readonly string[];
  /** How long the values are kept, in days (0-3650). */
  readonly retentionDays: number;
  /** Who controls the data (at most 100 chars). */
  readonly controller: string;
}

/** A consent request as the customer's app shows it (`consentRequested`). */
export interface ConsentRequestInfo {
  readonly id: string;
  readonly purpose: string;
  readonly fields: readonly string[];
  readonly retentionDays: number;
  readonly controller: string;
  /** The requester's device id. */
  readonly from: string;
  /** The requester as the member list names it. */
  readonly requestedBy: { readonly name: string; readonly role: string };
}

/** A consent receipt (signed by the customer's identity key) and where it stands. */
export interface ConsentReceiptInfo extends ConsentReceipt {
  readonly decision: ConsentDecision;
  /** Granted, its signature verified on arrival, and not withdrawn. */
  readonly valid: boolean;
  /** A later receipt withdrew it. */
  readonly withdrawn: boolean;
}

/** What `conversation.requestForm` asks for. */
export interface FormRequestInput {
  /** Form id; random when absent. */
  readonly id?: string;
  readonly fields: readonly string[];
  /** The id of the consent request whose granted receipt must cover the values. */
  readonly consentRequest: string;
}

/** A form request as the customer's app shows it (`formRequested`). */
export interface FormRequestInfo {
  readonly id: string;
  readonly fields: readonly string[];
  readonly consentRequest: string;
  readonly from: string;
  readonly requestedBy: { readonly name: string; readonly role: string };
  /** The fields a valid, unwithdrawn receipt of this conversation covers now (only these can be sent). */
  readonly covered: readonly string[];
}

export interface Conversation {
  readonly id: string;
  /** The customer's device: the only device that changes the member list. */
  readonly owner: string;
  /** The member list's version: 1 at creation, +1 per change. */
  readonly epoch: number;
  readonly members: readonly ConversationMember[];
  /** The retention the owner set, in days (`startConversation(peers, { retentionDays })`): the owner's client erases the conversation then. */
  readonly retentionDays: number | undefined;
  /**
   * Sends to every other member: one end-to-end encrypted message per member over the pairwise
   * sessions (a session is started from the member's bundle when there is none), all with the
   * same message id. Resolves once the envelopes are in the outbox and, when connected, acked by
   * the relay.
   * @throws ParleyError `FORBIDDEN` reason `notMember` (this device is no longer a member),
   *   `USAGE` (unknown conversation, bad content), and when no member could be reached, the
   *   first member's error.
   */
  send(content: OutgoingContent): Promise<ConversationSendResult>;
  /** Messages (own, received, and history shared with this device marked `shared: true`), oldest first; the last `limit`. */
  history(limit?: number): ConversationMessage[];
  /**
   * Customer (owner): asks for a person. Opens a ticket in `queue` at the relay (the relay learns
   * the queue and an opaque reference, nothing of the conversation); the bot, when a member, is
   * told about the ticket's changes. Agents who claim it send a {@link HandoffOffer}.
   */
  requestHuman(o: { readonly queue: string; readonly reason?: string }): Promise<Ticket>;
  /**
   * A member that is not the owner (a bot running on a `ParleyClient`): asks the owner's device
   * to open a ticket (a `handoff` frame); the owner emits `handoffRequested`.
   */
  handoff(o: { readonly queue: string; readonly reason?: string }): Promise<void>;
  /**
   * Customer: admits the agent of `offer` after checking again that it is a verified staff device
   * (agent or supervisor) and holds the ticket's claim at the relay; sends the new member list to
   * every old and new member, then the chosen history to the agent alone.
   * @throws ParleyError `FORBIDDEN` reason `notClaimant` (the claim moved), `UNTRUSTED_IDENTITY`
   *   (not a verified agent), `TRANSPORT`.
   */
  acceptAgent(offer: HandoffOffer, o: AcceptAgentOptions): Promise<void>;
  /** Customer: refuses the agent: the ticket goes back to its queue, and the agent is told (`handoffDeclined`). Nothing is shared. */
  declineAgent(offer: HandoffOffer): Promise<void>;
  /**
   * Agent: hands the conversation on: the ticket goes back to a queue (`queue`, or its own) and
   * this device leaves the conversation. The next agent who claims it needs the customer's
   * consent again and sees only what the customer shares then.
   */
  transfer(o?: { readonly queue?: string }): Promise<void>;
  /** Agent or customer: ends the ticket; an agent leaves the conversation, a customer removes the agents from it. */
  close(): Promise<void>;
  /**
   * Customer: whether this conversation has a disclosed compliance archive (THREATS P2): true
   * only when every other member's org-signed archive disclosure was verified before the
   * conversation's first message; then its retention and who may open it, for the widget to
   * show. A disclosure that appeared later or was removed: `disclosed: false`, and `undisclosed`
   * names the members. Sealing to the archive is refused then (`FORBIDDEN` `archiveNotDisclosed`).
   */
  archive(): ConversationArchive;
  /**
   * A bot or agent: asks the customer for consent (purpose, fields, retention, controller); the
   * customer's app gets `consentRequested`, and its answer comes back as `consentAnswered`.
   * @throws ParleyError `USAGE` (bad request, or this device is the owner), `FORBIDDEN` `notMember`.
   */
  requestConsent(request: ConsentRequestInput): Promise<{ id: string }>;
  /**
   * Customer (owner): answers a consent request with a receipt signed by this device's identity
   * key, sent to every member.
   * @throws ParleyError `USAGE` for an unknown or already answered request.
   */
  answerConsent(requestId: string, answer: { readonly grant: boolean }): Promise<ConsentReceiptInfo>;
  /** Customer (owner): withdraws a granted receipt (a signed `withdrawn` receipt to every member). */
  withdrawConsent(receiptId: string): Promise<ConsentReceiptInfo>;
  /** The consent receipts of this conversation this device holds, oldest first. */
  consents(): ConsentReceiptInfo[];
  /** A bot or agent: asks the customer for a form whose values consent request `consentRequest` must cover. */
  requestForm(form: FormRequestInput): Promise<{ id: string }>;
  /**
   * Customer (owner): sends a form's values, only when a granted, unwithdrawn receipt of this
   * conversation covers every field given.
   * @throws ParleyError `FORBIDDEN` reason `noConsent` (`details.why`: `noForm`, `noReceipt`,
   *   `denied`, `withdrawn`, `fieldsNotCovered`): nothing left this device.
   */
  submitForm(formId: string, values: Readonly<Record<string, string>>): Promise<void>;
  /**
   * Customer (owner): erases the conversation (docs/threats.md P4): a signed erasure request to
   * every other member, its history and state deleted on this device (a tombstone of id, members
   * and receipts stays), the relay asked to purge this device's still-queued envelopes of it and
   * its tickets. Members answer with signed deletion receipts (event `erasureStatus`).
   * @throws ParleyError `FORBIDDEN` reason `notOwner`, `USAGE` (unknown or already erased).
   */
  erase(): Promise<ConversationErasure>;
  /** Customer (owner): where the erasure stands (receipts and missing members), `undefined` before {@link erase}. */
  erasure(): ConversationErasure | undefined;
  /**
   * The customer's copy (access and export): members, messages, consent receipts and deletion
   * receipts as JSON, and as one self-contained HTML page (no script, every value escaped).
   * @throws ParleyError `USAGE` for an unknown (or erased) conversation.
   */
  export(): ConversationExport;
}

/** `client.tickets`: the handoff queue (agents and supervisors). */
export interface ClientTickets {
  /** Tickets open at the relay (of one queue, or all), oldest first. @throws ParleyError `FORBIDDEN` reason `role` for a non-staff connection. */
  list(queue?: string): Promise<Ticket[]>;
  /**
   * Claims a ticket at the relay (atomic across relay nodes) and asks the customer to admit this
   * device (a `join` frame). The customer's client answers with a member list (`conversationJoined`)
   * or a decline (`handoffDeclined`).
   * @throws ParleyError `CONFLICT` reason `claimed` (another agent holds it), `FORBIDDEN`, `TRANSPORT`.
   */
  claim(ticketId: string): Promise<Ticket>;
}

/** Events of conversations on a {@link ParleyClient} (part of `ParleyClientEvents`). */
export interface ConversationEvents {
  /** A message in a conversation (plain 1:1 messages stay `message`). Reported once per (sender, id), also across crashes. */
  conversationMessage: ConversationMessage & {
    readonly conversationInfo?: ConversationInfo;
    /** It was reported missing before (`conversationGap`) and arrived after all. */
    readonly gapClosed?: boolean;
  };
  /** The member list changed (also when this device created the conversation or changed it). */
  membersChanged: {
    readonly conversation: string;
    readonly epoch: number;
    readonly members: ConversationMember[];
    readonly joined: Member[];
    readonly left: Member[];
  };
  /** Customer side: a member (the bot) asked for a person, and this client opened the ticket. */
  handoffRequested: { readonly conversation: string; readonly queue: string; readonly reason: string; readonly by: string; readonly ticket: Ticket };
  /** Customer side: an agent claimed the ticket; ask for consent. */
  handoffOffer: HandoffOffer;
  /** Agent side: the customer declined this device. */
  handoffDeclined: { readonly ticket: string };
  /** Agent side: the history the customer chose to share (items marked `shared: true`). */
  historyShared: { readonly conversation: string; readonly from: string; readonly items: ConversationMessage[] };
  /** Agent side: the customer admitted this device. */
  conversationJoined: { readonly conversation: string; readonly members: ConversationMember[] };
  /** Messages of `member` with these sequence numbers are still missing `gapTimeoutMs` after later ones arrived (docs/threats.md C25). */
  conversationGap: { readonly conversation: string; readonly member: string; readonly seqs: readonly number[] };
  /** A frame from `from` named another member list than this device's for the same epoch (it was still delivered if the sender is a member). */
  membersMismatch: { readonly conversation: string; readonly from: string };
  /** A ticket changed at the relay (staff: the live queue; customers and notify devices: their own tickets). */
  ticket: { readonly ticket: Ticket; readonly change: TicketChange };
  /** A ticket of this device waited longer than the relay's `ticketUnclaimedMs`. */
  ticketUnclaimed: { readonly ticket: Ticket; readonly waitingMs: number };
  /** Customer side: a member asks for consent (render purpose, fields, retention, controller; answer with `answerConsent`). */
  consentRequested: { readonly conversation: string; readonly request: ConsentRequestInfo };
  /** Any member: the customer's signed receipt (an answer or a withdrawal) arrived and verified. */
  consentAnswered: { readonly conversation: string; readonly from: string; readonly receipt: ConsentReceiptInfo };
  /** Customer side: a member asks for a form (`covered`: the fields a valid receipt covers). */
  formRequested: { readonly conversation: string; readonly form: FormRequestInfo };
  /** Requester side: a form's values, covered by a valid receipt of this conversation. */
  formValues: { readonly conversation: string; readonly from: string; readonly formId: string; readonly receipt: string; readonly values: Readonly<Record<string, string>> };
  /** Customer side: an erasure this device asked for changed (it started, or a member's signed deletion receipt arrived). */
  erasureStatus: ConversationErasure;
  /** Member side: the owner erased a conversation; it was deleted here and a signed receipt sent. */
  conversationErased: { readonly conversation: string; readonly owner: string };
  /**
   * The compliance officer opened (or exported) the archive of a conversation this device
   * archived messages to, giving `reason` (conversations/archive-notices.ts). Once per opening.
   */
  archiveOpened: ArchiveOpenedEvent;
}

/** The conversation events whose listeners mean the app is ready for conversation frames. */
export const CONVERSATION_EVENT_NAMES: readonly (keyof ConversationEvents)[] = [
  'conversationMessage',
  'membersChanged',
  'handoffRequested',
  'handoffOffer',
  'handoffDeclined',
  'historyShared',
  'conversationJoined',
  'erasureStatus',
  'conversationErased',
  'consentRequested',
  'consentAnswered',
  'formRequested',
  'formValues',
];
