/**
 * Drives the agent console (`examples/console`) in Chromium: the DevTools virtual WebAuthn
 * authenticator (a platform authenticator with user verification, like Touch ID), and the
 * enrol / sign-in steps as a person does them.
 */
import type { BrowserContext, CDPSession, Page } from 'playwright-core';
import type { ConsoleState } from '../../examples/console/src/state.js';

/** Adds a virtual platform passkey authenticator to `page`; returns its CDP session and id. */
export async function addVirtualAuthenticator(context: BrowserContext, page: Page): Promise<{ cdp: CDPSession; authenticatorId: string }> {
  const cdp = await context.newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: { protocol: 'ctap2', transport: 'internal', hasResidentKey: true, hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true },
  });
  return { cdp, authenticatorId };
}

export function consoleState(page: Page): Promise<ConsoleState> {
  return page.evaluate(() => JSON.parse(JSON.stringify((globalThis as unknown as { parleyConsole: ConsoleState }).parleyConsole)) as ConsoleState);
}

/** Waits until the page's step ends (`done` or `error`), then returns the state. */
export async function settled(page: Page, timeout = 15_000): Promise<ConsoleState> {
  await page.waitForFunction(() => ['done', 'error'].includes(document.body.dataset.phase ?? ''), undefined, { timeout });
  return consoleState(page);
}

/** Opens an invitation link, sets the password and registers a passkey. */
export async function enrolWithPasskey(page: Page, link: string, password: string): Promise<ConsoleState> {
  await page.goto(link);
  await page.locator('#new-password').waitFor();
  await page.fill('#new-password', password);
  await page.fill('#confirm-password', password);
  await page.click('#enrol-password button[type="submit"]');
  await page.locator('#register-passkey').waitFor({ state: 'visible' });
  await page.click('#register-passkey');
  return settled(page);
}

/** Signs in on the page's origin; `totp` empty: with the passkey. */
export async function signIn(page: Page, origin: string, username: string, password: string, totp = ''): Promise<ConsoleState> {
  if (!page.url().startsWith(origin) || !page.url().endsWith('#/signin')) await page.goto(`${origin}/#/signin`);
  await page.locator('#signin').waitFor();
  await page.evaluate(() => (document.body.dataset.phase = 'idle'));
  await page.fill('#username', username);
  await page.fill('#password', password);
  await page.fill('#totp', totp);
  await page.click('#signin-submit');
  return settled(page);
}
