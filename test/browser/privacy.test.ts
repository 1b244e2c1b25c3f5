/**
 * Privacy in the demo, in Chromium, over the demo's real servers (`examples/web/serve.ts`: relay,
 * issuer, the support bot in its enclave).
 *
 * - Archive: the demo org's archive disclosure, published by the bot, is shown (retention, who may
 *   open it) once the SDK verified it before the first message.
 * - Export: a message with a canary to the bot; the JSON download holds it, the HTML download
 *   renders it as a page without scripts.
 * - Erase: the message with the canary to the bot; the widget's Privacy panel → Erase → confirm: the
 *   status names the bot's signed deletion receipt (none missing); the widget's transcript is
 *   gone and the canary is found 0 times in the customer's IndexedDB records **opened** with the
 *   store's own key (found before the erase: the scan does see plaintext).
 *
 * A screenshot of the erase status goes to examples/web/screenshots/.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { startDemo, type Demo } from '../../examples/web/serve.js';
import { newWidgetContext, openWidget } from '../../examples/web/lib/driver.js';
import { containsBytes, launchChromium, openIndexedDbRecords, skipWithoutChromium, tempDir, type Browser, type Page } from './helpers.js';

const screenshots = fileURLToPath(new URL('../../examples/web/screenshots/', import.meta.url));
const DB = 'parley-support-widget';
const WAIT = 15_000;
/** The demo org's archive disclosure for the bot: kept this long, opened by `compliance`. */
const ARCHIVE_DAYS = 365;

/** Clicks `selector` and returns the downloaded file's text. */
async function downloadText(page: Page, selector: string): Promise<{ name: string; text: string }> {
  const [d] = await Promise.all([page.waitForEvent('download', { timeout: WAIT }), page.click(selector)]);
  const path = await d.path();
  return { name: d.suggestedFilename(), text: readFileSync(path, 'utf8') };
}

/** Some object in `v` (depth-first) for which `pred` holds. */
function findObject(v: unknown, pred: (o: Record<string, unknown>) => boolean): Record<string, unknown> | undefined {
  if (Array.isArray(v)) {
    for (const x of v) {
      const f = findObject(x, pred);
      if (f) return f;
    }
  } else if (typeof v === 'object' && v !== null) {
    const o = v as Record<string, unknown>;
    if (pred(o)) return o;
    for (const x of Object.values(o)) {
      const f = findObject(x, pred);
      if (f) return f;
    }
  }
  return undefined;
}

async function canaryRecords(page: Page, needle: Uint8Array): Promise<{ opened: number; hits: string[] }> {
  const records = await openIndexedDbRecords(page, DB);
  return { opened: records.filter((r) => r.opened).length, hits: records.filter((r) => containsBytes(r.bytes, needle)).map((r) => r.key) };
}

describe('privacy in the demo: consent, form, export, erase (Chromium)', { skip: skipWithoutChromium }, () => {
  let demo: Demo;
  let browser: Browser;
  let cleanup = (): void => undefined;

  before(async () => {
    const dist = tempDir('parley-privacy-dist-');
    cleanup = dist.cleanup;
    [demo, browser] = await Promise.all([startDemo({ distDir: dist.dir, noblePage: false, archive: { retentionDays: ARCHIVE_DAYS } }), launchChromium()]);
    mkdirSync(screenshots, { recursive: true });
  });
  after(async () => {
    await browser?.close();
    await demo?.close();
    cleanup();
  });

  test('archive disclosure shown; export (JSON, HTML); erase: every member\'s deletion receipt, nothing of the conversation left in IndexedDB', async () => {
    const t0 = Date.now();
    const context = await newWidgetContext(browser);
    const { page, errors } = await openWidget(context, `${demo.url}/`);
    const canary = `Canary${randomBytes(6).toString('hex')}`;
    const needle = new TextEncoder().encode(canary);

    // The canary in a message to the bot (kept by the SDK's history and the widget's transcript).
    await page.fill('#input', `Hello, my reference is ${canary}`);
    await page.press('#input', 'Enter');
    await page.waitForFunction(() => document.querySelectorAll('#messages li.msg.bot').length >= 1, undefined, { timeout: WAIT });
    await page.click('#privacy summary');
    assert.match(await page.locator('#privacy-retention').innerText(), /erased automatically after 30 days/, 'the retention policy is shown');
    // The archive disclosure the bot published, verified by the SDK before the first message.
    await page.locator('#privacy-archive').waitFor({ state: 'visible', timeout: WAIT });
    assert.match(await page.locator('#privacy-archive').innerText(), new RegExp(`archived by the organisation for ${ARCHIVE_DAYS} days.*Who may open it: compliance`));

    // Export: the JSON download holds the messages; the HTML download renders them, without scripts.
    const json = await downloadText(page, '#privacy-export-json');
    assert.match(json.name, /\.json$/);
    assert.ok(json.text.includes(canary), 'the messages are in the JSON export');
    const exported = JSON.parse(json.text) as unknown;
    const messages = (exported as { messages?: unknown }).messages;
    assert.ok(Array.isArray(messages) && findObject(messages, (o) => o.type === 'text' && typeof o.text === 'string' && o.text.includes(canary)), 'the message, as text content in `messages`');
    const html = await downloadText(page, '#privacy-export-html');
    assert.match(html.name, /\.html$/);
    const view = await context.newPage();
    await view.setContent(html.text);
    const rendered = await view.evaluate(() => ({ text: document.body.innerText, scripts: document.scripts.length }));
    assert.ok(rendered.text.includes(canary), 'the HTML page shows the conversation');
    assert.equal(rendered.scripts, 0, 'a page without scripts');
    await view.close();

    // Erase: the deletion receipts, then nothing left on this device.
    const before = await canaryRecords(page, needle);
    assert.ok(before.hits.length > 0, `the scan of the opened records sees the canary before the erase (${before.opened} records opened)`);
    await page.click('#privacy-erase');
    await page.click('#privacy-erase-confirm');
    await page.locator('#privacy-erase-summary[data-done="true"]').waitFor({ timeout: WAIT });
    assert.match(await page.locator('#privacy-erase-receipts li[data-state="confirmed"]').innerText(), /^The support bot: deleted \(signed receipt/, 'the bot\'s signed deletion receipt, by name');
    assert.equal(await page.locator('#privacy-erase-receipts li[data-state="missing"]').count(), 0);
    await page.locator('#privacy').screenshot({ path: `${screenshots}privacy-erase.png` });
    assert.ok(!((await page.locator('#messages').innerText()).includes(canary)), 'the transcript is gone');
    const afterErase = await canaryRecords(page, needle);
    assert.deepEqual(afterErase.hits, [], `canary in the opened IndexedDB records after erase (${afterErase.opened} opened)`);
    assert.deepEqual(errors, []);
    console.log(`# privacy flow: export → erase in ${Date.now() - t0} ms; ${before.hits.length} records held the canary before, 0 after`);
    await context.close();
  });
});
