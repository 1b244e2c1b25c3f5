/**
 * The agent console in Chromium with the DevTools virtual WebAuthn authenticator, against a real
 * relay (with the org key) and a real issuer (`examples/console/serve.ts`):
 *
 * - an admin enrols from the invitation link with a password and a passkey, signs in with the
 *   passkey and sees name, roles and certificate expiry; the device connects to the relay with
 *   its certificate and messages a customer, whose Node client receives it from certified staff
 *   (a customer-role sender would be FORBIDDEN by a relay with an org key);
 * - the admin page creates an agent; the agent enrols with an authenticator app (TOTP) and signs
 *   in with a code: role `agent`, no admin page;
 * - the same passkey used from another origin (a look-alike site forwarding to the issuer) is
 *   refused, and a captured `/v1/signin/finish` request replayed is refused;
 * - sign-in time (submit → certificate shown), median of 5, is printed.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ParleyClient, MemoryStore } from '@parley/client';
import { startConsole, MAX_LIFETIME_MS, type ConsoleDemo } from '../../examples/console/serve.js';
import { totpCodeFor } from '../../examples/console/lib/issuer.js';
import { launchChromium, newContext, skipWithoutChromium, tempDir, watchPage, type Browser } from './helpers.js';
import { addVirtualAuthenticator, consoleState, enrolWithPasskey, settled, signIn } from './console-driver.js';

const ADMIN_PASSWORD = 'correct horse battery staple';
const AGENT_PASSWORD = 'agent password 4 tests';

describe('agent console in Chromium', { skip: skipWithoutChromium }, () => {
  let demo: ConsoleDemo;
  let browser: Browser;
  let cleanup = (): void => undefined;

  before(async () => {
    const dist = tempDir('parley-console-dist-');
    cleanup = dist.cleanup;
    // Everyone reaches the issuer through the console server (one address): room for the test's calls.
    [demo, browser] = await Promise.all([startConsole({ distDir: dist.dir, issuer: { ipRateLimit: { max: 200, windowMs: 60_000 } } }), launchChromium()]);
  });
  /** The reason of the issuer's newest sign-in failure in its audit log. */
  const lastFailure = (): string | undefined => demo.issuer.running.service.audit.list().filter((e) => e.type === 'signin.failure').at(-1)?.reason;

  after(async () => {
    await browser?.close();
    await demo?.close();
    cleanup();
  });

  test('enrol with a passkey, sign in, who am I, message a customer as certified staff; replay and wrong origin refused', async () => {
    const context = await newContext(browser);
    const page = await context.newPage();
    const { errors } = watchPage(page);
    const { cdp, authenticatorId } = await addVirtualAuthenticator(context, page);

    // Enrol from the invitation: password, then a passkey on this "device".
    const enrolled = await enrolWithPasskey(page, demo.adminInvitationLink, ADMIN_PASSWORD);
    assert.equal(enrolled.phase, 'done', JSON.stringify(enrolled.error));
    assert.equal(await page.textContent('#enrol-username'), 'admin');
    const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
    assert.equal(credentials.length, 1, 'one passkey registered');
    assert.equal(credentials[0]!.rpId, 'localhost');
    // The invitation is spent.
    await page.goto('about:blank');
    await page.goto(demo.adminInvitationLink);
    const spent = await settled(page);
    assert.equal(spent.phase, 'error');
    assert.equal(spent.error?.code, 'UNAUTHENTICATED');

    // Sign in with the passkey; keep the finish request to replay it later.
    let finishBody: string | undefined;
    page.on('request', (r) => {
      if (r.url().endsWith('/v1/signin/finish')) finishBody = r.postData() ?? undefined;
    });
    const before = Date.now();
    const s = await signIn(page, demo.url, 'admin', ADMIN_PASSWORD);
    assert.equal(s.phase, 'done', JSON.stringify(s.error));
    assert.equal(s.page, 'me');
    assert.equal(await page.textContent('#me-name'), 'Console Admin');
    assert.equal(await page.textContent('#me-roles'), 'admin, agent');
    const expiresAt = Date.parse((await page.getAttribute('#me-expires', 'datetime'))!);
    assert.ok(expiresAt > before && expiresAt <= Date.now() + MAX_LIFETIME_MS, `certificate expiry ${new Date(expiresAt).toISOString()} within the 12 h policy`);
    assert.equal(await page.isVisible('#nav-admin'), true, 'an admin sees the admin page link');
    await page.waitForFunction(() => (globalThis as unknown as { parleyConsole: { relay?: string } }).parleyConsole.relay === 'connected');
    assert.equal(await page.textContent('#me-relay'), 'connected (certificate accepted)');
    const agentDevice = (await consoleState(page)).deviceId!;
    assert.match(agentDevice, /\S{10,}/);
    assert.ok(finishBody, 'the finish request was seen');

    // Act as an agent on the relay: message a customer. The relay (org key configured) refuses a
    // customer → customer send, so delivery shows it took the certificate's roles; the
    // customer's client checks the staff credential the agent's device publishes.
    const customer = await ParleyClient.create({
      relayUrl: demo.relay.url,
      store: new MemoryStore(),
      trust: { orgKey: demo.orgKey },
      transport: { origin: demo.url },
    });
    try {
      await customer.connect();
      const got = new Promise<{ from: string; text?: string }>((resolve) => customer.on('message', (m) => resolve(m)));
      await page.fill('#peer', customer.deviceId);
      await page.fill('#text', 'Hello, this is Console Admin from support.');
      await page.click('#send-form button[type="submit"]');
      const m = await got;
      assert.equal(m.from, agentDevice);
      assert.equal(m.text, 'Hello, this is Console Admin from support.');
      const staff = customer.peerStaff(agentDevice);
      assert.equal(staff?.displayName, 'Console Admin', 'the customer verified the agent as certified staff');
      assert.deepEqual([...(staff?.roles ?? [])].sort(), ['admin', 'agent']);
    } finally {
      await customer.close();
    }

    // Replay: the captured finish request, posted again, is refused (its challenge is spent).
    const replay = await fetch(`${demo.url}/v1/signin/finish`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: finishBody! });
    assert.equal(replay.status, 401);
    assert.equal(((await replay.json()) as { code: string }).code, 'UNAUTHENTICATED');
    assert.equal(lastFailure(), 'badChallenge');

    // Sign-in time: submit → certificate shown, median of 5 (the first above and 4 more).
    const times = [s.signInMs!];
    for (let i = 0; i < 4; i++) {
      const again = await signIn(page, demo.url, 'admin', ADMIN_PASSWORD);
      assert.equal(again.phase, 'done', JSON.stringify(again.error));
      times.push(again.signInMs!);
    }
    times.sort((a, b) => a - b);
    console.log(`# console sign-in (password + passkey + device proof → certificate shown): median ${times[2]} ms of 5 [${times.join(', ')}]`);

    // The passkey from a look-alike origin (same RP ID `localhost`, another port) forwarding
    // to the real issuer: the assertion names the wrong origin and is refused.
    const mirror = await demo.startMirror();
    const phishing = `http://localhost:${mirror.port}`;
    const refused = await signIn(page, phishing, 'admin', ADMIN_PASSWORD);
    assert.equal(refused.phase, 'error');
    assert.equal(refused.error?.code, 'UNAUTHENTICATED');
    assert.equal(lastFailure(), 'badPasskey', 'the passkey assertion (signed for the other origin) is what the issuer refused');
    assert.match((await page.textContent('#alert')) ?? '', /not accepted/);
    assert.equal(refused.staff, undefined, 'no certificate shown on the look-alike site');

    // Sign out forgets the credential and the device.
    await page.goto(`${demo.url}/#/me`);
    await page.click('#sign-out');
    await page.waitForFunction(() => location.hash === '#/signin');
    const dbs = await page.evaluate(async () => (await indexedDB.databases()).map((d) => d.name));
    assert.ok(!dbs.includes('parley-agent-console'), 'device database deleted');
    await page.goto(`${demo.url}/#/me`);
    await page.locator('#signed-out').waitFor();

    assert.deepEqual(errors.filter((e) => !/401|Failed to load resource/.test(e)), []);
    await context.close();
  });

  test('the admin page invites an agent, who enrols with an authenticator app and signs in with a code', async () => {
    const context = await newContext(browser);
    const page = await context.newPage();
    await addVirtualAuthenticator(context, page);
    // The admin from the first test has a passkey in another context: enrol a second admin here.
    const invitation = await demo.issuer.addStaff({ username: 'admin2', displayName: 'Second Admin', roles: ['admin'] });
    assert.equal((await enrolWithPasskey(page, `${demo.url}/#/enrol/${encodeURIComponent(invitation)}`, ADMIN_PASSWORD)).phase, 'done');
    assert.equal((await signIn(page, demo.url, 'admin2', ADMIN_PASSWORD)).phase, 'done');

    await page.click('#nav-admin');
    await page.locator('#add-staff').waitFor();
    await page.fill('#new-username', 'agent.alice');
    await page.fill('#new-display-name', 'Alice Agent');
    await page.evaluate(() => (document.body.dataset.phase = 'idle'));
    await page.click('#add-staff button[type="submit"]');
    const created = await settled(page);
    assert.equal(created.phase, 'done', JSON.stringify(created.error));
    const link = await page.getAttribute('#invitation-link', 'href');
    assert.ok(link?.startsWith(`${demo.url}/#/enrol/`));
    assert.match((await page.textContent('#staff-rows')) ?? '', /agent\.alice.*Alice Agent.*agent/);

    // Alice, on her own browser, without a passkey: the authenticator app.
    const aliceContext = await newContext(browser);
    const alice = await aliceContext.newPage();
    await alice.goto(link!);
    await alice.locator('#new-password').waitFor();
    await alice.fill('#new-password', AGENT_PASSWORD);
    await alice.fill('#confirm-password', AGENT_PASSWORD);
    await alice.click('#enrol-password button[type="submit"]');
    await alice.locator('#use-totp').waitFor({ state: 'visible' });
    await alice.click('#use-totp');
    await alice.locator('#enrol-code').waitFor();
    const secret = (await alice.textContent('#totp-secret'))!;
    assert.match((await alice.getAttribute('#otpauth-url', 'href')) ?? '', /^otpauth:\/\/totp\//);
    await alice.fill('#enrol-code', totpCodeFor(secret, Date.now()));
    await alice.click('#enrol-totp button[type="submit"]');
    assert.equal((await settled(alice)).phase, 'done');

    // A code of the next period (the one just used is spent) signs her in.
    const s = await signIn(alice, demo.url, 'agent.alice', AGENT_PASSWORD, totpCodeFor(secret, Date.now() + 30_000));
    assert.equal(s.phase, 'done', JSON.stringify(s.error));
    assert.equal(await alice.textContent('#me-roles'), 'agent');
    assert.equal(await alice.isVisible('#nav-admin'), false);
    await alice.goto(`${demo.url}/#/admin`);
    await alice.locator('#not-admin').waitFor();
    await aliceContext.close();
    await context.close();
  });
});
