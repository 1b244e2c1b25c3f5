/**
 * The host's archive outbox (README "Compliance archive: the bot's messages"): sealed archive
 * submissions the enclave committed to its sealed archive outbox and posted here (`archive`),
 * appended at the relay (`archiveAppend`) per archive ref in commit order, one in flight per ref
 * (a sender's sequence numbers must reach the chain in order). Once the relay answers, the
 * enclave is told (`archived`) and drops the submission. A transient failure keeps it for a
 * retry (on login and on a timer), sent as a `retry`: the relay answers a submission it already
 * holds with that entry instead of appending it twice. A submission refused for good (a bad
 * signature: never expected) is logged and dropped. A submission for a conversation a member
 * erased meanwhile (the relay's `FORBIDDEN` `archiveErased`: the ref's tombstone) is expected,
 * not an alarm: logged at `info` (`archive.erasedRef`) and dropped like the others, so the
 * enclave drops it from its sealed outbox too. Runs in the host: it only holds sealed bytes.
 */
import { isParleyError } from '@parley/protocol/verify';
import { toWireError } from '../rpc/messages.js';
import { isTransient } from './transient.js';
import type { BotLogger } from './supervisor.js';

/** A sealed submission to append. */
export interface OutgoingArchive {
  readonly key: string;
  readonly ref: string;
  readonly submission: Uint8Array;
  /** It may have been appended before (posted again after an enclave restart). */
  readonly retry: boolean;
}

export interface ArchiveOutboxOptions {
  /** The relay's `archiveAppend`. */
  append(ref: string, submission: Uint8Array, options: { retry: boolean }): Promise<number>;
  /** False while logged out: nothing is attempted then. */
  canSend(): boolean;
  /** The relay holds it (or refused it for good): the enclave may drop it (`archived`). */
  onSettled(key: string): Promise<void>;
  /** Something finished (for idle waiters). */
  onChange(): void;
  logger: BotLogger;
}

export class ArchiveOutbox {
  readonly #opts: ArchiveOutboxOptions;
  readonly #queues = new Map<string, OutgoingArchive[]>();
  readonly #sending = new Set<string>();
  /** Every key queued, so a re-post (after a restart) is not queued twice. */
  readonly #known = new Set<string>();

  constructor(options: ArchiveOutboxOptions) {
    this.#opts = options;
  }

  /** True when nothing is queued or in flight. */
  get empty(): boolean {
    return this.#queues.size === 0 && this.#sending.size === 0;
  }

  /** Queues a submission (once per key; a re-post marks the queued one as a retry) and tries to append it. */
  push(out: OutgoingArchive): void {
    const queue = this.#queues.get(out.ref) ?? [];
    const at = queue.findIndex((q) => q.key === out.key); // ct-ok: public record keys
    if (at >= 0) {
      if (out.retry) queue[at] = { ...queue[at]!, retry: true };
    } else if (!this.#known.has(out.key)) {
      // In commit order (the enclave's outbox keys sort so): two commits' posts may cross, and a
      // sender's sequence numbers must reach the chain in order. The head may be in flight.
      let i = queue.length;
      while (i > (this.#sending.has(out.ref) ? 1 : 0) && queue[i - 1]!.key > out.key) i--;
      queue.splice(i, 0, out);
      this.#known.add(out.key);
    }
    if (queue.length > 0) this.#queues.set(out.ref, queue);
    this.#pump(out.ref);
  }

  /** Retries every ref's head (after a login, and periodically). */
  pumpAll(): void {
    for (const ref of this.#queues.keys()) this.#pump(ref);
  }

  #pump(ref: string): void {
    const queue = this.#queues.get(ref);
    const head = queue?.[0];
    if (!queue || !head || this.#sending.has(ref) || !this.#opts.canSend()) return;
    this.#sending.add(ref);
    this.#opts
      .append(ref, head.submission, { retry: head.retry })
      .then(
        () => 'appended' as const,
        (e: unknown) => {
          if (isTransient(e)) return 'retry' as const;
          if (isParleyError(e, 'FORBIDDEN') && e.details?.reason === 'archiveErased') { // ct-ok: public error reason
            this.#opts.logger.info({ event: 'archive.erasedRef', ref }, 'the conversation was erased: its archive ref takes no more entries, submission dropped');
            return 'dropped' as const;
          }
          this.#opts.logger.error({ event: 'archive.refused', ref, error: toWireError(e) }, 'the relay refused an archive submission');
          return 'dropped' as const;
        },
      )
      .then(async (r) => {
        if (r === 'retry') {
          // The relay may have appended it before the answer was lost: the next try says so.
          if (queue[0] === head) queue[0] = { ...head, retry: true };
          this.#sending.delete(ref);
          return;
        }
        try {
          await this.#opts.onSettled(head.key);
        } catch {
          // The enclave is restarting: it posts the submission again (as a retry), which the relay answers idempotently.
        }
        this.#sending.delete(ref);
        if (queue[0]?.key === head.key) queue.shift(); // ct-ok: public record keys
        this.#known.delete(head.key);
        if (queue.length === 0) this.#queues.delete(ref);
        this.#pump(ref);
      })
      .finally(() => this.#opts.onChange());
  }
}
