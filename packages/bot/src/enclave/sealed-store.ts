/**
 * The enclave's `KeyValueStore`: plaintext values live only in the worker's memory; what goes
 * out is sealed blobs, posted to the host, and `setMany` resolves only after the host's
 * durable-write ack. Runs only inside the enclave.
 *
 * Transactions: inside {@link SealedKeyValueStore.transaction} writes are staged and reads see
 * them; the whole transaction leaves as ONE host batch when `fn` finishes (atomic on the host).
 * The enclave uses this to commit "session advanced + plaintext queued for the handler" or
 * "session advanced + envelope in the outbox" together, and releases nothing (no plaintext to
 * the handler, no envelope to the host) before the commit. Only one transaction's `fn` runs at a
 * time, but commits are pipelined: the next `fn` may run while the host syncs the previous
 * batch (see {@link SealedKeyValueStore.transaction}). Writes outside a transaction are
 * one-batch commits that wait their turn.
 *
 * If a commit fails the in-memory state may be ahead of the durable state; the caller must then
 * treat the enclave as poisoned (the entry point exits the worker, and the supervisor restarts
 * it from the sealed state).
 */
import { ParleyError } from '@parley/protocol';
import { openRecord, sealRecord, type KeyValueStore } from '@parley/engine';
import type { SealedRecord } from '../rpc/messages.js';

/** Makes a sealed batch durable on the host; resolves on the host's ack. */
export type PersistFn = (puts: SealedRecord[], dels: string[]) => Promise<void>;

export class SealedKeyValueStore implements KeyValueStore {
  readonly #key: Uint8Array;
  readonly #persist: PersistFn;
  readonly #values = new Map<string, Uint8Array>();
  /** Staged writes of the open transaction (`null` value = delete). */
  #staged: Map<string, Uint8Array | null> | null = null;
  #lock: Promise<void> = Promise.resolve();
  /** The durability of the latest commit (see {@link SealedKeyValueStore.transaction}). */
  #last: Promise<void> = Promise.resolve();

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
    for (const r of records) store.#values.set(r.key, openRecord(sealingKey, r.key, r.blob));
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
   * Runs `fn` with writes staged, then commits them as one durable host batch, and resolves once
   * the host has acked it. The `fn`s of transactions run one at a time; their commits overlap
   * (pipelined): once `fn` has finished, its writes are sealed, posted to the host and applied
   * in memory, and the next transaction's `fn` may start while the host syncs. That is safe
   * because nothing a transaction releases (its result: plaintext for the handler, an envelope,
   * an ack to the relay) is released before its own commit is durable, and a commit resolves
   * only if every earlier one did: the host writes batches in order and fails the ones queued
   * behind a failed write, and {@link SealedKeyValueStore.#commit} also waits for the previous
   * commit. A failed commit poisons the enclave (memory is ahead of disk). If `fn` throws, its
   * writes are dropped (the engine's own operations are transactional, so they wrote nothing
   * either).
   */
  async transaction<T>(fn: () => Promise<T>): Promise<T> {
    const prev = this.#lock;
    let release!: () => void;
    this.#lock = new Promise((r) => (release = r));
    await prev;
    let result: T;
    let durable: Promise<void> | undefined;
    try {
      this.#staged = new Map();
      result = await fn();
      const staged = this.#staged;
      this.#staged = null;
      if (staged.size > 0) durable = this.#commit(staged);
    } finally {
      this.#staged = null;
      release();
    }
    if (durable) await durable;
    return result;
  }


  /** Seals and posts the batch and applies it in memory now; resolves once it (and every earlier commit) is durable. */
  #commit(staged: Map<string, Uint8Array | null>): Promise<void> {
    const puts: SealedRecord[] = [];
    const dels: string[] = [];
    for (const [k, v] of staged) {
      if (v) puts.push({ key: k, blob: sealRecord(this.#key, k, v) });
      else dels.push(k);
    }
    const persisted = this.#persist(puts, dels);
    const written: [string, Uint8Array][] = [];
    for (const [k, v] of staged) {
      if (v) {
        this.#values.set(k, v);
        written.push([k, v]);
      } else this.#values.delete(k);
    }
    const earlier = this.#last;
    const done = (async () => {
      try {
        await persisted;
        await earlier;
      } catch (e) {
        throw new ParleyError('ENCLAVE_UNAVAILABLE', 'the host did not persist sealed state', { cause: e });
      }
      this.unsafeTestingOnCommit?.(written);
    })();
    this.#last = done;
    done.catch(() => undefined); // awaited by its transaction; the next commit sees it through `earlier`
    return done;
  }
}
