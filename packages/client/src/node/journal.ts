/**
 * The `FileStore`'s journal: the sealed records of one store as an append-only file of
 * transactions whose dead values are overwritten in place, under a MAC chain that covers the set
 * of records and their versions (issue 10: High 2 and Medium 8; docs/threats.md ST1, ST7).
 *
 * ## Lines
 * Each line is one transaction (a `setMany` or a `delMany`), canonical JSON:
 * ```
 *  {"n":7,"s":[[key, value, hash], …],"d":[key, …],"m":mac,"t":token}
 *   n      transaction number: the previous line's + 1
 *   value  base64 of the sealed record (SealedStore), or "*"s once it is dead (scrubbed)
 *   hash   base64 of SHA-256(sealed record)[0..16): which version of the record this line wrote
 *   mac    base64 HMAC-SHA256(macKey, "parley/v1/file-store/line" 0x00 || previous mac ||
 *          JSON [n, [[key, hash], …], [deleted key, …]]); the first line of the file chains
 *          from HMAC(macKey, "parley/v1/file-store/genesis")
 *   token  base64 HMAC-SHA256(macKey, "parley/v1/file-store/tail" 0x00 || mac)[0..16) on the
 *          last line; "*"s on every other line
 * ```
 * `macKey` is HKDF-SHA256(storageKey, store salt, "parley/v1/file-store/journal-mac").
 *
 * ## Deletion is real
 * Once a transaction is durable (written, `fdatasync`ed), every value it superseded or deleted
 * and the previous line's token are overwritten in place with `*` before `setMany`/`delMany`
 * resolves. A copy of the directory taken after that (with the key) holds no older version of any
 * record: no superseded session state, no used one-time prekey, no consumed inbox message. The
 * overwrite reaches the disk with the next transaction's `fdatasync`, at close, or with the
 * kernel's writeback (seconds); until then a power cut can bring back what the last transaction
 * superseded, never more. A value is only scrubbed after the line that supersedes it is
 * durable, so a crash at any point leaves either the old or the new state, never neither.
 * Space: dead values stay as `*` runs (and dead key names stay) until compaction rewrites the
 * live records into a new file, when the file is over {@link COMPACT_MIN_BYTES} and more than
 * {@link COMPACT_RATIO}× the live records.
 *
 * ## Integrity of the set
 * Per record, the AEAD (record key as AD) stops edits and records moved between keys. The
 * journal adds what a per-record seal cannot see:
 * - an added, edited, removed or reordered line breaks the MAC chain: `STORAGE_INTEGRITY` at open;
 * - another sealed version of a record put in a line's value: its hash differs from the one the
 *   MAC covers: `STORAGE_INTEGRITY` when that record is read (that record only, like a flipped byte);
 * - dropping the last transactions (truncating the file at or inside a line): the new last line's
 *   token was scrubbed when the next line committed and cannot be recomputed without the key:
 *   `STORAGE_INTEGRITY` at open;
 * - a live record's value replaced by `*`s: `STORAGE_INTEGRITY` at open.
 * A crash tears at most the unfinished last line (no newline, or not JSON): it is cut off, and
 * the line before it still has its token, because tokens are scrubbed only after the next line
 * is durable. Not covered: replacing the whole directory with an older copy of itself.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { constants as fsConstants, writeSync } from 'node:fs';
import { open, readFile, type FileHandle } from 'node:fs/promises';
import { ParleyError, getCrypto, utf8 } from '@parley/protocol';
import type { KeyValueStore } from '@parley/engine';
import { writeFileAtomic } from './fs-atomic.js';

/** Compaction runs when the journal is larger than this and mostly dead space. */
export const COMPACT_MIN_BYTES = 1 << 20;
/** … and larger than this many times the live records. */
export const COMPACT_RATIO = 4;
/** Entries per line in a compacted snapshot (each line stays one valid transaction). */
const SNAPSHOT_ENTRIES_PER_LINE = 256;
const HASH_BYTES = 16;
const TOKEN_BYTES = 16;
const MAC_INFO = utf8('parley/v1/file-store/journal-mac');
const LINE_DOMAIN = Buffer.from('parley/v1/file-store/line\u0000');
const TAIL_DOMAIN = Buffer.from('parley/v1/file-store/tail\u0000');
const GENESIS_DOMAIN = Buffer.from('parley/v1/file-store/genesis');
const SCRUB = 0x2a; // '*'
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const FIELDS = 'n,s,d,m,t';
/** Approximate bytes a live entry takes in a line besides its key and value. */
const ENTRY_OVERHEAD = 34;

/**
 * TEST ONLY: `afterCommit` runs after a transaction is durable and before what it superseded is
 * scrubbed (a test copies the directory there to get the state a crash at that point leaves).
 * Not exported from `@parley/client/node`.
 */
export const unsafeTestingJournalHooks: { afterCommit?: (path: string) => Promise<void> | void } = {};

function integrity(message: string, cause?: unknown): ParleyError {
  return new ParleyError('STORAGE_INTEGRITY', message, cause === undefined ? undefined : { cause });
}

/** The journal's MAC key, from the storage key and the store's salt. */
export function journalMacKey(storageKey: Uint8Array, salt: Uint8Array): Uint8Array {
  return getCrypto().hkdfSha256(storageKey, salt, MAC_INFO, 32);
}

type SetEntry = [key: string, value: string, hash: string];

interface Range {
  pos: number;
  len: number;
}

interface Live extends Range {
  sealed: Uint8Array;
  /** base64 hash the MAC chain covers for this version. */
  hash: string;
  /** The value does not hash to `hash`: reading it is `STORAGE_INTEGRITY`. */
  bad: boolean;
}

function valueHash(sealed: Uint8Array): string {
  return createHash('sha256').update(sealed).digest().subarray(0, HASH_BYTES).toString('base64');
}

function lineMac(key: Uint8Array, prev: Uint8Array, n: number, s: readonly SetEntry[], d: readonly string[]): Buffer {
  const covered = JSON.stringify([n, s.map(([k, , h]) => [k, h]), d]);
  return createHmac('sha256', key).update(LINE_DOMAIN).update(prev).update(covered, 'utf8').digest();
}

function tailToken(key: Uint8Array, mac: Uint8Array): string {
  return createHmac('sha256', key).update(TAIL_DOMAIN).update(mac).digest().subarray(0, TOKEN_BYTES).toString('base64');
}

function genesis(key: Uint8Array): Buffer {
  return createHmac('sha256', key).update(GENESIS_DOMAIN).digest();
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/** A line's text and where its values and token sit (byte offsets from the line's start). */
interface Built {
  text: string;
  values: Range[];
  token: Range;
}

/** The canonical text of a line (the writer's, and the form a read line must have). */
function buildLine(n: number, s: readonly SetEntry[], d: readonly string[], m: string, t: string): Built {
  let text = `{"n":${n},"s":[`;
  let bytes = text.length;
  const values: Range[] = [];
  for (let i = 0; i < s.length; i++) {
    const [k, v, h] = s[i]!;
    const head = `${i === 0 ? '' : ','}[${JSON.stringify(k)},"`;
    text += head;
    bytes += Buffer.byteLength(head, 'utf8');
    values.push({ pos: bytes, len: v.length }); // base64 or '*': one byte per character
    const tail = `${v}","${h}"]`;
    text += tail;
    bytes += tail.length;
  }
  const mid = `],"d":${JSON.stringify(d)},"m":"${m}","t":"`;
  text += mid;
  bytes += Buffer.byteLength(mid, 'utf8');
  const token = { pos: bytes, len: t.length };
  text += `${t}"}`;
  return { text, values, token };
}

interface ParsedLine {
  n: number;
  s: SetEntry[];
  d: string[];
  m: string;
  t: string;
}

function isValueText(v: unknown): v is string {
  return typeof v === 'string' && (v.includes('*') ? /^[A-Za-z0-9+/=*]*$/.test(v) : BASE64.test(v));
}

function parseLine(text: string): ParsedLine {
  return checkLine(JSON.parse(text));
}

function checkLine(json: unknown): ParsedLine {
  const line = json as ParsedLine;
  if (typeof line !== 'object' || line === null || Object.keys(line).join(',') !== FIELDS) throw new Error('fields');
  if (!Number.isSafeInteger(line.n) || line.n < 1) throw new Error('n');
  if (!Array.isArray(line.s) || !line.s.every((e) => Array.isArray(e) && e.length === 3 && typeof e[0] === 'string' && isValueText(e[1]) && typeof e[2] === 'string' && BASE64.test(e[2]))) {
    throw new Error('set list');
  }
  if (!Array.isArray(line.d) || !line.d.every((k) => typeof k === 'string')) throw new Error('delete list');
  if (typeof line.m !== 'string' || !BASE64.test(line.m) || !isValueText(line.t)) throw new Error('mac or token');
  return line;
}

/** The text of a snapshot of `records` (transactions numbered from `firstN`), and positions. */
function snapshot(macKey: Uint8Array, records: readonly [string, { sealed: Uint8Array; hash: string }][], firstN: number) {
  const parts: Buffer[] = [];
  const positions = new Map<string, Range>();
  let size = 0;
  let prev: Uint8Array = genesis(macKey);
  let n = firstN - 1;
  let token: Range = { pos: 0, len: 0 };
  const chunks = Math.max(1, Math.ceil(records.length / SNAPSHOT_ENTRIES_PER_LINE));
  for (let c = 0; c < chunks; c++) {
    const chunk = records.slice(c * SNAPSHOT_ENTRIES_PER_LINE, (c + 1) * SNAPSHOT_ENTRIES_PER_LINE);
    const s: SetEntry[] = chunk.map(([k, r]) => [k, Buffer.from(r.sealed).toString('base64'), r.hash]);
    n++;
    const mac = lineMac(macKey, prev, n, s, []);
    const last = c === chunks - 1;
    const t = last ? tailToken(macKey, mac) : '*'.repeat(24);
    const built = buildLine(n, s, [], mac.toString('base64'), t);
    chunk.forEach(([k], i) => positions.set(k, { pos: size + built.values[i]!.pos, len: built.values[i]!.len }));
    token = { pos: size + built.token.pos, len: built.token.len };
    const bytes = Buffer.from(`${built.text}\n`, 'utf8');
    parts.push(bytes);
    size += bytes.length;
    prev = mac;
  }
  return { data: Buffer.concat(parts), positions, n, mac: prev, token };
}

/**
 * The journal as a {@link KeyValueStore} of sealed values (`FileStore` puts a `SealedStore` on
 * top). Operations run one at a time.
 */
export class Journal implements KeyValueStore {
  readonly #path: string;
  readonly #macKey: Uint8Array;
  readonly #map = new Map<string, Live>();
  #fh: FileHandle | undefined;
  #size = 0;
  #liveBytes = 0;
  #n = 0;
  #mac: Uint8Array = new Uint8Array(0);
  #token: Range = { pos: 0, len: 0 };
  /** Scrubs that failed (I/O error) after their transaction committed; retried with the next one. */
  #pendingScrubs: Range[] = [];
  /** Scrubs written since the last flush. */
  #unflushed = false;
  #tail: Promise<unknown> = Promise.resolve();

  private constructor(path: string, macKey: Uint8Array) {
    this.#path = path;
    this.#macKey = macKey.slice();
  }

  /**
   * Writes a new journal holding `records` (sealed values) at `path`, replacing any file there
   * atomically, and opens it. A store's journal always has at least one line.
   */
  static async create(path: string, macKey: Uint8Array, records: ReadonlyMap<string, Uint8Array>): Promise<Journal> {
    const j = new Journal(path, macKey);
    const entries = [...records].map(([k, sealed]) => [k, { sealed, hash: valueHash(sealed) }] as [string, { sealed: Uint8Array; hash: string }]);
    await j.#writeSnapshot(entries, 1);
    return j;
  }

  /**
   * Opens and verifies the journal at `path`.
   * @throws ParleyError `STORAGE_INTEGRITY` when it is missing or empty, a line is damaged or does
   *   not authenticate, its last transactions were removed, or a live record was erased.
   */
  static async open(path: string, macKey: Uint8Array): Promise<Journal> {
    const j = new Journal(path, macKey);
    await j.#load();
    return j;
  }

  async #load(): Promise<void> {
    let data: Buffer;
    try {
      data = await readFile(this.#path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw integrity('the store journal (journal.log) is missing: its records were removed');
      throw e;
    }
    const found = new Map<string, Range & { value: string; hash: string }>();
    const scrubs: Range[] = [];
    let prevMac: Uint8Array = genesis(this.#macKey);
    let prevN = 0;
    let lastToken: (Range & { text: string }) | undefined;
    let end = 0;
    let start = 0;
    while (start < data.length) {
      const nl = data.indexOf(0x0a, start);
      if (nl < 0) break; // no newline: a torn last write, never committed
      const text = data.subarray(start, nl).toString('utf8');
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch (cause) {
        // Not JSON: only the last line can be, when a crash tore it (never committed).
        if (nl === data.length - 1) break;
        throw integrity('the store journal is damaged (a line is not valid)', cause);
      }
      let line: ParsedLine;
      try {
        line = checkLine(json);
      } catch (cause) {
        throw integrity('the store journal is damaged or was edited (a line is not a journal transaction)', cause);
      }
      const built = buildLine(line.n, line.s, line.d, line.m, line.t);
      // Byte for byte (not only as text: invalid UTF-8 would shift every offset after it).
      if (!Buffer.from(built.text, 'utf8').equals(data.subarray(start, nl))) throw integrity('the store journal is damaged (a line is not in canonical form)');
      if (prevN !== 0 && line.n !== prevN + 1) throw integrity('the store journal does not authenticate: a transaction is missing or out of order');
      const mac = Buffer.from(line.m, 'base64');
      if (!sameBytes(mac, lineMac(this.#macKey, prevMac, line.n, line.s, line.d))) {
        throw integrity('the store journal does not authenticate: lines were added, removed, reordered or edited without the storage key');
      }
      line.s.forEach(([k, value, hash], i) => {
        const old = found.get(k);
        if (old && !old.value.includes('*')) scrubs.push(old);
        found.set(k, { pos: start + built.values[i]!.pos, len: built.values[i]!.len, value, hash });
      });
      for (const k of line.d) {
        const old = found.get(k);
        if (old && !old.value.includes('*')) scrubs.push(old);
        found.delete(k);
      }
      if (lastToken && !lastToken.text.includes('*')) scrubs.push(lastToken);
      lastToken = { pos: start + built.token.pos, len: built.token.len, text: line.t };
      prevMac = mac;
      prevN = line.n;
      start = nl + 1;
      end = start;
    }
    if (!lastToken) throw integrity('the store journal is empty: its records were removed');
    const expected = Buffer.from(tailToken(this.#macKey, prevMac), 'utf8');
    if (!sameBytes(Buffer.from(lastToken.text, 'utf8'), expected)) {
      throw integrity('the store journal does not authenticate: its last transactions were removed (the file was truncated)');
    }
    for (const [k, f] of found) {
      if (f.value.includes('*')) throw integrity('the store journal does not authenticate: a record it lists was erased', undefined);
      const sealed = new Uint8Array(Buffer.from(f.value, 'base64'));
      this.#map.set(k, { pos: f.pos, len: f.len, sealed, hash: f.hash, bad: valueHash(sealed) !== f.hash }); // ct-ok: hashes of sealed values, both read from the file an attacker can read anyway
      this.#liveBytes += Buffer.byteLength(k, 'utf8') + f.len + ENTRY_OVERHEAD;
    }
    this.#fh = await open(this.#path, fsConstants.O_RDWR, 0o600);
    if (end !== data.length) {
      await this.#fh.truncate(end);
      await this.#fh.datasync();
    }
    this.#size = end;
    this.#n = prevN;
    this.#mac = prevMac;
    this.#token = { pos: lastToken.pos, len: lastToken.len };
    // What a crash (or power cut) left unscrubbed: dead versions, earlier lines' tokens.
    if (scrubs.length > 0) {
      this.#scrub(scrubs);
      await this.#fh.datasync();
      this.#unflushed = false;
    }
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.#tail.then(fn);
    this.#tail = p.catch(() => undefined);
    return p;
  }

  /**
   * Overwrites `ranges` with `*`. Synchronous `pwrite`s: each lands in the page cache in
   * microseconds, where a thread-pool round trip per range would cost more than the write.
   */
  #scrub(ranges: readonly Range[]): void {
    const fd = this.#fh!.fd;
    const failed: Range[] = [];
    for (const r of ranges) {
      if (r.len === 0) continue;
      try {
        writeSync(fd, Buffer.alloc(r.len, SCRUB), 0, r.len, r.pos);
        this.#unflushed = true;
      } catch {
        failed.push(r);
      }
    }
    this.#pendingScrubs = failed;
  }

  async #commit(sets: readonly [string, Uint8Array][], dels: readonly string[]): Promise<void> {
    const fh = this.#fh;
    if (!fh) throw new ParleyError('USAGE', 'store is closed');
    const n = this.#n + 1;
    const s: SetEntry[] = sets.map(([k, v]) => [k, Buffer.from(v).toString('base64'), valueHash(v)]);
    const mac = lineMac(this.#macKey, this.#mac, n, s, dels);
    const built = buildLine(n, s, dels, mac.toString('base64'), tailToken(this.#macKey, mac));
    const data = Buffer.from(`${built.text}\n`, 'utf8');
    const base = this.#size;
    try {
      await fh.write(data, 0, data.length, base);
      // One flush makes the transaction durable, and the scrubs of the one before.
      await fh.datasync();
    } catch (e) {
      // Leave no partial line behind, so later transactions stay readable.
      await fh.truncate(base).catch(() => undefined);
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOSPC' || code === 'EDQUOT') throw new ParleyError('STORAGE_QUOTA', 'disk full', { cause: e });
      throw e;
    }
    this.#unflushed = false;
    this.#size += data.length;
    this.#n = n;
    this.#mac = mac;
    await unsafeTestingJournalHooks.afterCommit?.(this.#path);

    // Committed: now overwrite what it superseded, and the previous line's token.
    const dead: Range[] = [...this.#pendingScrubs, this.#token];
    sets.forEach(([k, sealed], i) => {
      const old = this.#map.get(k);
      if (old) {
        dead.push(old);
        this.#liveBytes -= Buffer.byteLength(k, 'utf8') + old.len + ENTRY_OVERHEAD;
      }
      const at = built.values[i]!;
      this.#map.set(k, { pos: base + at.pos, len: at.len, sealed, hash: s[i]![2], bad: false });
      this.#liveBytes += Buffer.byteLength(k, 'utf8') + at.len + ENTRY_OVERHEAD;
    });
    for (const k of dels) {
      const old = this.#map.get(k);
      if (!old) continue;
      dead.push(old);
      this.#liveBytes -= Buffer.byteLength(k, 'utf8') + old.len + ENTRY_OVERHEAD;
      this.#map.delete(k);
    }
    this.#token = { pos: base + built.token.pos, len: built.token.len };
    this.#scrub(dead);
    if (this.#size > COMPACT_MIN_BYTES && this.#size > COMPACT_RATIO * this.#liveBytes) await this.#compact();
  }

  /** Rewrites the live records into a new file (atomic rename); the old file was scrubbed first. */
  async #compact(): Promise<void> {
    // The old file's blocks are freed by the rename: its scrubs reach the disk first.
    await this.#fh?.datasync();
    await this.#fh?.close();
    this.#fh = undefined;
    await this.#writeSnapshot([...this.#map].map(([k, e]) => [k, { sealed: e.sealed, hash: e.hash }]), this.#n + 1);
  }

  async #writeSnapshot(entries: [string, { sealed: Uint8Array; hash: string }][], firstN: number): Promise<void> {
    const snap = snapshot(this.#macKey, entries, firstN);
    await writeFileAtomic(this.#path, snap.data);
    this.#fh = await open(this.#path, fsConstants.O_RDWR, 0o600);
    const bad = new Map([...this.#map].map(([k, e]) => [k, e.bad]));
    this.#map.clear();
    this.#liveBytes = 0;
    for (const [k, e] of entries) {
      const at = snap.positions.get(k)!;
      this.#map.set(k, { ...at, sealed: e.sealed, hash: e.hash, bad: bad.get(k) ?? false });
      this.#liveBytes += Buffer.byteLength(k, 'utf8') + at.len + ENTRY_OVERHEAD;
    }
    this.#size = snap.data.length;
    this.#n = snap.n;
    this.#mac = snap.mac;
    this.#token = snap.token;
    this.#pendingScrubs = [];
    this.#unflushed = false;
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    const e = this.#map.get(key);
    if (!e) return undefined;
    if (e.bad) {
      throw new ParleyError('STORAGE_INTEGRITY', 'stored record is not the version the store journal recorded for it', {
        details: { key: key.split('/')[0] ?? '' },
      });
    }
    return e.sealed.slice();
  }
  setMany(entries: [string, Uint8Array][]): Promise<void> {
    if (entries.length === 0) return Promise.resolve();
    const last = new Map(entries); // one line holds each key once (the last value wins, as in a Map)
    return this.#serial(() => this.#commit([...last], []));
  }
  delMany(keys: string[]): Promise<void> {
    return this.#serial(async () => {
      const present = [...new Set(keys)].filter((k) => this.#map.has(k));
      if (present.length > 0) await this.#commit([], present);
    });
  }
  async keys(prefix: string): Promise<string[]> {
    return [...this.#map.keys()].filter((k) => k.startsWith(prefix));
  }
  /** Flushes pending scrubs and closes the file. */
  close(): Promise<void> {
    return this.#serial(async () => {
      const fh = this.#fh;
      this.#fh = undefined;
      if (fh) {
        try {
          if (this.#pendingScrubs.length > 0) this.#scrub(this.#pendingScrubs);
          if (this.#unflushed) await fh.datasync();
        } finally {
          await fh.close();
        }
      }
      this.#macKey.fill(0);
    });
  }
}

/**
 * Reads a version-1 store log (`records.log`, before issue 10: `{"s":[[key, value]], "d":[key]}`
 * lines, no MACs) into a map of sealed values, for the one-time migration to a journal. A torn
 * last line is ignored; a damaged earlier one is `STORAGE_INTEGRITY`.
 */
export async function readLegacyLog(path: string): Promise<Map<string, Uint8Array>> {
  const map = new Map<string, Uint8Array>();
  let data: Buffer;
  try {
    data = await readFile(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return map;
    throw e;
  }
  const lines = data.subarray(0, data.lastIndexOf(0x0a) + 1).toString('utf8').split('\n');
  lines.pop();
  for (let i = 0; i < lines.length; i++) {
    let line: { s?: unknown; d?: unknown };
    try {
      line = JSON.parse(lines[i]!) as { s?: unknown; d?: unknown };
      const okSets = line.s === undefined || (Array.isArray(line.s) && line.s.every((e) => Array.isArray(e) && e.length === 2 && typeof e[0] === 'string' && typeof e[1] === 'string'));
      const okDels = line.d === undefined || (Array.isArray(line.d) && line.d.every((k) => typeof k === 'string'));
      if (typeof line !== 'object' || line === null || !okSets || !okDels) throw new Error('shape');
    } catch (cause) {
      if (i === lines.length - 1) break;
      throw integrity('store log is damaged', cause);
    }
    for (const [k, v] of (line.s as [string, string][] | undefined) ?? []) map.set(k, new Uint8Array(Buffer.from(v, 'base64')));
    for (const k of (line.d as string[] | undefined) ?? []) map.delete(k);
  }
  return map;
}

/**
 * Whether the journal at `path` is what an interrupted creation leaves (one line, no records),
 * checked without the key: such a file may be replaced by a new store.
 */
export async function isEmptyJournal(path: string): Promise<boolean> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return true;
    throw e;
  }
  const lines = text.split('\n').filter((l) => l.length > 0);
  if (lines.length === 0) return true;
  if (lines.length > 1) return false;
  try {
    const line = parseLine(lines[0]!);
    return line.s.length === 0 && line.d.length === 0;
  } catch {
    return false;
  }
}
