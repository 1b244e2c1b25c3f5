/**
 * docs/threats.md C20b (issue 10, finding 4): sybil one-time-prekey drain. The bundle budget was
 * per requesting device, and device ids are free: ten fresh identities drained all 100 of a
 * victim's one-time prekeys in 146 ms. Now fetches are also limited per remote address, and
 * one-time prekeys are handed out at most `opksPerTargetPerMinute` per target, whoever asks;
 * past that, bundles come without one (X3DH's last-resort path) instead of an error.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { call, login, newDevice, setupCrypto, startRelay, upload } from './helpers.js';

before(setupCrypto);

async function victimWith(relay: Awaited<ReturnType<typeof startRelay>>, opks: number) {
  const victim = newDevice();
  const v = await login(relay, victim);
  assert.equal((await call(v.socket, 'uploadPrekeys', upload(victim, Array.from({ length: opks }, (_, i) => i + 1)))).oneTimePrekeys, opks);
  v.socket.disconnect();
  return victim;
}

test('C20b: ten fresh identities from one address, ten fetches each, take at most opksPerTargetPerMinute OPKs', async () => {
  const relay = await startRelay();
  try {
    const victim = await victimWith(relay, 100);
    const t0 = Date.now();
    const sybils = await Promise.all(Array.from({ length: 10 }, () => login(relay, newDevice())));
    const results = await Promise.all(sybils.flatMap((s) => Array.from({ length: 10 }, () => call(s.socket, 'fetchBundle', { deviceId: victim.deviceId }))));
    const ms = Date.now() - t0;
    const served = results.filter((r) => r.ok);
    const opks = served.filter((r) => r.bundle.oneTimePrekey !== undefined).length;
    const limited = results.filter((r) => !r.ok);
    const left = await relay.store.countOneTimePrekeys(victim.deviceId);
    console.log(`C20b: 10 identities × 10 fetches in ${ms} ms: ${opks} OPKs handed out, ${served.length - opks} last-resort bundles, ` +
      `${limited.length} RATE_LIMITED (${[...new Set(limited.map((r) => r.error.details?.scope))].join(', ')}); ${left} of 100 OPKs left`);
    assert.equal(opks, relay.limits.opksPerTargetPerMinute);
    assert.equal(left, 100 - relay.limits.opksPerTargetPerMinute);
    // The per-address budget is what stops the rest.
    assert.equal(served.length, relay.limits.bundleFetchesPerMinutePerAddress);
    assert.ok(limited.every((r) => r.error.code === 'RATE_LIMITED' && r.error.details.scope === 'address'));
    // Last-resort bundles are whole bundles: identity and signed prekey, verifiable as usual.
    for (const r of served.filter((x) => x.bundle.oneTimePrekey === undefined)) {
      assert.equal(r.bundle.signedPrekey.id, 1);
      assert.equal(r.bundle.identity.signingKey.length, 32);
    }
    const m = await (await fetch(`${relay.url}/metrics`)).text();
    assert.ok(m.includes(`parley_relay_bundle_fetches_total{opk="withheld"} ${served.length - opks}`), m);
    for (const s of sybils) s.socket.disconnect();
  } finally {
    await relay.close();
  }
});

test('C20b: from any number of addresses, the per-target rate holds; it refills over time; a drained device still gets sessions', async () => {
  let clock = Date.now();
  const relay = await startRelay({
    now: () => clock,
    // Many addresses, simulated: the address budget is out of the way here.
    limits: { bundleFetchesPerMinutePerAddress: 10_000, authMaxSkewMs: 3_600_000 },
  });
  try {
    const victim = await victimWith(relay, 30);
    const sybils = await Promise.all(Array.from({ length: 10 }, () => login(relay, newDevice())));
    const take = async () => (await Promise.all(sybils.flatMap((s) => Array.from({ length: 5 }, () => call(s.socket, 'fetchBundle', { deviceId: victim.deviceId })))));
    const first = await take();
    assert.ok(first.every((r) => r.ok));
    assert.equal(first.filter((r) => r.bundle.oneTimePrekey).length, 10);
    // Half a minute later: half the rate again (token bucket).
    clock += 30_000;
    const second = await take();
    assert.equal(second.filter((r) => r.ok && r.bundle.oneTimePrekey).length, 5);
    // A minute on: the budget is back, and no OPK was ever handed out twice.
    clock += 120_000;
    const third = await take();
    const ids = [...first, ...second, ...third].filter((r) => r.ok && r.bundle.oneTimePrekey).map((r) => r.bundle.oneTimePrekey.id);
    assert.equal(ids.length, 25);
    assert.equal(new Set(ids).size, 25);
    assert.equal(await relay.store.countOneTimePrekeys(victim.deviceId), 5);
    for (const s of sybils) s.socket.disconnect();
  } finally {
    await relay.close();
  }
});
