/**
 * The demo web app in a real browser (Debian's Chromium through playwright-core), against a real
 * relay and the support bot in its enclave (`examples/web/serve.ts`):
 * chat with the bot, reload and keep the history, no plaintext at the relay or in IndexedDB,
 * tampered records give typed errors (ST1), one writer across tabs (ST5), the pure-JS page
 * under a CSP without `'wasm-unsafe-eval'`, and a page with a wrong pin that the SDK stops before
 * anything is sent. Screenshots go to examples/web/screenshots/.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { generateOrgKey } from '@parley/protocol';
import { toHex } from '@parley/protocol';
import { CSP_NOBLE, CSP_SODIUM, startDemo, type Demo } from '../../examples/web/serve.js';
import {
  SCRIPT,
  allMessages,
  answerConsentDialog,
  ask,
  launchChromium,
  newWidgetContext,
  openWidget,
  runScript,
  waitSettled,
  widgetState,
  type WidgetState,
} from '../../examples/web/lib/driver.js';
import { containsBytes, dumpIndexedDb, skipWithoutChromium, tempDir, type Browser, type Page } from './helpers.js';

const screenshots = fileURLToPath(new URL('../../examples/web/screenshots/', import.meta.url));
const DB = 'parley-support-widget';

/** Every string of the scripted conversation that must never leave the endpoints in clear. */
const PLAINTEXTS = [SCRIPT.order, SCRIPT.hours, SCRIPT.form.name, SCRIPT.form.email, SCRIPT.form.address, 'Order 1042 is shipped', 'Monday to Friday', 'PX-88217-DE'];

/** Flips one byte of a raw IndexedDB record (as an attacker with disk access, or a bad disk). */
async function tamper(page: Page, mutate: { flip?: string; swap?: [string, string] }): Promise<void> {
  await page.evaluate(
    async ({ db: name, mutate }) => {
      const db = await new Promise<IDBDatabase>((res, rej) => {
        const r = indexedDB.open(name);
        r.onsuccess = () => res(r.result);
        r.onerror = () => rej(r.error);
      });
      const get = (id: string) =>
        new Promise<Uint8Array>((res, rej) => {
          const r = db.transaction('records').objectStore('records').get(id);
          r.onsuccess = () => res(r.result as Uint8Array);
          r.onerror = () => rej(r.error);
        });
      const writes: [string, Uint8Array][] = [];
      if (mutate.flip) {
        const v = await get(mutate.flip);
        const i = v.length - 20;
        v[i] = v[i]! ^ 0x40;
        writes.push([mutate.flip, v]);
      }
      if (mutate.swap) {
        const [a, b] = mutate.swap;
        const [va, vb] = [await get(a), await get(b)];
        writes.push([a, vb], [b, va]);
      }
      await new Promise<void>((res, rej) => {
        const tx = db.transaction('records', 'readwrite');
        for (const [k, v] of writes) tx.objectStore('records').put(v, k);
        tx.oncomplete = () => res();
        tx.onerror = () => rej(tx.error);
      });
      db.close();
    },
    { db: DB, mutate },
  );
}

async function recordIds(page: Page, prefix: string): Promise<string[]> {
  const dump = await dumpIndexedDb(page);
  return dump.filter((d) => d.db === DB && d.key.startsWith(prefix)).map((d) => d.key).sort();
}

describe('demo web app in Chromium', { skip: skipWithoutChromium }, () => {
  let demo: Demo;
  let browser: Browser;
  let cleanup = (): void => undefined;

  before(async () => {
    const dist = tempDir('parley-demo-dist-');
    cleanup = dist.cleanup;
    demo = await startDemo({ distDir: dist.dir });
    browser = await launchChromium();
    mkdirSync(screenshots, { recursive: true });
  });
  after(async () => {
    await browser?.close();
    await demo?.close();
    cleanup();
  });

  test('chat with the bot; reload keeps identity and history; relay and IndexedDB hold no plaintext', async () => {
    const context = await newWidgetContext(browser);
    const { page, errors } = await openWidget(context, `${demo.url}/`);
    const first = await widgetState(page);
    assert.equal(first.phase, 'ready');
    assert.equal(first.backend, 'sodium');
    assert.equal(first.verified, undefined, 'no verdict before the SDK has looked at the bot');
    assert.equal(await page.textContent('#badge'), 'checked before sending');
    assert.equal(await page.textContent('#pinned-measurement'), demo.measurement);

    const transcript = await runScript(page);
    assert.ok(transcript.some((l) => l.includes(`Thanks, ${SCRIPT.form.name}`)));
    // The SDK verified the org certificate and the enclave attestation before the first send.
    assert.equal((await widgetState(page)).verified, true, 'org certificate and enclave measurement verified by the SDK against the pins');
    assert.equal(await page.textContent('#badge'), 'verified');
    assert.match((await page.textContent('#measurement')) ?? '', new RegExp(`^${demo.measurement} · verified`));
    assert.match((await page.textContent('#safety-number')) ?? '', /^\d{5}( \d{5}){11}$/);

    // Screenshots for the README: the widget and the relay panel.
    await page.locator('#messages').evaluate((el) => (el.scrollTop = el.scrollHeight));
    await page.locator('#widget').screenshot({ path: `${screenshots}widget.png` });
    const box = (await page.locator('#relay-panel').boundingBox())!;
    await page.screenshot({ path: `${screenshots}relay-panel.png`, clip: { x: box.x, y: box.y, width: box.width, height: Math.min(box.height, 430) } });

    // The relay panel shows ids, sizes and ciphertext, never the conversation.
    await page.waitForFunction(() => document.querySelectorAll('#relay-rows tr.stored').length >= 10);
    const panelText = (await page.textContent('#relay-panel')) ?? '';
    for (const p of PLAINTEXTS) assert.ok(!panelText.includes(p), `relay panel shows "${p}"`);
    // And the envelopes the relay stored (in full) hold none of it either.
    const events = demo.store.history().filter((e) => e.kind === 'stored');
    assert.ok(events.length >= 10);
    for (const e of events) {
      const bytes = Buffer.from(e.envelope!, 'base64');
      for (const p of PLAINTEXTS) assert.ok(!bytes.includes(Buffer.from(p)), `envelope ${e.id} holds "${p}"`);
    }

    // Reload: same identity, same conversation, and the session continues (no new X3DH).
    const bundlesBefore = demo.store.history().filter((e) => e.kind === 'bundle').length;
    const before = await allMessages(page);
    await page.reload();
    const again = await waitSettled(page);
    assert.equal(again.phase, 'ready');
    assert.equal(again.deviceId, first.deviceId, 'identity kept across reload');
    assert.equal(again.verified, true, "the SDK's verdict is kept with the peer record");
    assert.deepEqual(await allMessages(page), before, 'history restored across reload');
    const reply = await ask(page, 'Where is order 1044?');
    assert.match(reply.join(' '), /Order 1044 is delivered/);
    assert.equal(demo.store.history().filter((e) => e.kind === 'bundle').length, bundlesBefore, 'no new bundle fetched: the stored session was used');

    // IndexedDB dump: every record sealed; no plaintext; no key bytes (the bot's public identity
    // keys sit in the peer record: if they are not visible, neither is anything else in clear).
    const dump = (await dumpIndexedDb(page)).filter((d) => d.db === DB);
    assert.ok(dump.length > 5);
    const botKeys = [demo.bot.identity.signingKey, demo.bot.identity.dhKey];
    for (const rec of dump) {
      if (rec.kind === 'CryptoKey') continue;
      assert.equal(rec.kind, 'bytes', `${rec.key} is raw bytes`);
      assert.equal(rec.bytes[0], 0x01, `${rec.key} carries the sealed-record format byte`);
      for (const p of PLAINTEXTS) assert.ok(!containsBytes(rec.bytes, new TextEncoder().encode(p)), `${rec.key} holds "${p}"`);
      for (const k of botKeys) assert.ok(!containsBytes(rec.bytes, k), `${rec.key} holds raw key bytes`);
      assert.ok(!containsBytes(rec.bytes, new TextEncoder().encode(first.deviceId!)), `${rec.key} holds the device id in clear`);
    }
    assert.equal(dump.filter((d) => d.kind === 'CryptoKey').length, 1, 'one wrapping key');
    const exportResult = await page.evaluate(async (name) => {
      const db = await new Promise<IDBDatabase>((res) => {
        const r = indexedDB.open(name);
        r.onsuccess = () => res(r.result);
      });
      const key = await new Promise<CryptoKey>((res) => {
        const r = db.transaction('records').objectStore('records').get('\u0000parley/wrapping-key');
        r.onsuccess = () => res(r.result as CryptoKey);
      });
      db.close();
      try {
        await crypto.subtle.exportKey('raw', key);
        return 'exported';
      } catch (e) {
        return `${(e as DOMException).name}; extractable=${key.extractable}`;
      }
    }, DB);
    assert.equal(exportResult, 'InvalidAccessError; extractable=false');
    assert.deepEqual(errors, []);
    await context.close();
  });

  test('the bot asks for personal data only after consent; a refusal gets no form', async () => {
    const context = await newWidgetContext(browser);
    const { page, errors } = await openWidget(context, `${demo.url}/`);
    const asked = await ask(page, SCRIPT.returnItem);
    assert.match(asked.join(' '), /asked for your consent/);
    // The SDK's consent request, from the certified bot: what, why, how long, who controls it.
    await page.locator('#privacy-consent-dialog').waitFor({ state: 'visible' });
    assert.match(await page.locator('#privacy-consent-purpose').innerText(), /book your return/);
    assert.deepEqual(await page.locator('#privacy-consent-fields li').allInnerTexts(), ['Name', 'Email', 'Address']);
    assert.equal(await page.locator('#privacy-consent-retention').innerText(), '30 days');
    assert.equal(await page.locator('#privacy-consent-controller').innerText(), 'Acme Ltd');
    assert.equal(await page.locator('#privacy-form').count(), 0, 'no form before consent');
    const declined = await answerConsentDialog(page, false);
    assert.match(declined.join(' '), /no personal data/);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(await page.locator('#privacy-form').count(), 0, 'no form after a refusal');
    // The signed receipt records the refusal.
    await page.click('#privacy summary');
    await page.locator('#privacy-receipts li[data-state="denied"]').waitFor();
    assert.deepEqual(errors, []);
    await context.close();
  });

  test('ST1: tampered records give STORAGE_INTEGRITY naming the record, never a crash', async () => {
    const context = await newWidgetContext(browser);
    const { page, errors } = await openWidget(context, `${demo.url}/`);
    await ask(page, SCRIPT.order);
    await ask(page, SCRIPT.hours);
    const history = await recordIds(page, 'app/history/');
    assert.ok(history.length >= 4);

    // (a) One history record flipped, two swapped: those three fail, the rest still shows.
    await page.close();
    const probe = await context.newPage();
    await probe.goto(`${demo.url}/api/config`);
    await tamper(probe, { flip: history[1]!, swap: [history[2]!, history[3]!] });
    await probe.close();
    const { page: p2, errors: e2 } = await openWidget(context, `${demo.url}/`);
    let s: WidgetState = await widgetState(p2);
    assert.equal(s.phase, 'ready', 'the widget still runs');
    const lines = await allMessages(p2);
    const failures = lines.filter((l) => l.includes('failed its integrity check'));
    assert.equal(failures.length, 3);
    for (const id of [history[1]!, history[2]!, history[3]!]) assert.ok(failures.some((l) => l.includes(`STORAGE_INTEGRITY, record "${id}"`)), id);
    assert.ok(lines.some((l) => l.includes(SCRIPT.order)), 'untouched records still open');
    assert.match((await ask(p2, 'Where is order 1043?')).join(' '), /being packed/, 'the session is unaffected');
    await p2.screenshot({ path: `${screenshots}tampered-history.png`, clip: { x: 0, y: 0, width: 412, height: 652 } });

    // (b) The account record (identity keys) flipped: typed error, no keys used, reset offered.
    await p2.close();
    const probe2 = await context.newPage();
    await probe2.goto(`${demo.url}/api/config`);
    await tamper(probe2, { flip: 'account' });
    await probe2.close();
    const { page: p3, errors: e3 } = await openWidget(context, `${demo.url}/`);
    s = await widgetState(p3);
    assert.equal(s.phase, 'error');
    assert.equal(s.errorCode, 'STORAGE_INTEGRITY');
    assert.equal(s.errorRecord, 'account');
    assert.equal(s.deviceId, undefined, 'no identity was loaded from the corrupted record');
    const banner = (await p3.textContent('#banner')) ?? '';
    assert.match(banner, /STORAGE_INTEGRITY \(record "account"\)/);
    assert.equal(await p3.isDisabled('#input'), true);
    await p3.locator('#widget').screenshot({ path: `${screenshots}tampered-identity.png` });

    // Re-establishment: an explicit reset gives a new identity that can chat again.
    await p3.click('#banner button');
    await p3.waitForFunction(() => document.body.dataset.phase === 'ready', undefined, { timeout: 30_000 });
    s = await widgetState(p3);
    assert.notEqual(s.deviceId, undefined);
    assert.match((await ask(p3, SCRIPT.order)).join(' '), /Order 1042 is shipped/);

    assert.deepEqual([...errors, ...e2, ...e3], [], 'no page error, no console error');
    await context.close();
  });

  test('ST5: two tabs never fork the session; the second waits, then takes over', async () => {
    const context = await newWidgetContext(browser);
    const a = await openWidget(context, `${demo.url}/`);
    await ask(a.page, SCRIPT.order);
    const bundles = demo.store.history().filter((e) => e.kind === 'bundle').length;

    const b = await openWidget(context, `${demo.url}/`);
    const waiting = await widgetState(b.page);
    assert.equal(waiting.phase, 'waiting-for-tab');
    assert.match((await b.page.textContent('#banner')) ?? '', /open in another tab/);
    assert.equal(await b.page.isDisabled('#input'), true);
    await b.page.locator('#widget').screenshot({ path: `${screenshots}second-tab.png` });

    // Tab A keeps the conversation going while B waits.
    for (const q of ['Where is order 1043?', 'Where is order 1044?', 'Where is order 1045?']) await ask(a.page, q);
    const stateA = await widgetState(a.page);
    await a.page.close();

    await b.page.waitForFunction(() => document.body.dataset.phase === 'ready', undefined, { timeout: 15_000 });
    const stateB = await widgetState(b.page);
    assert.equal(stateB.deviceId, stateA.deviceId, 'same device');
    const lines = await allMessages(b.page);
    assert.ok(lines.some((l) => l.includes('Order 1045 is cancelled')), 'B shows what A received');
    for (const q of ['Opening hours?', 'Where is order 1042?']) assert.ok((await ask(b.page, q)).length >= 1);

    // No fork: B continued A's session (no new bundle, so no second X3DH), every message decrypted.
    assert.equal(demo.store.history().filter((e) => e.kind === 'bundle').length, bundles);
    assert.equal((await widgetState(b.page)).errorCode, undefined);
    assert.equal(demo.bot.stats.handlerFailures, 0);
    assert.equal(demo.bot.stats.invalidMessages, 0);
    assert.deepEqual([...a.errors, ...b.errors], []);
    await context.close();
  });

  test('a page with a wrong pin refuses to send: typed error, the relay stores nothing from it', async () => {
    // The same bundle, served with one pin replaced (as if built with it): a measurement the bot
    // does not run, or another organisation's key. /api/config and the relay are unchanged.
    const wrongMeasurement = (parseInt(demo.measurement[0]!, 16) ^ 1).toString(16) + demo.measurement.slice(1);
    const cases = [
      { pin: demo.measurement, wrong: wrongMeasurement, code: 'ATTESTATION_INVALID', shot: 'untrusted-measurement.png' },
      { pin: demo.orgKey, wrong: toHex(generateOrgKey().publicKey), code: 'UNTRUSTED_IDENTITY', shot: 'untrusted-org.png' },
    ];
    for (const c of cases) {
      const context = await newWidgetContext(browser);
      let replaced = 0;
      await context.route(/\.js$/, async (route) => {
        const r = await route.fetch();
        const body = await r.text();
        replaced += body.split(c.pin).length - 1;
        await route.fulfill({ response: r, body: body.replaceAll(c.pin, c.wrong) });
      });
      const { page, errors } = await openWidget(context, `${demo.url}/`);
      assert.ok(replaced > 0, 'the pin is compiled into the bundle');
      const s = await widgetState(page);
      assert.equal(s.phase, 'ready');
      if (c.pin === demo.measurement) assert.equal(await page.textContent('#pinned-measurement'), c.wrong);
      const bundles = demo.store.history().filter((e) => e.kind === 'bundle' && e.to === demo.bot.deviceId).length;

      await page.fill('#input', SCRIPT.order);
      await page.press('#input', 'Enter');
      await page.waitForSelector('#messages li.msg.me[data-failed]', { timeout: 15_000 });
      await new Promise((r) => setTimeout(r, 500)); // anything (wrongly) queued would reach the relay by now

      const after = await widgetState(page);
      assert.equal(after.errorCode, c.code, c.code);
      assert.equal(after.verified, false);
      assert.equal(after.sent, 0);
      assert.equal(await page.textContent('#badge'), 'unverified');
      assert.match((await page.textContent('#banner')) ?? '', new RegExp(`failed verification \\(${c.code}: .*\\)\\. Nothing was sent`));
      assert.match((await page.textContent('#messages li.msg.me[data-failed]')) ?? '', new RegExp(`not sent \\(${c.code}\\)`));
      assert.match((await page.textContent('#measurement')) ?? '', new RegExp(`not verified: ${c.code}`));
      // The SDK refused the bot from the statements it publishes (certificate, attestation) when
      // the conversation was started: before fetching a bundle, so before any key agreement.
      assert.equal(demo.store.history().filter((e) => e.kind === 'bundle' && e.to === demo.bot.deviceId).length, bundles);
      // The relay stored no envelope from this customer, and its panel shows none.
      assert.equal(demo.store.history().filter((e) => e.kind === 'stored' && e.from === s.deviceId).length, 0);
      assert.equal(await page.locator(`#relay-rows tr.stored span[data-device="${s.deviceId}"]`).count(), 0);
      await page.locator(`#relay-rows tr.prekeys span[data-device="${s.deviceId}"]`).first().waitFor(); // the panel does show this customer (its prekeys)
      await page.click('#trust summary'); // security details: pinned vs. (not) verified measurement
      await page.locator('#widget').screenshot({ path: `${screenshots}${c.shot}` });
      assert.deepEqual(errors, []);
      await context.close();
    }
  });

  test('every spelling of a page path gets its CSP (THREATS: issue 10, finding 15)', async () => {
    for (const [path, csp] of [
      ['/', CSP_SODIUM],
      ['/index.html', CSP_SODIUM],
      ['/%2Findex.html', CSP_SODIUM],
      ['//index.html', CSP_SODIUM],
      ['/./index.html', CSP_SODIUM],
      ['/%2e/index.html', CSP_SODIUM],
      ['/csp-noble.html', CSP_NOBLE],
      ['/%2Fcsp-noble.html', CSP_NOBLE],
    ] as const) {
      const res = await fetch(`${demo.url}${path}`);
      assert.equal(res.status, 200, path);
      assert.equal(res.headers.get('content-security-policy'), csp, path);
      await res.arrayBuffer();
    }
  });

  test('pure-JS backend page under a CSP without wasm-unsafe-eval', async () => {
    const context = await newWidgetContext(browser);
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
    const scripts: string[] = [];
    page.on('response', (r) => {
      if (r.url().endsWith('.js')) void r.text().then((t) => scripts.push(t), () => undefined);
    });
    const res = await page.goto(`${demo.url}/csp-noble.html`);
    const csp = res?.headers()['content-security-policy'] ?? '';
    assert.equal(csp, CSP_NOBLE);
    assert.ok(!csp.includes('wasm-unsafe-eval') && !csp.includes('unsafe-eval') && !csp.includes('unsafe-inline'));
    const s = await waitSettled(page);
    assert.equal(s.phase, 'ready');
    assert.equal(s.backend, 'noble');
    assert.match((await ask(page, SCRIPT.order)).join(' '), /Order 1042 is shipped/);
    assert.equal((await widgetState(page)).verified, true);

    // The policy really forbids WebAssembly here, and the page ships none.
    const wasm = await page.evaluate(async () => {
      try {
        await WebAssembly.compile(new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]));
        return 'compiled';
      } catch (e) {
        return (e as Error).name;
      }
    });
    assert.equal(wasm, 'CompileError');
    assert.ok(scripts.length > 0);
    for (const js of scripts) assert.ok(!/WebAssembly\.(instantiate|compile)/.test(js), 'no WebAssembly loader in the pure-JS bundle');
    assert.deepEqual(errors, []);
    await page.screenshot({ path: `${screenshots}csp-noble.png`, clip: { x: 0, y: 0, width: 412, height: 652 } });
    await context.close();

    // Control: the libsodium page under the same policy cannot start its WASM backend, and says so.
    const control = await newWidgetContext(browser);
    await control.route(`${demo.url}/`, async (route) => {
      const r = await route.fetch();
      await route.fulfill({ response: r, headers: { ...r.headers(), 'content-security-policy': CSP_NOBLE } });
    });
    const p = await control.newPage();
    await p.goto(`${demo.url}/`);
    const c = await waitSettled(p);
    assert.equal(c.phase, 'error');
    assert.match((await p.textContent('#banner')) ?? '', /Crypto backend failed to start/);
    await control.close();
  });
});
