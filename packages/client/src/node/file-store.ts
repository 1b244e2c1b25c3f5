/**
 * `FileStore`: a durable, sealed {@link KeyValueStore} for Node, in one directory.
 *
 * Files:
 * ```
 *  <dir>/parley-store.json  format, version, HKDF salt, and a sealed check value (wrong key → error)
 *  <dir>/records.log        append-only JSON lines; each line is ONE transaction:
 *                           {"s":[[key, base64(sealed value)], …], "d":[key, …]}
 *  <dir>/storage.key        32 random bytes, mode 0600, only when no storageSecret is given
 *  <dir>/LOCK               pid of the process using the store
 * ```
 * Atomicity: a `setMany` is one line, written then `fdatasync`ed before the promise resolves.
 * After a crash only the last line can be torn; it is recognised (no newline, or not JSON) and
 * cut off at open, so a transaction is either wholly present or absent. A damaged line anywhere
 * else is `STORAGE_INTEGRITY`. The log is compacted (snapshot written to a temp file, fsynced,
 * renamed over the log, directory fsynced) once it is mostly dead entries.
 *
 * Sealing: every value is sealed with XChaCha20-Poly1305 under the storage key with the record's
 * key as associated data ({@link SealedStore}), so a flipped byte or a record moved to another
 * key reads as `STORAGE_INTEGRITY`, for that record only.
 *
 * The storage key is HKDF-SHA256(secret, salt) where the secret is, in order of preference:
 * 1. `storageSecret`: a high-entropy secret the app keeps elsewhere (OS keychain, KMS, an
 *    environment secret). The data directory alone then reveals nothing.
 * 2. a key file `<dir>/storage.key` (or `keyFile`), created with mode 0600. This protects records
 *    against tampering and against copies of single files, not against someone who can read the
 *    whole directory as this user.
 * HKDF does not slow down guessing: never use a human password as `storageSecret`.
 */
import { randomBytes as nodeRandomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { mkdir, open, readFile, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { ParleyError, fromHex, getCrypto, toHex, utf8 } from '@parley/protocol';
import { SealedStore, deriveStorageKey, openRecord, sealRecord } from '@parley/engine';
import type { KeyValueStore } from '@parley/engine';

const META_FILE = 'parley-store.json';
const LOG_FILE = 'records.log';
const KEY_FILE = 'storage.key';
const LOCK_FILE = 'LOCK';
const META_FORMAT = 'parley-file-store';
const META_VERSION = 1;
const CHECK_KEY = '\u0000check';
const CHECK_VALUE = 'parley-file-store';
/** Compaction runs when the log is larger than this and mostly dead entries. */
const COMPACT_MIN_BYTES = 1 << 20;
const COMPACT_RATIO = 4;
/** Entries per line in a compacted snapshot (each line stays a valid transaction). */
const SNAPSHOT_ENTRIES_PER_LINE = 256;

/** Options of {@link FileStore.open}. */
export interface FileStoreOptions {
  /** Directory of the store; created (mode 0700) if missing. */
  readonly dir: string;
  /** High-entropy secret (at least 16 bytes; 32 random bytes recommended). See the module doc. */
  readonly storageSecret?: Uint8Array | string;
  /** Key file used when there is no `storageSecret`. Default `<dir>/storage.key`. */
  readonly keyFile?: string;
}

/** Directories opened by this process, so two FileStores never append to one log. */
const openDirs = new Set<string>();

async function fsyncDir(dir: string): Promise<void> {
  let fh: FileHandle | undefined;
  try {
    fh = await open(dir, 'r');
    await fh.sync();
  } catch {
    // Some platforms cannot fsync a directory; the rename is still atomic there.
  } finally {
    await fh?.close();
  }
}

/** Writes a file atomically: temp file, fsync, rename, fsync the directory. */
async function writeFileAtomic(path: string, data: Uint8Array, mode = 0o600): Promise<void> {
  const tmp = `${path}.${process.pid}.${nodeRandomBytes(4).toString('hex')}.tmp`;
  const fh = await open(tmp, 'w', mode);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
  await fsyncDir(dirname(path));
}

function integrity(message: string, cause?: unknown): ParleyError {
  return new ParleyError('STORAGE_INTEGRITY', message, cause === undefined ? undefined : { cause });
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

interface LogLine {
  s?: [string, string][];
  d?: string[];
}

/** The raw (unsealed) transaction log: a Map in memory, JSON lines on disk. */
class LogFile implements KeyValueStore {
  readonly #path: string;
  readonly #map = new Map<string, Uint8Array>();
  #fh: FileHandle | undefined;
  #size = 0;
  #live = 0;
  #tail: Promise<unknown> = Promise.resolve();

  constructor(path: string) {
    this.#path = path;
  }

  async load(): Promise<void> {
    let data: Buffer;
    try {
      data = await readFile(this.#path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      data = Buffer.alloc(0);
    }
    let end = data.lastIndexOf(0x0a) + 1; // bytes after the last newline are a torn write
    const lines = data.subarray(0, end).toString('utf8').split('\n');
    lines.pop();
    for (let i = 0; i < lines.length; i++) {
      let parsed: LogLine;
      try {
        parsed = JSON.parse(lines[i]!) as LogLine;
        this.#validate(parsed);
      } catch (cause) {
        if (i === lines.length - 1) {
          // The last transaction was torn by a crash: it never committed.
          end -= Buffer.byteLength(lines[i]!, 'utf8') + 1;
          break;
        }
        throw integrity('store log is damaged', cause);
      }
      this.#apply(parsed);
    }
    this.#fh = await open(this.#path, fsConstants.O_RDWR | fsConstants.O_CREAT, 0o600);
    if (end !== data.length) {
      await this.#fh.truncate(end);
      await this.#fh.sync();
    }
    this.#size = end;
  }

  #validate(line: LogLine): void {
    if (typeof line !== 'object' || line === null) throw new Error('not an object');
    if (line.s !== undefined && !(Array.isArray(line.s) && line.s.every((e) => Array.isArray(e) && e.length === 2 && typeof e[0] === 'string' && typeof e[1] === 'string'))) {
      throw new Error('bad set list');
    }
    if (line.d !== undefined && !(Array.isArray(line.d) && line.d.every((k) => typeof k === 'string'))) throw new Error('bad delete list');
  }

  #apply(line: LogLine): void {
    for (const [k, v] of line.s ?? []) {
      const old = this.#map.get(k);
      if (old) this.#live -= old.length + k.length;
      const bytes = new Uint8Array(Buffer.from(v, 'base64'));
      this.#map.set(k, bytes);
      this.#live += bytes.length + k.length;
    }
    for (const k of line.d ?? []) {
      const old = this.#map.get(k);
      if (old) this.#live -= old.length + k.length;
      this.#map.delete(k);
    }
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.#tail.then(fn);
    this.#tail = p.catch(() => undefined);
    return p;
  }

  async #append(line: LogLine): Promise<void> {
    const fh = this.#fh;
    if (!fh) throw new ParleyError('USAGE', 'store is closed');
    const data = Buffer.from(`${JSON.stringify(line)}\n`, 'utf8');
    try {
      await fh.write(data, 0, data.length, this.#size);
      await fh.datasync();
    } catch (e) {
      // Leave no partial line behind, so later transactions stay readable.
      await fh.truncate(this.#size).catch(() => undefined);
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOSPC' || code === 'EDQUOT') throw new ParleyError('STORAGE_QUOTA', 'disk full', { cause: e });
      throw e;
    }
    this.#size += data.length;
    this.#apply(line);
    if (this.#size > COMPACT_MIN_BYTES && this.#size > COMPACT_RATIO * this.#live) await this.#compact();
  }

  async #compact(): Promise<void> {
    const entries = [...this.#map];
    const parts: string[] = [];
    for (let i = 0; i < entries.length; i += SNAPSHOT_ENTRIES_PER_LINE) {
      const s = entries.slice(i, i + SNAPSHOT_ENTRIES_PER_LINE).map(([k, v]) => [k, Buffer.from(v).toString('base64')]);
      parts.push(`${JSON.stringify({ s })}\n`);
    }
    const data = Buffer.from(parts.join(''), 'utf8');
    await writeFileAtomic(this.#path, data);
    await this.#fh?.close();
    this.#fh = await open(this.#path, fsConstants.O_RDWR, 0o600);
    this.#size = data.length;
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    const v = this.#map.get(key);
    return v ? v.slice() : undefined;
  }
  setMany(entries: [string, Uint8Array][]): Promise<void> {
    if (entries.length === 0) return Promise.resolve();
    return this.#serial(() => this.#append({ s: entries.map(([k, v]) => [k, Buffer.from(v).toString('base64')]) }));
  }
  delMany(keys: string[]): Promise<void> {
    const present = keys.filter((k) => this.#map.has(k));
    if (present.length === 0) return Promise.resolve();
    return this.#serial(() => this.#append({ d: present }));
  }
  async keys(prefix: string): Promise<string[]> {
    return [...this.#map.keys()].filter((k) => k.startsWith(prefix) && k !== CHECK_KEY);
  }
  close(): Promise<void> {
    return this.#serial(async () => {
      await this.#fh?.close();
      this.#fh = undefined;
    });
  }
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
  readonly #log: LogFile;
  readonly #sealed: SealedStore;
  readonly #dir: string;
  #closed = false;

  private constructor(dir: string, log: LogFile, storageKey: Uint8Array) {
    this.#dir = dir;
    this.#log = log;
    this.#sealed = new SealedStore(log, storageKey);
  }

  /** The store's directory. */
  get dir(): string {
    return this.#dir;
  }

  /**
   * Opens (or creates) the store in `options.dir`.
   * @throws ParleyError `STORAGE_INTEGRITY` for a wrong secret/key file or a damaged log,
   *   `USAGE` when the directory is already open (in this or another live process) or the key
   *   file is readable by others.
   */
  static async open(options: FileStoreOptions): Promise<FileStore> {
    if (!options || typeof options.dir !== 'string' || options.dir.length === 0) throw new ParleyError('USAGE', 'options.dir is required');
    const dir = resolve(options.dir);
    if (openDirs.has(dir)) throw new ParleyError('USAGE', 'this store directory is already open in this process');
    await mkdir(dir, { recursive: true, mode: 0o700 });
    openDirs.add(dir);
    try {
      await FileStore.#lock(dir);
      try {
        const salt = await FileStore.#meta(dir, options);
        const secret = options.storageSecret ?? (await FileStore.#keyFile(options.keyFile ?? join(dir, KEY_FILE)));
        const storageKey = deriveStorageKey(secret, salt.salt);
        if (salt.check) {
          try {
            openRecord(storageKey, CHECK_KEY, salt.check);
          } catch (cause) {
            throw integrity('wrong storage secret or key file for this store', cause);
          }
        } else {
          await FileStore.#writeMeta(dir, salt.salt, sealRecord(storageKey, CHECK_KEY, utf8(CHECK_VALUE)));
        }
        const log = new LogFile(join(dir, LOG_FILE));
        await log.load();
        return new FileStore(dir, log, storageKey);
      } catch (e) {
        await rm(join(dir, LOCK_FILE), { force: true });
        throw e;
      }
    } catch (e) {
      openDirs.delete(dir);
      throw e;
    }
  }

  static async #lock(dir: string): Promise<void> {
    const path = join(dir, LOCK_FILE);
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fh = await open(path, 'wx', 0o600);
        await fh.writeFile(String(process.pid));
        await fh.close();
        return;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        const pid = Number((await readFile(path, 'utf8').catch(() => '')).trim());
        if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && pidAlive(pid)) {
          throw new ParleyError('USAGE', 'store directory is in use by another process', { details: { pid } });
        }
        await rm(path, { force: true }); // stale: its process is gone (or it was ours and never closed)
      }
    }
    throw new ParleyError('USAGE', 'could not lock the store directory');
  }

  static async #meta(dir: string, options: FileStoreOptions): Promise<{ salt: Uint8Array; check?: Uint8Array }> {
    void options;
    let text: string;
    try {
      text = await readFile(join(dir, META_FILE), 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      return { salt: getCrypto().randomBytes(32) };
    }
    try {
      const meta = JSON.parse(text) as { format?: unknown; version?: unknown; salt?: unknown; check?: unknown };
      if (meta.format !== META_FORMAT) throw new Error('format');
      if (meta.version !== META_VERSION) {
        throw new ParleyError('UNSUPPORTED_VERSION', 'unsupported file store version', { details: { version: String(meta.version) } });
      }
      if (typeof meta.salt !== 'string' || typeof meta.check !== 'string') throw new Error('fields');
      return { salt: fromHex(meta.salt), check: new Uint8Array(Buffer.from(meta.check, 'base64')) };
    } catch (e) {
      if (e instanceof ParleyError) throw e;
      throw integrity('store metadata is damaged', e);
    }
  }

  static async #writeMeta(dir: string, salt: Uint8Array, check: Uint8Array): Promise<void> {
    const meta = { format: META_FORMAT, version: META_VERSION, salt: toHex(salt), check: Buffer.from(check).toString('base64') };
    await writeFileAtomic(join(dir, META_FILE), utf8(`${JSON.stringify(meta, null, 2)}\n`));
  }

  static async #keyFile(path: string): Promise<Uint8Array> {
    try {
      const st = await stat(path);
      if (process.platform !== 'win32' && (st.mode & 0o077) !== 0) {
        throw new ParleyError('USAGE', 'storage key file must not be readable by group or others (chmod 600)');
      }
      const key = new Uint8Array(await readFile(path));
      if (key.length !== 32) throw integrity('storage key file is damaged');
      return key;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    const key = getCrypto().randomBytes(32);
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    const fh = await open(path, 'wx', 0o600);
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

  /** Flushes and releases the directory. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#log.close();
    await rm(join(this.#dir, LOCK_FILE), { force: true });
    openDirs.delete(this.#dir);
  }

  toJSON(): { dir: string } {
    return { dir: this.#dir };
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `FileStore { dir: '${this.#dir}', storageKey: [redacted] }`;
  }
}
