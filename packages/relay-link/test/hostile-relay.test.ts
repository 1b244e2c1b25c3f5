/**
 * docs/threats.md I1: the relay is untrusted, so the device checks every answer and push with
 * the same schema discipline the relay applies to frames. A hostile relay (a real socket.io
 * server on 127.0.0.1 that logs anyone in and then answers garbage) gets `MALFORMED_MESSAGE`
 * naming the field, and a malformed push is reported and never handed to the app or acked.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Server } from 'socket.io';
import { isParleyError, type ParleyError } from '@parley/protocol/verify';
import { RELAY_PROTOCOL_VERSION } from '@parley/protocol/wire';
import { RelayLink } from '../src/index.js';

const DEVICE = 'a'.repeat(32);
const answers = new Map<string, unknown>();
const acks: unknown[] = [];

const http = createServer();
const io = new Server(http);
io.on('connection', (socket) => {
  socket.emit('hello', { protocol: RELAY_PROTOCOL_VERSION, serverNonce: new Uint8Array(32), authTimeoutMs: 5000 });
  socket.on('auth', (_answer: unknown, ack: (r: unknown) => void) => {
    ack({ ok: true, deviceId: DEVICE, role: 'device', serverTime: Date.now() });
    socket.emit('message', { seq: 1, from: DEVICE, id: 'not a message id', envelope: 'not bytes', receivedAt: 0 });
    socket.emit('prekeysLow', { remaining: 'lots' });
  });
  socket.on('ack', (req: unknown, ack: (r: unknown) => void) => {
    acks.push(req);
    ack({ ok: true });
  });
  for (const event of ['fetchBundle', 'fetchIdentity', 'uploadPrekeys', 'send', 'fetchQueue']) {
    socket.on(event, (_req: unknown, ack: (r: unknown) => void) => ack({ ok: true, ...(answers.get(event) as object) }));
  }
});
await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
after(async () => {
  await io.close();
});

const url = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
const identity = { signingKey: new Uint8Array(32), dhKey: new Uint8Array(32), binding: new Uint8Array(64) };

test('garbage answers are MALFORMED_MESSAGE naming the field; malformed pushes are reported, not delivered', async () => {
  const errors: ParleyError[] = [];
  const delivered: unknown[] = [];
  const lows: number[] = [];
  const link = new RelayLink({
    url,
    credentials: { answer: () => ({ identity, clientNonce: new Uint8Array(32), timestamp: Date.now(), signature: new Uint8Array(64) }) },
  });
  link.setHandlers({
    onMessage: async (m) => {
      delivered.push(m);
      return 'ack';
    },
    onPrekeysLow: (n) => lows.push(n),
    onError: (e) => errors.push(e),
  });
  try {
    await link.connect();
    const spk = { id: 1, createdAt: Number.NaN, publicKey: new Uint8Array(32), signature: new Uint8Array(64) };
    const cases: [string, unknown, () => Promise<unknown>, string][] = [
      ['fetchBundle', { bundle: { identity, signedPrekey: spk } }, () => link.fetchBundle(DEVICE), 'bundle.signedPrekey.createdAt'],
      ['fetchBundle', { bundle: { identity: { ...identity, binding: 'AA==' }, signedPrekey: { ...spk, createdAt: 1 } } }, () => link.fetchBundle(DEVICE), 'bundle.identity.binding'],
      ['fetchBundle', {}, () => link.fetchBundle(DEVICE), 'bundle'],
      ['fetchIdentity', { identity: { signingKey: new Uint8Array(32) } }, () => link.fetchIdentity(DEVICE), 'identity.dhKey'],
      ['uploadPrekeys', { oneTimePrekeys: -1 }, () => link.uploadPrekeys({ identity, signedPrekey: { ...spk, createdAt: 1 }, oneTimePrekeys: [] }), 'oneTimePrekeys'],
      ['send', { seq: '7', duplicate: false }, () => link.send({ to: DEVICE, id: 'b'.repeat(32), envelope: new Uint8Array(8) }), 'seq'],
      ['fetchQueue', { pending: Infinity }, () => link.fetchQueue(), 'pending'],
    ];
    for (const [event, answer, call, field] of cases) {
      answers.set(event, answer);
      await assert.rejects(call(), (e: unknown) => isParleyError(e, 'MALFORMED_MESSAGE') && e.details?.field === field, `${event} → ${field}`);
    }
    await link.idle();
    assert.deepEqual(delivered, [], 'the malformed message never reached the app');
    assert.deepEqual(lows, [], 'the malformed low-supply notice never reached the app');
    assert.deepEqual(acks, [], 'nothing was acked');
    assert.ok(errors.filter((e) => isParleyError(e, 'MALFORMED_MESSAGE')).length >= 2, 'both pushes were reported');
  } finally {
    await link.close();
  }
});
