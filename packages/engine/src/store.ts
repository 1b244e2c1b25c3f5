/**
 * Storage as a small interface the edges implement (docs/style.md "storage as interfaces"):
 * {@link MemoryStore} for tests, `FileStore` for Node (`@parley/client/node`), IndexedDB for
 * browsers (later), sealed blobs for the bot enclave. The engine never touches a file or a
 * database itself.
 */

/**
 * A flat key → bytes store. Keys are short ASCII paths such as `session/<peer>/<id>`.
 *
 * Contract (the engine's crash safety rests on it):
 * - `setMany` is **atomic**: after a crash either every entry is stored or none is, and it
 *   resolves only once the entries are durable.
 * - Values are returned as written; a store that seals values must throw `STORAGE_INTEGRITY`
 *   (a `ParleyError`) when a record fails to authenticate, never return altered bytes.
 * - `keys(prefix)` lists every key starting with `prefix` (any order).
 */
export interface KeyValueStore {
  get(key: string): Promise<Uint8Array | undefined>;
  /** Atomically writes every entry (all or nothing), durable once resolved. */
  setMany(entries: [string, Uint8Array][]): Promise<void>;
  delMany(keys: string[]): Promise<void>;
  keys(prefix: string): Promise<string[]>;
}

/** Each memory store's map, for `@parley/engine/testing` only. */
const rawMaps = new WeakMap<object, Map<string, Uint8Array>>();

/**
 * An in-memory {@link KeyValueStore} for tests and short-lived processes. Values are copied in
 * and out, so a caller that mutates a buffer later cannot change what is stored. Not sealed:
 * use it only where memory is as trusted as the process.
 * @example
 * const engine = await ConversationEngine.open({ store: new MemoryStore() });
 */
export class MemoryStore implements KeyValueStore {
  readonly #map = new Map<string, Uint8Array>();

  constructor() {
    rawMaps.set(this, this.#map);
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    const v = this.#map.get(key);
    return v ? v.slice() : undefined;
  }
  async setMany(entries: [string, Uint8Array][]): Promise<void> {
    for (const [k, v] of entries) this.#map.set(k, v.slice());
  }
  async delMany(keys: string[]): Promise<void> {
    for (const k of keys) this.#map.delete(k);
  }
  async keys(prefix: string): Promise<string[]> {
    return [...this.#map.keys()].filter((k) => k.startsWith(prefix));
  }
  /** Number of records (tests). */
  get size(): number {
    return this.#map.size;
  }
}

/**
 * TEST ONLY (`@parley/engine/testing`): the live record map of a {@link MemoryStore}, for tests
 * that tamper with or copy records. It bypasses every check.
 */
export function unsafeTestingRaw(store: MemoryStore): Map<string, Uint8Array> {
  return rawMaps.get(store) ?? new Map();
}
