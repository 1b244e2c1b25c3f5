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
 *
 * Issue 10 (formats in `seal.ts`):
 * - **Measurement binding** (Medium 6, B5): records are sealed under a random state key that is
 *   stored only wrapped under a key derived from the sealing secret and the measurement. An
 *   enclave running other code can't unwrap it and refuses to start (`USAGE`,
 *   `details.reason: 'measurementChanged'`) unless it is told to migrate (`migrateFrom`: the
 *   measurement the state is sealed to), which re-wraps the key in one commit.
 * - **The set of records** (B10): every commit also writes `enclave:version` (a commit counter
 *   and a keyed digest of which records exist and which sealed version of each). At open, a
 *   record removed, added or swapped for an older copy by the host is `STORAGE_INTEGRITY`
 *   (`details.reason: 'inconsistent'`).
 * - **Rollback** (Low 12, B10): a commit that queues a message for the handler (an `inbox/`
 *   record) resolves only once the {@link RollbackAnchor} outside the state folder holds its
 *   version. At open, a state older than the anchor is refused (`STORAGE_INTEGRITY`,
 *   `details.reason: 'rolledBack'`), so the handler is never run again, silently, for a message
 *   it handled before the state was rolled back.
 */
import { ParleyError, getCrypto, constantTimeEqual, toHex } from '@parley/protocol';
import { openRecord, sealRecord, type KeyValueStore } from '@parley/engine';
import type { SealedRecord } from '../rpc/messages.js';
import {
  FLAG_RESEALING,
  KEY_RECORD,
  STATE_ID_BYTES,
  VERSION_RECORD,
  deriveDigestKey,
  deriveSealingKey,
  openVersion,
  recordDigest,
  sealVersion,
  sealedMeasurement,
  tagOf,
  unwrapStateKey,
  wrapStateKey,
  xorInto,
} from './seal.js';
import type { RollbackAnchor } from './secret.js';

/** Makes a sealed batch durable on the host; resolves on the host's ack. */
export type PersistFn = (puts: SealedRecord[], dels: string[]) => Promise<void>;

/** Records re-sealed per commit when migrating an unbound state (the host takes 1000 per batch). */
const RESEAL_PER_COMMIT = 500;
/** Records whose commit gates side effects: a message queued for the handler. */
const GATES_HANDLER = 'inbox/';

/** How the rollback anchor stood at open. */
export type AnchorStatus =
  /** No anchor configured. */
  | 'off'
  /** It matched the state. */
  | 'ok'
  /** None yet, new state (a first start). */
  | 'new'
  /** None, but the state exists: detection starts from this state (logged as a warning). */
  | 'missing'
  /** It belonged to another state and this one is new: replaced (logged as a warning). */
  | 'replaced';

/** Options of {@link SealedKeyValueStore.open}. */
export interface SealedStoreOptions {
  /** The running code's measurement (default 32 zero bytes: tests of the store alone). */
  readonly measurement?: Uint8Array;
  /**
   * Migrate a state sealed to this measurement to `measurement` (or `'unbound'`: a state
   * written before issue 10). Refused when the state is sealed to another one.
   */
  readonly migrateFrom?: Uint8Array | 'unbound';
  /** The rollback anchor, already read. */
  readonly anchor?: RollbackAnchor;
}

function integrity(message: string, reason: string, extra: Record<string, string | number> = {}): ParleyError {
  return new ParleyError('STORAGE_INTEGRITY', message, { details: { reason, ...extra } });
}

function isBookkeeping(key: string): boolean {
  return key === KEY_RECORD || key === VERSION_RECORD; // ct-ok: record names, not secrets
}

export class SealedKeyValueStore implements KeyValueStore {
  readonly #persist: PersistFn;
  readonly #values = new Map<string, Uint8Array>();
  /** Staged writes of the open transaction (`null` value = delete). */
  #staged: Map<string, Uint8Array | null> | null = null;
  #lock: Promise<void> = Promise.resolve();
  /** The durability of the latest commit (see {@link SealedKeyValueStore.transaction}). */
  #last: Promise<void> = Promise.resolve();

  #stateKey: Uint8Array = new Uint8Array(32);
  #digestKey: Uint8Array = new Uint8Array(32);
  #stateId: Uint8Array = new Uint8Array(STATE_ID_BYTES);
  /** Commits so far (the host's copy holds this version once the latest commit is durable). */
  #version = 0;
  /** The digest of the records as of `#version` (see seal.ts). */
  #digest = new Uint8Array(32);
  /** What each record on the host but `enclave:version` contributes to the digest (its key and AEAD tag, keyed). */
  readonly #parts = new Map<string, Uint8Array>();
  /** `enclave:key` to write with the next commit (a new state, or a migration). */
  #keyRecord: Uint8Array | undefined;
  /** Records still sealed under the v1 key, and that key (a migration from an unbound state). */
  readonly #reseal = new Set<string>();
  #v1Key: Uint8Array | undefined;
  #anchor: RollbackAnchor | undefined;
  #anchorStatus: AnchorStatus = 'off';
  #fresh = false;
  #migratedFrom: Uint8Array | 'unbound' | undefined;

  private constructor(persist: PersistFn) {
    this.#persist = persist;
  }

  /**
   * Opens the store from the host's sealed records. The caller wipes `secret` afterwards; what
   * the store keeps is the state key. Writes that opening needs (a new state's key record, a
   * migration's re-wrapping or re-sealing, the anchor) go out with the first commit, or with
   * {@link SealedKeyValueStore.finishOpen}.
   * @throws ParleyError `USAGE` (`details.reason`): `measurementChanged` (sealed to other code:
   *   pass `migrateFrom`), `migrateFromMismatch`, `unboundState` (written before issue 10: pass
   *   `migrateFrom: 'unbound'`). `STORAGE_INTEGRITY` (`details.reason`): `wrongSecret`,
   *   `inconsistent` (records removed, added or swapped for older copies), `rolledBack` (older
   *   than the rollback anchor), `anchorForeign`, `damaged`; or a record that was altered or moved.
   */
  static open(secret: Uint8Array, records: readonly SealedRecord[], persist: PersistFn, options: SealedStoreOptions = {}): SealedKeyValueStore {
    const measurement = options.measurement ?? new Uint8Array(32);
    const store = new SealedKeyValueStore(persist);
    const byKey = new Map(records.map((r) => [r.key, r.blob] as const));
    const keyBlob = byKey.get(KEY_RECORD);
    const versionBlob = byKey.get(VERSION_RECORD);
    const data = records.filter((r) => !isBookkeeping(r.key));
    if (keyBlob) store.#openBound(secret, measurement, keyBlob, versionBlob, data, options.migrateFrom);
    else if (versionBlob) throw integrity('the sealed state has a version record but no key record', 'inconsistent');
    else if (data.length === 0) store.#create(secret, measurement);
    else store.#openUnbound(secret, measurement, data, options.migrateFrom);
    store.#checkAnchor(options.anchor);
    return store;
  }

  #create(secret: Uint8Array, measurement: Uint8Array): void {
    const c = getCrypto();
    this.#fresh = true;
    this.#stateId = c.randomBytes(STATE_ID_BYTES);
    this.#stateKey = c.randomBytes(32);
    this.#digestKey = deriveDigestKey(this.#stateKey);
    this.#keyRecord = wrapStateKey(secret, measurement, this.#stateId, this.#stateKey);
  }

  #openBound(secret: Uint8Array, measurement: Uint8Array, keyBlob: Uint8Array, versionBlob: Uint8Array | undefined, data: readonly SealedRecord[], migrateFrom: SealedStoreOptions['migrateFrom']): void {
    const sealedTo = sealedMeasurement(keyBlob);
    let unwrapWith = measurement;
    if (!constantTimeEqual(sealedTo, measurement)) {
      const from = toHex(sealedTo);
      const running = toHex(measurement);
      if (migrateFrom === undefined) {
        throw new ParleyError(
          'USAGE',
          `the bot's sealed state is sealed to enclave measurement ${from}, but the running code measures ${running} (the SDK, protocol, engine or handler changed). If the change is intended, migrate once: createBot({ migrateFrom: '${from}' }); clients pinning the old measurement must be updated too`,
          { details: { reason: 'measurementChanged', sealedTo: from, running } },
        );
      }
      if (migrateFrom === 'unbound' || !constantTimeEqual(migrateFrom, sealedTo)) {
        throw new ParleyError(
          'USAGE',
          `migrateFrom is ${migrateFrom === 'unbound' ? "'unbound'" : toHex(migrateFrom)}, but the bot's sealed state is sealed to measurement ${from}: pass migrateFrom: '${from}' to migrate it to the running code`,
          { details: { reason: 'migrateFromMismatch', sealedTo: from, running } },
        );
      }
      unwrapWith = sealedTo;
      this.#migratedFrom = sealedTo;
    }
    const { stateId, stateKey } = unwrapStateKey(secret, unwrapWith, keyBlob);
    this.#stateId = stateId;
    this.#stateKey = stateKey;
    this.#digestKey = deriveDigestKey(stateKey);
    if (this.#migratedFrom) this.#keyRecord = wrapStateKey(secret, measurement, stateId, stateKey);
    if (!versionBlob) throw integrity('the sealed state has no version record (it was removed)', 'inconsistent');
    const v = openVersion(stateKey, versionBlob);
    if (!constantTimeEqual(v.stateId, stateId)) throw integrity('the sealed state version record belongs to another state', 'inconsistent');
    this.#version = v.version;
    if (v.flags & FLAG_RESEALING) this.#v1Key = deriveSealingKey(secret);
    for (const r of data) {
      let value: Uint8Array;
      try {
        value = openRecord(stateKey, r.key, r.blob);
      } catch (e) {
        if (!this.#v1Key) throw e;
        value = openRecord(this.#v1Key, r.key, r.blob);
        this.#reseal.add(r.key);
      }
      this.#values.set(r.key, value);
    }
    if (this.#reseal.size === 0) this.#wipeV1Key();
    for (const r of data) this.#parts.set(r.key, recordDigest(this.#digestKey, r.key, tagOf(r.blob)));
    this.#parts.set(KEY_RECORD, recordDigest(this.#digestKey, KEY_RECORD, tagOf(keyBlob)));
    for (const part of this.#parts.values()) xorInto(this.#digest, part);
    if (!constantTimeEqual(this.#digest, v.digest)) {
      throw integrity(
        'the sealed state is inconsistent: records were removed, added or replaced by older copies of themselves (by the host, or a partial restore). Restore the whole state folder from one copy',
        'inconsistent',
      );
    }
  }

  #openUnbound(secret: Uint8Array, measurement: Uint8Array, data: readonly SealedRecord[], migrateFrom: SealedStoreOptions['migrateFrom']): void {
    if (migrateFrom !== 'unbound') {
      throw new ParleyError(
        'USAGE',
        `the bot's sealed state was written before sealed state was bound to the enclave's measurement (issue 10). Migrate it once to the running code (measurement ${toHex(measurement)}): createBot({ migrateFrom: 'unbound' })`,
        { details: { reason: 'unboundState', running: toHex(measurement) } },
      );
    }
    this.#v1Key = deriveSealingKey(secret);
    for (const r of data) {
      this.#values.set(r.key, openRecord(this.#v1Key, r.key, r.blob));
      this.#reseal.add(r.key);
    }
    this.#create(secret, measurement);
    this.#fresh = false;
    this.#migratedFrom = 'unbound';
    // The digest of what the host holds now; the first commit adds the key record to it.
    for (const r of data) this.#track(r.key, tagOf(r.blob));
  }

  #checkAnchor(anchor: RollbackAnchor | undefined): void {
    this.#anchor = anchor;
    if (!anchor) return;
    const recorded = anchor.recorded;
    if (!recorded) {
      this.#anchorStatus = this.#fresh ? 'new' : 'missing';
      return;
    }
    const rolledBack = (stateVersion: number): ParleyError =>
      integrity(
        `the bot's sealed state is older than its rollback anchor (state version ${stateVersion}, anchor ${recorded.version}): the state folder was replaced by an older copy, and the handler could run again for messages it already handled. Start from the newest copy of the folder; if the older copy was restored on purpose, delete the anchor file to accept it (handlers may then see handled messages again, with redelivered: false): ${anchor.path}`,
        'rolledBack',
        { stateVersion, anchorVersion: recorded.version, anchor: anchor.path },
      );
    // A state from before issue 10 never had an anchor: one that exists is newer than it.
    if (this.#migratedFrom === 'unbound') throw rolledBack(0);
    if (!constantTimeEqual(recorded.stateId, this.#stateId)) {
      if (this.#fresh) {
        this.#anchorStatus = 'replaced';
        return;
      }
      throw integrity(
        `the rollback anchor belongs to another bot state than the one in the state folder. Give each bot its own rollbackAnchor; if this state is meant to replace that one, delete the anchor file: ${anchor.path}`,
        'anchorForeign',
        { anchor: anchor.path },
      );
    }
    if (recorded.version > this.#version) throw rolledBack(this.#version);
    this.#anchorStatus = 'ok';
  }

  #wipeV1Key(): void {
    this.#v1Key?.fill(0);
    this.#v1Key = undefined;
  }

  /** How opening went: a migration made (logged by the host) and the rollback anchor's status. */
  get opening(): { readonly migratedFrom: Uint8Array | 'unbound' | undefined; readonly anchor: AnchorStatus } {
    return { migratedFrom: this.#migratedFrom, anchor: this.#anchorStatus };
  }

  /**
   * Completes what opening started: commits the key record (a new state or a migration) and
   * re-seals an unbound state's records, a commit at a time, then writes the rollback anchor if
   * it was missing or another state's. Call once after open (and after the engine's first
   * transaction); crash-safe at every step (an interrupted re-seal resumes at the next start).
   */
  async finishOpen(): Promise<void> {
    while (this.#keyRecord || this.#reseal.size > 0) await this.transaction(async () => undefined);
    await this.#last;
    if (this.#anchor && this.#anchorStatus !== 'ok' && this.#anchorStatus !== 'off') {
      await this.#anchor.advance({ stateId: this.#stateId, version: this.#version });
    }
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
    for (const [k] of entries) if (isBookkeeping(k)) throw new ParleyError('USAGE', 'record key reserved by the sealed store');
    if (this.#staged) {
      for (const [k, v] of entries) this.#staged.set(k, v.slice());
      return;
    }
    await this.transaction(async () => this.setMany(entries));
  }

  async delMany(keys: string[]): Promise<void> {
    for (const k of keys) if (isBookkeeping(k)) throw new ParleyError('USAGE', 'record key reserved by the sealed store');
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

  /** The state key, for the `unsafeTestingExposeKeys` tap only (a disk scan opens records with it). */
  unsafeTestingStateKey(): Uint8Array {
    return this.#stateKey.slice();
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
      if (staged.size > 0 || this.#keyRecord || this.#reseal.size > 0) durable = this.#commit(staged);
    } finally {
      this.#staged = null;
      release();
    }
    if (durable) await durable;
    return result;
  }

  /** Sets (the blob with AEAD tag `tag`) or removes `key` in the digest. */
  #track(key: string, tag: Uint8Array | undefined): void {
    const before = this.#parts.get(key);
    if (before) xorInto(this.#digest, before);
    if (tag) {
      const part = recordDigest(this.#digestKey, key, tag);
      xorInto(this.#digest, part);
      this.#parts.set(key, part);
    } else this.#parts.delete(key);
  }

  /**
   * Seals and posts the batch (with the version record, and any pending key record or re-seals)
   * and applies it in memory now; resolves once it (and every earlier commit) is durable and,
   * when it queued a message for the handler, once the rollback anchor holds its version.
   */
  #commit(staged: Map<string, Uint8Array | null>): Promise<void> {
    const puts: SealedRecord[] = [];
    const dels: string[] = [];
    if (this.#keyRecord) {
      puts.push({ key: KEY_RECORD, blob: this.#keyRecord });
      this.#track(KEY_RECORD, tagOf(this.#keyRecord));
      this.#keyRecord = undefined;
    }
    let gates = false;
    for (const [k, v] of staged) {
      this.#reseal.delete(k);
      if (v) {
        const blob = sealRecord(this.#stateKey, k, v);
        puts.push({ key: k, blob });
        this.#track(k, tagOf(blob));
        if (k.startsWith(GATES_HANDLER)) gates = true;
      } else {
        dels.push(k);
        this.#track(k, undefined);
      }
    }
    for (const k of [...this.#reseal].slice(0, RESEAL_PER_COMMIT)) {
      this.#reseal.delete(k);
      const blob = sealRecord(this.#stateKey, k, this.#values.get(k)!);
      puts.push({ key: k, blob });
      this.#track(k, tagOf(blob));
    }
    if (this.#reseal.size === 0) this.#wipeV1Key();
    const version = ++this.#version;
    const flags = this.#reseal.size > 0 ? FLAG_RESEALING : 0;
    puts.push({ key: VERSION_RECORD, blob: sealVersion(this.#stateKey, { stateId: this.#stateId, version, digest: this.#digest, flags }) });
    const persisted = this.#persist(puts, dels);
    const written: [string, Uint8Array][] = [];
    for (const [k, v] of staged) {
      if (v) {
        this.#values.set(k, v);
        written.push([k, v]);
      } else this.#values.delete(k);
    }
    const earlier = this.#last;
    const anchor = gates ? this.#anchor : undefined;
    const stateId = this.#stateId;
    const done = (async () => {
      try {
        await persisted;
        await earlier;
      } catch (e) {
        throw new ParleyError('ENCLAVE_UNAVAILABLE', 'the host did not persist sealed state', { cause: e });
      }
      // Durable, with everything before it: the anchor may now say so (never more than is durable).
      if (anchor) {
        try {
          await anchor.advance({ stateId, version });
        } catch (e) {
          throw new ParleyError('ENCLAVE_UNAVAILABLE', 'the rollback anchor could not be written', { cause: e });
        }
      }
      this.unsafeTestingOnCommit?.(written);
    })();
    this.#last = done;
    done.catch(() => undefined); // awaited by its transaction; the next commit sees it through `earlier`
    return done;
  }
}
