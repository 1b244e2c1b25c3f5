/**
 * Drives the demo widget in Chromium through playwright-core: used by `serve.ts --headless` and
 * by the browser tests. Only Debian's Chromium is used (`/usr/bin/chromium`), never a
 * downloaded browser.
 */
import type { WidgetState } from '../src/widget-state.js';
import { existsSync } from 'node:fs';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM_PATH = process.env.PARLEY_CHROMIUM ?? '/usr/bin/chromium';
export const CHROMIUM_ARGS = [
  '--headless=new',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** True when Debian's Chromium is installed. */
export function hasChromium(): boolean {
  return existsSync(CHROMIUM_PATH);
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS, timeout: 30_000 });
}

/**
 * A fresh context (own IndexedDB). Scripts run through tsx get esbuild's `__name(...)` helper
 * inside functions passed to `page.evaluate`; the page gets a no-op `__name` for them.
 */
export async function newWidgetContext(browser: Browser): Promise<BrowserContext> {
  const context = await browser.newContext({ viewport: { width: 1180, height: 660 }, deviceScaleFactor: 1 });
  await context.addInitScript('globalThis.__name = (fn) => fn;');
  return context;
}

export type { WidgetState } from '../src/widget-state.js';

export function widgetState(page: Page): Promise<WidgetState> {
  return page.evaluate(() => (window as unknown as { parleyWidget: WidgetState }).parleyWidget);
}

/** Waits until the widget left `starting` (ready, waiting for another tab, or error). */
export async function waitSettled(page: Page, timeout = 30_000): Promise<WidgetState> {
  await page.waitForFunction(() => ['ready', 'waiting-for-tab', 'error'].includes(document.body.dataset.phase ?? ''), undefined, { timeout });
  return widgetState(page);
}

/** Opens a page of the demo and waits for it to settle. */
export async function openWidget(context: BrowserContext, url: string): Promise<{ page: Page; errors: string[] }> {
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console: ${m.text()}`);
  });
  await page.goto(url);
  await waitSettled(page);
  return { page, errors };
}

/** Texts of the bot's messages so far (cards included as their text content). */
export function botMessages(page: Page): Promise<string[]> {
  return page.$$eval('#messages li.msg.bot', (els) => els.map((e) => e.textContent ?? ''));
}

/** Texts of every message line (me, bot, system). */
export function allMessages(page: Page): Promise<string[]> {
  return page.$$eval('#messages li.msg', (els) => els.map((e) => `${e.className.replace('msg ', '')}: ${e.textContent ?? ''}`));
}

/** Waits until the bot has sent `count` messages in total. */
export async function waitForBot(page: Page, count: number, timeout = 20_000): Promise<string[]> {
  await page.waitForFunction((n) => document.querySelectorAll('#messages li.msg.bot').length >= n, count, { timeout });
  return botMessages(page);
}

/**
 * Types a question, sends it, and waits for `replies` more bot messages.
 * @returns the new bot messages.
 */
export async function ask(page: Page, text: string, replies = 1): Promise<string[]> {
  const before = (await botMessages(page)).length;
  await page.fill('#input', text);
  await page.press('#input', 'Enter');
  const after = await waitForBot(page, before + replies);
  return after.slice(before);
}

/**
 * Answers the open consent dialog (the SDK's `consentRequested`): Allow or Deny; waits for
 * `replies` more bot messages.
 */
export async function answerConsentDialog(page: Page, allow: boolean, replies = 1, timeout = 20_000): Promise<string[]> {
  const before = (await botMessages(page)).length;
  await page.locator('#privacy-consent-dialog').waitFor({ state: 'visible', timeout });
  await page.click(allow ? '#privacy-allow' : '#privacy-deny');
  const after = await waitForBot(page, before + replies, timeout);
  return after.slice(before);
}

/** Fills the open consent-gated form (the SDK's `formRequested`) and sends it; waits for `replies` more bot messages. */
export async function submitPrivacyForm(page: Page, values: Record<string, string>, replies = 1, timeout = 20_000): Promise<string[]> {
  const before = (await botMessages(page)).length;
  const form = page.locator('#privacy-form');
  await form.waitFor({ state: 'visible', timeout });
  for (const [name, value] of Object.entries(values)) await form.locator(`input[name="${name}"]`).fill(value);
  await page.click('#privacy-form-send');
  const after = await waitForBot(page, before + replies, timeout);
  return after.slice(before);
}

/** The scripted conversation of the headless demo and the tests. */
export const SCRIPT = {
  order: 'Where is order 1042?',
  hours: 'What are your opening hours?',
  returnItem: 'I want to return an item',
  form: { name: 'Jane Doe-Headless', email: 'jane.doe.e2e@example.org', address: '12 Cipher Street, Berlin' },
} as const;

/**
 * Runs the scripted conversation on an open widget page.
 * @returns the transcript.
 * @throws Error when a reply is not what the bot should say.
 */
export async function runScript(page: Page): Promise<string[]> {
  const expect = (got: string[], re: RegExp, step: string): void => {
    if (!got.some((t) => re.test(t))) throw new Error(`${step}: unexpected bot reply ${JSON.stringify(got)}`);
  };
  expect(await ask(page, SCRIPT.order), /Order 1042 is shipped/, 'order status');
  expect(await ask(page, SCRIPT.hours), /Monday to Friday/, 'opening hours');
  expect(await ask(page, SCRIPT.returnItem), /asked for your consent/, 'consent request');
  expect(await answerConsentDialog(page, true), /fill in the form/, 'form after consent');
  expect(await submitPrivacyForm(page, SCRIPT.form), new RegExp(`Thanks, ${SCRIPT.form.name}`), 'return booked');
  return allMessages(page);
}
