/**
 * `IndexedDbStore` and the writer lock in a real browser (Debian's Chromium):
 * ST1 (tampered records → STORAGE_INTEGRITY for that record only), ST2 (non-extractable
 * wrapping key, no plaintext or key bytes in an IndexedDB dump), ST5 (one writer across tabs),
 * ST6 (quota → STORAGE_QUOTA with nothing written; orphaned records detected on open).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildPages } from '../../examples/web/lib/build.js';
import { startStaticServer, type StaticServer } from '../../examples/web/lib/static-server.js';
import { newContext, containsBytes, dumpIndexedDb, launchChromium, skipWithoutChromium, tempDir, watchPage, type Browser, type BrowserContext, type Page } from './helpers.js';

type Api = typeof import('../../packages/client/src/browser/index.js') & typeof import('../../packages/client/src/testing.js');
declare const window: { parley: Api };

const pagesDir = fileURLToPath(new URL('./pages/', import.meta.url));

describe('IndexedDbStore in Chromium', { skip: skipWithoutChromium }, () => {
  let browser: Browser;
  let server: StaticServer;
  let context: BrowserContext;
  let cleanup = (): void => undefined;

  before(async () => {
    const tmp = tempDir('parley-store-page-');
    cleanup = tmp.cleanup;
    await buildPages({ root: pagesDir, input: { store: join(pagesDir, 'store.html') }, outDir: tmp.dir, minify: false });
    server = await startStaticServer({ dir: tmp.dir });
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await server?.close();
    cleanup();
  });

  async function openPage(ctx?: BrowserContext): Promise<{ page: Page; errors: string[] }> {
    context = ctx ?? (await newContext(browser));
    const page = await context.newPage();
    const { errors } = watchPage(page);
    await page.goto(`${server.url}/store.html`);
    await page.waitForFunction(() => document.getElementById('status')?.textContent === 'ready');
    return { page, errors };
  }

  test('round trip, reload persistence, prefix listing, atomic delete', async () => {
    const { page, errors } = await openPage();
    await page.evaluate(async () => {
      const s = await window.parley.IndexedDbStore.open({ dbName: 't1' });
      await s.setMany([
        ['session/peer-a/1', new Uint8Array([1, 2, 3])],
        ['session/peer-b/1', new Uint8Array([4])],
        ['identity', new Uint8Array(32).fill(7)],
      ]);
      s.close();
    });
    await page.reload();
    await page.waitForFunction(() => document.getElementById('status')?.textContent === 'ready');
    const r = await page.evaluate(async () => {
      const s = await window.parley.IndexedDbStore.open({ dbName: 't1' });
      const a = await s.get('session/peer-a/1');
      const keys = (await s.keys('session/')).sort();
      const all = (await s.keys('')).sort();
      await s.delMany(['session/peer-a/1', 'session/peer-b/1']);
      const after = await s.keys('session/');
      const missing = await s.get('nope');
      return { a: Array.from(a ?? []), keys, all, after, missing: missing === undefined, persisted: s.persisted };
    });
    assert.deepEqual(r.a, [1, 2, 3]);
    assert.deepEqual(r.keys, ['session/peer-a/1', 'session/peer-b/1']);
    assert.deepEqual(r.all, ['identity', 'session/peer-a/1', 'session/peer-b/1'], 'the wrapping key is never listed');
    assert.deepEqual(r.after, []);
    assert.equal(r.missing, true);
    assert.deepEqual(errors, []);
    await context.close();
  });

  test('ST2: the wrapping key is non-extractable and a dump holds no plaintext or key bytes', async () => {
    const { page, errors } = await openPage();
    const secret = Array.from({ length: 32 }, (_, i) => (i * 37 + 11) & 0xff);
    const marker = 'PLAINTEXT-MARKER-where-is-my-order-4711';
    const r = await page.evaluate(
      async ({ secret, marker }) => {
        const s = await window.parley.IndexedDbStore.open({ dbName: 't2' });
        await s.setMany([
          ['identity', new Uint8Array(secret)],
          ['outbox/m1', new TextEncoder().encode(marker)],
        ]);
        const key = window.parley.unsafeTestingWrappingKey(s);
        let exportError = '';
        for (const format of ['raw', 'jwk'] as const) {
          try {
            await crypto.subtle.exportKey(format, key);
            exportError += `${format}:exported;`;
          } catch (e) {
            exportError += `${format}:${(e as DOMException).name};`;
          }
        }
        return { extractable: key.extractable, exportError, algorithm: (key.algorithm as AesKeyAlgorithm).name };
      },
      { secret, marker },
    );
    assert.equal(r.extractable, false);
    assert.equal(r.algorithm, 'AES-GCM');
    assert.equal(r.exportError, 'raw:InvalidAccessError;jwk:InvalidAccessError;');

    const dump = (await dumpIndexedDb(page)).filter((d) => d.db === 't2');
    assert.deepEqual(dump.map((d) => d.kind).sort(), ['CryptoKey', 'bytes', 'bytes']);
    for (const rec of dump) {
      assert.ok(!containsBytes(rec.bytes, Uint8Array.from(secret)), `raw key bytes found in ${rec.key}`);
      assert.ok(!containsBytes(rec.bytes, Uint8Array.from(secret.slice(0, 8))), `key prefix found in ${rec.key}`);
      assert.ok(!containsBytes(rec.bytes, new TextEncoder().encode(marker)), `plaintext found in ${rec.key}`);
      assert.ok(!containsBytes(rec.bytes, new TextEncoder().encode('where-is-my-order')), `plaintext found in ${rec.key}`);
    }
    assert.deepEqual(errors, []);
    await context.close();
  });

  test('ST1: flipped, truncated, swapped and replaced records each give STORAGE_INTEGRITY for that record only', async () => {
    const { page, errors } = await openPage();
    const r = await page.evaluate(async () => {
      const { IndexedDbStore } = window.parley;
      const s = await IndexedDbStore.open({ dbName: 't3' });
      const ids = ['identity', 'session/alice/1', 'session/bob/1', 'prekeys/spk', 'outbox/m1', 'seen/m0', 'skipped/bob/1'];
      await s.setMany(ids.map((id, i) => [id, new Uint8Array(40).fill(i + 1)]));
      // Raw access to the same database, as an attacker (or a disk error) would have it.
      const db = await new Promise<IDBDatabase>((res, rej) => {
        const q = indexedDB.open('t3');
        q.onsuccess = () => res(q.result);
        q.onerror = () => rej(q.error);
      });
      const raw = async (fn: (st: IDBObjectStore) => void) =>
        new Promise<void>((res, rej) => {
          const tx = db.transaction('records', 'readwrite');
          fn(tx.objectStore('records'));
          tx.oncomplete = () => res();
          tx.onerror = () => rej(tx.error);
        });
      const read = (id: string) =>
        new Promise<Uint8Array>((res, rej) => {
          const q = db.transaction('records').objectStore('records').get(id);
          q.onsuccess = () => res(q.result as Uint8Array);
          q.onerror = () => rej(q.error);
        });
      // identity: flip one byte in the ciphertext; session/alice ⇄ session/bob swapped;
      // prekeys/spk truncated; outbox/m1 replaced with a string; seen/m0 flipped in the IV.
      const identity = await read('identity');
      identity[20] = identity[20]! ^ 0x01;
      const alice = await read('session/alice/1');
      const bob = await read('session/bob/1');
      const spk = await read('prekeys/spk');
      const seen = await read('seen/m0');
      seen[3] = seen[3]! ^ 0x80;
      await raw((st) => {
        st.put(identity, 'identity');
        st.put(bob, 'session/alice/1');
        st.put(alice, 'session/bob/1');
        st.put(spk.slice(0, 20), 'prekeys/spk');
        st.put('not bytes', 'outbox/m1');
        st.put(seen, 'seen/m0');
      });
      db.close();
      const results: Record<string, string> = {};
      for (const id of ids) {
        try {
          const v = await s.get(id);
          results[id] = `ok:${v?.[0]}`;
        } catch (e) {
          const err = e as { name: string; code?: string; details?: { key?: string }; message: string };
          results[id] = `${err.name}:${err.code}:${err.details?.key}:${err.message.includes('\u0001') ? 'leak' : 'clean'}`;
        }
      }
      return results;
    });
    for (const id of ['identity', 'session/alice/1', 'session/bob/1', 'prekeys/spk', 'outbox/m1', 'seen/m0']) {
      assert.equal(r[id], `ParleyError:STORAGE_INTEGRITY:${id}:clean`, id);
    }
    assert.equal(r['skipped/bob/1'], 'ok:7', 'an untouched record still opens');
    assert.deepEqual(errors, []);
    await context.close();
  });

  test('ST6: missing wrapping key with records left is detected on open; destroy resets', async () => {
    const { page, errors } = await openPage();
    const r = await page.evaluate(async () => {
      const { IndexedDbStore, WRAPPING_KEY_ID } = window.parley;
      const s = await IndexedDbStore.open({ dbName: 't4' });
      await s.setMany([['identity', new Uint8Array([1])]]);
      s.close();
      const db = await new Promise<IDBDatabase>((res) => {
        const q = indexedDB.open('t4');
        q.onsuccess = () => res(q.result);
      });
      await new Promise<void>((res) => {
        const tx = db.transaction('records', 'readwrite');
        tx.objectStore('records').delete(WRAPPING_KEY_ID);
        tx.oncomplete = () => res();
      });
      db.close();
      let onOpen = '';
      try {
        await IndexedDbStore.open({ dbName: 't4' });
        onOpen = 'opened';
      } catch (e) {
        const err = e as { code?: string; details?: { key?: string; records?: number } };
        onOpen = `${err.code}:${err.details?.key}:${err.details?.records}`;
      }
      await IndexedDbStore.destroy('t4');
      const fresh = await IndexedDbStore.open({ dbName: 't4' });
      const after = await fresh.keys('');
      return { onOpen, after };
    });
    assert.equal(r.onOpen, 'STORAGE_INTEGRITY:wrapping-key:1');
    assert.deepEqual(r.after, []);
    assert.deepEqual(errors, []);
    await context.close();
  });

  test('ST6: QuotaExceededError on write → STORAGE_QUOTA, and nothing of the batch is written', async () => {
    const { page, errors } = await openPage();
    const r = await page.evaluate(async () => {
      const s = await window.parley.IndexedDbStore.open({ dbName: 't5' });
      const realPut = IDBObjectStore.prototype.put;
      let calls = 0;
      IDBObjectStore.prototype.put = function (this: IDBObjectStore, ...args: Parameters<IDBObjectStore['put']>) {
        calls++;
        if (calls === 2) throw new DOMException('simulated: quota exceeded', 'QuotaExceededError');
        return realPut.apply(this, args);
      };
      let code = '';
      try {
        await s.setMany([
          ['outbox/a', new Uint8Array([1])],
          ['outbox/b', new Uint8Array([2])],
        ]);
        code = 'written';
      } catch (e) {
        code = (e as { code?: string }).code ?? String(e);
      } finally {
        IDBObjectStore.prototype.put = realPut;
      }
      return { code, left: await s.keys('outbox/') };
    });
    assert.equal(r.code, 'STORAGE_QUOTA');
    assert.deepEqual(r.left, [], 'the first put of the aborted batch was rolled back');
    assert.deepEqual(errors, []);
    await context.close();
  });

  test('two tabs opening a fresh database agree on one wrapping key', async () => {
    const ctx = await newContext(browser);
    const a = await openPage(ctx);
    const b = await openPage(ctx);
    await Promise.all(
      [a.page, b.page].map((p, i) =>
        p.evaluate(async (i) => {
          const s = await window.parley.IndexedDbStore.open({ dbName: 't6' });
          await s.setMany([[`tab/${i}`, new Uint8Array([i + 10])]]);
        }, i),
      ),
    );
    const read = await a.page.evaluate(async () => {
      const s = await window.parley.IndexedDbStore.open({ dbName: 't6' });
      return [Array.from((await s.get('tab/0')) ?? []), Array.from((await s.get('tab/1')) ?? [])];
    });
    assert.deepEqual(read, [[10], [11]]);
    assert.deepEqual([...a.errors, ...b.errors], []);
    await ctx.close();
  });

  test('ST5: one writer lock across tabs; the second tab waits and takes over when the first closes', async () => {
    const ctx = await newContext(browser);
    const a = await openPage(ctx);
    const b = await openPage(ctx);
    const name = 'parley:t7';
    await a.page.evaluate(async (name) => {
      (window as unknown as { lock: unknown }).lock = await window.parley.acquireWriterLock(name);
    }, name);
    await b.page.evaluate((name) => {
      const w = window as unknown as { waiting?: boolean; got?: boolean };
      void window.parley
        .acquireWriterLock(name, { onWaiting: () => (w.waiting = true) })
        .then(() => (w.got = true));
    }, name);
    await b.page.waitForFunction(() => (window as unknown as { waiting?: boolean }).waiting === true);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(await b.page.evaluate(() => (window as unknown as { got?: boolean }).got ?? false), false, 'B must wait while A holds the lock');
    await a.page.close(); // closing the tab releases its lock
    await b.page.waitForFunction(() => (window as unknown as { got?: boolean }).got === true, undefined, { timeout: 10_000 });
    assert.equal(await b.page.evaluate((name) => window.parley.isWriterLockHeld(name), name), true);
    assert.deepEqual([...a.errors, ...b.errors], []);
    await ctx.close();
  });
});
