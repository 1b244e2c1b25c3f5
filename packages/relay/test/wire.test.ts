/** The relay auth encoding (wire/relay.ts): fixed layout, argument checks, domain separation (C14). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { verifyContextSignature } from '@parley/protocol/verify';
import { relayAuthPayload } from '@parley/protocol/wire';
import { newDevice, setupCrypto } from './helpers.js';

const input = {
  serverNonce: new Uint8Array(32).fill(0xaa),
  clientNonce: new Uint8Array(32).fill(0xbb),
  origin: 'https://r.example',
  timestamp: 0x0102030405,
  deviceId: '00112233445566778899aabbccddeeff',
};

test('relayAuthPayload: the documented layout, byte for byte', () => {
  const p = relayAuthPayload(input);
  const o = new TextEncoder().encode(input.origin);
  assert.equal(p.length, 32 + 32 + 2 + o.length + 8 + 16);
  assert.deepEqual([...p.subarray(0, 32)], [...input.serverNonce]);
  assert.deepEqual([...p.subarray(32, 64)], [...input.clientNonce]);
  assert.deepEqual([...p.subarray(64, 66)], [0, o.length]);
  assert.deepEqual([...p.subarray(66, 66 + o.length)], [...o]);
  assert.deepEqual([...p.subarray(66 + o.length, 74 + o.length)], [0, 0, 0, 1, 2, 3, 4, 5]);
  assert.equal(Buffer.from(p.subarray(74 + o.length)).toString('hex'), input.deviceId);
});

test('relayAuthPayload: bad arguments are USAGE errors', () => {
  for (const bad of [
    { serverNonce: new Uint8Array(31) }, { clientNonce: new Uint8Array(33) }, { origin: '' }, { timestamp: -1 },
    { timestamp: 1.5 }, { deviceId: 'ABC' }, { deviceId: input.deviceId.toUpperCase() },
  ]) {
    assert.throws(() => relayAuthPayload({ ...input, ...bad }), (e: { code?: string }) => e.code === 'USAGE', JSON.stringify(bad));
  }
});

test('C14: a relay-auth signature never verifies as a signed-prekey or attestation signature', async () => {
  await setupCrypto();
  const d = newDevice();
  const payload = relayAuthPayload({ ...input, deviceId: d.deviceId });
  const sig = d.sign('relayAuth', payload);
  assert.equal(verifyContextSignature(d.publicIdentity.signingKey, 'relayAuth', payload, sig), true);
  assert.equal(verifyContextSignature(d.publicIdentity.signingKey, 'signedPrekey', payload, sig), false);
  assert.equal(verifyContextSignature(d.publicIdentity.signingKey, 'botAttestation', payload, sig), false);
  assert.equal(verifyContextSignature(d.publicIdentity.signingKey, 'keyChange', payload, sig), false);
});
