/**
 * A scan of a bot's state folder by someone holding a copy of it and the key (issue 10, High 2;
 * docs/threats.md B9). It does not trust the blob store's own reader: it reads every file under
 * the folder and, wherever bytes look like a record key (`u16 length || key`, the key in the
 * record-key alphabet) followed by a length, tries to open the blob there (right after the
 * length, or after a 4-byte CRC) with each candidate key. Blobs that were overwritten do not
 * open; everything that does open is what a copy of the folder gives away.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { openRecord } from '@parley/engine';

export interface FoundRecord {
  readonly file: string;
  readonly offset: number;
  readonly key: string;
  readonly plaintext: Uint8Array;
}

/** Every file under `dir`, recursively, with its bytes. */
export async function readTree(dir: string): Promise<{ file: string; bytes: Uint8Array }[]> {
  const out: { file: string; bytes: Uint8Array }[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) out.push({ file: relative(dir, p), bytes: new Uint8Array(await readFile(p)) });
    }
  };
  await walk(dir);
  return out;
}

const KEY_CHAR = new Uint8Array(256);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_:./-') KEY_CHAR[c.charCodeAt(0)] = 1;
const SEALED_MIN = 1 + 24 + 16;

/** Candidate (record key, blob) pairs in `bytes`, wherever the layout allows one. */
function* candidates(bytes: Uint8Array): Generator<{ offset: number; key: string; blob: Uint8Array }> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i + 2 < bytes.length; i++) {
    const n = view.getUint16(i);
    if (n < 1 || n > 120 || i + 2 + n + 4 > bytes.length) continue;
    let ok = true;
    for (let k = i + 2; k < i + 2 + n && ok; k++) ok = KEY_CHAR[bytes[k]!] === 1;
    if (!ok) continue;
    const key = String.fromCharCode(...bytes.subarray(i + 2, i + 2 + n));
    const end = i + 2 + n;
    const length = view.getUint32(end);
    if (length < SEALED_MIN) continue;
    for (const skip of [4, 8]) {
      const at = end + skip;
      if (at + length <= bytes.length && bytes[at] === 0x01) yield { offset: at, key, blob: bytes.subarray(at, at + length) };
    }
  }
}

/**
 * Finds which of `keys` open records in the folder (the state key, or the key of an older
 * format), trying them on the first few candidate blobs only.
 */
export async function keysThatOpen(dir: string, keys: readonly Uint8Array[]): Promise<Uint8Array[]> {
  const out = new Set<Uint8Array>();
  for (const { bytes } of await readTree(dir)) {
    let tried = 0;
    for (const c of candidates(bytes)) {
      if (tried++ > 200) break;
      for (const k of keys) {
        if (k.length !== 32 || out.has(k)) continue;
        try {
          openRecord(k, c.key, c.blob);
          out.add(k);
        } catch {
          // not this key
        }
      }
    }
  }
  return [...out];
}

/** Every record in the folder that opens under one of `keys`. */
export async function scanFolder(dir: string, keys: readonly Uint8Array[]): Promise<{ found: FoundRecord[]; files: { file: string; bytes: Uint8Array }[] }> {
  const files = await readTree(dir);
  const found: FoundRecord[] = [];
  for (const { file, bytes } of files) {
    for (const c of candidates(bytes)) {
      for (const k of keys) {
        try {
          found.push({ file, offset: c.offset, key: c.key, plaintext: openRecord(k, c.key, c.blob) });
          break;
        } catch {
          // overwritten, not a blob, or another key
        }
      }
    }
  }
  return { found, files };
}

/** Occurrences of `needle` in `hay`. */
export function occurrences(hay: Uint8Array, needle: Uint8Array): number {
  const h = Buffer.from(hay.buffer, hay.byteOffset, hay.byteLength);
  let n = 0;
  for (let i = h.indexOf(needle); i !== -1; i = h.indexOf(needle, i + 1)) n++;
  return n;
}
