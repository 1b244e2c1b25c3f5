/**
 * A bot's release manifest list over real sockets: `uploadPrekeys` carries it, `fetchBundle` and
 * `fetchIdentity` return it byte for byte. The relay checks the list's framing (at most 8
 * manifests of at most 1 KiB) and refuses a malformed or oversized list as MALFORMED_MESSAGE,
 * storing nothing; it never verifies the manifests themselves (clients do).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { encodeReleaseManifestList } from '@parley/protocol';
import { RELAY_MAX_MANIFESTS_BYTES } from '@parley/protocol/wire';
import { call, login, newDevice, setupCrypto, startRelay, upload } from './helpers.js';

const rnd = (n: number) => new Uint8Array(randomBytes(n));

test('uploadPrekeys stores a manifest list; fetches return it; malformed lists are refused', async (t) => {
  await setupCrypto();
  const relay = await startRelay({ limits: { maxViolations: 100 } });
  t.after(() => relay.close());
  const bot = newDevice();
  const customer = newDevice();
  const b = await login(relay, bot);
  t.after(() => b.socket.disconnect());
  const c = await login(relay, customer);
  t.after(() => c.socket.disconnect());

  // The largest list: 8 manifests of 1 KiB.
  const full = encodeReleaseManifestList(Array.from({ length: 8 }, () => rnd(1024)));
  assert.equal(full.length, RELAY_MAX_MANIFESTS_BYTES);
  assert.equal((await call(b.socket, 'uploadPrekeys', { ...upload(bot, [1, 2]), manifests: full })).oneTimePrekeys, 2);
  const fetched = await call(c.socket, 'fetchBundle', { deviceId: bot.deviceId });
  assert.deepEqual([...fetched.manifests], [...full]);
  assert.deepEqual([...(await call(c.socket, 'fetchIdentity', { deviceId: bot.deviceId })).manifests], [...full]);

  const list = encodeReleaseManifestList([rnd(300)]);
  const malformed = [
    list.subarray(0, list.length - 1), // truncated
    new Uint8Array([...list, 0]), // trailing byte
    new Uint8Array([9]), // more than 8 manifests
    new Uint8Array([1, 0x04, 0x01, ...rnd(1025)]), // one over 1 KiB
    new Uint8Array([...full, 0]), // over the size bound
  ];
  for (const manifests of malformed) {
    const r = await call(b.socket, 'uploadPrekeys', { ...upload(bot, [3]), manifests });
    assert.equal(r.error?.code, 'MALFORMED_MESSAGE', `refused: ${manifests.length} bytes`);
  }
  assert.equal(await relay.store.countOneTimePrekeys(bot.deviceId), 1, 'nothing of a refused upload was stored');
  assert.deepEqual([...(await call(c.socket, 'fetchIdentity', { deviceId: bot.deviceId })).manifests], [...full]);

  // Replaced, then removed with an empty list.
  await call(b.socket, 'uploadPrekeys', { ...upload(bot, []), manifests: list });
  assert.deepEqual([...(await call(c.socket, 'fetchIdentity', { deviceId: bot.deviceId })).manifests], [...list]);
  await call(b.socket, 'uploadPrekeys', { ...upload(bot, []), manifests: new Uint8Array(0) });
  assert.equal('manifests' in (await call(c.socket, 'fetchIdentity', { deviceId: bot.deviceId })), false);
});
