/**
 * Device statements over real sockets: `uploadPrekeys` carries an opaque `certificate` and
 * `attestation` (≤ 512 bytes each), `fetchBundle` returns them beside the bundle, and
 * `fetchIdentity` returns them with the identity without consuming a one-time prekey. The relay
 * never interprets them (random bytes are accepted: clients verify, not the relay).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { RELAY_MAX_ATTESTATION_BYTES, RELAY_MAX_CERTIFICATE_BYTES } from '@parley/protocol/wire';
import { call, login, newDevice, setupCrypto, startRelay, upload } from './helpers.js';

const rnd = (n: number) => new Uint8Array(randomBytes(n));

test('uploadPrekeys stores certificate and attestation; fetchBundle and fetchIdentity return them', async (t) => {
  await setupCrypto();
  const relay = await startRelay();
  t.after(() => relay.close());
  const bot = newDevice();
  const customer = newDevice();
  const b = await login(relay, bot);
  t.after(() => b.socket.disconnect());
  const c = await login(relay, customer);
  t.after(() => c.socket.disconnect());

  // Before any upload: nothing to fetch.
  assert.equal((await call(c.socket, 'fetchIdentity', { deviceId: bot.deviceId })).error?.code, 'SESSION_NOT_FOUND');

  const certificate = rnd(139);
  const attestation = rnd(121);
  const up = upload(bot, [1, 2, 3]);
  assert.equal((await call(b.socket, 'uploadPrekeys', { ...up, certificate, attestation })).oneTimePrekeys, 3);

  const fetched = await call(c.socket, 'fetchBundle', { deviceId: bot.deviceId });
  assert.equal(fetched.ok, true);
  assert.deepEqual([...fetched.certificate], [...certificate]);
  assert.deepEqual([...fetched.attestation], [...attestation]);
  assert.equal(fetched.bundle.certificate, undefined, 'beside the bundle, not inside it');
  assert.equal(fetched.bundle.oneTimePrekey.id, 1);

  const ident = await call(c.socket, 'fetchIdentity', { deviceId: bot.deviceId });
  assert.equal(ident.ok, true);
  assert.deepEqual([...ident.identity.signingKey], [...bot.publicIdentity.signingKey]);
  assert.deepEqual([...ident.certificate], [...certificate]);
  assert.deepEqual([...ident.attestation], [...attestation]);
  assert.equal(await relay.store.countOneTimePrekeys(bot.deviceId), 2, 'fetchIdentity consumed no OPK');

  // A top-up without statements keeps them; an empty attestation removes it.
  await call(b.socket, 'uploadPrekeys', { ...upload(bot, [4]) });
  await call(b.socket, 'uploadPrekeys', { ...upload(bot, []), attestation: new Uint8Array(0) });
  const after = await call(c.socket, 'fetchIdentity', { deviceId: bot.deviceId });
  assert.deepEqual([...after.certificate], [...certificate]);
  assert.equal('attestation' in after, false);

  // A device that publishes none gets none back.
  await call(c.socket, 'uploadPrekeys', upload(customer, [1]));
  const plain = await call(b.socket, 'fetchBundle', { deviceId: customer.deviceId });
  assert.equal(plain.ok, true);
  assert.equal('certificate' in plain || 'attestation' in plain, false);
});

test('statements are size-capped and must be bytes; nothing is stored from a refused upload', async (t) => {
  await setupCrypto();
  const relay = await startRelay({ limits: { maxViolations: 100 } });
  t.after(() => relay.close());
  const bot = newDevice();
  const b = await login(relay, bot);
  t.after(() => b.socket.disconnect());
  const bad = [
    { certificate: rnd(RELAY_MAX_CERTIFICATE_BYTES + 1) },
    { attestation: rnd(RELAY_MAX_ATTESTATION_BYTES + 1) },
    { certificate: 'AQID' },
    { attestation: [1, 2, 3] },
    { certificate: rnd(10), extra: rnd(1) },
  ];
  for (const extra of bad) {
    const r = await call(b.socket, 'uploadPrekeys', { ...upload(bot, [1]), ...extra });
    assert.equal(r.error?.code, 'MALFORMED_MESSAGE', JSON.stringify(Object.keys(extra)));
  }
  assert.equal(await relay.store.getIdentity(bot.deviceId), undefined);
  const max = await call(b.socket, 'uploadPrekeys', {
    ...upload(bot, [1]),
    certificate: rnd(RELAY_MAX_CERTIFICATE_BYTES),
    attestation: rnd(RELAY_MAX_ATTESTATION_BYTES),
  });
  assert.equal(max.ok, true);
  // Malformed fetchIdentity payloads are refused like any other.
  assert.equal((await call(b.socket, 'fetchIdentity', { deviceId: 'nope' })).error?.code, 'MALFORMED_MESSAGE');
  assert.equal((await call(b.socket, 'fetchIdentity', { deviceId: bot.deviceId, more: 1 })).error?.code, 'MALFORMED_MESSAGE');
  // The relay logs sizes, never the statement bytes.
  const logs = relay.logs();
  assert.match(logs, new RegExp(`"certificate":${RELAY_MAX_CERTIFICATE_BYTES}`));
});
