/** docs/threats.md R7: malformed payloads and raw socket.io / engine.io packets never crash the relay. */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect as netConnect } from 'node:net';
import { call, login, msgId, newDevice, setupCrypto, startRelay } from './helpers.js';

let relay: Awaited<ReturnType<typeof startRelay>>;
const unhandled: unknown[] = [];
const onUnhandled = (e: unknown) => unhandled.push(e);
before(async () => {
  await setupCrypto();
  // Many violations on purpose: give each socket room before it is dropped.
  relay = await startRelay({ limits: { maxViolations: 1000, eventBurst: 10_000, eventsPerSecond: 10_000 } });
  process.on('unhandledRejection', onUnhandled);
});
after(async () => {
  process.off('unhandledRejection', onUnhandled);
  await relay.close();
});

/** The relay still logs in a device and stores a message. */
async function stillServing(): Promise<void> {
  const d = newDevice();
  const s = await login(relay, d);
  assert.equal((await call(s.socket, 'send', { to: d.deviceId, id: msgId(), envelope: new Uint8Array([1]) })).ok, true);
  s.socket.disconnect();
  assert.deepEqual(unhandled, []);
}

test('R7: wrong types, missing or extra fields, strings for binary and __proto__ keys get MALFORMED_MESSAGE', async () => {
  const me = newDevice();
  const s = await login(relay, me);
  const to = newDevice().deviceId;
  const env = new Uint8Array([1, 2, 3]);
  const cases: [string, unknown][] = [
    ['send', null],
    ['send', 42],
    ['send', 'send'],
    ['send', []],
    ['send', {}],
    ['send', { to, id: msgId() }],
    ['send', { to, id: msgId(), envelope: 'AQID' }],
    ['send', { to, id: msgId(), envelope: [1, 2, 3] }],
    ['send', { to, id: msgId(), envelope: { type: 'Buffer', data: [1, 2, 3] } }],
    ['send', { to, id: msgId(), envelope: { _placeholder: true, num: 0 } }],
    ['send', { to, id: msgId(), envelope: new Uint8Array(0) }],
    ['send', { to: to.toUpperCase(), id: msgId(), envelope: env }],
    ['send', { to: `${to}00`, id: msgId(), envelope: env }],
    ['send', { to, id: 'x'.repeat(65), envelope: env }],
    ['send', { to, id: 'no spaces', envelope: env }],
    ['send', { to, id: 7, envelope: env }],
    ['send', { to, id: msgId(), envelope: env, extra: 1 }],
    ['send', JSON.parse(`{"to":"${to}","id":"a","__proto__":{"polluted":true}}`)],
    ['ack', { seqs: [] }],
    ['ack', { seqs: ['1'] }],
    ['ack', { seqs: [-1] }],
    ['ack', { seqs: [1.5] }],
    ['ack', { seqs: Array.from({ length: 257 }, (_, i) => i + 1) }],
    ['ack', { seq: 1 }],
    ['fetchBundle', { deviceId: 'zz' }],
    ['fetchBundle', { deviceId: to, more: true }],
    ['fetchQueue', { afterSeq: 1 }],
    ['uploadPrekeys', { identity: me.publicIdentity, signedPrekey: { id: -1, createdAt: 0, publicKey: env, signature: env }, oneTimePrekeys: [] }],
    ['uploadPrekeys', { identity: { ...me.publicIdentity, signingKey: 'k' }, signedPrekey: {}, oneTimePrekeys: [] }],
    ['nonexistent', {}],
    ['__proto__', {}],
    ['constructor', {}],
    ['hasOwnProperty', {}],
  ];
  for (const [event, payload] of cases) {
    const r = await call(s.socket, event, payload);
    assert.equal(r.ok, false, `${event} ${JSON.stringify(payload)?.slice(0, 80)}`);
    assert.equal(r.error.code, 'MALFORMED_MESSAGE', `${event}: ${r.error.code}`);
    assert.ok(!JSON.stringify(r).includes('AQID'), 'errors never echo payloads');
  }
  // Two payloads, or none, are malformed too.
  assert.equal((await call(s.socket, 'send', { to, id: msgId(), envelope: env }, 'extra')).error.code, 'MALFORMED_MESSAGE');
  assert.equal((await call(s.socket, 'fetchQueue')).error.code, 'MALFORMED_MESSAGE');
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
  // An event without an ack callback is handled without a reply and without a crash.
  (s.socket as any).emit('send', { bad: true });
  (s.socket as any).emit('send', { to, id: msgId(), envelope: env });
  s.socket.disconnect();
  await stillServing();
});

test('R7: raw socket.io packets (bad types, namespaces, JSON, _placeholder tricks, attachment mismatches) over WebSocket', async () => {
  const raw = [
    '9', '42', '42[', '42{}', '42["send"', '42[]', '42[1,2]', '42[null]', '42["send",{"__proto__":{"x":1}}]',
    '4/nonexistent,2["send",{}]', '0/admin,', '1', '3', '43["x"]', '5', '6', 'x', '',
    '451-["send",{"to":"00000000000000000000000000000000","id":"a","envelope":{"_placeholder":true,"num":"splice"}}]',
    '42["send",{"to":"00000000000000000000000000000000","id":"a","envelope":{"_placeholder":true,"num":0}}]',
    '4999999999-["send",{}]', '45-["send",{}]', '450-["send",{}]', '45a-["send",{}]',
    '42["auth",{}]', '42["hello",{}]', '42["message",{}]', '4212345678901234567890["send",{}]',
    '42\u0000["send"]', '42["\ud800"]',
  ];
  for (const packet of raw) {
    const d = newDevice();
    const s = await login(relay, d);
    const engine = (s.socket.io as unknown as { engine: { send(x: string | Uint8Array): void } }).engine;
    engine.send(packet);
    engine.send(new Uint8Array([1, 2, 3])); // a binary frame with no packet to belong to
    await new Promise((r) => setTimeout(r, 20));
    s.socket.disconnect();
  }
  await stillServing();
});

/** One polling session: open, then POST bodies to it. */
async function pollingSession(): Promise<string> {
  const res = await fetch(`${relay.url}/socket.io/?EIO=4&transport=polling`);
  const body = await res.text();
  return (JSON.parse(body.slice(1)) as { sid: string }).sid;
}

test('R7: raw engine.io packets, bad queries and broken WebSocket frames', async () => {
  const bodies = ['9x', '4', '40{', '40/nonexistent,', '4\u001e4', '\u001e\u001e', 'b', 'bAAA', 'b!!!', '6', '2probe',
    '40\u00ff\u00fe', '4' + 'x'.repeat(1000), '1', '451-["send",{"envelope":{"_placeholder":true,"num":"splice"}}]\u001ebAQID'];
  for (const body of bodies) {
    const sid = await pollingSession();
    await fetch(`${relay.url}/socket.io/?EIO=4&transport=polling&sid=${sid}`, { method: 'POST', body }).then((r) => r.text()).catch(() => undefined);
  }
  // Invalid UTF-8 bytes in a POST body.
  const sid = await pollingSession();
  await fetch(`${relay.url}/socket.io/?EIO=4&transport=polling&sid=${sid}`, { method: 'POST', body: new Uint8Array([0x34, 0x32, 0xc3, 0x28, 0xff]) }).then((r) => r.text()).catch(() => undefined);
  for (const q of ['EIO=3&transport=polling', 'EIO=99&transport=polling', 'EIO=4&transport=foo', 'EIO=4&transport=polling&sid=bogus', 'EIO=4&transport=websocket']) {
    const r = await fetch(`${relay.url}/socket.io/?${q}`).catch(() => undefined);
    assert.ok(!r || r.status >= 400, q);
  }
  const port = relay.port;
  const rawHttp = async (request: string, frames: Buffer[] = []) =>
    new Promise<void>((resolve) => {
      const sock = netConnect(port, '127.0.0.1', () => {
        sock.write(request);
        setTimeout(() => frames.forEach((f) => sock.write(f)), 30);
      });
      sock.on('data', () => undefined);
      sock.on('error', () => resolve());
      sock.on('close', () => resolve());
      setTimeout(() => { sock.destroy(); resolve(); }, 300);
    });
  const upgrade = (key: string) =>
    `GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`;
  const mask = (payload: Buffer, first: number) => Buffer.concat([Buffer.from([first, 0x80 | payload.length, 1, 2, 3, 4]), Buffer.from(payload.map((b, i) => b ^ [1, 2, 3, 4][i % 4]!))]);
  await rawHttp(upgrade('bad'));
  await rawHttp(upgrade('dGhlIHNhbXBsZSBub25jZQ=='), [mask(Buffer.from('40'), 0xf1)]); // RSV1-3 set
  await rawHttp(upgrade('dGhlIHNhbXBsZSBub25jZQ=='), [Buffer.from([0x81, 0x02, 0x34, 0x30])]); // unmasked client frame
  await rawHttp(upgrade('dGhlIHNhbXBsZSBub25jZQ=='), [mask(Buffer.from([0xc3, 0x28]), 0x81)]); // invalid UTF-8 text
  await rawHttp(upgrade('dGhlIHNhbXBsZSBub25jZQ=='), [Buffer.from([0x81, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])]); // absurd length
  await rawHttp('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
  await rawHttp('GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n');
  await rawHttp('\u0000\u0001garbage\r\n\r\n');
  await stillServing();
});

test('R7: seeded fuzz of socket.io packets over WebSocket: 0 crashes', async () => {
  const count = process.env.PARLEY_TEST_SCALE === 'extended' ? 100_000 : 2_000;
  let seed = 0x5eed;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const to = newDevice().deviceId;
  const seeds = [
    `42["send",{"to":"${to}","id":"abc","envelope":{"_placeholder":true,"num":0}}]`,
    `451-["send",{"to":"${to}","id":"abc","envelope":{"_placeholder":true,"num":0}}]`,
    '42["ack",{"seqs":[1,2,3]}]', '42["fetchBundle",{"deviceId":"00"}]', '42["fetchQueue",{}]', '40', '41',
  ];
  const alphabet = '0123456789[]{}",:-/_\\ntrue\u0000\u00ff"placeholder';
  const d = newDevice();
  let s = await login(relay, d);
  const deadline = Date.now() + 30_000;
  for (let i = 0; i < count && Date.now() < deadline; i++) {
    let p = seeds[rand(seeds.length)]!;
    const edits = 1 + rand(4);
    for (let e = 0; e < edits; e++) {
      const at = rand(p.length + 1);
      const op = rand(3);
      if (op === 0) p = p.slice(0, at) + alphabet[rand(alphabet.length)] + p.slice(at);
      else if (op === 1) p = p.slice(0, at) + p.slice(at + 1 + rand(5));
      else p = p.slice(0, at);
    }
    if (!s.socket.connected) s = await login(relay, d);
    (s.socket.io as unknown as { engine: { send(x: string | Uint8Array): void } }).engine.send(p);
    if (rand(10) === 0) (s.socket.io as unknown as { engine: { send(x: Uint8Array): void } }).engine.send(new Uint8Array(rand(64)));
    if (i % 50 === 0) await new Promise((r) => setTimeout(r, 1));
  }
  s.socket.disconnect();
  await stillServing();
});
