/** docs/threats.md R5 (flood), C20b (OPK draining; sybils: prekey-drain.test.ts), R6 (oversize), R12 (connection limits). */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { call, disconnected, login, msgId, newDevice, open, setupCrypto, startRelay, upload, until } from './helpers.js';

let relay: Awaited<ReturnType<typeof startRelay>>;
before(async () => {
  await setupCrypto();
  relay = await startRelay();
});
after(() => relay.close());

test('R5: a client at 10× its rate gets RATE_LIMITED for the excess; a well-behaved client loses nothing', async () => {
  const flooder = await login(relay, newDevice());
  const good = await login(relay, newDevice());
  const sink = newDevice();
  const { eventsPerSecond, eventBurst } = relay.limits;
  const seconds = 2;
  const floodCount = eventsPerSecond * 10 * seconds; // 10× the rate for 2 s
  const started = Date.now();
  const floodResults: Promise<any>[] = [];
  const goodIds: string[] = [];
  const goodResults: Promise<any>[] = [];
  for (let tick = 0; tick < seconds * 10; tick++) {
    for (let i = 0; i < floodCount / (seconds * 10); i++) {
      floodResults.push(call(flooder.socket, 'send', { to: sink.deviceId, id: msgId(), envelope: new Uint8Array(50) }));
    }
    // The good client stays under its rate: 1 message per 100 ms = 10/s < 20/s.
    const id = msgId();
    goodIds.push(id);
    goodResults.push(call(good.socket, 'send', { to: sink.deviceId, id, envelope: new Uint8Array(50) }));
    await new Promise((r) => setTimeout(r, 100));
  }
  const flood = await Promise.all(floodResults);
  const elapsed = (Date.now() - started) / 1000;
  const accepted = flood.filter((r) => r.ok).length;
  const limited = flood.filter((r) => !r.ok && r.error.code === 'RATE_LIMITED').length;
  assert.equal(accepted + limited, floodCount, 'every excess send is answered RATE_LIMITED, nothing else');
  assert.ok(accepted <= eventBurst + eventsPerSecond * (elapsed + 0.5), `accepted ${accepted} within the bucket`);
  assert.ok(limited >= floodCount - eventBurst - eventsPerSecond * (elapsed + 0.5));
  assert.ok(flooder.socket.connected, 'rate limiting alone does not disconnect');
  const goodAcks = await Promise.all(goodResults);
  assert.ok(goodAcks.every((r) => r.ok), 'the well-behaved client is never limited');
  const stored = await relay.store.listPending(sink.deviceId, 0, 10_000);
  const storedIds = new Set(stored.map((m) => m.id));
  assert.ok(goodIds.every((id) => storedIds.has(id)), 'every good message stored');
  assert.equal(stored.length, accepted + goodIds.length);
  flooder.socket.disconnect();
  good.socket.disconnect();
});

test('C20b: bundle fetches beyond 10/min per requester are refused and no OPK is handed out twice under concurrency', async () => {
  // The per-address and per-target budgets (prekey-drain.test.ts) are out of the way here.
  const relay = await startRelay({ limits: { bundleFetchesPerMinutePerAddress: 1000, opksPerTargetPerMinute: 1000 } });
  const bob = newDevice();
  const b = await login(relay, bob);
  assert.equal((await call(b.socket, 'uploadPrekeys', upload(bob, Array.from({ length: 30 }, (_, i) => i + 1)))).oneTimePrekeys, 30);
  const lows: number[] = [];
  b.socket.on('prekeysLow', (e) => lows.push(e.remaining));
  const drainer = await login(relay, newDevice());
  const burst = await Promise.all(Array.from({ length: 25 }, () => call(drainer.socket, 'fetchBundle', { deviceId: bob.deviceId })));
  assert.equal(burst.filter((r) => r.ok).length, relay.limits.bundleFetchesPerMinute);
  assert.ok(burst.filter((r) => !r.ok).every((r) => r.error.code === 'RATE_LIMITED'));
  // Four more requesters at once, each within its own budget: 10 + 40 fetches for 30 OPKs.
  const others = await Promise.all(Array.from({ length: 4 }, () => login(relay, newDevice())));
  const more = await Promise.all(others.flatMap((o) => Array.from({ length: 10 }, () => call(o.socket, 'fetchBundle', { deviceId: bob.deviceId }))));
  const all = [...burst, ...more].filter((r) => r.ok);
  const opkIds = all.map((r) => r.bundle.oneTimePrekey?.id).filter((x) => x !== undefined);
  assert.equal(opkIds.length, 30, 'all 30 OPKs handed out');
  assert.equal(new Set(opkIds).size, 30, 'never the same OPK twice');
  assert.equal(all.filter((r) => r.bundle.oneTimePrekey === undefined).length, 20, 'SPK-only fallback');
  assert.ok(all.every((r) => r.bundle.signedPrekey.id === 1));
  await until(() => lows.includes(0));
  assert.ok(lows.every((n) => n < relay.limits.prekeyLowThreshold));
  assert.ok(burst.filter((r) => !r.ok).every((r) => r.error.details.scope === 'requester'));
  for (const s of [b, drainer, ...others]) s.socket.disconnect();
  await relay.close();
});

test('uploadPrekeys: a bad SPK signature is INVALID_SIGNATURE; over the OPK cap is STORAGE_QUOTA', async () => {
  const d = newDevice();
  const s = await login(relay, d);
  const up = upload(d, [1]);
  const bad = { ...up, signedPrekey: { ...up.signedPrekey, id: 2 } };
  assert.equal((await call(s.socket, 'uploadPrekeys', bad)).error.code, 'INVALID_SIGNATURE');
  for (let i = 0; i < 5; i++) {
    const r = await call(s.socket, 'uploadPrekeys', upload(d, Array.from({ length: 100 }, (_, j) => i * 100 + j + 1)));
    assert.equal(r.ok, true);
  }
  const over = await call(s.socket, 'uploadPrekeys', upload(d, [9999]));
  assert.equal(over.error.code, 'STORAGE_QUOTA');
  s.socket.disconnect();
});

test('R6: an envelope over the app limit gets PAYLOAD_TOO_LARGE; frames over maxHttpBufferSize close the socket; the relay lives on', async () => {
  const d = newDevice();
  const max = relay.limits.maxEnvelopeBytes;
  const s = await login(relay, d);
  const to = newDevice().deviceId;
  assert.equal((await call(s.socket, 'send', { to, id: msgId(), envelope: new Uint8Array(max - 1) })).ok, true);
  assert.equal((await call(s.socket, 'send', { to, id: msgId(), envelope: new Uint8Array(max) })).ok, true);
  const over = await call(s.socket, 'send', { to, id: msgId(), envelope: new Uint8Array(max + 1) });
  assert.equal(over.error.code, 'PAYLOAD_TOO_LARGE');
  s.socket.emit('send', { to, id: msgId(), envelope: new Uint8Array(10 * 1024 * 1024) }, () => undefined);
  assert.ok(await disconnected(s.socket, 5000), 'websocket: engine.io closes a 10 MB frame');
  for (const transport of ['polling']) {
    const p = await login(relay, d, { transports: [transport] });
    p.socket.emit('send', { to, id: msgId(), envelope: new Uint8Array(1024 * 1024) }, () => undefined);
    assert.ok(await disconnected(p.socket, 5000), `${transport}: over-limit frame closes the socket`);
  }
  const after = await login(relay, d);
  assert.equal((await call(after.socket, 'send', { to, id: msgId(), envelope: new Uint8Array(10) })).ok, true);
  after.socket.disconnect();
});

test('R12/R5: concurrent connections and connects per second are capped per address', async () => {
  const r = await startRelay({ limits: { maxConnectionsPerAddress: 3, connectBurst: 100, connectsPerSecondPerAddress: 100 } });
  try {
    const opened = await Promise.all([open(r.url), open(r.url), open(r.url)]);
    await assert.rejects(open(r.url), (e: Error & { data?: { code?: string } }) => e.data?.code === 'RATE_LIMITED');
    opened[0]!.socket.disconnect();
    await until(() => true);
    await new Promise((res) => setTimeout(res, 100));
    const again = await open(r.url);
    again.socket.disconnect();
    for (const o of opened) o.socket.disconnect();
  } finally {
    await r.close();
  }
  const r2 = await startRelay({ limits: { connectBurst: 5, connectsPerSecondPerAddress: 5 } });
  try {
    const results = await Promise.allSettled(Array.from({ length: 10 }, () => open(r2.url)));
    const ok = results.filter((x) => x.status === 'fulfilled');
    assert.ok(ok.length >= 5 && ok.length <= 6, `accepted ${ok.length}`);
    for (const x of ok) (x as PromiseFulfilledResult<Awaited<ReturnType<typeof open>>>).value.socket.disconnect();
  } finally {
    await r2.close();
  }
});
