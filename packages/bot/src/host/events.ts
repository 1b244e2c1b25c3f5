/**
 * The events a running {@link Bot} emits (`bot.on(name, listener)`), so an app can react to a
 * revoked key, a relay outage or a failing handler instead of finding out from its customers.
 * Never carries plaintext, keys or the handler's error message (unless `dev: true`).
 */
import type { ParleyError } from '@parley/protocol/errors';

/** Why a handler run failed. */
export type HandlerFailureKind =
  /** The handler did not settle within `handlerTimeoutMs`; the run was abandoned. */
  | 'timeout'
  /** The handler threw or rejected. */
  | 'threw'
  /** The handler asked for a reply larger than the protocol allows. */
  | 'oversize';

/** Payload of `handlerFailed`. */
export interface HandlerFailedEvent {
  readonly kind: HandlerFailureKind;
  /** The customer's device id (the host knows it already: it is the envelope's sender). */
  readonly peer: string;
  /** The message id the run was for. */
  readonly messageId: string;
  /** How many runs of this message have failed so far (1 on the first failure). */
  readonly failures: number;
  /** True when this failure reached `maxHandlerFailures` and the message was quarantined (never run again). */
  readonly quarantined: boolean;
  /** Whether the failure reply reached the customer's outbox. */
  readonly failureReplySent: boolean;
  /** The error code the handler threw, when it threw a `ParleyError`. */
  readonly code?: string;
  /** With `code`: the SDK error's `details.reason`, when it has one (e.g. `notMember` for a reply in a conversation the bot was removed from). */
  readonly reason?: string;
  /** Only with `dev: true`: the handler's error message, file and line (may carry plaintext). */
  readonly dev?: { readonly message: string; readonly file?: string; readonly line?: number; readonly stack?: string };
}

/** Every event of a {@link Bot}, by name. */
export interface BotEvents {
  /** Logged in to the relay (first time and after every reconnect). */
  connected: { readonly deviceId: string };
  /** The connection dropped; the bot reconnects by itself unless the login was refused. */
  disconnected: { readonly reason: string };
  /**
   * The relay refused the login (API key unknown or revoked, origin mismatch, clock skew, …).
   * The bot stops retrying: fix the cause and start it again. `error.details.reason` says which.
   */
  authFailed: { readonly error: ParleyError };
  /** A handler run failed (see {@link HandlerFailedEvent}). */
  handlerFailed: HandlerFailedEvent;
  /** The relay reports few one-time prekeys left; the bot publishes more by itself. */
  prekeysLow: { readonly remaining: number };
  /** The enclave crashed and is being restarted from its sealed state. */
  enclaveRestarted: { readonly crashes: number };
  /** A handoff ticket naming this bot to notify waited unclaimed (see {@link HandoffUnclaimedEvent}). */
  handoffUnclaimed: HandoffUnclaimedEvent;
}

/**
 * Payload of `handoffUnclaimed`: the relay reported that a handoff ticket whose `notify` is this
 * bot (one a customer's client opened after `ctx.handoff`, or by itself in a conversation with
 * the bot) waited longer than the relay's `ticketUnclaimedMs` without an agent claiming it. The
 * bot also sends `handoffUnclaimedReply` into the customer's conversation (once per ticket).
 * Metadata only, as the relay knows it.
 */
export interface HandoffUnclaimedEvent {
  /** The relay's ticket id. */
  readonly ticketId: string;
  /** The customer's device id (the ticket's owner). */
  readonly customer: string;
  /** The ticket's queue. */
  readonly queue: string;
  /** How long it has been waiting, ms. */
  readonly waitingMs: number;
}
