/**
 * The widget's conversation history, kept in the same sealed {@link KeyValueStore} as the
 * device state (records `app/history/<n>`), so it is encrypted at rest like everything else and
 * a reload shows the conversation again. A record that fails its integrity check is skipped and
 * reported (`STORAGE_INTEGRITY` with its record id); the others still load.
 */
import { isParleyError, type ParleyError } from '@parley/protocol/errors';
import type { KeyValueStore } from '@parley/client';
import type { ChatItem } from './ui.js';

const PREFIX = 'app/history/';
/** Older items are dropped beyond this many (a widget, not an archive). */
export const MAX_HISTORY = 500;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class ChatHistory {
  readonly #store: KeyValueStore;
  #next: number;
  readonly items: ChatItem[];
  /** Records that failed to open. */
  readonly failures: ParleyError[];

  private constructor(store: KeyValueStore, items: ChatItem[], next: number, failures: ParleyError[]) {
    this.#store = store;
    this.items = items;
    this.#next = next;
    this.failures = failures;
  }

  /** Loads every readable record, in order. */
  static async load(store: KeyValueStore): Promise<ChatHistory> {
    const keys = (await store.keys(PREFIX)).sort();
    const items: ChatItem[] = [];
    const failures: ParleyError[] = [];
    for (const key of keys) {
      try {
        const bytes = await store.get(key);
        if (!bytes) continue;
        const item = JSON.parse(decoder.decode(bytes)) as ChatItem;
        items.push({ ...item, key });
      } catch (e) {
        if (isParleyError(e)) failures.push(e);
        else throw e;
      }
    }
    const last = keys.at(-1);
    return new ChatHistory(store, items, last ? Number(last.slice(PREFIX.length)) + 1 : 1, failures);
  }

  /** A key for a new item. */
  nextKey(): string {
    return `${PREFIX}${String(this.#next++).padStart(8, '0')}`;
  }

  /** Deletes every item (the conversation was erased): the records are removed from the store. */
  async clear(): Promise<void> {
    const keys = await this.#store.keys(PREFIX);
    this.items.splice(0, this.items.length);
    if (keys.length) await this.#store.delMany(keys);
  }

  /** Appends (or rewrites) an item durably. */
  async put(item: ChatItem): Promise<void> {
    const { key, ...rest } = item;
    const i = this.items.findIndex((x) => x.key === key);
    if (i >= 0) this.items[i] = item;
    else this.items.push(item);
    const drop = this.items.length > MAX_HISTORY ? this.items.splice(0, this.items.length - MAX_HISTORY).map((x) => x.key) : [];
    await this.#store.setMany([[key, encoder.encode(JSON.stringify(rest))]]);
    if (drop.length) await this.#store.delMany(drop);
  }
}
