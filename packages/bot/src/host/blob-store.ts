/**
 * The host's store of sealed blobs: opaque bytes by record key, on disk. Runs in the host.
 *
 * The host can't read what it stores (the blobs are sealed inside the enclave); it only makes
 * the enclave's batches durable and atomic, and makes deletion real. Layout of the directory:
 *
 * - `log`: the batches since the last snapshot, appended one frame per batch and fdatasync'ed
 *   before the batch is acked (group commit: the batches that queued up during one append +
 *   sync share the next one; see {@link SealedBlobStore.writeBatch});
 * - `snapshot`: every record as of the last compaction (written to `snapshot.tmp`, synced,
 *   renamed, directory synced; then the log is truncated);
 * - `lock`: the pid of the process using the directory.
 *
 * ```
 *  log frame:  u32 BE payload length | u32 BE CRC-32 of the payload's structure | payload
 *  payload:    "PBB2" | u32 puts | (u16 keyLen | key | u32 blobLen | u32 blobCRC | blob)* | u32 dels | (u16 keyLen | key)*
 *  structure:  the payload without the blobs' bytes (magic, counts, keys, lengths, blob CRCs)
 *  snapshot:   "PBS2" | u32 records | (u16 keyLen | key | u32 blobLen | u32 blobCRC | blob)*
 * ```
 *
 * ## Deletion is real (docs/threats.md B9)
 * Once a batch is durable, every blob it superseded or deleted (an older version of a record in
 * the log or the snapshot) is overwritten with zeros in place, before the batch is acked. So a
 * copy of the directory taken after the ack, even with the sealing secret, holds only the
 * current version of each record: no superseded session state (chain keys the ratchet deleted),
 * no used one-time prekey, no consumed inbox plaintext. The zeros reach the disk with the next
 * batch's fdatasync, at close, or with the kernel's writeback; a power cut before that can bring
 * back what the last batches superseded (never a batch's own writes). Record *keys* of deleted
 * records (`inbox/<n>`, `session/<peer>/<id>`: counters and ids the host routes anyway) stay in
 * the log until compaction. What the file system or the disk may keep of overwritten blocks
 * (copy-on-write file systems, SSD remapping, backups of the folder) is outside this code.
 *
 * ## Crash safety
 * On open, the snapshot is loaded and the log replayed; a torn last frame (short, its structure
 * CRC doesn't match, or one of its blobs fails its CRC: a crash mid-append) is cut off, so a
 * batch is seen whole or not at all. A zeroed blob fails its CRC, which is fine exactly when a
 * later frame puts or deletes the same key (it was superseded; a crash between a batch's sync
 * and the zeroing leaves it intact, and the next open zeroes it). A blob that is still live and
 * fails its CRC is damage: `STORAGE_INTEGRITY`. Replaying a frame twice is harmless (puts and
 * deletes are absolute), which makes a crash between a compaction's rename and its log
 * truncation safe. The CRCs only detect torn writes; tampering is caught by the enclave's AEAD
 * and its state digest (`STORAGE_INTEGRITY`).
 *
 * Stores written before issue 10 (`PBB1` frames, a `PBS1` snapshot: no per-blob CRC, superseded
 * blobs kept) are read and compacted into the current format at once, which drops what they kept.
 */
import { constants as fsConstants, writeSync } from 'node:fs';
import { mkdir, open, readFile, realpath, rename, rm, stat, writeFile, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve, isAbsolute } from 'node:path';
import { ParleyError } from '@parley/protocol/errors';
import { ByteReader } from '@parley/protocol/wire';
import { MAX_RECORD_KEY_LENGTH, type SealedRecord } from '../rpc/messages.js';
import type { SealingSecretOption } from './supervisor.js';

const BATCH_MAGIC = 'PBB2';
const SNAPSHOT_MAGIC = 'PBS2';
/** The formats before issue 10: read, then compacted away. */
const LEGACY_BATCH_MAGIC = 'PBB1';
const LEGACY_SNAPSHOT_MAGIC = 'PBS1';
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

/** CRC-32 of `b`, continuing from `crc` (the CRC of the bytes before it; 0 to start). */
function crc32(b: Uint8Array, crc = 0): number {
  let c = crc ^ 0xffffffff;
  for (let i = 0; i < b.length; i++) c = CRC_TABLE[(c ^ b[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function checkKey(key: string): void {
  if (typeof key !== 'string' || !KEY_PATTERN.test(key) || key.length > MAX_RECORD_KEY_LENGTH) throw new ParleyError('USAGE', 'invalid record key');
}

const utf8Encoder = new TextEncoder();

function integrity(message: string, details?: Record<string, number | string>): ParleyError {
  return new ParleyError('STORAGE_INTEGRITY', message, details ? { details } : undefined);
}

/** Where a blob's bytes are, to overwrite them once it is superseded. */
interface Location {
  readonly file: 'log' | 'snapshot';
  readonly offset: number;
  readonly length: number;
}

interface StoredBlob {
  readonly blob: Uint8Array;
  readonly at: Location;
}

/** A blob read from disk, with whether it still matches its CRC (a zeroed one does not). */
interface ReadBlob extends StoredBlob {
  readonly intact: boolean;
}

/** A batch as encoded for the log: the frame, and where each put's blob sits in it. */
interface EncodedBatch {
  readonly frame: Uint8Array;
  readonly puts: readonly { key: string; blob: Uint8Array; offset: number }[];
  readonly dels: readonly string[];
}

/**
 * Encodes a batch as one log frame (or, with `snapshot`, the snapshot file). The structure CRC
 * runs over everything but the blobs, so zeroing a superseded blob keeps the frame readable.
 */
function encode(puts: readonly SealedRecord[], dels: readonly string[], snapshot = false): EncodedBatch {
  const keys = puts.map((p) => utf8Encoder.encode(p.key));
  const delKeys = dels.map((d) => utf8Encoder.encode(d));
  const header = snapshot ? 0 : 8;
  let size = header + 4 + 4;
  for (let i = 0; i < puts.length; i++) size += 2 + keys[i]!.length + 8 + puts[i]!.blob.length;
  if (!snapshot) {
    size += 4;
    for (const k of delKeys) size += 2 + k.length;
  }
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  let at = header;
  // The structure CRC runs over everything written but the blobs: the runs between them.
  let structure = 0;
  let runStart = at;
  out.set(utf8Encoder.encode(snapshot ? SNAPSHOT_MAGIC : BATCH_MAGIC), at);
  view.setUint32(at + 4, puts.length);
  at += 8;
  const placed: { key: string; blob: Uint8Array; offset: number }[] = [];
  for (let i = 0; i < puts.length; i++) {
    const { key, blob } = puts[i]!;
    const k = keys[i]!;
    view.setUint16(at, k.length);
    out.set(k, at + 2);
    at += 2 + k.length;
    view.setUint32(at, blob.length);
    view.setUint32(at + 4, crc32(blob));
    at += 8;
    structure = crc32(out.subarray(runStart, at), structure);
    out.set(blob, at);
    placed.push({ key, blob, offset: at });
    at += blob.length;
    runStart = at;
  }
  if (!snapshot) {
    view.setUint32(at, delKeys.length);
    at += 4;
    for (const k of delKeys) {
      view.setUint16(at, k.length);
      out.set(k, at + 2);
      at += 2 + k.length;
    }
    structure = crc32(out.subarray(runStart, at), structure);
    view.setUint32(0, size - 8);
    view.setUint32(4, structure);
  }
  return { frame: out, puts: placed, dels };
}

/** A parsed log frame: its puts (with where their blobs are) and deletes. */
interface ParsedFrame {
  readonly end: number;
  /** A `PBB1` frame (before issue 10). */
  readonly legacy: boolean;
  readonly puts: { key: string; blob: ReadBlob }[];
  readonly dels: string[];
}

/**
 * Parses one frame's payload at `payloadAt` in the log, or returns `undefined` when its structure
 * (or, for a legacy frame, its whole payload) does not match `crc`.
 */
function parseFrame(log: Uint8Array, payloadAt: number, length: number, crc: number): ParsedFrame | undefined {
  const payload = log.subarray(payloadAt, payloadAt + length);
  const magic = String.fromCharCode(...payload.subarray(0, 4));
  const legacy = magic === LEGACY_BATCH_MAGIC;
  if (legacy && crc32(payload) !== crc) return undefined;
  if (!legacy && magic !== BATCH_MAGIC) return undefined;
  const r = new ByteReader(payload, 'STORAGE_INTEGRITY');
  let structure = 0;
  const take = (n: number): Uint8Array => {
    const b = r.fixed(n);
    structure = crc32(b, structure);
    return b;
  };
  const u16 = (): number => {
    const b = take(2);
    return (b[0]! << 8) | b[1]!;
  };
  const u32 = (): number => {
    const b = take(4);
    return ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0;
  };
  try {
    take(4);
    const puts: ParsedFrame['puts'] = [];
    for (let n = u32(); n > 0; n--) {
      const key = r.utf8(take(u16()));
      const blobLength = u32();
      const blobCrc = legacy ? undefined : u32();
      const offset = payloadAt + r.offset;
      const blob = r.fixed(blobLength);
      puts.push({ key, blob: { blob, at: { file: 'log', offset, length: blobLength }, intact: blobCrc === undefined || crc32(blob) === blobCrc } });
    }
    const dels: string[] = [];
    for (let n = u32(); n > 0; n--) dels.push(r.utf8(take(u16())));
    if (r.remaining !== 0) return undefined;
    if (!legacy && structure !== crc) return undefined;
    return { end: payloadAt + length, legacy, puts, dels };
  } catch {
    return undefined;
  }
}

/** Parses a snapshot file (current or legacy format): every record with its location. */
function parseSnapshot(snap: Uint8Array): { records: Map<string, ReadBlob>; legacy: boolean } {
  const r = new ByteReader(snap, 'STORAGE_INTEGRITY');
  const magic = String.fromCharCode(...r.fixed(4));
  const legacy = magic === LEGACY_SNAPSHOT_MAGIC;
  if (!legacy && magic !== SNAPSHOT_MAGIC) throw integrity('blob store file has the wrong format');
  const records = new Map<string, ReadBlob>();
  for (let n = r.u32(); n > 0; n--) {
    const key = r.utf8(r.fixed(r.u16()));
    const length = r.u32();
    const blobCrc = legacy ? undefined : r.u32();
    const offset = r.offset;
    const blob = r.fixed(length);
    records.set(key, { blob, at: { file: 'snapshot', offset, length }, intact: blobCrc === undefined || crc32(blob) === blobCrc });
  }
  if (r.remaining !== 0) throw integrity('trailing bytes in the blob snapshot');
  return { records, legacy };
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

const ZEROS = new Uint8Array(64 * 1024);

/** Sealed blobs on disk, written in atomic batches. One process per directory (a lock file says who). */
export class SealedBlobStore {
  readonly #dir: string;
  readonly #records = new Map<string, StoredBlob>();
  #log: FileHandle | undefined;
  #snapshot: FileHandle | undefined;
  #logBytes = 0;
  #logFrames = 0;
  #closed = false;
  #token = '';
  /** Exclusive operations (group appends, compaction) run one after another on this chain. */
  #chain: Promise<unknown> = Promise.resolve();
  /** Batches waiting for the next group commit. */
  #queue: (EncodedBatch & { resolve: () => void; reject: (e: unknown) => void })[] = [];
  /** A drain is queued or running; it takes every batch queued before it finishes. */
  #draining = false;
  /** An append failed: the log may hold a partial frame past `#logBytes`. */
  #torn = false;
  /**
   * Superseded bytes may be left that no zeroing reached (an overwrite failed, or a compaction
   * stopped before truncating the log): the next drain compacts, which rewrites everything.
   */
  #mustCompact = false;
  /** Overwrites not yet known to be on disk, per file. */
  readonly #unsynced = { log: false, snapshot: false };

  private constructor(dir: string) {
    this.#dir = dir;
  }

  /**
   * Opens (creating if needed) the store in `dir`, takes its lock, loads the snapshot and
   * replays the log.
   * @throws ParleyError `USAGE` when another live process (or another open store in this one)
   *   holds the directory: two writers would corrupt each other's log. `STORAGE_INTEGRITY` when
   *   the log or snapshot is damaged beyond a torn last write.
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
    // A compaction that crashed before its rename: the live records it held are still in the
    // snapshot and log; the copy goes.
    await rm(join(this.#dir, 'snapshot.tmp'), { force: true });
    const snapPath = join(this.#dir, 'snapshot');
    // Plain Uint8Arrays (a Buffer's `slice` is a view, and the parsers keep what they slice).
    const snap = await readFile(snapPath).then(
      (b) => new Uint8Array(b),
      (e: NodeJS.ErrnoException) => {
        if (e.code === 'ENOENT') return undefined;
        throw e;
      },
    );
    const { records, legacy: legacySnapshot } = snap ? parseSnapshot(snap) : { records: new Map<string, ReadBlob>(), legacy: false };
    const logPath = join(this.#dir, 'log');
    const log = await readFile(logPath).then(
      (b) => new Uint8Array(b),
      (e: NodeJS.ErrnoException) => {
        if (e.code === 'ENOENT') return new Uint8Array(0);
        throw e;
      },
    );
    const frames: ParsedFrame[] = [];
    let good = 0;
    while (good + 8 <= log.length) {
      const view = new DataView(log.buffer, log.byteOffset + good, 8);
      const length = view.getUint32(0);
      if (good + 8 + length > log.length) break; // torn last frame
      const frame = parseFrame(log, good + 8, length, view.getUint32(4));
      if (!frame) {
        // Only the last frame can be torn by a crash; a bad frame with data after it is damage.
        if (good + 8 + length < log.length) throw integrity('the sealed blob log is damaged', { offset: good });
        break;
      }
      frames.push(frame);
      good = frame.end;
    }
    // A complete last frame with a blob that fails its CRC was torn inside a blob.
    const last = frames.at(-1);
    if (last && last.end === log.length && last.puts.some((p) => !p.blob.intact)) {
      frames.pop();
      good = frames.at(-1)?.end ?? 0;
    }
    const legacy = legacySnapshot || frames.some((f) => f.legacy);
    const superseded: ReadBlob[] = [];
    for (const frame of frames) {
      for (const { key, blob } of frame.puts) {
        const before = records.get(key);
        if (before) superseded.push(before);
        records.set(key, blob);
      }
      for (const key of frame.dels) {
        const before = records.get(key);
        if (before) superseded.push(before);
        records.delete(key);
      }
    }
    for (const [key, blob] of records) {
      if (!blob.intact) throw integrity('a sealed blob is damaged', { key: key.split('/')[0] ?? '', file: blob.at.file });
      this.#records.set(key, { blob: blob.blob, at: blob.at });
    }
    this.#log = await open(logPath, fsConstants.O_RDWR | fsConstants.O_CREAT, 0o600);
    if (snap) this.#snapshot = await open(snapPath, 'r+');
    if (good !== log.length) {
      await this.#log.truncate(good); // a torn last frame: the batch never committed
      await this.#log.sync();
    }
    this.#logBytes = good;
    this.#logFrames = frames.length;
    if (legacy) {
      // Written before issue 10: superseded blobs are all still there, without CRCs to zero
      // them by. Rewriting the live records drops them.
      await this.#compact();
      return;
    }
    // Superseded blobs a crash left intact (between a batch's sync and their zeroing). The log
    // is synced first: the frames that supersede them may not have reached the disk yet (a
    // process that died between its write and its fdatasync, in the same boot).
    const left = superseded.filter((b) => b.intact);
    if (left.length > 0) {
      await this.#log.datasync();
      this.#zero(left);
    }
  }

  /**
   * Overwrites blobs with zeros in place (see "Deletion is real"). Never throws. The writes are
   * synchronous: each is a small copy into the page cache (microseconds), cheaper than a round
   * trip through libuv's thread pool per blob.
   */
  #zero(blobs: readonly StoredBlob[]): void {
    for (const { at } of blobs) {
      const fh = at.file === 'log' ? this.#log : this.#snapshot;
      if (!fh) continue;
      this.#unsynced[at.file] = true;
      try {
        for (let done = 0; done < at.length; done += ZEROS.length) writeSync(fh.fd, ZEROS, 0, Math.min(ZEROS.length, at.length - done), at.offset + done);
      } catch {
        this.#mustCompact = true; // the next drain rewrites everything instead
      }
    }
  }

  /** Every record, for starting the enclave. */
  async readAll(): Promise<SealedRecord[]> {
    await this.#chain.catch(() => undefined);
    return [...this.#records].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([key, { blob }]) => ({ key, blob }));
  }

  /**
   * Writes one batch atomically; resolves once it is durable and what it superseded or deleted
   * is overwritten. Batches apply in call order.
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
    const batch = encode(puts, dels);
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ ...batch, resolve, reject });
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
        await this.#log!.write(bytes, 0, bytes.length, this.#logBytes);
        await this.#log!.datasync();
        this.#torn = false;
        this.#unsynced.log = false;
        // Durable: apply, and overwrite what the group superseded or deleted.
        const dead: StoredBlob[] = [];
        let base = this.#logBytes;
        for (const w of group) {
          for (const p of w.puts) {
            const before = this.#records.get(p.key);
            if (before) dead.push(before);
            this.#records.set(p.key, { blob: p.blob, at: { file: 'log', offset: base + p.offset, length: p.blob.length } });
          }
          for (const d of w.dels) {
            const before = this.#records.get(d);
            if (before) dead.push(before);
            this.#records.delete(d);
          }
          base += w.frame.length;
        }
        this.#logBytes = base;
        this.#logFrames += group.length;
        this.#zero(dead);
        if (this.#mustCompact || this.#logBytes > COMPACT_LOG_BYTES || this.#logFrames > COMPACT_LOG_FRAMES) {
          // The group is durable whatever happens here; a failed compaction is retried next time.
          await this.#compact().catch(() => (this.#mustCompact = true));
        }
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

  /** Writes the live records as the new snapshot and empties the log. */
  async #compact(): Promise<void> {
    this.#mustCompact = true; // until the log is empty, old frames may hold untracked copies
    const entries = [...this.#records];
    const snap = encode(
      entries.map(([key, { blob }]) => ({ key, blob })),
      [],
      true,
    );
    const tmp = join(this.#dir, 'snapshot.tmp');
    const fh = await open(tmp, 'w', 0o600);
    try {
      await fh.writeFile(snap.frame);
      await fh.sync();
    } finally {
      await fh.close();
    }
    const snapPath = join(this.#dir, 'snapshot');
    await rename(tmp, snapPath);
    await syncDir(this.#dir);
    await this.#snapshot?.close().catch(() => undefined);
    this.#snapshot = await open(snapPath, 'r+');
    this.#unsynced.snapshot = false;
    for (const p of snap.puts) this.#records.set(p.key, { blob: p.blob, at: { file: 'snapshot', offset: p.offset, length: p.blob.length } });
    await this.#log!.truncate(0);
    await this.#log!.sync();
    this.#unsynced.log = false;
    this.#logBytes = 0;
    this.#logFrames = 0;
    this.#mustCompact = false;
  }

  /** Compacts now (tests, and shutdown to keep the next start quick). */
  compact(): Promise<void> {
    const run = () => this.#compact();
    const p = this.#chain.then(run, run);
    this.#chain = p.catch(() => undefined);
    return p;
  }

  /** Waits for pending batches, makes the last overwrites durable, closes the files and releases the lock. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#chain.catch(() => undefined);
    if (this.#unsynced.log) await this.#log?.datasync().catch(() => undefined);
    if (this.#unsynced.snapshot) await this.#snapshot?.datasync().catch(() => undefined);
    await this.#log?.close();
    await this.#snapshot?.close();
    this.#log = undefined;
    this.#snapshot = undefined;
    const lock = join(this.#dir, 'lock');
    const holder = await readFile(lock, 'utf8').catch(() => '');
    if (holder === this.#token) await rm(lock, { force: true });
  }
}

/** Where a bot's sealing secret and rollback anchor live (README "Sealing secret", "Rollback"). */
export interface StateFiles {
  readonly sealing: SealingSecretOption;
  /** The enclave's rollback anchor file; `undefined` when turned off. */
  readonly rollbackAnchor: string | undefined;
}

/** `path`, absolute, with the longest existing prefix resolved through symlinks. */
async function realish(path: string): Promise<string> {
  const abs = resolve(path);
  try {
    return await realpath(abs);
  } catch {
    const parent = dirname(abs);
    return parent === abs ? abs : join(await realish(parent), basename(abs));
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
}

/**
 * Resolves where the sealing secret and the rollback anchor of the state in `stateDir` (which
 * exists) live, and refuses either inside it: a copy of the state folder must carry neither the
 * key that opens it nor the anchor that dates it (issue 10, High 2 and Low 12). Defaults:
 * `<stateDir>.sealing.key` and `<stateDir>.anchor`, beside the folder.
 * @throws ParleyError `USAGE` (`details.reason`): `sealingSecretInStateDir` (an explicit file
 *   inside the folder, or `<stateDir>/sealing.key` left by an earlier version: the message says
 *   where to move it), `stateDirIsMountPoint` (the default secret would land on another file
 *   system, often not a persistent one: pass `sealingSecret`), `rollbackAnchorInStateDir`.
 */
export async function resolveStateFiles(stateDir: string, options: { sealingSecret?: SealingSecretOption; rollbackAnchor?: string | false }): Promise<StateFiles> {
  const dir = resolve(stateDir);
  const real = await realpath(dir);
  const inside = async (path: string): Promise<boolean> => {
    const rel = relative(real, await realish(path));
    return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
  };
  let sealing = options.sealingSecret;
  if (sealing && 'file' in sealing && (await inside(sealing.file))) {
    throw new ParleyError(
      'USAGE',
      `sealingSecret.file ${resolve(sealing.file)} is inside stateDir ${dir}: a copy of the state folder would carry the key that opens it. Keep the secret outside the folder (a mounted secret, or beside the folder: ${dir}.sealing.key)`,
      { details: { reason: 'sealingSecretInStateDir' } },
    );
  }
  if (!sealing) {
    const legacy = join(dir, 'sealing.key');
    if (await exists(legacy)) {
      throw new ParleyError(
        'USAGE',
        `${legacy} is the bot's sealing secret, inside its state folder (the default before issue 10), where a copy of the folder carries the key that opens it. Move it beside the folder, the new default: mv ${legacy} ${dir}.sealing.key (or move it anywhere else and pass sealingSecret: { file })`,
        { details: { reason: 'sealingSecretInStateDir' } },
      );
    }
    const parent = dirname(dir);
    if (parent === dir || (await stat(dir)).dev !== (await stat(parent)).dev) {
      throw new ParleyError(
        'USAGE',
        `stateDir ${dir} is a mount point, so the default sealing secret beside it (${dir}.sealing.key) would land on another file system, often not a persistent one (a container's): pass sealingSecret ({ file } on a persistent secret mount, or { provide })`,
        { details: { reason: 'stateDirIsMountPoint' } },
      );
    }
    sealing = { file: `${dir}.sealing.key`, create: true };
  }
  let rollbackAnchor: string | undefined;
  if (options.rollbackAnchor !== false) {
    rollbackAnchor = resolve(options.rollbackAnchor ?? `${dir}.anchor`);
    if (await inside(rollbackAnchor)) {
      throw new ParleyError('USAGE', `rollbackAnchor ${rollbackAnchor} is inside stateDir ${dir}: a rollback of the folder would roll the anchor back with it. Put it outside the folder (default: ${dir}.anchor)`, {
        details: { reason: 'rollbackAnchorInStateDir' },
      });
    }
  }
  return { sealing, rollbackAnchor };
}
