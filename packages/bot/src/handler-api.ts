/**
 * The handler API: what a bot developer writes. Types only; the handler runs inside the enclave.
 *
 * @example
 * // handler.ts
 * import type { BotHandler } from '@parley/bot';
 * const handle: BotHandler = async (message, ctx) => {
 *   if (message.text) await ctx.reply(`You said: ${message.text}`);
 * };
 * export default handle;
 */
import type { MessageContent, OutgoingContent } from '@parley/protocol/wire';

/**
 * A message as the handler sees it: the one content model of every Parley side (exactly one of
 * `text`, `json`, `binary`, per `type`, as in `ParleyClient`'s messages) plus its facts.
 */
export type BotMessage = MessageContent & {
  /** Sender's device id. */
  readonly from: string;
  /** The message id (unique per sender). */
  readonly id: string;
  /** Sender's clock when it was sent, ms since the epoch. */
  readonly sentAt: number;
  /**
   * True when the enclave restarted while an earlier run of the handler for this message was
   * unfinished, so this is a second run. Replies of both runs carry the same ids (the nth reply
   * to a message always has the same id), so the customer sees each reply once as long as the
   * handler replies deterministically.
   */
  readonly redelivered: boolean;
};

/** What the handler can do. */
export interface BotContext {
  /**
   * Sends a reply to the sender, end-to-end encrypted: a `string` is text, a `Uint8Array` is
   * binary, anything else is JSON (the same rule as `ParleyClient.send`).
   */
  reply(content: OutgoingContent): Promise<void>;
  /** The safety number of this conversation (compare it with the customer out of band). */
  safetyNumber(): string;
  /** The bot's own device id. */
  readonly botDeviceId: string;
}

/** The default export of a handler module. */
export type BotHandler = (message: BotMessage, ctx: BotContext) => void | Promise<void>;

