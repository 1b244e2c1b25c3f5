/**
 * Loading and running the developer's handler. Runs only inside the enclave.
 *
 * The handler sees plaintext; nothing it returns or throws leaves the enclave except as a typed
 * `{ code, message }` whose message is fixed by the SDK (see `toWireError`).
 */
import { fileURLToPath } from 'node:url';
import { ParleyError } from '@parley/protocol';

import type { BotHandler } from '../handler-api.js';

export type { BotHandler, BotMessage, BotContext } from '../handler-api.js';

/**
 * Why a module failed to load, as the developer needs it: the error's name and first message
 * line, and the first `file:line` in its stack (Node puts the offending line first in a syntax
 * error's stack, and a module that threw while evaluated is the top frame).
 */
export function loaderReason(e: unknown): string {
  if (!(e instanceof Error)) return 'a non-error value was thrown';
  const located = /(file:\/\/[^\s)]+?):(\d+)/.exec(e.stack ?? '');
  const where = located ? ` (at ${fileURLToPath(located[1]!)}:${located[2]})` : '';
  return `${e.name}: ${e.message.split('\n')[0] ?? ''}${where}`.slice(0, 400);
}

/**
 * Imports the handler module and returns its default export (or named `handle`).
 * @throws ParleyError `USAGE` naming the module and the loader's reason (file, line) when it
 *   fails to load, or when it exports no handler function.
 */
export async function loadHandler(url: string): Promise<BotHandler> {
  let mod: { default?: unknown; handle?: unknown };
  try {
    mod = (await import(url)) as typeof mod;
  } catch (e) {
    throw new ParleyError('USAGE', `the handler module ${fileURLToPath(url)} failed to load: ${loaderReason(e)}`, { cause: e });
  }
  const fn = typeof mod.default === 'function' ? mod.default : mod.handle;
  if (typeof fn !== 'function') {
    throw new ParleyError('USAGE', `the handler module ${fileURLToPath(url)} must export a default function (or \`handle\`)`);
  }
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
