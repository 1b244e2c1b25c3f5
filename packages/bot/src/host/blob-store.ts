/**
 * The host's store of sealed blobs: opaque bytes by record key, on disk. Runs in the host.
 *
 * The host can't read what it stores (the blobs are sealed inside the enclave); it only makes
 * the enclave's batches durable and atomic. Layout of the directory:
 *
 * - `log`: the batches since the last snapshot, appended one frame per batch and fdatasync'ed
 *   before the batch is acked (group commit: the batches that queued up during one append +
 *   sync share the next one; see {@link SealedBlobStore.writeBatch});
 * - `snapshot`: every record as of the last compaction (written to `snapshot.tmp`, synced,
 *   renamed, directory synced; then the log is truncated);
 * - `lock`: the pid of the process using the directory.
 *
 * ```
 *  log frame:  u32 BE payload length | u32 BE CRC-32 of payload | payload
 *  payload:    "PBB1" | u32 puts | (u16 keyLen | key | u32 blobLen | blob)* | u32 dels | (u16 keyLen | key)*
 *  snapshot:   "PBS1" | u32 records | (u16 keyLen | key | u32 blobLen | blob)*
 * ```
 * On open, the snapshot is loaded and the log replayed; a torn last frame (short, or its CRC
 * doesn't match: a crash mid-append) is cut off, so a batch is seen whole or not at all.
 * Replaying a frame twice is harmless (puts and deletes are absolute), which makes a crash
 * between a compaction's rename and its log truncation safe. The CRC only detects torn writes;
 * tampering is caught by the enclave's AEAD (`STORAGE_INTEGRITY`).
 */
import { mkdir, open, readFile, rename, rm, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { ParleyError } from '@parley/protocol/errors';
import { ByteReader, ByteWriter } from '@parley/protocol/wire';
import { MAX_RECORD_KEY_LENGTH, type SealedRecord } from '../rpc/messages.js';

const BATCH_MAGIC = 'PBB1';
const SNAPSHOT_MAGIC = 'PBS1';
const KEY_PATTERN = /^[A-Za-z0-9_:./-]{1,120}$/;
/** Compact once the log holds this many bytes… */
export const COMPACT_LOG_BYTES = 16 * 1024 * 1024;
/** …or this many batches (bounds replay time at start). */
export const COMPACT_LOG_FRAMES = 20_000;

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(b: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < b.length; i++) c = CRC_TABLE[(c ^ b[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function checkKey(key: string): void {
  if (typeof key !== 'string' || !KEY_PATTERN.test(key) || key.length > MAX_RECORD_KEY_LENGTH) throw new ParleyError('USAGE', 'invalid record key');
}

const utf8Encoder = new TextEncoder();

/** A record key: u16 length, UTF-8 (keys are short ASCII paths, `checkKey`). */
function writeKey(w: ByteWriter, key: string): ByteWriter {
  const b = utf8Encoder.encode(key);
  return w.u16(b.length).fixed(b);
}

function readKey(r: ByteReader): string {
  return r.utf8(r.fixed(r.u16()));
}

function writeMagic(w: ByteWriter, magic: string): ByteWriter {
  return w.fixed(utf8Encoder.encode(magic));
}

function readMagic(r: ByteReader, magic: string): void {
  if (String.fromCharCode(...r.fixed(4)) !== magic) throw new ParleyError('STORAGE_INTEGRITY', 'blob store file has the wrong format');
}

/** The protocol's bounds-checked reader; any overrun is damage, not a crash. */
function reader(bytes: Uint8Array): ByteReader {
  return new ByteReader(bytes, 'STORAGE_INTEGRITY');
}

async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } catch {
    // Some platforms can't fsync a directory; the rename is still atomic.
  } finally {
    await fh.close();
  }
}

/** Sealed blobs on disk, written in atomic batches. One process per directory (a lock file says who). */
export class SealedBlobStore {
  readonly #dir: string;
  readonly #records = new Map<string, Uint8Array>();
  #log: FileHandle | undefined;
  #logBytes = 0;
  #logFrames = 0;
  #closed = false;
  #token = '';
  /** Exclusive operations (group appends, compaction) run one after another on this chain. */
  #chain: Promise<unknown> = Promise.resolve();
  /** Batches waiting for the next group commit. */
  #queue: { payload: Uint8Array; frame: Uint8Array; resolve: () => void; reject: (e: unknown) => void }[] = [];
  /** A drain is queued or running; it takes every batch queued before it finishes. */
  #draining = false;
  /** An append failed: the log may hold a partial frame past `#logBytes`. */
  #torn = false;

  private constructor(dir: string) {
    this.#dir = dir;
  }

  /**
   * Opens (creating if needed) the store in `dir`, takes its lock, loads the snapshot and
   * replays the log.
   * @throws ParleyError `USAGE` when another live process (or another open store in this one)
   *   holds the directory: two writers would corrupt each other's log.
   */
  static async open(dir: string): Promise<SealedBlobStore> {
    const store = new SealedBlobStore(dir);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await store.#takeLock();
    try {
      await store.#load();
    } catch (e) {
      await store.close();
      throw e;
    }
    return store;
  }

  async #takeLock(): Promise<void> {
    const lock = join(this.#dir, 'lock');
    const token = `${process.pid}:${process.hrtime.bigint()}`;
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        await writeFile(lock, token, { flag: 'wx', mode: 0o600 });
        this.#token = token;
        return;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      const holder = Number((await readFile(lock, 'utf8').catch(() => '')).split(':')[0]);
      let alive = false;
      if (Number.isSafeInteger(holder) && holder > 0) {
        try {
          process.kill(holder, 0);
          alive = true;
        } catch (e) {
          alive = (e as NodeJS.ErrnoException).code === 'EPERM';
        }
      }
      if (alive) throw new ParleyError('USAGE', 'the bot state directory is in use by another bot', { details: { pid: holder } });
      await rm(lock, { force: true }); // left by a crashed process
    }
    throw new ParleyError('USAGE', 'could not lock the bot state directory');
  }

  async #load(): Promise<void> {
    await rm(join(this.#dir, 'snapshot.tmp'), { force: true });
    const snap = await readFile(join(this.#dir, 'snapshot')).catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return undefined;
      throw e;
    });
    if (snap) {
      const r = reader(snap);
      readMagic(r, SNAPSHOT_MAGIC);
      for (let n = r.u32(); n > 0; n--) {
        const key = readKey(r);
        this.#records.set(key, r.fixed(r.u32()));
      }
      if (r.remaining !== 0) throw new ParleyError('STORAGE_INTEGRITY', 'trailing bytes in the blob snapshot');
    }
    const logPath = join(this.#dir, 'log');
    const log = await readFile(logPath).catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return new Uint8Array(0);
      throw e;
    });
    let good = 0;
    let frames = 0;
    while (good + 8 <= log.length) {
      const view = new DataView(log.buffer, log.byteOffset + good, 8);
      const len = view.getUint32(0);
      const crc = view.getUint32(4);
      if (good + 8 + len > log.length) break; // torn last frame
      const payload = log.subarray(good + 8, good + 8 + len);
      if (crc32(payload) !== crc) {
        // Only the last frame can be torn by a crash; a bad frame with data after it is damage.
        if (good + 8 + len < log.length) throw new ParleyError('STORAGE_INTEGRITY', 'the sealed blob log is damaged', { details: { offset: good } });
        break;
      }
      this.#apply(payload);
      good += 8 + len;
      frames++;
    }
    this.#log = await open(logPath, 'a+', 0o600);
    if (good !== log.length) {
      await this.#log.truncate(good); // a torn last frame: the batch never committed
      await this.#log.sync();
    }
    this.#logBytes = good;
    this.#logFrames = frames;
  }

  #apply(payload: Uint8Array): void {
    const r = reader(payload);
    readMagic(r, BATCH_MAGIC);
    const puts: [string, Uint8Array][] = [];
    for (let n = r.u32(); n > 0; n--) {
      const key = readKey(r);
      puts.push([key, r.fixed(r.u32())]);
    }
    const dels: string[] = [];
    for (let n = r.u32(); n > 0; n--) dels.push(readKey(r));
    for (const [k, v] of puts) this.#records.set(k, v);
    for (const k of dels) this.#records.delete(k);
  }

  /** Every record, for starting the enclave. */
  async readAll(): Promise<SealedRecord[]> {
    await this.#chain.catch(() => undefined);
    return [...this.#records].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([key, blob]) => ({ key, blob }));
  }

  /**
   * Writes one batch atomically; resolves once it is durable. Batches apply in call order.
   *
   * Group commit: a batch that arrives while an append + fdatasync is running waits for it, and
   * then every waiting batch is appended in one write (still one CRC'd frame per batch, so each
   * is replayed whole or not at all) and made durable by ONE fdatasync; each caller resolves only
   * after that sync. If a group fails, nothing in it is known durable, and the batches queued
   * behind it fail too: they were issued before the failure was known and may build on it (the
   * enclave pipelines its commits), so none of them may become durable without it.
   */
  writeBatch(puts: readonly SealedRecord[], dels: readonly string[]): Promise<void> {
    if (this.#closed || !this.#log) return Promise.reject(new ParleyError('USAGE', 'the blob store is closed'));
    for (const p of puts) checkKey(p.key);
    for (const d of dels) checkKey(d);
    const out = writeMagic(new ByteWriter(), BATCH_MAGIC).u32(puts.length);
    for (const p of puts) writeKey(out, p.key).bytes(p.blob);
    out.u32(dels.length);
    for (const d of dels) writeKey(out, d);
    const payload = out.finish();
    const frame = new ByteWriter(payload.length + 8).u32(payload.length).u32(crc32(payload)).fixed(payload).finish();
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ payload, frame, resolve, reject });
      if (!this.#draining) {
        this.#draining = true;
        // Started on the next turn, so the batches posted in this one share the first sync too.
        const p = this.#chain.then(() => new Promise<void>((r) => setImmediate(r))).then(() => this.#drain());
        this.#chain = p.catch(() => undefined);
      }
    });
  }

  /** Appends and syncs queued batches, a group at a time, until none are left. Never rejects. */
  async #drain(): Promise<void> {
    for (;;) {
      const group = this.#queue;
      if (group.length === 0) {
        this.#draining = false; // in the same turn as the emptiness check: no batch is stranded
        return;
      }
      this.#queue = [];
      try {
        if (this.#torn) {
          // A failed append may have left part of a frame past the last good one: cut it, or
          // the next frame would follow garbage and the log would read as damaged.
          await this.#log!.truncate(this.#logBytes);
          this.#torn = false;
        }
        const bytes = group.length === 1 ? group[0]!.frame : Buffer.concat(group.map((w) => w.frame));
        this.#torn = true;
        await this.#log!.write(bytes, 0, bytes.length, null);
        await this.#log!.datasync();
        this.#torn = false;
        this.#logBytes += bytes.length;
        this.#logFrames += group.length;
        for (const w of group) this.#apply(w.payload);
        if (this.#logBytes > COMPACT_LOG_BYTES || this.#logFrames > COMPACT_LOG_FRAMES) await this.#compact();
      } catch (e) {
        const behind = this.#queue;
        this.#queue = [];
        for (const w of group) w.reject(e);
        for (const w of behind) w.reject(e);
        continue;
      }
      for (const w of group) w.resolve();
    }
  }

  async #compact(): Promise<void> {
    const out = writeMagic(new ByteWriter(), SNAPSHOT_MAGIC).u32(this.#records.size);
    for (const [k, v] of this.#records) writeKey(out, k).bytes(v);
    const tmp = join(this.#dir, 'snapshot.tmp');
    const fh = await open(tmp, 'w', 0o600);
    try {
      await fh.writeFile(out.finish());
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, join(this.#dir, 'snapshot'));
    await syncDir(this.#dir);
    await this.#log!.truncate(0);
    await this.#log!.sync();
    this.#logBytes = 0;
    this.#logFrames = 0;
  }

  /** Compacts now (tests, and shutdown to keep the next start quick). */
  compact(): Promise<void> {
    const run = () => this.#compact();
    const p = this.#chain.then(run, run);
    this.#chain = p.catch(() => undefined);
    return p;
  }

  /** Waits for pending batches, closes the log and releases the lock. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#chain.catch(() => undefined);
    await this.#log?.close();
    this.#log = undefined;
    const lock = join(this.#dir, 'lock');
    const holder = await readFile(lock, 'utf8').catch(() => '');
    if (holder === this.#token) await rm(lock, { force: true });
  }
}
