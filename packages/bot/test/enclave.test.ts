/**
 * The enclave worker through its RPC: start, measurement, restart from sealed state, malformed
 * messages (docs/threats.md B4) and crashes (B2).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MessageChannel, receiveMessageOnPort } from 'node:worker_threads';
import { isParleyError, ParleyError } from '@parley/protocol';
import { computeMeasurement } from '../src/measurement.js';
import { verifyAttestation } from '../src/attestation.js';
import { ECHO_HANDLER, openSupervisor, setupCrypto, sleep, tempDir, waitFor } from './helpers.js';

await setupCrypto();

test('the enclave starts, measures itself as computeMeasurement does, and attests', async (t) => {
  const dir = tempDir(t);
  const { sup } = await openSupervisor(dir);
  t.after(() => sup.stop());
  const info = await sup.start();
  const expected = await computeMeasurement(ECHO_HANDLER);
  assert.equal(Buffer.from(info.measurement).toString('hex'), expected.hex);
  assert.ok(expected.files.some((f) => f.label === '@parley/bot/src/enclave/entry.ts'));
  assert.ok(expected.files.some((f) => f.label === '@parley/protocol/src/session.ts'));
  assert.equal(expected.files.at(-1)!.label, 'handler');
  verifyAttestation(info.attestation, expected.hex, info.identity);
  const upload = await sup.call('prekeys', { generate: 3 });
  assert.equal(upload.identity.signingKey.length, 32);
  assert.ok(upload.oneTimePrekeys.length >= 3);
});

test('a second start comes back from the sealed state with the same identity', async (t) => {
  const dir = tempDir(t);
  const first = await openSupervisor(dir);
  const a = await first.sup.start();
  await first.sup.stop();
  const second = await openSupervisor(dir);
  t.after(() => second.sup.stop());
  const b = await second.sup.start();
  assert.equal(b.deviceId, a.deviceId);
});

test('B4: malformed RPC gets typed errors, runs no key operation, and the worker stays alive', async (t) => {
  const dir = tempDir(t);
  const fromEnclave: unknown[] = [];
  const { sup } = await openSupervisor(dir, { unsafeTestingTap: (d, m) => d === 'fromEnclave' && fromEnclave.push(m) });
  t.after(() => sup.stop());
  await sup.start();
  fromEnclave.length = 0;
  const protoPollution = JSON.parse('{"type":"call","callId":900001,"method":"relayAuth","params":{"serverNonce":{},"origin":"x","__proto__":{"polluted":true}}}');
  const huge = new Uint8Array(8 * 1024 * 1024);
  const cases: unknown[] = [
    null,
    42,
    'call',
    [],
    { type: 'call' },
    { type: 'nope', callId: 900002 },
    { type: 'call', callId: 900003, method: 'deliver', params: { from: 'x', id: 'y', envelope: 'not bytes' } },
    { type: 'call', callId: 900004, method: 'deliver', params: { from: '0'.repeat(32), id: 'm1', envelope: huge } },
    { type: 'call', callId: 900005, method: 'relayAuth', params: { serverNonce: new Uint8Array(31), origin: 'https://x' } },
    { type: 'call', callId: 900006, method: 'init', params: {} },
    { type: 'call', callId: 900007, method: 'constructor', params: {} },
    { type: 'call', callId: 900008, method: '__proto__', params: {} },
    { type: 'call', callId: 900009, method: 'attest', params: { extra: 1 } },
    { type: 'call', callId: -1, method: 'attest', params: {} },
    { type: 'call', callId: 900010, method: 'sent', params: { to: '0'.repeat(32), id: 'x'.repeat(65) } },
    { type: 'call', callId: 900011, method: 'prekeys', params: { generate: 1e9 } },
    { type: 'call', callId: 900012, method: 'deliver', params: Object.assign(Object.create({ inherited: 1 }), { from: '0'.repeat(32), id: 'a', envelope: new Uint8Array(4) }) },
    { type: 'persisted', reqId: 12345, ok: 'yes' },
    protoPollution,
    { type: 'call', callId: 900013, method: 'deliver', params: { from: '0'.repeat(32), id: 'a', envelope: new Uint8Array(40) } },
    // Valid init again: refused (out-of-order call).
    { type: 'call', callId: 900014, method: 'init', params: { handlerUrl: 'file:///x', records: [], sealing: { type: 'file', path: '/nonexistent', create: false }, oneTimePrekeys: 1 } },
  ];
  for (const c of cases) sup.unsafeTestingPostRaw(c);
  const attestation = await sup.call('attest', {});
  assert.equal(attestation.version, 1, 'the worker still answers');
  type Answer = { type: string; callId?: number; ok?: boolean; error?: { code: string; message: string } };
  const malformedAnswers = () => (fromEnclave as Answer[]).filter((a) => a.type === 'rejected' || (a.callId ?? 0) >= 900000);
  await waitFor(() => malformedAnswers().length >= cases.length, 5000, 'an answer per malformed message');
  const answers = malformedAnswers();
  assert.equal(answers.length, cases.length);
  for (const a of answers) {
    assert.ok(a.type === 'result' || a.type === 'rejected', `unexpected answer ${a.type}`);
    assert.notEqual(a.ok, true);
    assert.ok(a.error && typeof a.error.code === 'string', 'typed error');
    // Rebuilt as a typed error on the host side.
    assert.ok(ParleyError.fromJSON(a.error) instanceof ParleyError);
  }
  const codes = new Set(answers.map((a) => a.error!.code));
  assert.ok(codes.has('MALFORMED_MESSAGE'));
  assert.ok(!codes.has('INTERNAL'), `no untyped failure: ${[...codes].join(',')}`);
  assert.equal(({} as { polluted?: boolean }).polluted, undefined);
  // The well-formed but undecryptable envelope is a protocol error, not a crash.
  assert.equal(sup.stats.crashes, 0);
});

test('B4: the host validates what the enclave sends, too', async (t) => {
  const dir = tempDir(t);
  const { sup } = await openSupervisor(dir);
  t.after(() => sup.stop());
  await sup.start();
  await assert.rejects(sup.call('deliver', { from: 'bad', id: 'x', envelope: new Uint8Array(1) } as never), (e: unknown) => isParleyError(e, 'MALFORMED_MESSAGE'));
});

test('B2: a terminated worker rejects in-flight calls with ENCLAVE_UNAVAILABLE within 1 s and restarts from sealed state', async (t) => {
  const dir = tempDir(t);
  const ready: boolean[] = [];
  const { sup } = await openSupervisor(dir, { onReady: (_i, restart) => ready.push(restart) });
  t.after(() => sup.stop());
  const info = await sup.start();
  for (let round = 0; round < 3; round++) {
    const calls = Array.from({ length: 20 }, () => sup.call('attest', {}).then(() => 'ok', (e: unknown) => e));
    const killedAt = Date.now();
    await sup.unsafeTestingTerminate();
    const results = await Promise.all(calls);
    assert.ok(Date.now() - killedAt < 1000, 'rejected within 1 s');
    for (const r of results) if (r !== 'ok') assert.ok(isParleyError(r, 'ENCLAVE_UNAVAILABLE'), String(r));
    await assert.rejects(sup.call('attest', {}), (e: unknown) => isParleyError(e, 'ENCLAVE_UNAVAILABLE'));
    const restartStarted = Date.now();
    const again = await sup.whenReady();
    assert.ok(Date.now() - restartStarted < 4000, 'restarted promptly');
    assert.equal(again.deviceId, info.deviceId);
  }
  assert.deepEqual(ready, [false, true, true, true]);
  assert.equal(sup.stats.crashes, 3);
});

test('B2: a throw inside a crypto operation is a typed error; exit and OOM are restarts', async (t) => {
  const dir = tempDir(t);
  const channel = new MessageChannel();
  t.after(() => channel.port1.close());
  const { sup } = await openSupervisor(dir, {
    unsafeTestingExposeKeys: channel.port2,
    resourceLimits: { maxOldGenerationSizeMb: 48, maxYoungGenerationSizeMb: 8 },
  });
  t.after(() => sup.stop());
  const info = await sup.start();
  await assert.rejects(sup.call('unsafeTestingCrash', { how: { type: 'throw' } }), (e: unknown) => isParleyError(e, 'USAGE'));
  assert.equal(sup.stats.crashes, 0);
  await assert.rejects(sup.call('unsafeTestingCrash', { how: { type: 'exit' } }), (e: unknown) => isParleyError(e, 'ENCLAVE_UNAVAILABLE'));
  await sup.whenReady();
  // The testing port went to the first worker only: the restarted one refuses testing hooks.
  await assert.rejects(sup.call('unsafeTestingCrash', { how: { type: 'oom' } }), (e: unknown) => isParleyError(e, 'FORBIDDEN'));
  assert.equal((await sup.whenReady()).deviceId, info.deviceId);
  assert.equal(receiveMessageOnPort(channel.port1), undefined, 'nothing was posted to the test port unasked');
});

test('B2: exceeding resourceLimits kills only the worker (ERR_WORKER_OUT_OF_MEMORY) and it restarts', async (t) => {
  const dir = tempDir(t);
  const channel = new MessageChannel();
  t.after(() => channel.port1.close());
  const { sup, logger } = await openSupervisor(dir, {
    unsafeTestingExposeKeys: channel.port2,
    resourceLimits: { maxOldGenerationSizeMb: 48, maxYoungGenerationSizeMb: 8 },
  });
  t.after(() => sup.stop());
  const info = await sup.start();
  const at = Date.now();
  await assert.rejects(sup.call('unsafeTestingCrash', { how: { type: 'oom' } }), (e: unknown) => isParleyError(e, 'ENCLAVE_UNAVAILABLE'));
  assert.ok(Date.now() - at < 30_000);
  assert.equal((await sup.whenReady()).deviceId, info.deviceId);
  assert.match(logger.text(), /ERR_WORKER_OUT_OF_MEMORY/);
  await sleep(10);
});
