/**
 * The host's store of sealed blobs: opaque bytes by record key, on disk. Runs in the host.
 *
 * The host can't read what it stores (the blobs are sealed inside the enclave); it only makes
 * the enclave's batches durable and atomic:
 *
 * 1. the whole batch is written to `journal/<n>.batch.tmp`, fsynced, renamed to
 *    `journal/<n>.batch` and the directory fsynced — from here the batch is committed;
 * 2. each record is written as `records/<key>` (tmp + fsync + rename), deletions unlinked;
 * 3. the journal file is removed.
 *
 * On open, committed journal files left by a crash are re-applied in order (idempotent), and
 * uncommitted `.tmp` files are discarded. So a reader sees every batch whole or not at all.
 *
 * Journal layout: `"PBJ1" | u32 puts | (u16 keyLen | key | u32 blobLen | blob)* | u32 dels | (u16 keyLen | key)*`.
 */
import { mkdir, open, readdir, readFile, rename, rm, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { ParleyError } from '@parley/protocol/errors';
import { MAX_RECORD_KEY_LENGTH, type SealedRecord } from '../rpc/messages.js';

const MAGIC = 'PBJ1';
const KEY_PATTERN = /^[A-Za-z0-9_:./-]{1,120}$/;

/** Record keys map to file names: `/` and `:` are escaped, everything else is already file-safe. */
function fileName(key: string): string {
  if (!KEY_PATTERN.test(key) || key.length > MAX_RECORD_KEY_LENGTH) throw new ParleyError('USAGE', 'invalid record key');
  return key.replace(/%/g, '%25').replace(/\//g, '%2F').replace(/:/g, '%3A').replace(/^\./, '%2E');
}

function keyOf(name: string): string {
  return decodeURIComponent(name);
}

async function writeDurably(path: string, data: Uint8Array): Promise<void> {
  const tmp = `${path}.tmp`;
  const fh = await open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
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

function encodeBatch(puts: readonly SealedRecord[], dels: readonly string[]): Uint8Array {
  const enc = new TextEncoder();
  const parts: Uint8Array[] = [enc.encode(MAGIC)];
  const u16 = (n: number) => new Uint8Array([n >> 8, n & 0xff]);
  const u32 = (n: number) => new Uint8Array([(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]);
  parts.push(u32(puts.length));
  for (const p of puts) {
    const k = enc.encode(p.key);
    parts.push(u16(k.length), k, u32(p.blob.length), p.blob);
  }
  parts.push(u32(dels.length));
  for (const d of dels) {
    const k = enc.encode(d);
    parts.push(u16(k.length), k);
  }
  return Buffer.concat(parts);
}

function decodeBatch(buf: Uint8Array): { puts: SealedRecord[]; dels: string[] } {
  const dec = new TextDecoder();
  let o = 0;
  const need = (n: number) => {
    if (o + n > buf.length) throw new ParleyError('STORAGE_INTEGRITY', 'truncated journal batch');
  };
  const u16 = () => (need(2), (o += 2), (buf[o - 2]! << 8) | buf[o - 1]!);
  const u32 = () => (need(4), (o += 4), ((buf[o - 4]! << 24) >>> 0) + (buf[o - 3]! << 16) + (buf[o - 2]! << 8) + buf[o - 1]!);
  const take = (n: number) => (need(n), (o += n), buf.subarray(o - n, o));
  if (dec.decode(take(4)) !== MAGIC) throw new ParleyError('STORAGE_INTEGRITY', 'not a journal batch');
  const puts: SealedRecord[] = [];
  for (let i = u32(); i > 0; i--) {
    const key = dec.decode(take(u16()));
    puts.push({ key, blob: take(u32()).slice() });
  }
  const dels: string[] = [];
  for (let i = u32(); i > 0; i--) dels.push(dec.decode(take(u16())));
  if (o !== buf.length) throw new ParleyError('STORAGE_INTEGRITY', 'trailing bytes in journal batch');
  return { puts, dels };
}

/** Sealed blobs on disk, written in atomic batches. */
export class SealedBlobStore {
  readonly #records: string;
  readonly #journal: string;
  #nextBatch = 1;
  #chain: Promise<unknown> = Promise.resolve();

  private constructor(dir: string) {
    this.#records = join(dir, 'records');
    this.#journal = join(dir, 'journal');
  }

  /** Opens (creating if needed) the store in `dir` and finishes any batch a crash interrupted. */
  static async open(dir: string): Promise<SealedBlobStore> {
    const store = new SealedBlobStore(dir);
    await mkdir(store.#records, { recursive: true, mode: 0o700 });
    await mkdir(store.#journal, { recursive: true, mode: 0o700 });
    await store.#recover();
    return store;
  }

  async #recover(): Promise<void> {
    for (const name of await readdir(this.#records)) if (name.endsWith('.tmp')) await rm(join(this.#records, name), { force: true });
    const batches: number[] = [];
    for (const name of await readdir(this.#journal)) {
      const m = /^(\d+)\.batch$/.exec(name);
      if (m) batches.push(Number(m[1]));
      else await rm(join(this.#journal, name), { force: true });
    }
    batches.sort((a, b) => a - b);
    for (const n of batches) {
      const path = join(this.#journal, `${n}.batch`);
      const { puts, dels } = decodeBatch(await readFile(path));
      await this.#apply(puts, dels);
      await unlink(path);
      this.#nextBatch = Math.max(this.#nextBatch, n + 1);
    }
  }

  async #apply(puts: readonly SealedRecord[], dels: readonly string[]): Promise<void> {
    for (const p of puts) await writeDurably(join(this.#records, fileName(p.key)), p.blob);
    for (const d of dels) await rm(join(this.#records, fileName(d)), { force: true });
    await syncDir(this.#records);
  }

  /** Every record, for starting the enclave. */
  async readAll(): Promise<SealedRecord[]> {
    await this.#chain.catch(() => undefined);
    const out: SealedRecord[] = [];
    for (const name of (await readdir(this.#records)).sort()) {
      if (name.endsWith('.tmp')) continue;
      out.push({ key: keyOf(name), blob: new Uint8Array(await readFile(join(this.#records, name))) });
    }
    return out;
  }

  /** Writes one batch atomically; resolves once it is durable. Batches apply in call order. */
  writeBatch(puts: readonly SealedRecord[], dels: readonly string[]): Promise<void> {
    for (const p of puts) fileName(p.key);
    for (const d of dels) fileName(d);
    const run = async () => {
      const n = this.#nextBatch++;
      const path = join(this.#journal, `${n}.batch`);
      await writeDurably(path, encodeBatch(puts, dels));
      await syncDir(this.#journal);
      await this.#apply(puts, dels);
      await unlink(path);
    };
    const p = this.#chain.then(run, run);
    this.#chain = p.catch(() => undefined);
    return p;
  }
}
