/**
 * Loading and running the developer's handler. Runs only inside the enclave.
 *
 * The handler sees plaintext; nothing it returns or throws leaves the enclave except as a typed
 * `{ code, message }` whose message is fixed by the SDK (see `toWireError`).
 */
import { ParleyError } from '@parley/protocol';

import type { BotHandler } from '../handler-api.js';

export type { BotHandler, BotMessage, BotContext } from '../handler-api.js';

/**
 * Imports the handler module and returns its default export (or named `handle`).
 * @throws ParleyError `USAGE` if the module exports no handler function.
 */
export async function loadHandler(url: string): Promise<BotHandler> {
  let mod: { default?: unknown; handle?: unknown };
  try {
    mod = (await import(url)) as typeof mod;
  } catch (e) {
    throw new ParleyError('USAGE', 'the handler module failed to load', { cause: e });
  }
  const fn = typeof mod.default === 'function' ? mod.default : mod.handle;
  if (typeof fn !== 'function') throw new ParleyError('USAGE', 'the handler module must export a default function (or `handle`)');
  return fn as BotHandler;
}

/**
 * Runs handler jobs: in order within one conversation, concurrently across conversations, at
 * most `maxConcurrent` at once.
 */
export class HandlerQueue {
  readonly #chains = new Map<string, Promise<void>>();
  readonly #max: number;
  #running = 0;
  readonly #waiting: (() => void)[] = [];

  constructor(maxConcurrent: number) {
    this.#max = maxConcurrent;
  }

  /** Queues `job` behind earlier jobs of the same `peer`. */
  push(peer: string, job: () => Promise<void>): void {
    const prev = this.#chains.get(peer) ?? Promise.resolve();
    const next = prev.then(async () => {
      await this.#slot();
      try {
        await job();
      } finally {
        this.#running--;
        this.#waiting.shift()?.();
      }
    });
    this.#chains.set(peer, next);
    void next.finally(() => {
      if (this.#chains.get(peer) === next) this.#chains.delete(peer);
    });
  }

  async #slot(): Promise<void> {
    if (this.#running < this.#max) {
      this.#running++;
      return;
    }
    await new Promise<void>((r) => this.#waiting.push(r));
    this.#running++;
  }

  /** Jobs queued or running. */
  get pending(): number {
    return this.#chains.size;
  }
}
