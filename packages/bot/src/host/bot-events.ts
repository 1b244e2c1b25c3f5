/**
 * The typed emitter behind `bot.on` / `bot.off` ({@link BotEvents}). A listener that throws
 * does not stop the others or the bot: the failure is logged (its error name only, never its
 * message, which could carry anything the app put there).
 */
import type { BotEvents } from './events.js';
import type { BotLogger } from './supervisor.js';

/** A listener of one bot event. */
export type BotEventListener<K extends keyof BotEvents> = (value: BotEvents[K]) => void;

export class BotEventEmitter {
  readonly #listeners = new Map<keyof BotEvents, Set<BotEventListener<never>>>();
  readonly #logger: BotLogger;

  constructor(logger: BotLogger) {
    this.#logger = logger;
  }

  /** Adds a listener; returns a function that removes it. */
  on<K extends keyof BotEvents>(event: K, listener: BotEventListener<K>): () => void {
    let set = this.#listeners.get(event);
    if (!set) this.#listeners.set(event, (set = new Set()));
    set.add(listener as BotEventListener<never>);
    return () => this.off(event, listener);
  }

  off<K extends keyof BotEvents>(event: K, listener: BotEventListener<K>): void {
    this.#listeners.get(event)?.delete(listener as BotEventListener<never>);
  }

  listenerCount(event: keyof BotEvents): number {
    return this.#listeners.get(event)?.size ?? 0;
  }

  /** Calls every listener of `event` in the order they were added. */
  emit<K extends keyof BotEvents>(event: K, value: BotEvents[K]): void {
    for (const listener of [...(this.#listeners.get(event) ?? [])]) {
      try {
        (listener as BotEventListener<K>)(value);
      } catch (e) {
        this.#logger.warn({ event: 'listenerFailed', botEvent: event, errorName: e instanceof Error ? e.name : typeof e }, 'a bot event listener threw');
      }
    }
  }
}
