/** docs/threats.md R1, R2, R3, C17b and bot API keys: who may do what, proven over real sockets. */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { io } from 'socket.io-client';
import { createApiKey } from '../src/index.js';
import { answer, call, disconnected, login, msgId, newDevice, open, setupCrypto, startRelay, upload, type ClientSocket } from './helpers.js';

let relay: Awaited<ReturnType<typeof startRelay>>;
before(async () => {
  await setupCrypto();
  relay = await startRelay();
});
after(() => relay.close());

const PRE_AUTH_EVENTS: [string, unknown][] = [
  ['send', { to: 'a'.repeat(32), id: 'x', envelope: new Uint8Array(3) }],
  ['fetchQueue', {}],
  ['uploadPrekeys', { identity: {}, signedPrekey: {}, oneTimePrekeys: [] }],
  ['fetchBundle', { deviceId: 'a'.repeat(32) }],
  ['ack', { seqs: [1] }],
];

test('R1: every event before auth gets UNAUTHENTICATED, runs no handler, and repeated tries drop the socket', async () => {
  const { socket } = await open(relay.url);
  const depth = await relay.store.queueDepth();
  for (const [event, payload] of PRE_AUTH_EVENTS) {
    const r = await call(socket, event, payload);
    assert.equal(r.ok, false);
    assert.equal(r.error.code, 'UNAUTHENTICATED', event);
  }
  assert.equal(await relay.store.queueDepth(), depth, 'no send was stored');
  assert.ok(await disconnected(socket), 'dropped after maxViolations (5)');
});

test('R1: an unauthenticated socket is dropped at the auth timeout', async () => {
  const r = await startRelay({ limits: { authTimeoutMs: 300 } });
  try {
    const { socket, hello } = await open(r.url);
    assert.equal(hello.authTimeoutMs, 300);
    const reasons: string[] = [];
    socket.on('relayError', (e) => reasons.push(e.code));
    assert.ok(await disconnected(socket, 3000));
    assert.deepEqual(reasons, ['UNAUTHENTICATED']);
  } finally {
    await r.close();
  }
});

async function refused(build: (hello: Parameters<typeof answer>[1]) => unknown): Promise<void> {
  const { socket, hello } = await open(relay.url);
  const r = await call(socket, 'auth', build(hello));
  assert.equal(r.ok, false);
  assert.equal(r.error.code, 'UNAUTHENTICATED');
  assert.ok(await disconnected(socket), 'a failed auth ends the connection');
}

test('R2: a replayed answer on a new connection is refused', async () => {
  const alice = newDevice();
  const first = await open(relay.url);
  const good = answer(alice, first.hello, relay.origin);
  assert.equal((await call(first.socket, 'auth', good)).ok, true);
  first.socket.disconnect();
  await refused(() => good);
});

test('R2: the same nonce cannot be answered twice on one connection', async () => {
  const alice = newDevice();
  const { socket, hello } = await open(relay.url);
  const bad = answer(alice, hello, relay.origin, { timestamp: Date.now() - 60_000 });
  const good = answer(alice, hello, relay.origin);
  const p1 = call(socket, 'auth', bad);
  const p2 = call(socket, 'auth', good).catch(() => ({ ok: false, error: { code: 'UNAUTHENTICATED' } }));
  assert.equal((await p1).ok, false);
  assert.equal((await p2).ok, false);
});

test('R2: stale and future timestamps (beyond ±30 s) are refused', async () => {
  const d = newDevice();
  await refused((h) => answer(d, h, relay.origin, { timestamp: Date.now() - 31_000 }));
  await refused((h) => answer(d, h, relay.origin, { timestamp: Date.now() + 31_000 }));
});

test('R2: an answer signed for another origin is refused', async () => {
  await refused((h) => answer(newDevice(), h, relay.origin, { origin: 'https://other-relay.example' }));
});

test('R2/C17b: presenting another device\'s identity with a signature by a different key is refused', async () => {
  const bob = newDevice();
  const mallory = newDevice();
  await refused((h) => answer(bob, h, relay.origin, { signer: mallory }));
});

test('R2: a nonce other than the one issued to this connection is refused', async () => {
  const d = newDevice();
  await refused((h) => answer(d, h, relay.origin, { serverNonce: new Uint8Array(32).fill(7) }));
});

test('R2: a malformed answer and a broken identity binding are refused', async () => {
  const d = newDevice();
  await refused(() => ({ nonsense: true }));
  await refused((h) => {
    const a = answer(d, h, relay.origin);
    return { ...a, identity: { ...a.identity, binding: new Uint8Array(64) } };
  });
});

test('R2: the sender is the socket\'s device; a payload `from` is refused; acting for others is FORBIDDEN or a no-op', async () => {
  const alice = newDevice();
  const bob = newDevice();
  const mallory = newDevice();
  const m = await login(relay, mallory);
  const withFrom = await call(m.socket, 'send', { to: bob.deviceId, from: alice.deviceId, id: msgId(), envelope: new Uint8Array(4) });
  assert.equal(withFrom.error.code, 'MALFORMED_MESSAGE');
  assert.equal((await call(m.socket, 'send', { to: bob.deviceId, id: msgId(), envelope: new Uint8Array(4) })).ok, true);
  const forged = await call(m.socket, 'uploadPrekeys', upload(bob, [1, 2]));
  assert.equal(forged.error.code, 'FORBIDDEN');
  // Mallory cannot delete Bob's queue by acking his seqs.
  const pending = await relay.store.listPending(bob.deviceId, 0, 10);
  assert.equal((await call(m.socket, 'ack', { seqs: pending.map((p) => p.seq) })).deleted, 0);
  const b = await login(relay, bob);
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(b.inbox.length, 1);
  assert.equal(b.inbox[0]!.from, mallory.deviceId);
  m.socket.disconnect();
  b.socket.disconnect();
});

test('R3: no connection-state recovery: a reconnect claiming a session id must authenticate again', async () => {
  const socket: ClientSocket = io(relay.url, {
    transports: ['websocket'], reconnection: false, forceNew: true, autoConnect: false,
    auth: { pid: 'stolen-private-session-id', offset: 'x' },
  });
  const hello = new Promise((r) => socket.once('hello', r));
  socket.connect();
  await hello;
  assert.notEqual(socket.recovered, true);
  const r = await call(socket, 'fetchQueue', {});
  assert.equal(r.error.code, 'UNAUTHENTICATED');
  socket.disconnect();
});

test('bots: a valid API key gives role bot; a revoked or unknown key is refused; the store holds only a hash', async () => {
  const bot = newDevice();
  const { id, key } = await createApiKey(relay.store, 'support bot');
  const ok = await login(relay, bot, { apiKey: key });
  assert.equal(ok.auth.role, 'bot');
  ok.socket.disconnect();
  const plain = await login(relay, newDevice());
  assert.equal(plain.auth.role, 'device');
  plain.socket.disconnect();
  const records = await relay.store.listApiKeys();
  assert.ok(records.every((r) => !JSON.stringify(r).includes(key.slice(4))));
  await refused((h) => answer(bot, h, relay.origin, { apiKey: `${key}x` }));
  assert.equal(await relay.store.revokeApiKey(id, Date.now()), true);
  await refused((h) => answer(bot, h, relay.origin, { apiKey: key }));
});
