/**
 * Self-healing sessions between the bot and its customers (issue 9 "Recovery", docs/threats.md
 * C3), over a real relay with the real enclave: one side's session state is lost, rolled back,
 * or the two disagree; the side that cannot decrypt asks for a session reset, the other resends
 * what was not receipted, and every message reaches the handler (or the customer) exactly once.
 * The host only moves the reset request, the customer's public bundle and the resent ciphertext.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ParleyError, isParleyError } from '@parley/protocol';
import { parseEnclaveMessage, parseParams } from '../src/rpc/messages.js';
import { Customer, copyStore, wipeSessions } from './customer.js';
import { startBot, startRelay } from './harness.js';
import { binariesIn, countBytes, openSupervisor, setupCrypto, tempDir, waitFor } from './helpers.js';

await setupCrypto();

/** Echoes; a second run for one message also replies `again:…` (see the fixture). */
const COUNTING_HANDLER = new URL('./fixtures/counting-handler.ts', import.meta.url);
const FAKE_ENCLAVE = new URL('./fixtures/fake-enclave-healing.mjs', import.meta.url);

const texts = (c: Customer) => c.replies.map((r) => r.text);
/** In every customer message of the first tests: it must never cross the enclave boundary. */
const CANARY = 'canary-5d0e7a1f9b3c4862';
const say = (k: number) => `${CANARY}/m${k}`;
const echo = (k: number) => `echo:${say(k)}`;
/** Lets stray duplicates arrive before a test checks that nothing came twice. */
const settle = () => new Promise((r) => setTimeout(r, 300));

/** The parsed log lines with this `event`. */
function logEvents(logger: { lines: string[] }, event: string): Record<string, unknown>[] {
  return logger.lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.event === event);
}

for (const scenario of ['lost session state', 'restored old snapshot'] as const) {
  test(`customer side, ${scenario}: it cannot open the bot's reply, asks for a reset, and gets every reply once`, async (t) => {
    const dir = tempDir(t);
    const relay = await startRelay();
    t.after(() => relay.close());
    const crossed: unknown[] = [];
    const { bot, logger } = await startBot(relay, dir, { handler: COUNTING_HANDLER, unsafeTestingTap: (_d, m) => crossed.push(m) });
    t.after(() => bot.close());
    const c = await Customer.connect(relay.url);
    t.after(() => c.close());

    await c.send(bot.deviceId, say(1));
    await waitFor(() => c.replies.length === 1, 10_000, 'reply 1');
    const snapshot = scenario === 'restored old snapshot' ? await copyStore(c.store) : undefined;
    // A few more exchanges (DH steps) the snapshot does not know.
    for (const k of [2, 3]) {
      await c.send(bot.deviceId, say(k));
      await waitFor(() => c.replies.length === k, 10_000, `reply ${k}`);
    }
    await waitFor(() => c.delivered.length === 3, 10_000, 'receipts of m1..m3');
    // The device dies with the reply to m4 stored on the relay, unacked.
    c.hold();
    await c.send(bot.deviceId, say(4));
    await waitFor(() => c.held === 1, 10_000, 'reply 4 reaches the dying device');
    c.close();

    const store = snapshot ? await copyStore(snapshot) : await copyStore(c.store, wipeSessions);
    const c2 = await Customer.connect(relay.url, { store });
    t.after(() => c2.close());
    assert.equal(c2.engine.deviceId, c.engine.deviceId);
    // c2 cannot open reply 4 (no session / keys it never had), asks; the bot resends every reply
    // the customer has not receipted in a fresh session.
    await waitFor(() => texts(c2).includes(echo(4)), 15_000, 'reply 4 after healing');
    assert.deepEqual(
      c2.resets.map((r) => [r.initiatedBy, r.peer]),
      [['self', bot.deviceId]],
    );
    assert.equal(c2.resets[0]!.reason, snapshot ? 'AUTH_FAILED' : 'SESSION_NOT_FOUND');
    await waitFor(() => logEvents(logger, 'session.reset').length === 1, 5_000, 'the bot logs the reset');
    assert.deepEqual(logEvents(logger, 'session.reset')[0], {
      level: 'warn',
      event: 'session.reset',
      peer: c.engine.deviceId,
      initiatedBy: 'peer',
      reason: c2.resets[0]!.reason,
      msg: 'a customer asked for a fresh session; replies it has not receipted are resent',
    });
    assert.equal(bot.stats.sessionResets, 1);

    // The conversation goes on, on the fresh session.
    await c2.send(bot.deviceId, say(5));
    await waitFor(() => texts(c2).includes(echo(5)), 10_000, 'reply 5');
    await settle();
    // Each reply once per device. The wiped device kept its dedupe, so replies 1..3 come back
    // as duplicates; the restored snapshot had seen only reply 1.
    assert.deepEqual(texts(c), [echo(1), echo(2), echo(3)]);
    assert.deepEqual(texts(c2), snapshot ? [echo(2), echo(3), echo(4), echo(5)] : [echo(4), echo(5)]);
    assert.ok(c2.duplicates >= (snapshot ? 1 : 3), 'replies the device had seen are recognised');
    assert.deepEqual(c2.givenUp, []);
    assert.equal(bot.stats.handlerFailures, 0);
    // Host only moves ciphertext: no plaintext in its logs or in anything that crossed the boundary.
    assert.doesNotMatch(logger.text(), /echo:|canary/, 'no plaintext in the host logs');
    const canary = new TextEncoder().encode(CANARY);
    assert.ok(crossed.some((m) => (m as { type?: string }).type === 'needBundle'), 'the healing RPC was exercised');
    assert.equal(crossed.flatMap((m) => binariesIn(m)).reduce((n, b) => n + countBytes(b, canary), 0), 0, 'no plaintext crossed the boundary');
    assert.doesNotMatch(JSON.stringify(crossed, (_k, v: unknown) => (v instanceof Uint8Array ? undefined : v)), /canary/);
  });
}

test('bot side, restored customer snapshot re-uses its counters: the bot cannot open the message, asks for a reset, and the handler sees each message once', async (t) => {
  const dir = tempDir(t);
  const relay = await startRelay();
  t.after(() => relay.close());
  const tap: { type?: string; to?: string }[] = [];
  const { bot, logger } = await startBot(relay, dir, {
    handler: COUNTING_HANDLER,
    unsafeTestingTap: (d, m) => d === 'fromEnclave' && tap.push(m as never),
  });
  t.after(() => bot.close());
  const c = await Customer.connect(relay.url);
  t.after(() => c.close());

  const m1 = await c.send(bot.deviceId, 'm1');
  await waitFor(() => c.replies.length === 1 && c.delivered.includes(m1), 10_000, 'reply and receipt 1');
  const snapshot = await copyStore(c.store);
  const m2 = await c.send(bot.deviceId, 'm2');
  await waitFor(() => c.replies.length === 2 && c.delivered.includes(m2), 10_000, 'reply and receipt 2');
  c.close();

  // The customer's device is restored from the snapshot: its next message re-uses the sending
  // chain position m2 already used (a fork, from the bot's side).
  const c2 = await Customer.connect(relay.url, { store: await copyStore(snapshot) });
  t.after(() => c2.close());
  await c2.send(bot.deviceId, 'm3');
  await waitFor(() => texts(c2).includes('echo:m3'), 15_000, 'reply 3 after healing');
  // The bot asked (its request went out like a reply, as ciphertext), the customer resent m3.
  assert.deepEqual(
    c2.resets.map((r) => [r.initiatedBy, r.reason]),
    [['peer', 'SESSION_FORK_DETECTED']],
  );
  const rejected = logEvents(logger, 'deliver.rejected');
  assert.equal(rejected.length, 1);
  assert.equal((rejected[0]!.error as { code: string }).code, 'SESSION_FORK_DETECTED');
  assert.deepEqual(
    logEvents(logger, 'session.reset').map((l) => [l.initiatedBy, l.peer, l.reason]),
    [['self', c.engine.deviceId, 'SESSION_FORK_DETECTED']],
  );
  assert.ok(tap.every((m) => m.type !== 'needBundle'), 'the bot needed no bundle: the customer started the fresh session');

  await c2.send(bot.deviceId, 'm4');
  await waitFor(() => texts(c2).includes('echo:m4'), 10_000, 'reply 4');
  await settle();
  // The handler ran once per message: a second run would have replied `again:…`.
  assert.deepEqual(texts(c), ['echo:m1', 'echo:m2']);
  assert.deepEqual(texts(c2), ['echo:m3', 'echo:m4']);
  assert.equal(c2.duplicates, 0);
  assert.equal(bot.stats.handlerFailures, 0);
  assert.equal(bot.stats.sessionResets, 1);
  assert.doesNotMatch(logger.text(), /echo:|\bm[1-9]\b/, 'no plaintext in the host logs');
});

test('a customer asks for a reset with nothing left to resend: the next reply waits for its bundle and opens a fresh session', async (t) => {
  const dir = tempDir(t);
  const relay = await startRelay();
  t.after(() => relay.close());
  const tap: { type?: string; peer?: string }[] = [];
  const { bot, logger } = await startBot(relay, dir, {
    handler: COUNTING_HANDLER,
    unsafeTestingTap: (d, m) => d === 'fromEnclave' && tap.push(m as never),
  });
  t.after(() => bot.close());
  // Receipts like a client's: the bot has nothing unconfirmed when the reset comes.
  const c = await Customer.connect(relay.url, { receipts: true });
  t.after(() => c.close());

  await c.send(bot.deviceId, 'm1');
  await waitFor(() => c.replies.length === 1, 10_000, 'reply 1');
  // Queued behind the receipt of reply 1, so the relay hands the bot the receipt first.
  assert.equal(await c.requestReset(bot.deviceId, 'AUTH_FAILED'), true);
  // The customer still sends on its old session (the bot keeps it, archived, for messages in
  // flight); the reply cannot: the bot's sessions are archived, so it waits for a bundle.
  await c.send(bot.deviceId, 'm2');
  await waitFor(() => texts(c).includes('echo:m2'), 15_000, 'reply 2 in a fresh session');
  assert.deepEqual(
    tap.filter((m) => m.type === 'needBundle').map((m) => m.peer),
    [c.engine.deviceId],
    'the enclave asked the host for the bundle once',
  );
  await c.send(bot.deviceId, 'm3');
  await waitFor(() => texts(c).includes('echo:m3'), 10_000, 'reply 3');
  await settle();
  assert.deepEqual(texts(c), ['echo:m1', 'echo:m2', 'echo:m3']);
  assert.equal(c.errors, 0);
  assert.equal(c.duplicates, 0);
  assert.equal(bot.stats.handlerFailures, 0);
  assert.deepEqual(
    logEvents(logger, 'session.reset').map((l) => [l.initiatedBy, l.reason]),
    [['peer', 'AUTH_FAILED']],
  );
});

test('the host reports what the enclave reports: a reset, a bundle it needs, replies given up (ids only)', async (t) => {
  const dir = tempDir(t);
  const asked: string[] = [];
  const { sup, logger } = await openSupervisor(dir, { entryUrl: FAKE_ENCLAVE, onNeedBundle: (peer) => asked.push(peer) });
  t.after(() => sup.stop());
  await sup.start();
  await waitFor(() => sup.stats.repliesGivenUp === 2, 5_000, 'given-up replies counted');
  assert.equal(sup.stats.sessionResets, 1);
  assert.deepEqual(asked, ['b'.repeat(32)]);
  const [gaveUp] = logEvents(logger, 'resend.gaveUp');
  assert.deepEqual(gaveUp, {
    level: 'error',
    event: 'resend.gaveUp',
    to: 'b'.repeat(32),
    ids: ['3f2a9c0d1e7b4a5f8c6d2e1f0a9b8c7d', '3f2a9c0d1e7b4a5f8c6d2e1f0a9b8c7e'],
    msg: 'gave up on replies after repeated session resets',
  });
});

test('the resend RPC takes exactly a public bundle: key sizes checked, nothing else carried', () => {
  const peer = 'c'.repeat(32);
  const bundle = {
    identity: { signingKey: new Uint8Array(32), dhKey: new Uint8Array(32), binding: new Uint8Array(64) },
    signedPrekey: { id: 1, createdAt: 0, publicKey: new Uint8Array(32), signature: new Uint8Array(64) },
    oneTimePrekey: { id: 7, publicKey: new Uint8Array(32) },
  };
  const ok = parseParams('resend', { peer, bundle });
  assert.deepEqual(ok.bundle.oneTimePrekey, { id: 7, publicKey: new Uint8Array(32) });
  const { oneTimePrekey: _opk, ...noOpk } = bundle;
  assert.equal(parseParams('resend', { peer, bundle: noOpk }).bundle.oneTimePrekey, undefined);
  const refusedAs = (v: unknown) => assert.throws(() => parseParams('resend', v), (e: unknown) => isParleyError(e, 'MALFORMED_MESSAGE'));
  refusedAs({ peer, bundle: { ...bundle, identity: { ...bundle.identity, dhKey: new Uint8Array(64) } } });
  refusedAs({ peer, bundle: { ...bundle, signedPrekey: { ...bundle.signedPrekey, signature: new Uint8Array(63) } } });
  refusedAs({ peer, bundle: { ...bundle, certificate: new Uint8Array(10) } });
  refusedAs({ peer: 'not a device', bundle });
  refusedAs({ peer, bundle, secret: new Uint8Array(32) });
  // What the enclave may say about healing: device ids, message ids, error codes.
  assert.throws(
    () => parseEnclaveMessage({ type: 'event', name: { type: 'sessionReset', peer, initiatedBy: 'host', reason: 'AUTH_FAILED' } }),
    (e: unknown) => e instanceof ParleyError && e.code === 'MALFORMED_MESSAGE',
  );
  assert.throws(() => parseEnclaveMessage({ type: 'event', name: { type: 'resendGaveUp', peer, ids: ['has space'] } }), (e: unknown) => isParleyError(e, 'MALFORMED_MESSAGE'));
  assert.deepEqual(parseEnclaveMessage({ type: 'needBundle', peer }), { type: 'needBundle', peer });
});

test('an answer the host cannot parse settles its call at once (INTERNAL), not after the call timeout', async (t) => {
  const dir = tempDir(t);
  const { sup, logger } = await openSupervisor(dir, { entryUrl: new URL('./fixtures/fake-enclave-malformed.mjs', import.meta.url), callTimeoutMs: 60_000 });
  t.after(() => sup.stop());
  await sup.start();
  const started = Date.now();
  await assert.rejects(sup.call('prekeys', { generate: 1 }), (e: unknown) => isParleyError(e, 'INTERNAL') && e.details?.['method'] === 'prekeys');
  assert.ok(Date.now() - started < 10_000, 'settled long before the 60 s call timeout');
  assert.equal(sup.stats.invalidMessages, 1);
  assert.equal(logEvents(logger, 'enclave.invalidMessage').length, 1);
});
