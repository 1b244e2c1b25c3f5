/**
 * Consent and a consent-gated form asked for by an agent, in Chromium, over the demo's real
 * servers (`examples/web/serve.ts`): the agent console (`examples/console`, public client SDK
 * only) and the customer's widget.
 *
 * - The customer asks for a person, the agent claims, the customer lets them in.
 * - The agent requests consent (purpose, fields, retention, controller); the widget's consent
 *   dialog names the agent and the request; the customer allows; the console shows the signed
 *   receipt as granted; the agent requests the form; the widget shows it; the customer sends; the
 *   console shows the values.
 * - A second request, denied: the console shows it denied, offers no form for it, and no values
 *   arrive. The customer withdraws the first consent: the console shows it withdrawn and offers
 *   no form any more.
 *
 * A screenshot of the console's consent panel goes to examples/console/screenshots/.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { startDemo, type Demo } from '../../examples/web/serve.js';
import { totpCodeFor } from '../../examples/console/lib/issuer.js';
import { ask, newWidgetContext, openWidget, widgetState, type WidgetState } from '../../examples/web/lib/driver.js';
import { launchChromium, skipWithoutChromium, tempDir, watchPage, type Browser, type Page } from './helpers.js';
import { consoleState, signIn } from './console-driver.js';
import type { ConsoleState } from '../../examples/console/src/state.js';

const consoleShots = fileURLToPath(new URL('../../examples/console/screenshots/', import.meta.url));
const WAIT = 15_000;

type Pages = { parleyConsole: ConsoleState; parleyWidget: WidgetState };

/** Waits until `pred` holds in the page (passed as a function: the pages' CSP forbids eval). */
async function until(page: Page, pred: () => boolean): Promise<void> {
  await page.waitForFunction(pred, undefined, { timeout: WAIT });
}

const text = (page: Page, selector: string): Promise<string> => page.locator(selector).innerText();

/** Fills the console's consent form and sends it. */
async function requestConsent(page: Page, o: { purpose: string; fields: string; retentionDays: number; controller: string }): Promise<void> {
  await page.fill('#consent-purpose', o.purpose);
  await page.fill('#consent-fields', o.fields);
  await page.fill('#consent-retention', String(o.retentionDays));
  await page.fill('#consent-controller', o.controller);
  await page.click('#consent-request');
}

describe('an agent asks for consent and a form in the console (Chromium)', { skip: skipWithoutChromium }, () => {
  let demo: Demo;
  let browser: Browser;
  let cleanup = (): void => undefined;

  before(async () => {
    const dist = tempDir('parley-console-consent-dist-');
    cleanup = dist.cleanup;
    [demo, browser] = await Promise.all([startDemo({ distDir: dist.dir, noblePage: false }), launchChromium()]);
    mkdirSync(consoleShots, { recursive: true });
  });
  after(async () => {
    await browser?.close();
    await demo?.close();
    cleanup();
  });

  test('consent allowed → form → the console shows the values; denied → no form, no values; withdrawn → no form', async () => {
    const t0 = Date.now();
    // The agent's console, signed in, on the queue.
    const agentContext = await browser.newContext({ viewport: { width: 1400, height: 1100 }, deviceScaleFactor: 1 });
    await agentContext.addInitScript('globalThis.__name = (fn) => fn;');
    const agent = await agentContext.newPage();
    const agentErrors = watchPage(agent).errors;
    const who = demo.agent;
    const signedIn = await signIn(agent, `${demo.url}/console`, who.username, who.password, totpCodeFor(who.secret, Date.now()));
    assert.equal(signedIn.phase, 'done', JSON.stringify(signedIn.error));
    await agent.click('#open-queue');
    await until(agent, () => document.body.dataset.page === 'queue' && document.body.dataset.phase === 'done');

    // The customer asks for a person; the agent claims; the customer lets them in.
    const context = await newWidgetContext(browser);
    const { page: widget, errors } = await openWidget(context, `${demo.url}/`);
    assert.match((await ask(widget, 'Where is order 1042?')).join(' '), /Order 1042/);
    await widget.click('#talk-to-person');
    await until(widget, () => (globalThis as unknown as Pages).parleyWidget.handoff === 'waiting');
    const { ticketId } = await widgetState(widget);
    await agent.locator(`#tickets li[data-ticket="${ticketId}"] button.claim`).click({ timeout: WAIT });
    await widget.locator('#consent-dialog').waitFor({ timeout: WAIT });
    await widget.click('#consent-accept');
    await until(agent, () => (globalThis as unknown as Pages).parleyConsole.claim?.status === 'joined');
    await agent.locator('#consent-section').waitFor({ state: 'visible', timeout: WAIT });

    // 1. The agent asks for consent; the customer sees who asks and for what, and allows.
    const purpose = 'Send you a replacement part';
    await requestConsent(agent, { purpose, fields: 'name, email', retentionDays: 14, controller: 'Acme Ltd' });
    await agent.locator('#consent-requests li[data-state="waiting"]').waitFor({ timeout: WAIT });
    await widget.locator('#privacy-consent-dialog').waitFor({ state: 'visible', timeout: WAIT });
    assert.equal(await text(widget, '#privacy-consent-purpose'), purpose);
    assert.deepEqual(await widget.locator('#privacy-consent-fields li').allInnerTexts(), ['Name', 'Email']);
    assert.equal(await text(widget, '#privacy-consent-retention'), '14 days');
    assert.equal(await text(widget, '#privacy-consent-controller'), 'Acme Ltd');
    assert.equal(await text(widget, '#privacy-consent-by'), 'Dana Agent (agent)');
    await widget.click('#privacy-allow');

    // The console: the signed receipt, granted; then the form for it.
    const granted = agent.locator('#consent-requests li[data-state="granted"]');
    await granted.waitFor({ timeout: WAIT });
    assert.equal(await granted.locator('.consent-purpose').innerText(), purpose);
    await granted.locator('button.request-form').click();
    await widget.locator('#privacy-form').waitFor({ state: 'visible', timeout: WAIT });
    assert.deepEqual(await widget.locator('#privacy-form input:not([disabled])').evaluateAll((els) => els.map((e) => e.getAttribute('name'))), ['name', 'email']);
    await widget.fill('#privacy-form-name', 'Ada Lovelace');
    await widget.fill('#privacy-form-email', 'ada@example.org');
    await widget.click('#privacy-form-send');

    // The console shows the values, covered by the receipt.
    const values = agent.locator('#form-values li.form-values');
    await values.waitFor({ timeout: WAIT });
    assert.equal(await values.locator('dd[data-field="name"]').innerText(), 'Ada Lovelace');
    assert.equal(await values.locator('dd[data-field="email"]').innerText(), 'ada@example.org');
    assert.equal(await values.getAttribute('data-receipt'), await granted.locator('button.request-form').getAttribute('data-receipt'), 'covered by the granted receipt');
    assert.equal((await consoleState(agent)).consent?.forms, 1);
    await agent.locator('#consent-section').screenshot({ path: `${consoleShots}console-consent.png` });

    // 2. A second request, denied: no form offered for it, no values.
    await requestConsent(agent, { purpose: 'Call you back', fields: 'phone', retentionDays: 7, controller: 'Acme Ltd' });
    await widget.locator('#privacy-consent-dialog').waitFor({ state: 'visible', timeout: WAIT });
    assert.equal(await text(widget, '#privacy-consent-purpose'), 'Call you back');
    await widget.click('#privacy-deny');
    const denied = agent.locator('#consent-requests li[data-state="denied"]');
    await denied.waitFor({ timeout: WAIT });
    assert.equal(await denied.locator('.consent-purpose').innerText(), 'Call you back');
    assert.equal(await denied.locator('button.request-form').count(), 0, 'no form for a denied request');

    // 3. The customer withdraws the first consent: withdrawn in the console, no form any more.
    await widget.click('#privacy summary');
    await widget.locator('#privacy-receipts li[data-state="granted"] [data-action="withdraw"]').click({ timeout: WAIT });
    await agent.locator('#consent-requests li[data-state="withdrawn"]').waitFor({ timeout: WAIT });
    assert.equal(await agent.locator('#consent-requests button.request-form').count(), 0, 'no form without a valid receipt');

    const s = await consoleState(agent);
    assert.deepEqual(s.consent?.requests.map((r) => r.status), ['withdrawn', 'denied']);
    assert.equal(s.consent?.forms, 1, 'values arrived only for the granted request');
    assert.equal(await agent.locator('#form-values li.form-values').count(), 1);
    assert.equal(await widget.locator('#privacy-form').count(), 0, 'the customer was never asked for a form after the denial');
    assert.deepEqual([...errors, ...agentErrors].filter((e) => !/Failed to load resource/.test(e)), []);
    console.log(`# console consent flow: ${Date.now() - t0} ms`);
    await context.close();
    await agentContext.close();
  });
});
