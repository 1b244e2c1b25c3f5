/**
 * Privacy in the demo, in Chromium, over the demo's real servers (`examples/web/serve.ts`: relay,
 * issuer, the support bot in its enclave).
 *
 * - Consent: "I want to return an item" → the support bot's `ctx.requestConsent` shows the SDK's
 *   consent dialog (purpose, fields, retention, controller, asked by the bot); Allow → a signed
 *   receipt, listed as granted (with Withdraw) in the Privacy panel.
 * - Form: the bot's `ctx.requestForm` → the consent-gated form with the covered fields; the values
 *   (a canary in them) reach the bot, which answers with them.
 * - Archive: the demo org's archive disclosure, published by the bot, is shown (retention, who may
 *   open it) once the SDK verified it before the first message.
 * - Export: the JSON download holds the canary and the signed, granted receipt; the HTML download
 *   renders the conversation as a page without scripts.
 * - Erase: the widget's Privacy panel → Erase → confirm: the
 *   status names the bot's signed deletion receipt (none missing); the widget's transcript is
 *   gone and the canary is found 0 times in the customer's IndexedDB records **opened** with the
 *   store's own key (found before the erase: the scan does see plaintext).
 *
 * Screenshots of the consent dialog and the erase status go to examples/web/screenshots/.
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

  test('consent → form → archive disclosure → export (JSON, HTML) → erase: every member\'s deletion receipt, nothing of the conversation left in IndexedDB', async () => {
    const t0 = Date.now();
    const context = await newWidgetContext(browser);
    const { page, errors } = await openWidget(context, `${demo.url}/`);
    const canary = `Canary${randomBytes(6).toString('hex')}`;
    const needle = new TextEncoder().encode(canary);

    // 1. Consent: the bot's request (the SDK's consentRequest frame), in the widget's dialog.
    await page.fill('#input', 'I want to return an item');
    await page.press('#input', 'Enter');
    const dialog = page.locator('#privacy-consent-dialog');
    await dialog.waitFor({ state: 'visible', timeout: WAIT });
    assert.equal(await dialog.getAttribute('role'), 'dialog');
    assert.match(await page.locator('#privacy-consent-purpose').innerText(), /book your return/);
    assert.deepEqual(await page.locator('#privacy-consent-fields li').allInnerTexts(), ['Name', 'Email', 'Address']);
    assert.equal(await page.locator('#privacy-consent-retention').innerText(), '30 days');
    assert.equal(await page.locator('#privacy-consent-controller').innerText(), 'Acme Ltd');
    assert.match(await page.locator('#privacy-consent-by').innerText(), /\(bot\)$/);
    await page.locator('#widget').screenshot({ path: `${screenshots}privacy-consent.png` });
    await page.click('#privacy-allow');

    // 2. The form (the bot's formRequest): the covered fields; the canary in the values, which only the bot reads.
    const form = page.locator('#privacy-form');
    await form.waitFor({ state: 'visible', timeout: WAIT });
    assert.deepEqual(await form.locator('input:not([disabled])').evaluateAll((els) => els.map((e) => e.getAttribute('name'))), ['name', 'email', 'address']);
    await page.fill('#privacy-form-name', `Ada ${canary}`);
    await page.fill('#privacy-form-email', 'ada@example.org');
    await page.fill('#privacy-form-address', `Road 1, ${canary}`);
    await page.click('#privacy-form-send');
    await page.waitForFunction((c) => Array.from(document.querySelectorAll('#messages li.msg.bot')).some((li) => li.textContent?.includes(`Thanks, Ada ${c}`)), canary, { timeout: WAIT });

    // The receipt, listed in the Privacy panel (granted, with Withdraw). (Opened now: the form's modal dialog came first.)
    await page.click('#privacy summary');
    await page.locator('#privacy-receipts li[data-state="granted"]').first().waitFor({ timeout: WAIT });
    assert.equal(await page.locator('#privacy-receipts li[data-state="granted"] [data-action="withdraw"]').count(), 1);

    assert.match(await page.locator('#privacy-retention').innerText(), /erased automatically after 30 days/, 'the retention policy is shown');
    // The archive disclosure the bot published, verified by the SDK before the first message.
    await page.locator('#privacy-archive').waitFor({ state: 'visible', timeout: WAIT });
    assert.match(await page.locator('#privacy-archive').innerText(), new RegExp(`archived by the organisation for ${ARCHIVE_DAYS} days.*Who may open it: compliance`));

    // 3. Export: the JSON download holds the messages and the signed receipt; the HTML download renders them, without scripts.
    const json = await downloadText(page, '#privacy-export-json');
    assert.match(json.name, /\.json$/);
    assert.ok(json.text.includes(canary), 'the messages are in the JSON export');
    const exported = JSON.parse(json.text) as unknown;
    const messages = (exported as { messages?: unknown }).messages;
    assert.ok(Array.isArray(messages) && findObject(messages, (o) => o.type === 'text' && typeof o.text === 'string' && o.text.includes(canary)), 'the bot\'s answer, as text content in `messages`');
    const receipt = findObject(exported, (o) => o.decision === 'granted' && typeof o.sig === 'string' && typeof o.signer === 'string');
    assert.ok(receipt, 'a signed, granted consent receipt in the JSON export');
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
    // The customer's device appended to the conversation's archive, so its purge erased it there too.
    await page.locator('#privacy-erase-archive[data-archive="purged"]').waitFor({ timeout: WAIT });
    await page.locator('#privacy').screenshot({ path: `${screenshots}privacy-erase.png` });
    assert.ok(!((await page.locator('#messages').innerText()).includes(canary)), 'the transcript is gone');
    const afterErase = await canaryRecords(page, needle);
    assert.deepEqual(afterErase.hits, [], `canary in the opened IndexedDB records after erase (${afterErase.opened} opened)`);
    assert.deepEqual(errors, []);
    console.log(`# privacy flow: consent → form → export → erase in ${Date.now() - t0} ms; ${before.hits.length} records held the canary before, 0 after`);
    await context.close();
  });
});
