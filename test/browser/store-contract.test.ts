/**
 * The KeyValueStore contract (packages/engine/test/store-contract.ts) for `IndexedDbStore` in a
 * real browser (Debian's Chromium). The case list is bundled with Vite into a test page
 * (pages/store-contract-page.ts) and every case runs IN the page against a fresh IndexedDB
 * database; each comes back here as its own node:test case with the page's failure message.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildPages } from '../../examples/web/lib/build.js';
import { startStaticServer, type StaticServer } from '../../examples/web/lib/static-server.js';
import { registerContractCases, storeContractCases } from '../../packages/engine/test/store-contract.js';
import { launchChromium, newContext, skipWithoutChromium, tempDir, watchPage, type Browser, type BrowserContext, type Page } from './helpers.js';

type PageApi = {
  names: string[];
  run(name: string): Promise<{ ok: boolean; error?: string; ms: number }>;
};
declare const window: { storeContract: PageApi };

const pagesDir = fileURLToPath(new URL('./pages/', import.meta.url));

let browser: Browser | undefined;
let server: StaticServer | undefined;
let context: BrowserContext | undefined;
let page: Page | undefined;
let errors: string[] = [];
let cleanup = (): void => undefined;

before(async () => {
  if (skipWithoutChromium) return;
  const tmp = tempDir('parley-store-contract-page-');
  cleanup = tmp.cleanup;
  await buildPages({ root: pagesDir, input: { 'store-contract': join(pagesDir, 'store-contract.html') }, outDir: tmp.dir, minify: false });
  server = await startStaticServer({ dir: tmp.dir });
  browser = await launchChromium();
  context = await newContext(browser);
  page = await context.newPage();
  errors = watchPage(page).errors;
  await page.goto(`${server.url}/store-contract.html`);
  await page.waitForFunction(() => document.getElementById('status')?.textContent === 'ready');
});

after(async () => {
  await context?.close();
  await browser?.close();
  await server?.close();
  cleanup();
});

describe('store contract page', { skip: skipWithoutChromium }, () => {
  it('bundles exactly the case list node sees', async () => {
    assert.deepEqual(await page!.evaluate(() => window.storeContract.names), storeContractCases.map((c) => c.name));
  });
});

registerContractCases(
  'IndexedDbStore (Chromium)',
  async (c) => {
    const r = await page!.evaluate((name) => window.storeContract.run(name), c.name);
    if (!r.ok) throw new Error(`in the page: ${r.error}`);
  },
  {
    skip: skipWithoutChromium,
  },
);

describe('store contract page, afterwards', { skip: skipWithoutChromium }, () => {
  it('the page logged no errors and left no contract database behind', async () => {
    assert.deepEqual(errors, []);
    const left = await page!.evaluate(async () => (await indexedDB.databases()).map((d) => d.name).filter((n) => n?.startsWith('parley-contract-')));
    assert.deepEqual(left, []);
  });
});
