/**
 * The handoff from the bot to a person, in Chromium, with three browser contexts over the demo's
 * real servers (`examples/web/serve.ts`: one relay with the org key, the issuer, the support bot
 * in its enclave): the customer's widget, agent A's console and agent B's console.
 *
 * - The bot answers; the customer asks for a person; both agents see the ticket appear live;
 *   A claims; the customer's consent dialog shows A's certified name, role and safety number (the
 *   same A's console shows), and the customer shares the last 5 messages and keeps the bot; A's
 *   console shows exactly those 5, marked "shared by the customer"; B's claim fails (`CONFLICT`)
 *   and B sees no conversation; customer and A write to each other (a canary among it).
 * - A transfers to the queue; B sees the ticket come back, claims; the customer is asked again,
 *   shares only the last message and lets the bot go: B sees exactly that one, never the canary.
 *   B closes: the ticket leaves the queue and the customer can ask for a person again.
 * - Canary: 0 times in the relay's database files, its logs (debug level), the WebSocket frames
 *   of all three pages, and agent B's IndexedDB; while A's console shows it (it was sent).
 * - The bot hands off (the customer asked it for a person); declined consent: nothing shared, the
 *   agent is not added, the ticket is back in the queue; left unclaimed, the widget says so.
 *
 * Screenshots of the consent dialog and the console go to examples/web/screenshots/ and
 * examples/console/screenshots/ (the README shows them).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { startDemo, type Demo } from '../../examples/web/serve.js';
import { enrolTotpStaff, type TotpStaff } from '../../examples/console/lib/demo-agent.js';
import { totpCodeFor } from '../../examples/console/lib/issuer.js';
import { ask, newWidgetContext, waitSettled, widgetState, type WidgetState } from '../../examples/web/lib/driver.js';
import { containsBytes, dumpIndexedDb, launchChromium, skipWithoutChromium, tempDir, watchPage, type Browser, type BrowserContext, type Page } from './helpers.js';
import { consoleState, signIn } from './console-driver.js';
import type { ConsoleState } from '../../examples/console/src/state.js';

const webShots = fileURLToPath(new URL('../../examples/web/screenshots/', import.meta.url));
const consoleShots = fileURLToPath(new URL('../../examples/console/screenshots/', import.meta.url));
const WAIT = 15_000;
/** The relay reports a ticket unclaimed after this long (the widget then tells the customer). */
const UNCLAIMED_MS = 2500;

/** Every WebSocket frame a page sends or receives (the relay's side of the wire). */
function captureFrames(page: Page, into: Buffer[]): void {
  page.on('websocket', (ws) => {
    ws.on('framesent', (f) => void into.push(Buffer.from(f.payload)));
    ws.on('framereceived', (f) => void into.push(Buffer.from(f.payload)));
  });
}

/** A console page in its own context (a wider window than the widget's). */
async function consolePage(browser: Browser, frames: Buffer[]): Promise<{ context: BrowserContext; page: Page; errors: string[] }> {
  const context = await browser.newContext({ viewport: { width: 1400, height: 1000 }, deviceScaleFactor: 1 });
  await context.addInitScript('globalThis.__name = (fn) => fn;');
  const page = await context.newPage();
  captureFrames(page, frames);
  return { context, page, errors: watchPage(page).errors };
}

/** Signs in with password + TOTP and opens the queue; resolves when the queue is loaded. */
async function signInAgent(page: Page, demo: Demo, who: TotpStaff): Promise<void> {
  const s = await signIn(page, `${demo.url}/console`, who.username, who.password, totpCodeFor(who.secret, Date.now()));
  assert.equal(s.phase, 'done', JSON.stringify(s.error));
  await page.click('#open-queue');
  await page.waitForFunction(() => document.body.dataset.page === 'queue' && document.body.dataset.phase === 'done', undefined, { timeout: WAIT });
}

/** Opens the widget in `context`, its frames captured from the first connection. */
async function openCapturedWidget(context: BrowserContext, url: string, frames: Buffer[]): Promise<{ page: Page; errors: string[] }> {
  const page = await context.newPage();
  captureFrames(page, frames);
  const { errors } = watchPage(page);
  await page.goto(url);
  assert.equal((await waitSettled(page)).phase, 'ready');
  return { page, errors };
}

const text = (page: Page, selector: string): Promise<string> => page.locator(selector).innerText();

/** Texts of the messages in a console's conversation view (without the sender line and time). */
function consoleMessages(page: Page, selector = '#conv-messages li.msg'): Promise<{ text: string; shared: boolean; role: string }[]> {
  return page.$$eval(selector, (els) =>
    els.map((e) => ({
      text: Array.from(e.childNodes).filter((n) => n.nodeType === 3).map((n) => n.textContent ?? '').join(''),
      shared: e.getAttribute('data-shared') === 'true',
      role: e.className.replace(/\b(msg|shared)\b/g, '').trim(),
    })),
  );
}

/** The pages' test-visible state (`window.parleyConsole`, `window.parleyWidget`). */
type Pages = { parleyConsole: ConsoleState; parleyWidget: WidgetState };

/**
 * Waits until `pred` holds in the page. `pred` runs in the page (the pages' CSP forbids eval, so
 * it is passed as a function, not as a string) and may not use variables of the test.
 */
async function until(page: Page, pred: () => boolean): Promise<void> {
  await page.waitForFunction(pred, undefined, { timeout: WAIT });
}

describe('handoff from the bot to agents in Chromium', { skip: skipWithoutChromium }, () => {
  let demo: Demo;
  let browser: Browser;
  let agentB: TotpStaff;
  let a: { context: BrowserContext; page: Page; errors: string[] };
  let b: { context: BrowserContext; page: Page; errors: string[] };
  const frames: Buffer[] = [];
  const logs: string[] = [];
  let cleanup = (): void => undefined;

  before(async () => {
    const dist = tempDir('parley-handoff-dist-');
    cleanup = dist.cleanup;
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        logs.push(chunk.toString('utf8'));
        cb();
      },
    });
    [demo, browser] = await Promise.all([
      startDemo({ distDir: dist.dir, noblePage: false, relay: { logger: pino({ level: 'debug' }, sink), ticketUnclaimedMs: UNCLAIMED_MS }, issuer: { ipRateLimit: { max: 500, windowMs: 60_000 } } }),
      launchChromium(),
    ]);
    agentB = await enrolTotpStaff(demo.issuer, { username: 'agent.b', displayName: 'Bob Agent', roles: ['agent'], password: 'agent b password 4 tests' });
    [a, b] = await Promise.all([consolePage(browser, frames), consolePage(browser, frames)]);
    await Promise.all([signInAgent(a.page, demo, demo.agent), signInAgent(b.page, demo, agentB)]);
    mkdirSync(webShots, { recursive: true });
    mkdirSync(consoleShots, { recursive: true });
  });
  after(async () => {
    await browser?.close();
    await demo?.close();
    cleanup();
  });

  test('bot → A with the last 5 shared, B refused; three-way chat; transfer A → B with the last 1; close; the canary never reaches the relay or B', async () => {
    const context = await newWidgetContext(browser);
    const { page: widget, errors } = await openCapturedWidget(context, `${demo.url}/`, frames);

    // The bot answers in the conversation.
    assert.match((await ask(widget, 'Where is order 1042?')).join(' '), /Order 1042 is shipped/);
    assert.match((await ask(widget, 'What are your opening hours?')).join(' '), /Monday to Friday/);
    assert.match((await ask(widget, 'Where is order 1043?')).join(' '), /Order 1043 is being packed/);
    let ws = await widgetState(widget);
    assert.ok(ws.conversationId, 'the chat runs as a conversation');
    assert.deepEqual(ws.members?.map((m) => m.role).sort(), ['bot', 'customer']);
    assert.equal(await widget.locator('#members li').count(), 2, 'the header lists the members');

    // Ask for a person: both agents see the ticket appear, live.
    const talkAt = Date.now();
    await widget.click('#talk-to-person');
    await until(widget, () => (globalThis as unknown as Pages).parleyWidget.handoff === 'waiting');
    ws = await widgetState(widget);
    assert.match(await text(widget, '#handoff-status'), /Waiting for an agent/);
    const ticket = ws.ticketId!;
    for (const p of [a.page, b.page]) await p.locator(`#tickets li[data-ticket="${ticket}"][data-state="waiting"]`).waitFor({ timeout: WAIT });

    // A claims; B's list shows it claimed.
    await a.page.click(`#tickets li[data-ticket="${ticket}"] button.claim`);
    await b.page.locator(`#tickets li[data-ticket="${ticket}"][data-state="claimed"]`).waitFor({ timeout: WAIT });

    // The customer's consent dialog: A's certified name, role and safety number.
    await widget.locator('#consent-dialog[role="dialog"]').waitFor({ timeout: WAIT });
    assert.equal((await widgetState(widget)).handoff, 'offer');
    assert.equal(await text(widget, '#consent-agent-name'), 'Dana Agent');
    assert.equal(await text(widget, '#consent-agent-role'), 'agent');
    const safetyNumber = await text(widget, '#consent-safety-number');
    assert.match(safetyNumber, /^\d{5}( \d{5}){11}$/);
    assert.equal(await widget.inputValue('#share-last-count'), '5', 'the last 5 by default');
    assert.equal(await widget.isChecked('#share-last'), true);
    assert.equal(await widget.isChecked('#bot-stay'), true);
    assert.equal(await widget.getAttribute('#consent-dialog', 'aria-modal'), 'true');
    await widget.locator('#widget').screenshot({ path: `${webShots}handoff-consent.png` });
    await widget.click('#consent-accept');

    // A reads exactly the last 5 messages, marked as shared by the customer.
    await until(a.page, () => (globalThis as unknown as Pages).parleyConsole.conversation?.shared === 5);
    // The clicks (claim, accept) come as fast as the pages allow: this is the system's part of the time, plus one screenshot.
    console.log(`# handoff in Chromium: "Talk to a person" → agent reads the shared history: ${Date.now() - talkAt} ms (claim and consent clicked at once)`);
    const seen = await consoleMessages(a.page);
    const shared = seen.filter((m) => m.shared);
    assert.equal(shared.length, 5);
    assert.equal(await a.page.locator('#conv-messages li.msg.shared').count(), 5);
    assert.equal(await a.page.locator('#conv-messages li.msg.shared .shared-label').count(), 5, 'each labelled "shared by the customer"');
    assert.match(shared[0]!.text, /^Order 1042 is shipped/);
    assert.equal(shared[1]!.text, 'What are your opening hours?');
    assert.match(shared[2]!.text, /Monday to Friday/);
    assert.equal(shared[3]!.text, 'Where is order 1043?');
    assert.match(shared[4]!.text, /^Order 1043 is being packed/);
    assert.ok(!seen.some((m) => m.text === 'Where is order 1042?'), 'the 6th-last message was not shared');
    assert.match(await text(a.page, '#shared-heading'), /Shared by the customer: 5 messages/);
    assert.equal(await text(a.page, '#conv-safety-number'), safetyNumber, 'agent and customer see the same safety number');
    const aState = await consoleState(a.page);
    assert.equal(aState.claim?.status, 'joined');
    assert.deepEqual(aState.conversation!.members.map((m) => m.role).sort(), ['agent', 'bot', 'customer']);
    await until(widget, () => (globalThis as unknown as Pages).parleyWidget.handoff === 'joined');
    ws = await widgetState(widget);
    assert.deepEqual(ws.members?.map((m) => m.role).sort(), ['agent', 'bot', 'customer']);
    assert.match(await text(widget, '#members'), /Dana Agent\s*agent/);
    assert.match(await text(widget, '#messages'), /Dana Agent \(agent\) joined the chat/);

    // B: the claim is refused, and B has no conversation.
    await b.page.click(`#tickets li[data-ticket="${ticket}"] button.claim`);
    await until(b.page, () => (globalThis as unknown as Pages).parleyConsole.claim?.status === 'failed');
    const bState = await consoleState(b.page);
    assert.equal(bState.claim?.code, 'CONFLICT');
    assert.equal(bState.conversation, undefined);
    assert.equal(await b.page.locator('#conv-messages li.msg').count(), 0);
    assert.match(await text(b.page, '#alert'), /CONFLICT \(claimed\): Another agent took this conversation first/);

    // The three-way conversation: the customer writes (the canary), A answers.
    const canary = `CANARY-${randomBytes(9).toString('hex')}`;
    await widget.fill('#input', `My account number is ${canary}`);
    await widget.press('#input', 'Enter');
    await a.page.locator(`#conv-messages li.msg.customer:has-text("${canary}")`).waitFor({ timeout: WAIT });
    await a.page.fill('#conv-input', 'Hello, I am Dana. Let me look at that for you.');
    await a.page.press('#conv-input', 'Enter');
    await widget.locator('#messages li.msg.agent:has-text("Let me look at that")').waitFor({ timeout: WAIT });
    assert.match(await text(widget, '#messages li.msg.agent .from'), /Dana Agent/);
    // What the relay sees of it: the ticket and envelope sizes, no text.
    assert.equal(await text(a.page, '#relay-ticket dd:nth-of-type(2)'), 'support');
    await a.page.waitForFunction(() => document.querySelectorAll('#relay-rows tr').length >= 4, undefined, { timeout: WAIT });
    assert.ok(!(await text(a.page, '#relay-section')).includes(canary));
    await a.page.evaluate(() => window.scrollTo(0, 0));
    await a.page.screenshot({ path: `${consoleShots}console-handoff.png` });

    // Transfer A → B: back in the queue; B claims; the customer is asked again.
    await a.page.selectOption('#transfer-queue', 'support');
    await a.page.click('#transfer');
    await until(a.page, () => !(globalThis as unknown as Pages).parleyConsole.conversation);
    await b.page.locator(`#tickets li[data-ticket="${ticket}"][data-state="waiting"]`).waitFor({ timeout: WAIT });
    await until(widget, () => {
      const w = (globalThis as unknown as Pages).parleyWidget;
      return w.handoff === 'waiting' && !(w.members ?? []).some((m) => m.role === 'agent');
    });
    assert.match(await text(widget, '#messages'), /Dana Agent \(agent\) left the chat/);
    await b.page.click(`#tickets li[data-ticket="${ticket}"] button.claim`);
    await widget.locator('#consent-dialog').waitFor({ timeout: WAIT });
    assert.equal(await text(widget, '#consent-agent-name'), 'Bob Agent');
    await widget.fill('#share-last-count', '1');
    await widget.check('#bot-leave');
    await widget.click('#consent-accept');

    // B reads only the one message shared now (A's last), never the canary.
    await until(b.page, () => (globalThis as unknown as Pages).parleyConsole.conversation?.shared === 1);
    const bSeen = await consoleMessages(b.page);
    assert.deepEqual(bSeen.filter((m) => m.shared).map((m) => m.text), ['Hello, I am Dana. Let me look at that for you.']);
    assert.deepEqual((await consoleState(b.page)).conversation!.members.map((m) => m.role).sort(), ['agent', 'customer'], 'the bot left as the customer chose');
    await until(widget, () => {
      const w = (globalThis as unknown as Pages).parleyWidget;
      return w.handoff === 'joined' && !(w.members ?? []).some((m) => m.role === 'bot');
    });
    ws = await widgetState(widget);
    assert.equal(ws.consents?.accepted, 2);
    await b.page.fill('#conv-input', 'Bob here, I have taken over.');
    await b.page.press('#conv-input', 'Enter');
    await widget.locator('#messages li.msg.agent:has-text("Bob here")').waitFor({ timeout: WAIT });
    assert.equal(await a.page.locator('#conv-messages li.msg').count(), 0, 'A, no longer a member, shows nothing');

    // The canary (which A's console showed above, so it was sent) is nowhere on the relay's side or at B.
    const needle = Buffer.from(canary);
    const dbFiles = ['relay.db', 'relay.db-wal', 'relay.db-shm'].map((f) => join(demo.dataDir, f)).filter((f) => existsSync(f));
    assert.ok(dbFiles.length >= 1);
    for (const f of dbFiles) assert.equal(readFileSync(f).includes(needle), false, `canary in ${f}`);
    const logText = logs.join('');
    assert.ok(logText.length > 0, 'the relay logged');
    assert.equal(logText.includes(canary), false, 'canary in the relay logs');
    assert.ok(frames.length > 20 && frames.some((f) => f.length > 200), 'frames were captured');
    assert.equal(frames.filter((f) => f.includes(needle)).length, 0, 'canary in a WebSocket frame');
    const bDump = await dumpIndexedDb(b.page);
    assert.ok(bDump.length > 5, "B's IndexedDB was read");
    assert.equal(bDump.filter((r) => containsBytes(r.bytes, needle)).length, 0, "canary in B's IndexedDB");
    assert.equal((await text(b.page, 'body')).includes(canary), false, "canary on B's screen");

    // B closes: the ticket is gone from the queue, B leaves, the customer can ask again.
    await b.page.click('#close-conv');
    await until(b.page, () => !(globalThis as unknown as Pages).parleyConsole.conversation);
    await b.page.locator(`#tickets li[data-ticket="${ticket}"]`).waitFor({ state: 'detached', timeout: WAIT });
    await until(widget, () => {
      const w = (globalThis as unknown as Pages).parleyWidget;
      return w.handoff === 'none' && !(w.members ?? []).some((m) => m.role === 'agent');
    });
    assert.match(await text(widget, '#messages'), /The request for a person is closed/);
    assert.match(await text(widget, '#messages'), /Bob Agent \(agent\) left the chat/);
    assert.equal(await widget.isEnabled('#talk-to-person'), true);

    assert.deepEqual([...errors, ...a.errors, ...b.errors].filter((e) => !/Failed to load resource/.test(e)), []);
    await context.close();
  });

  test('the bot hands off; declined consent: nothing shared, the agent is not added, the ticket is back in the queue and reported unclaimed', async () => {
    const context = await newWidgetContext(browser);
    const { page: widget, errors } = await openCapturedWidget(context, `${demo.url}/`, frames);
    // This time the bot hands off: asked for a person, it sends a handoff request to the
    // customer's device, which opens the ticket.
    assert.match((await ask(widget, 'Can I talk to a person, please?')).join(' '), /asked for a person/);
    await until(widget, () => (globalThis as unknown as Pages).parleyWidget.handoff === 'waiting');
    assert.match(await text(widget, '#messages'), /The support bot asked for a person for you/);
    const { ticketId } = await widgetState(widget);
    await a.page.locator(`#tickets li[data-ticket="${ticketId}"][data-state="waiting"]`).waitFor({ timeout: WAIT });
    await a.page.click(`#tickets li[data-ticket="${ticketId}"] button.claim`);
    await widget.locator('#consent-dialog').waitFor({ timeout: WAIT });
    await widget.click('#consent-decline');

    await until(a.page, () => (globalThis as unknown as Pages).parleyConsole.claim?.status === 'declined');
    await a.page.locator(`#tickets li[data-ticket="${ticketId}"][data-state="waiting"]`).waitFor({ timeout: WAIT });
    const s = await consoleState(a.page);
    assert.equal(s.conversation, undefined, 'A was not added');
    assert.equal(await a.page.locator('#conv-messages li.msg').count(), 0, 'nothing shared');
    assert.match(await text(a.page, '#claim-status'), /declined/);
    await until(widget, () => (globalThis as unknown as Pages).parleyWidget.handoff === 'waiting');
    const w = await widgetState(widget);
    assert.deepEqual(w.members?.map((m) => m.role).sort(), ['bot', 'customer']);
    assert.equal(w.consents?.declined, 1);
    assert.match(await text(widget, '#messages'), /You declined Dana Agent/);
    // Nobody claims it again: the relay reports it unclaimed, and the widget says so.
    await widget.locator('#messages li.msg.system:has-text("No agent has picked up your request yet")').waitFor({ timeout: UNCLAIMED_MS + WAIT });
    assert.equal((await widgetState(widget)).handoff, 'waiting');
    assert.deepEqual([...errors, ...a.errors].filter((e) => !/Failed to load resource/.test(e)), []);
    await context.close();
  });
});
