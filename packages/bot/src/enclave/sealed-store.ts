/**
 * The enclave's `KeyValueStore`: plaintext values live only in the worker's memory; what goes
 * out is sealed blobs, posted to the host, and `setMany` resolves only after the host's
 * durable-write ack. Runs only inside the enclave.
 *
 * Transactions: inside {@link SealedKeyValueStore.transaction} writes are staged and reads see
 * them; the whole transaction leaves as ONE host batch when `fn` finishes (atomic on the host).
 * The enclave uses this to commit "session advanced + plaintext queued for the handler" or
 * "session advanced + envelope in the outbox" together, and releases nothing (no plaintext to
 * the handler, no envelope to the host) before the commit. Only one transaction runs at a time;
 * writes outside a transaction are one-batch commits that wait their turn.
 *
 * If a commit fails the in-memory state may be ahead of the durable state; the caller must then
 * treat the enclave as poisoned (the entry point exits the worker, and the supervisor restarts
 * it from the sealed state).
 */
import { ParleyError } from '@parley/protocol';
import type { SealedRecord } from '../rpc/messages.js';
import { seal, unseal } from './seal.js';

/** The engine's storage contract (`@parley/client/core` KeyValueStore), restated so this file stands alone. */
export interface KeyValueStore {
  get(key: string): Promise<Uint8Array | undefined>;
  setMany(entries: [string, Uint8Array][]): Promise<void>;
  delMany(keys: string[]): Promise<void>;
  keys(prefix: string): Promise<string[]>;
}

/** Makes a sealed batch durable on the host; resolves on the host's ack. */
export type PersistFn = (puts: SealedRecord[], dels: string[]) => Promise<void>;

export class SealedKeyValueStore implements KeyValueStore {
  readonly #key: Uint8Array;
  readonly #persist: PersistFn;
  readonly #values = new Map<string, Uint8Array>();
  /** Staged writes of the open transaction (`null` value = delete). */
  #staged: Map<string, Uint8Array | null> | null = null;
  #lock: Promise<void> = Promise.resolve();

  private constructor(sealingKey: Uint8Array, persist: PersistFn) {
    this.#key = sealingKey;
    this.#persist = persist;
  }

  /**
   * Opens the store from the host's sealed records.
   * @throws ParleyError `STORAGE_INTEGRITY` if any record was altered, moved or sealed under another key.
   */
  static open(sealingKey: Uint8Array, records: readonly SealedRecord[], persist: PersistFn): SealedKeyValueStore {
    const store = new SealedKeyValueStore(sealingKey, persist);
    for (const r of records) store.#values.set(r.key, unseal(sealingKey, r.key, r.blob));
    return store;
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    if (this.#staged?.has(key)) {
      const v = this.#staged.get(key);
      return v ? v.slice() : undefined;
    }
    return this.#values.get(key)?.slice();
  }

  async keys(prefix: string): Promise<string[]> {
    const out = new Set<string>();
    for (const k of this.#values.keys()) if (k.startsWith(prefix)) out.add(k);
    if (this.#staged) for (const [k, v] of this.#staged) if (k.startsWith(prefix)) (v ? out.add(k) : out.delete(k));
    return [...out];
  }

  async setMany(entries: [string, Uint8Array][]): Promise<void> {
    if (this.#staged) {
      for (const [k, v] of entries) this.#staged.set(k, v.slice());
      return;
    }
    await this.transaction(async () => this.setMany(entries));
  }

  async delMany(keys: string[]): Promise<void> {
    if (this.#staged) {
      for (const k of keys) this.#staged.set(k, null);
      return;
    }
    await this.transaction(async () => this.delMany(keys));
  }

  /** Committed plaintext records, for the `unsafeTestingExposeKeys` tap only. */
  unsafeTestingEntries(): IterableIterator<[string, Uint8Array]> {
    return this.#values.entries();
  }

  /** Called with the records of every commit (the `unsafeTestingExposeKeys` tap only). */
  unsafeTestingOnCommit: ((entries: [string, Uint8Array][]) => void) | undefined;

  /**
   * Runs `fn` with writes staged, then commits them as one durable host batch. Transactions
   * run one at a time. If `fn` throws, its writes are dropped (the engine's own operations are
   * transactional, so they wrote nothing either).
   */
  async transaction<T>(fn: () => Promise<T>): Promise<T> {
    const prev = this.#lock;
    let release!: () => void;
    this.#lock = new Promise((r) => (release = r));
    await prev;
    try {
      this.#staged = new Map();
      const result = await fn();
      const staged = this.#staged;
      this.#staged = null;
      if (staged.size > 0) await this.#commit(staged);
      return result;
    } finally {
      this.#staged = null;
      release();
    }
  }

  async #commit(staged: Map<string, Uint8Array | null>): Promise<void> {
    const puts: SealedRecord[] = [];
    const dels: string[] = [];
    for (const [k, v] of staged) {
      if (v) puts.push({ key: k, blob: seal(this.#key, k, v) });
      else dels.push(k);
    }
    try {
      await this.#persist(puts, dels);
    } catch (e) {
      throw new ParleyError('ENCLAVE_UNAVAILABLE', 'the host did not persist sealed state', { cause: e });
    }
    const written: [string, Uint8Array][] = [];
    for (const [k, v] of staged) {
      if (v) {
        this.#values.set(k, v);
        written.push([k, v]);
      } else this.#values.delete(k);
    }
    this.unsafeTestingOnCommit?.(written);
  }
}
