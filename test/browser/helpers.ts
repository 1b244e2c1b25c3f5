/**
 * Browser-test helpers: Debian's Chromium driven by playwright-core (never a downloaded
 * browser), Vite builds into a temp dir, and a static server on 127.0.0.1.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { CHROMIUM_PATH, CHROMIUM_ARGS, launchChromium, newWidgetContext } from '../../examples/web/lib/driver.js';

export { CHROMIUM_PATH, CHROMIUM_ARGS, launchChromium };

/** Skip reason when Chromium is missing (CI installs it), else false. */
export const skipWithoutChromium: string | false = existsSync(CHROMIUM_PATH)
  ? false
  : `${CHROMIUM_PATH} is missing: install Debian's chromium package to run the browser tests`;

/** A fresh browser context with its own storage (see `newWidgetContext` for the `__name` shim). */
export function newContext(browser: Browser): Promise<BrowserContext> {
  return newWidgetContext(browser);
}

/** A temp dir removed by the returned cleanup. */
export function tempDir(prefix: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Collects page errors and console errors, so a test can assert the page never crashed. */
export function watchPage(page: Page): { errors: string[] } {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console: ${m.text()}`);
  });
  return { errors };
}

/** Every IndexedDB record of every database of the page's origin, as raw bytes (structured clone → JSON-safe). */
export async function dumpIndexedDb(page: Page): Promise<{ db: string; store: string; key: string; kind: string; bytes: number[] }[]> {
  return page.evaluate(async () => {
    const out: { db: string; store: string; key: string; kind: string; bytes: number[] }[] = [];
    const dbs = await indexedDB.databases();
    for (const info of dbs) {
      if (!info.name) continue;
      const db = await new Promise<IDBDatabase>((res, rej) => {
        const r = indexedDB.open(info.name!);
        r.onsuccess = () => res(r.result);
        r.onerror = () => rej(r.error);
      });
      for (const storeName of Array.from(db.objectStoreNames)) {
        const tx = db.transaction(storeName, 'readonly');
        const s = tx.objectStore(storeName);
        const [keys, values] = await Promise.all([
          new Promise<IDBValidKey[]>((res, rej) => {
            const r = s.getAllKeys();
            r.onsuccess = () => res(r.result);
            r.onerror = () => rej(r.error);
          }),
          new Promise<unknown[]>((res, rej) => {
            const r = s.getAll();
            r.onsuccess = () => res(r.result);
            r.onerror = () => rej(r.error);
          }),
        ]);
        keys.forEach((k, i) => {
          const v = values[i];
          const kind = v instanceof Uint8Array ? 'bytes' : v instanceof CryptoKey ? 'CryptoKey' : typeof v;
          const bytes = v instanceof Uint8Array ? Array.from(v) : Array.from(new TextEncoder().encode(v instanceof CryptoKey ? '' : JSON.stringify(v) ?? ''));
          out.push({ db: info.name!, store: storeName, key: String(k), kind, bytes });
        });
      }
      db.close();
    }
    return out;
  });
}

/**
 * Every record of an `IndexedDbStore` database **opened** (AES-GCM with the store's own wrapping
 * key, which the page may use but never export; the layout of `packages/client/src/browser/idb-store.ts`:
 * format byte, 12-byte IV, ciphertext and tag, associated data `parley/v1/idb-record\0<id>`), so
 * a scan finds plaintext the store keeps. A record that does not open is returned as its raw bytes.
 */
export async function openIndexedDbRecords(page: Page, dbName: string): Promise<{ key: string; opened: boolean; bytes: number[] }[]> {
  return page.evaluate(async (name) => {
    const db = await new Promise<IDBDatabase>((res, rej) => {
      const r = indexedDB.open(name);
      r.onsuccess = () => res(r.result);
      r.onerror = () => rej(r.error);
    });
    const s = db.transaction('records', 'readonly').objectStore('records');
    const all = <T,>(r: IDBRequest<T>): Promise<T> => new Promise((res, rej) => {
      r.onsuccess = () => res(r.result);
      r.onerror = () => rej(r.error);
    });
    const [keys, values] = await Promise.all([all(s.getAllKeys()), all(s.getAll())]);
    db.close();
    const wrapping = values[keys.findIndex((k) => k === '\u0000parley/wrapping-key')] as CryptoKey;
    const prefix = new TextEncoder().encode('parley/v1/idb-record\u0000');
    const out: { key: string; opened: boolean; bytes: number[] }[] = [];
    for (let i = 0; i < keys.length; i++) {
      const key = String(keys[i]);
      const v = values[i];
      if (!(v instanceof Uint8Array)) continue;
      const id = new TextEncoder().encode(key);
      const ad = new Uint8Array(prefix.length + id.length);
      ad.set(prefix);
      ad.set(id, prefix.length);
      try {
        const pt = await crypto.subtle.decrypt({ name: 'AES-GCM', iv: v.slice(1, 13), additionalData: ad, tagLength: 128 }, wrapping, v.slice(13));
        out.push({ key, opened: true, bytes: Array.from(new Uint8Array(pt)) });
      } catch {
        out.push({ key, opened: false, bytes: Array.from(v) });
      }
    }
    return out;
  }, dbName);
}

/** True when `needle` occurs in `hay`. */
export function containsBytes(hay: Uint8Array | number[], needle: Uint8Array): boolean {
  const h = hay instanceof Uint8Array ? hay : Uint8Array.from(hay);
  if (needle.length === 0 || needle.length > h.length) return false;
  outer: for (let i = 0; i + needle.length <= h.length; i++) {
    for (let j = 0; j < needle.length; j++) if (h[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

export type { Browser, BrowserContext, Page };
