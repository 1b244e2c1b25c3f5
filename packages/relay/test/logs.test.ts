/** docs/threats.md R11: the relay's logs and metrics never contain envelope bytes, keys, signatures or API keys. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createApiKey } from '../src/index.js';
import { call, login, msgId, newDevice, setupCrypto, startRelay, until, upload } from './helpers.js';

const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64');
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

test('R11 canary: 200 envelopes with a unique marker, prekeys and an API key leave no trace in debug logs or metrics', async () => {
  await setupCrypto();
  const relay = await startRelay({ limits: { eventsPerSecond: 10_000, eventBurst: 10_000 } });
  try {
    const canary = new Uint8Array(randomBytes(24));
    const text = `CANARY-${hex(canary)}`;
    const alice = newDevice();
    const bob = newDevice();
    const { id: keyId, key } = await createApiKey(relay.store, 'bot');
    const a = await login(relay, alice, { apiKey: key });
    const up = upload(alice, [1, 2, 3]);
    assert.equal((await call(a.socket, 'uploadPrekeys', up)).ok, true);
    const envelopes: Uint8Array[] = [];
    for (let i = 0; i < 200; i++) {
      const envelope = new Uint8Array([...canary, ...new TextEncoder().encode(text), i]);
      envelopes.push(envelope);
      assert.equal((await call(a.socket, 'send', { to: bob.deviceId, id: msgId(), envelope })).ok, true);
    }
    // Errors on purpose: they must not echo payloads either.
    await call(a.socket, 'send', { to: bob.deviceId, id: 'bad id', envelope: envelopes[0] });
    await call(a.socket, 'send', { to: bob.deviceId, id: msgId(), envelope: new Uint8Array([...canary, ...new Uint8Array(70_000)]) });
    const b = await login(relay, bob);
    await call(b.socket, 'fetchBundle', { deviceId: alice.deviceId });
    await until(() => b.inbox.length >= 200);
    await call(b.socket, 'ack', { seqs: b.inbox.slice(0, 100).map((m) => m.seq) });
    const metrics = await relay.metrics.metrics();
    a.socket.disconnect();
    b.socket.disconnect();
    await new Promise((r) => setTimeout(r, 50));
    const logs = relay.logs();
    assert.ok(logs.includes('"event":"send"'), 'debug logs were captured');
    const secrets: [string, string][] = [
      ['canary text', text],
      ['canary hex', hex(canary)],
      ['canary base64', b64(canary).slice(0, 24)],
      ['envelope base64', b64(envelopes[0]!).slice(0, 24)],
      ['api key', key],
      // The secret is everything after `prk_<id>_` (base64url: it may itself contain `_`).
      ['api key secret part', key.slice(`prk_${keyId}_`.length)],
      ['signing key hex', hex(alice.publicIdentity.signingKey)],
      ['signing key base64', b64(alice.publicIdentity.signingKey)],
      ['dh key hex', hex(alice.publicIdentity.dhKey)],
      ['spk signature hex', hex(up.signedPrekey.signature)],
      ['spk base64', b64(up.signedPrekey.publicKey)],
      ['opk hex', hex(up.oneTimePrekeys[0]!.publicKey)],
    ];
    for (const [what, needle] of secrets) {
      assert.equal(logs.split(needle).length - 1, 0, `${what} found in logs`);
      assert.equal(metrics.split(needle).length - 1, 0, `${what} found in metrics`);
    }
    // Byte-serialised forms a careless logger would produce.
    assert.ok(!logs.includes('"type":"Buffer"') && !logs.includes('"data":['), 'no serialised Buffers');
    assert.ok(!metrics.includes(alice.deviceId), 'metrics carry no device ids');
  } finally {
    await relay.close();
  }
});
