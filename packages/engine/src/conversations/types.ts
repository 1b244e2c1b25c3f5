/**
 * The public types of conversations with several members (docs/architecture.md "Conversations
 * with several members"): members, frames, history items, what the {@link ConversationBook}
 * tells its caller. Types only.
 *
 * @module
 */
import type { ConsentReceipt, ConsentRequestBody, MessageContent } from '@parley/protocol';
import type { ConsentEvent, FormRequestBody, FormValuesBody } from './consent.js';
import type { ErasureStatus } from './erasure.js';

/** A member's role in a conversation: the customer (the owner), a bot, or certified staff. */
export type MemberRole = 'customer' | 'bot' | 'agent' | 'supervisor';

/** One member of a conversation, as the owner (the customer's device) lists it. */
export interface Member {
  /** The member's device id (32 hex chars). */
  readonly deviceId: string;
  /** `customer` for the owner; `bot`, `agent` or `supervisor` as its certificate says. */
  readonly role: MemberRole;
  /** Display name (at most 100 chars), from the certificate for staff and bots. */
  readonly name: string;
}

/** The content of a message inside a frame: exactly the field of its `type`. */
export interface FrameContent {
  readonly type: 'text' | 'json' | 'binary';
  readonly text?: string;
  readonly json?: unknown;
  /** Binary content, standard base64. */
  readonly b64?: string;
}

/** The kinds of frames. */
export type FrameKind = 'message' | 'members' | 'handoff' | 'join' | 'decline' | 'history' | 'leave' | 'erase' | 'deletionReceipt' | 'consentRequest' | 'consentReceipt' | 'formRequest' | 'formValues';

/**
 * The body of every engine payload of kind `'conversation'`: UTF-8 JSON, at most
 * {@link MAX_FRAME_BYTES}, strictly validated on decode (`frame.ts`).
 */
export interface Frame {
  readonly v: 1;
  /** Conversation id; absent for `join` and `decline`. */
  readonly c?: string;
  /** Sender's current epoch (0 for `join` and `decline`). */
  readonly e: number;
  /** Sender's current members hash ('' for `join` and `decline`). */
  readonly h: string;
  /**
   * Sender's per-conversation sequence number, from 1, for the frames every member receives
   * (`message`, `members`, `leave`); 0 for the frames sent to one device only (`handoff`,
   * `history`, `join`, `decline`), so no other member sees a gap.
   */
  readonly s: number;
  readonly k: FrameKind;
  /** `message`: the content. */
  readonly m?: FrameContent;
  /** `members`: the new member list. */
  readonly members?: readonly Member[];
  /** `members` (admitting a claimant), `join`, `decline`, `history`: the ticket id. */
  readonly ticket?: string;
  /** `handoff`: the queue asked for. */
  readonly queue?: string;
  /** `handoff`: why (at most 500 chars). */
  readonly reason?: string;
  /** `join` (and optionally `decline`): the ticket's ref. */
  readonly ref?: string;
  /** `history`: the shared items, oldest first. */
  readonly items?: readonly HistoryItem[];
  /** `consentRequest`: what is asked for (consent.ts). */
  readonly consent?: ConsentRequestBody;
  /** `consentReceipt`: the owner's signed receipt. */
  readonly receipt?: ConsentReceipt;
  /** `formRequest`: the fields asked for and the consent request covering them. */
  readonly form?: FormRequestBody;
  /** `formValues`: the values, the form and the receipt covering them. */
  readonly values?: FormValuesBody;
  /** `erase`, `deletionReceipt`: the signer's time. */
  readonly at?: number;
  /** `erase`: the members asked (the signed request's list). */
  readonly to?: readonly string[];
  /** `deletionReceipt`: SHA-256 (hex) of the erasure request. */
  readonly req?: string;
  /** `erase`, `deletionReceipt`: the Ed25519 signature (base64). */
  readonly sig?: string;
  /** `members` (from the owner): the conversation's retention, in days, when it has one. */
  readonly ret?: number;
}

/** One message of a shared history bundle. */
export interface HistoryItem {
  /** Who sent it (device id). */
  readonly from: string;
  readonly name: string;
  readonly role: MemberRole;
  /** Its message id. */
  readonly id: string;
  readonly sentAt: number;
  readonly m: FrameContent;
}

/** A conversation as this device knows it. */
export interface ConversationInfo {
  /** 22 chars of base64url (16 random bytes). */
  readonly id: string;
  /** The owner's device id (the customer's device; only it changes the member list). */
  readonly owner: string;
  /** Member-list epoch: 1 at creation, +1 per change. */
  readonly epoch: number;
  /** SHA-256 (hex) of the canonical JSON of `{ epoch, id, members, owner }` (members sorted by device id). */
  readonly hash: string;
  readonly members: Member[];
  /** Owner side: the relay tickets opened for this conversation (`noteTicket`). */
  readonly tickets: { id: string; ref: string }[];
  /** The retention the owner set (days): the owner's client erases the conversation when it runs out. */
  readonly retentionDays?: number;
}

/** Who sent a message: the member as listed, or, for imported history, as the bundle named it. */
export type MessageSender = Member | { readonly deviceId: string; readonly name: string; readonly role: MemberRole };

/** A message of a conversation: sent by this device, received, or imported from shared history. */
export interface ConversationMessage {
  readonly conversation: string;
  /** Sender device id. */
  readonly from: string;
  /** Message id (the same for every recipient of one fan-out). */
  readonly id: string;
  /** Sender's sequence number in the conversation (0 for imported history). */
  readonly seq: number;
  /** Sender's clock, ms since the epoch. */
  readonly sentAt: number;
  readonly content: MessageContent;
  /** True for messages imported from a history bundle the owner shared. */
  readonly shared: boolean;
  readonly sender: MessageSender;
}

/** What {@link ConversationBook.receive} made of a frame. */
export type ConversationEvent =
  /** Consent requests, receipts, forms and form values (consent.ts). */
  | ConsentEvent
  /** Already received (same sender and sequence number, or an old member-list epoch): ignore. */
  | { readonly kind: 'duplicate' }
  /**
   * A message. `membersMismatch`: the sender's members hash differs from ours at the same epoch
   * (report it). `gapClosed`: it closed a gap reported before (`dueGaps`).
   */
  | { readonly kind: 'message'; readonly message: ConversationMessage; readonly membersMismatch?: boolean; readonly gapClosed?: boolean }
  /**
   * A new member list from the owner; `created` when this device learnt of the conversation now.
   * `released`: messages held before (see `held`) whose senders this list admits, now applied
   * (sequence numbers noted, kept in the history): deliver them like `message` events.
   */
  | {
      readonly kind: 'members';
      readonly conversation: ConversationInfo;
      readonly joined: Member[];
      readonly left: Member[];
      readonly created: boolean;
      readonly released?: ConversationMessage[];
    }
  /**
   * A message from a device not in this device's member list that names a newer member list
   * (the owner's change admitting it may still be on its way, in another sender's queue): kept,
   * at most 50, and released by the `members` event that admits its sender (else dropped then).
   * Nothing to show now; consume the engine message.
   */
  | { readonly kind: 'held' }
  /** Owner side: a member asks for a human in `queue`. */
  | { readonly kind: 'handoff'; readonly conversation: ConversationInfo; readonly from: string; readonly queue: string; readonly reason: string; readonly membersMismatch?: boolean }
  /** Customer side: an agent claimed `ticket`; NOT yet a member (checking the claim at the relay is the caller's job). */
  | { readonly kind: 'join'; readonly conversation: ConversationInfo; readonly agent: string; readonly ticket: string; readonly ref: string }
  /** Agent side: the customer declined. */
  | { readonly kind: 'decline'; readonly ticket: string }
  /** Agent side: the history the owner shared (items marked `shared: true`). */
  | { readonly kind: 'history'; readonly conversation: ConversationInfo; readonly items: ConversationMessage[] }
  /** A member left; the owner should call `prepareMembers` without it. */
  | { readonly kind: 'leave'; readonly conversation: ConversationInfo; readonly member: string; readonly membersMismatch?: boolean }
  /**
   * Member side: the owner's valid erasure request; this device deleted the conversation's
   * records. Send `reply` (the signed deletion receipt) to the owner.
   */
  | { readonly kind: 'erased'; readonly conversation: string; readonly owner: string; readonly reply: PreparedFrame }
  /** Owner side: a member's valid deletion receipt; `status` is where the erasure stands. */
  | { readonly kind: 'deletionReceipt'; readonly conversation: string; readonly member: string; readonly status: ErasureStatus };

/** {@link ConversationBook.prepareMessage}'s answer: the frame to send and the message as kept. */
export interface PreparedMessage extends PreparedFrame {
  /** The message as this device's history keeps it. */
  readonly message: ConversationMessage;
  /**
   * How many messages this device sent in the conversation before this one (0, 1, 2, …: the
   * compliance archive's sender sequence number); `undefined` when the message id was prepared
   * before (nothing new to archive).
   */
  readonly ownIndex: number | undefined;
}

/** A frame to send: encrypt `frame` as an engine payload of type `'conversation'` to every recipient. */
export interface PreparedFrame {
  readonly recipients: string[];
  readonly frame: Uint8Array;
}

/** Facts the caller knows about a received frame (from the engine's decrypted message). */
export interface ReceiveFacts {
  /** The engine message id. */
  readonly messageId: string;
  /** The sender's clock (inner payload). */
  readonly sentAt: number;
  /** Set when the sender holds a verified staff credential (`engine.peerStaff`). */
  readonly senderStaff?: { readonly roles: readonly string[]; readonly displayName: string };
}

/** Gaps due for reporting: per conversation and member. */
export interface ConversationGap {
  readonly conversation: string;
  readonly member: string;
  readonly seqs: number[];
}
