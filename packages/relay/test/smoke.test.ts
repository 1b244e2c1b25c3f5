import { test } from 'node:test';
import assert from 'node:assert/strict';
import { call, login, msgId, newDevice, setupCrypto, startRelay, until } from './helpers.js';

test('story: Alice sends to offline Bob; Bob logs in, receives, acks; the queue is empty', async () => {
  await setupCrypto();
  const relay = await startRelay();
  try {
    const alice = newDevice();
    const bob = newDevice();
    const a = await login(relay, alice);
    assert.equal(a.auth.deviceId, alice.deviceId);
    const r = await call(a.socket, 'send', { to: bob.deviceId, id: msgId(), envelope: new Uint8Array([1, 2, 3]) });
    assert.equal(r.ok, true, JSON.stringify(r));
    assert.equal(await relay.store.countPending(bob.deviceId), 1);
    const { socket: b, inbox: got } = await login(relay, bob);
    await until(() => got.length === 1);
    assert.equal(got[0]!.from, alice.deviceId);
    assert.deepEqual([...got[0]!.envelope], [1, 2, 3]);
    const ack = await call(b, 'ack', { seqs: [got[0]!.seq] });
    assert.deepEqual(ack, { ok: true, deleted: 1 });
    assert.equal(await relay.store.countPending(bob.deviceId), 0);
    a.socket.disconnect();
    b.disconnect();
  } finally {
    await relay.close();
  }
});
