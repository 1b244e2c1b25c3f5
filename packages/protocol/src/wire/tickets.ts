/**
 * Handoff queues on the relay (docs/architecture.md "Handoff from the bot to a human agent"):
 * tickets with metadata only. A ticket names the customer's device, an opaque reference the
 * customer's client chose (never the conversation id), the queue and who claimed it; nothing of
 * the conversation. The customer's client opens a ticket for itself; agents and supervisors
 * list and claim; a claim is atomic, also across relay nodes.
 */

/** Queue names and ticket references: `[A-Za-z0-9_-]{1,64}`. */
export const TICKET_NAME_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
/** Ticket ids: 22 characters of base64url (16 random bytes). */
export const TICKET_ID_PATTERN = /^[A-Za-z0-9_-]{22}$/;
/** Default time a ticket may wait unclaimed before `ticketUnclaimed` is pushed (relay option `ticketUnclaimedMs`). */
export const DEFAULT_TICKET_UNCLAIMED_MS = 120_000;

/** `waiting` in its queue, or `claimed` by one agent. A closed ticket is deleted. */
export type TicketState = 'waiting' | 'claimed';

/** A ticket as the relay keeps and shows it. */
export interface Ticket {
  readonly id: string;
  readonly queue: string;
  /** The customer's device id (the device that opened the ticket). */
  readonly customer: string;
  /** Opaque reference chosen by the customer's client (maps to its conversation; the relay learns nothing from it). */
  readonly ref: string;
  /** A device told about the ticket's changes beside the customer (the bot that asked for the handoff). */
  readonly notify?: string;
  readonly openedAt: number;
  /** When it (last) started waiting: opened, or released back to a queue. */
  readonly waitingSince: number;
  readonly state: TicketState;
  readonly claimedBy?: string;
  readonly claimedAt?: number;
}

/** What changed in a {@link TicketUpdate}. */
export type TicketChange = 'opened' | 'claimed' | 'released' | 'closed';

/** Pushed as `ticket` to staff (agents, supervisors) on every node, to the customer and to the notify device. */
export interface TicketUpdate {
  readonly ticket: Ticket;
  readonly change: TicketChange;
}

/** Pushed as `ticketUnclaimed` to the customer and the notify device, once per waiting period. */
export interface TicketUnclaimed {
  readonly ticket: Ticket;
  readonly waitingMs: number;
}

export interface TicketOpenRequest {
  readonly queue: string;
  readonly ref: string;
  readonly notify?: string;
}
export interface TicketListRequest {
  readonly queue?: string;
}
export interface TicketIdRequest {
  readonly ticketId: string;
}
export interface TicketReleaseRequest {
  readonly ticketId: string;
  /** Move it to another queue (a transfer or an escalation). */
  readonly queue?: string;
}
