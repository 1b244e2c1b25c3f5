/**
 * A format-agnostic scan of a store directory with its storage key (issue 10, High 2; docs/threats.md
 * ST7): reads every file under the directory, decodes every base64 run that looks like a sealed
 * record (format byte 0x01, long enough for nonce and tag), and opens it with the storage key under
 * every record name the files mention (the JSON string nearest before it first). What it finds is
 * everything a person holding a copy of the directory and the key could read.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { openRecord } from '@parley/engine';

/** A record the scan could decrypt. */
export interface Found {
  readonly file: string;
  readonly name: string;
  readonly plaintext: Uint8Array;
}

/** Every file under `dir` (recursively), with its bytes. */
export async function readTree(dir: string): Promise<{ file: string; bytes: Buffer }[]> {
  const out: { file: string; bytes: Buffer }[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) out.push({ file: relative(dir, p), bytes: await readFile(p) });
    }
  };
  await walk(dir);
  return out;
}

const SEALED_MIN = 1 + 24 + 16;
const BASE64_RUN = /[A-Za-z0-9+/]{56,}={0,2}/g;
const JSON_STRING = /"((?:[^"\\\n]|\\.){1,300})"/g;

/** Decrypts everything decryptable in `dir` with `storageKey`; `extraNames` adds record names to try. */
export async function scanSealed(dir: string, storageKey: Uint8Array, extraNames: Iterable<string> = []): Promise<{ found: Found[]; files: { file: string; bytes: Buffer }[] }> {
  const files = await readTree(dir);
  const names = new Set<string>(extraNames);
  const texts = files.map((f) => ({ ...f, text: f.bytes.toString('latin1') }));
  for (const { text } of texts) {
    for (const m of text.matchAll(JSON_STRING)) {
      try {
        names.add(JSON.parse(`"${m[1]}"`) as string);
      } catch {
        // not a JSON string
      }
    }
  }
  const found: Found[] = [];
  for (const { file, text } of texts) {
    for (const m of text.matchAll(BASE64_RUN)) {
      const bytes = new Uint8Array(Buffer.from(m[0], 'base64'));
      if (bytes.length < SEALED_MIN || bytes[0] !== 0x01) continue;
      // The record's own name is usually the JSON string right before it; then try every name.
      const before = text.slice(Math.max(0, m.index - 400), m.index);
      const near = [...before.matchAll(JSON_STRING)].map((x) => x[1]!).reverse();
      const tried = new Set<string>();
      const attempt = (name: string): boolean => {
        if (tried.has(name)) return false;
        tried.add(name);
        try {
          found.push({ file, name, plaintext: openRecord(storageKey, name, bytes) });
          return true;
        } catch {
          return false;
        }
      };
      let ok = false;
      for (const raw of near.slice(0, 3)) {
        let name: string;
        try {
          name = JSON.parse(`"${raw}"`) as string;
        } catch {
          continue;
        }
        if ((ok = attempt(name))) break;
      }
      if (!ok) for (const name of names) if (attempt(name)) break;
    }
  }
  return { found, files };
}

/** Whether `needle` occurs in `hay`. */
export function contains(hay: Uint8Array, needle: Uint8Array): boolean {
  return Buffer.from(hay.buffer, hay.byteOffset, hay.byteLength).indexOf(Buffer.from(needle.buffer, needle.byteOffset, needle.byteLength)) >= 0;
}
