/**
 * The host's reply outbox: envelopes the enclave committed to its sealed outbox and posted
 * here, sent to the relay per recipient in commit order, one in flight per recipient, so a
 * customer gets replies in the order the handler sent them. A transient failure keeps the head
 * for a retry ({@link ReplyOutbox.pumpAll}, on login and on a timer); a stored (or for-good
 * refused) envelope is reported with `onSettled` so the enclave can drop it from its outbox.
 * Runs in the host: it only ever holds ciphertext.
 */
import type { SendRequest } from '@parley/protocol/wire';
import { toWireError } from '../rpc/messages.js';
import { isTransient } from './transient.js';
import type { BotLogger } from './supervisor.js';

/** An envelope ready to leave. */
export interface OutgoingReply {
  readonly to: string;
  readonly id: string;
  readonly envelope: Uint8Array;
}

export interface ReplyOutboxOptions {
  /** Stores one envelope on the relay. */
  send(req: SendRequest): Promise<unknown>;
  /** False while logged out: nothing is attempted then. */
  canSend(): boolean;
  /** The relay stored the envelope (or refused it for good). */
  onSettled(to: string, id: string): void;
  /** Something finished (for idle waiters). */
  onChange(): void;
  logger: BotLogger;
}

export class ReplyOutbox {
  readonly #opts: ReplyOutboxOptions;
  readonly #queues = new Map<string, { id: string; envelope: Uint8Array }[]>();
  readonly #sending = new Set<string>();

  constructor(options: ReplyOutboxOptions) {
    this.#opts = options;
  }

  /** True when nothing is queued or in flight. */
  get empty(): boolean {
    return this.#queues.size === 0 && this.#sending.size === 0;
  }

  /** Queues a reply (once per id) and tries to send it. */
  push(out: OutgoingReply): void {
    const queue = this.#queues.get(out.to) ?? [];
    if (!queue.some((q) => q.id === out.id)) queue.push({ id: out.id, envelope: out.envelope });
    this.#queues.set(out.to, queue);
    this.#pump(out.to);
  }

  /** Retries every recipient's head (after a login, and periodically). */
  pumpAll(): void {
    for (const to of this.#queues.keys()) this.#pump(to);
  }

  #pump(to: string): void {
    const queue = this.#queues.get(to);
    const head = queue?.[0];
    if (!queue || !head || this.#sending.has(to) || !this.#opts.canSend()) return;
    this.#sending.add(to);
    this.#opts
      .send({ to, id: head.id, envelope: head.envelope })
      .then(
        () => 'sent' as const,
        (e: unknown) => {
          if (isTransient(e)) return 'retry' as const;
          this.#opts.logger.error({ event: 'send.refused', to, id: head.id, error: toWireError(e) }, 'the relay refused a reply');
          return 'dropped' as const;
        },
      )
      .then((r) => {
        this.#sending.delete(to);
        if (r === 'retry') return;
        this.#opts.onSettled(to, head.id);
        if (queue[0] === head) queue.shift();
        if (queue.length === 0) this.#queues.delete(to);
        this.#pump(to);
      })
      .finally(() => this.#opts.onChange());
  }
}
