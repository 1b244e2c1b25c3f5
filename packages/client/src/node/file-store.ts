/**
 * `FileStore`: a durable, sealed {@link KeyValueStore} for Node, in one directory.
 *
 * Files:
 * ```
 *  <dir>/parley-store.json  format, version, HKDF salt, and a sealed check value (wrong key → error)
 *  <dir>/journal.log        the records: one line per transaction, dead values overwritten,
 *                           a MAC chain over the set of records and versions (journal.ts)
 *  <dir>/lock/<n>           the process lock (lock.ts)
 *  <dir>.key                the key file, beside the directory and never inside it: 32 random
 *                           bytes, mode 0600, only when neither storageSecret nor keyFile is given
 * ```
 * Atomicity: a `setMany` is one journal line, written then `fdatasync`ed before the promise
 * resolves. After a crash only the last line can be torn; it is cut off at open, so a transaction
 * is either wholly present or absent.
 *
 * Deletion (docs/threats.md ST7): before a `setMany`/`delMany` resolves, the values it superseded
 * or deleted are overwritten in the file; a copy of the directory, even with the key, holds only
 * the current version of each record. What the file system or the disk may still keep is in the
 * client README ("What the store cannot promise").
 *
 * Integrity: every value is sealed with XChaCha20-Poly1305 under the storage key with the
 * record's key as associated data ({@link SealedStore}): a flipped byte or a record moved to
 * another key reads as `STORAGE_INTEGRITY`, for that record only. The journal's MAC chain covers
 * which records exist and which version of each: a record deleted, rolled back or dropped with
 * the last transactions by someone without the key is `STORAGE_INTEGRITY` at open (ST1).
 *
 * The storage key is HKDF-SHA256(secret, salt) where the secret is, in order of preference:
 * 1. `storageSecret`: a high-entropy secret the app keeps elsewhere (OS keychain, KMS, an
 *    environment secret). The data directory alone then reveals nothing.
 * 2. a key file: `keyFile`, or by default `<dir>.key` beside the directory, created with mode
 *    0600. It is refused inside the directory, so a copy of the directory alone carries no key.
 *    It does not protect against someone who can read both as this user.
 * HKDF does not slow down guessing: never use a human password as `storageSecret`.
 */
import { link, mkdir, open, readdir, readFile, realpath, rm, stat } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { ParleyError, fromHex, getCrypto, toHex, utf8 } from '@parley/protocol';
import { SealedStore, deriveStorageKey, openRecord, sealRecord } from '@parley/engine';
import type { KeyValueStore } from '@parley/engine';
import { fsyncDir, wipeAndRemove, writeFileAtomic } from './fs-atomic.js';
import { Journal, isEmptyJournal, journalMacKey, readLegacyLog } from './journal.js';
import { DirLock } from './lock.js';

const META_FILE = 'parley-store.json';
const JOURNAL_FILE = 'journal.log';
/** Version 1 (before issue 10): the log, the default key file inside the directory, the lock file. */
const LEGACY_LOG_FILE = 'records.log';
const LEGACY_KEY_FILE = 'storage.key';
const LEGACY_LOCK_FILE = 'LOCK';
const META_FORMAT = 'parley-file-store';
const META_VERSION = 2;
const CHECK_KEY = '\u0000check';
const CHECK_VALUE = 'parley-file-store';
/** Temp files of `writeFileAtomic` (`<name>.<pid>.<8 hex>.tmp`). */
const TEMP_FILE = /^(journal\.log|parley-store\.json)\.[0-9]+\.[0-9a-f]{8}\.tmp$/;

/** Options of {@link FileStore.open}. */
export interface FileStoreOptions {
  /** Directory of the store; created (mode 0700) if missing. */
  readonly dir: string;
  /** High-entropy secret (at least 16 bytes; 32 random bytes recommended). See the module doc. */
  readonly storageSecret?: Uint8Array | string;
  /**
   * Key file used when there is no `storageSecret`; must be outside `dir`. Default `<dir>.key`
   * (beside the directory; refused when `dir` is a mount point, since the file would land on
   * another file system: give `keyFile` or `storageSecret` then).
   */
  readonly keyFile?: string;
}

/** Directories opened by this process, so two FileStores never write one journal. */
const openDirs = new Set<string>();

function integrity(message: string, cause?: unknown): ParleyError {
  return new ParleyError('STORAGE_INTEGRITY', message, cause === undefined ? undefined : { cause });
}

function errno(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | undefined)?.code;
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (e) {
    if (errno(e) === 'ENOENT') return false;
    throw e;
  }
}

/** `path` with its existing parent resolved through symlinks. */
async function real(path: string): Promise<string> {
  try {
    return join(await realpath(dirname(path)), basename(path));
  } catch {
    return path;
  }
}

interface Meta {
  version: number;
  salt: Uint8Array;
  check: Uint8Array;
}

/**
 * A sealed, crash-safe store in a directory (Node only).
 * @example
 * await initCrypto();
 * const store = await FileStore.open({ dir: './parley-data', storageSecret: process.env.PARLEY_STORAGE_SECRET });
 * const engine = await ConversationEngine.open({ store });
 * // …
 * await store.close();
 */
export class FileStore implements KeyValueStore {
  readonly #journal: Journal;
  readonly #sealed: SealedStore;
  readonly #dir: string;
  readonly #lock: DirLock;
  #closed = false;

  private constructor(dir: string, journal: Journal, storageKey: Uint8Array, lock: DirLock) {
    this.#dir = dir;
    this.#journal = journal;
    this.#sealed = new SealedStore(journal, storageKey);
    this.#lock = lock;
  }

  /** The store's directory. */
  get dir(): string {
    return this.#dir;
  }

  /**
   * Opens (or creates) the store in `options.dir`. A store written by an earlier Parley (format
   * 1: `records.log`, `storage.key` inside the directory) is converted once: its key file moves
   * to `<dir>.key` (or `keyFile`), its log becomes a journal, and the old log is overwritten and
   * removed.
   * @throws ParleyError `STORAGE_INTEGRITY` for a wrong secret or key file, a missing key file of
   *   an existing store, or a journal that was damaged or altered (records added, removed, rolled
   *   back or truncated without the key); `USAGE` when the directory is in use (in this or another
   *   live process), the key file is inside the directory or readable by others, or there is no
   *   safe default place for the key file.
   */
  static async open(options: FileStoreOptions): Promise<FileStore> {
    if (!options || typeof options.dir !== 'string' || options.dir.length === 0) throw new ParleyError('USAGE', 'options.dir is required');
    if (options.keyFile !== undefined && (typeof options.keyFile !== 'string' || options.keyFile.length === 0)) {
      throw new ParleyError('USAGE', 'options.keyFile must be a file path');
    }
    const dir = resolve(options.dir);
    if (openDirs.has(dir)) throw new ParleyError('USAGE', 'this store directory is already open in this process; close the other FileStore first');
    await mkdir(dir, { recursive: true, mode: 0o700 });
    openDirs.add(dir);
    let lock: DirLock | undefined;
    try {
      lock = await DirLock.acquire(dir);
      await FileStore.#refuseLegacyLock(dir);
      // A compaction or metadata write cut short by a crash leaves its temp file: a copy of
      // records that may since have been superseded.
      for (const name of await readdir(dir)) if (TEMP_FILE.test(name)) await wipeAndRemove(join(dir, name));
      const meta = await FileStore.#meta(dir);
      const fileKey = options.storageSecret === undefined ? await FileStore.#keyFile(dir, options.keyFile, meta !== undefined) : undefined;
      const salt = meta?.salt ?? getCrypto().randomBytes(32);
      const storageKey = deriveStorageKey(options.storageSecret ?? fileKey!, salt);
      fileKey?.fill(0);
      const macKey = journalMacKey(storageKey, salt);
      try {
        let journal: Journal;
        if (meta) {
          try {
            openRecord(storageKey, CHECK_KEY, meta.check);
          } catch (cause) {
            throw integrity('wrong storage secret or key file for this store', cause);
          }
          if (meta.version === 1) {
            journal = await Journal.create(join(dir, JOURNAL_FILE), macKey, await readLegacyLog(join(dir, LEGACY_LOG_FILE)));
            await FileStore.#writeMeta(dir, salt, meta.check);
          } else {
            journal = await Journal.open(join(dir, JOURNAL_FILE), macKey);
          }
          await wipeAndRemove(join(dir, LEGACY_LOG_FILE)); // converted (maybe by a run that crashed before this)
        } else {
          if (!(await isEmptyJournal(join(dir, JOURNAL_FILE))) || (await exists(join(dir, LEGACY_LOG_FILE)))) {
            throw integrity(`the store directory ${dir} holds records but no ${META_FILE} (it holds the salt): restore that file, or move the directory away to start a new store`);
          }
          // The journal first: a crash before the metadata leaves an empty journal, replaced next time.
          journal = await Journal.create(join(dir, JOURNAL_FILE), macKey, new Map());
          await FileStore.#writeMeta(dir, salt, sealRecord(storageKey, CHECK_KEY, utf8(CHECK_VALUE)));
        }
        return new FileStore(dir, journal, storageKey, lock);
      } finally {
        macKey.fill(0);
        storageKey.fill(0); // SealedStore and the journal keep their own copies
      }
    } catch (e) {
      await lock?.release().catch(() => undefined);
      openDirs.delete(dir);
      throw e;
    }
  }

  /** An older Parley locked with a `LOCK` pid file; refuse while its process runs. */
  static async #refuseLegacyLock(dir: string): Promise<void> {
    const path = join(dir, LEGACY_LOCK_FILE);
    const pid = Number((await readFile(path, 'utf8').catch(() => '')).trim());
    if (Number.isSafeInteger(pid) && pid > 0 && pid !== process.pid) {
      let running = true;
      try {
        process.kill(pid, 0);
      } catch (e) {
        running = errno(e) === 'EPERM';
      }
      if (running) {
        throw new ParleyError('USAGE', `store directory is in use by process ${pid} (an older Parley version); stop it first, or delete ${path} if that process does not use the store`, {
          details: { pid },
        });
      }
    }
    await rm(path, { force: true });
  }

  static async #meta(dir: string): Promise<Meta | undefined> {
    let text: string;
    try {
      text = await readFile(join(dir, META_FILE), 'utf8');
    } catch (e) {
      if (errno(e) !== 'ENOENT') throw e;
      return undefined;
    }
    try {
      const meta = JSON.parse(text) as { format?: unknown; version?: unknown; salt?: unknown; check?: unknown };
      if (meta.format !== META_FORMAT) throw new Error('format');
      if (meta.version !== 1 && meta.version !== META_VERSION) {
        throw new ParleyError('UNSUPPORTED_VERSION', 'unsupported file store version; was it written by a newer Parley?', { details: { version: String(meta.version) } });
      }
      if (typeof meta.salt !== 'string' || typeof meta.check !== 'string') throw new Error('fields');
      return { version: meta.version, salt: fromHex(meta.salt), check: new Uint8Array(Buffer.from(meta.check, 'base64')) };
    } catch (e) {
      if (e instanceof ParleyError) throw e;
      throw integrity('store metadata is damaged', e);
    }
  }

  static async #writeMeta(dir: string, salt: Uint8Array, check: Uint8Array): Promise<void> {
    const meta = { format: META_FORMAT, version: META_VERSION, salt: toHex(salt), check: Buffer.from(check).toString('base64') };
    await writeFileAtomic(join(dir, META_FILE), utf8(`${JSON.stringify(meta, null, 2)}\n`));
  }

  /**
   * The key file's secret: `keyFile`, else `<dir>.key`; never inside `dir`. A key file an older
   * Parley left inside the directory is moved there first (a rename: no second copy is written).
   */
  static async #keyFile(dir: string, keyFile: string | undefined, storeExists: boolean): Promise<Uint8Array> {
    const path = keyFile === undefined ? `${dir}.key` : resolve(keyFile);
    const realDir = await realpath(dir);
    const rel = relative(realDir, await real(path));
    if (rel === '' || (!rel.startsWith('..') && !isAbsolute(rel))) {
      throw new ParleyError('USAGE', `the key file ${path} is inside the store directory, where any copy of the directory would carry its key: put it outside (keyFile), or use storageSecret`);
    }
    const legacy = join(dir, LEGACY_KEY_FILE);
    if (await exists(legacy)) {
      await mkdir(dirname(path), { recursive: true, mode: 0o700 });
      try {
        await link(legacy, path);
      } catch (e) {
        const code = errno(e);
        if (code === 'EEXIST') {
          throw new ParleyError('USAGE', `the store directory still holds a key file (${legacy}) and ${path} exists too: keep the one this store was created with outside the directory and delete the other`);
        }
        if (code === 'EXDEV' || code === 'EPERM' || code === 'ENOTSUP') {
          throw new ParleyError('USAGE', `the key file ${legacy} must leave the store directory, and ${path} is on another file system: move it yourself and pass keyFile, or use storageSecret`, { cause: e });
        }
        throw e;
      }
      await rm(legacy);
      await fsyncDir(dir);
      await fsyncDir(dirname(path));
    }
    let key: Uint8Array | undefined;
    try {
      const st = await stat(path);
      if (process.platform !== 'win32' && (st.mode & 0o077) !== 0) {
        throw new ParleyError('USAGE', `storage key file ${path} must not be readable by group or others (chmod 600)`);
      }
      key = new Uint8Array(await readFile(path));
    } catch (e) {
      if (errno(e) !== 'ENOENT') throw e;
    }
    if (key) {
      if (key.length !== 32) throw integrity(`storage key file ${path} is damaged (not 32 bytes)`);
      return key;
    }
    if (storeExists) {
      throw integrity(`the storage key file ${path} of this store is missing: restore it (or pass the keyFile or storageSecret the store was created with)`);
    }
    if (keyFile === undefined) {
      const [a, b] = await Promise.all([stat(dir), stat(dirname(dir))]);
      if (a.dev !== b.dev) {
        throw new ParleyError('USAGE', `the store directory ${dir} is a mount point, so its default key file ${path} would be on another file system (often one that does not persist): give keyFile or storageSecret`);
      }
    }
    key = getCrypto().randomBytes(32);
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    let fh;
    try {
      fh = await open(path, 'wx', 0o600);
    } catch (e) {
      if (errno(e) === 'EACCES' || errno(e) === 'EROFS') {
        throw new ParleyError('USAGE', `cannot create the key file ${path}: give keyFile (a writable place outside the store directory) or storageSecret`, { cause: e });
      }
      throw e;
    }
    try {
      await fh.writeFile(key);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fsyncDir(dirname(path));
    return key;
  }

  get(key: string): Promise<Uint8Array | undefined> {
    return this.#sealed.get(key);
  }
  setMany(entries: [string, Uint8Array][]): Promise<void> {
    return this.#sealed.setMany(entries);
  }
  delMany(keys: string[]): Promise<void> {
    return this.#sealed.delMany(keys);
  }
  keys(prefix: string): Promise<string[]> {
    return this.#sealed.keys(prefix);
  }

  /** Flushes (pending overwrites of dead records included) and releases the directory. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      await this.#journal.close();
    } finally {
      await this.#lock.release().catch((e: unknown) => {
        if (errno(e) !== 'ENOENT') throw e; // the directory was removed under us
      });
      openDirs.delete(this.#dir);
    }
  }

  toJSON(): { dir: string } {
    return { dir: this.#dir };
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `FileStore { dir: '${this.#dir}', storageKey: [redacted] }`;
  }
}
