/**
 * The egress policy and ctx.fetch (docs/threats.md B7; README "Egress policy and ctx.fetch"), in
 * the default (worker) mode: the policy is part of the measurement; ctx.fetch reaches an origin
 * in the policy (through the enclave, redirects re-checked) and nothing else (`FORBIDDEN` naming
 * the host); the global fetch, files, sockets, processes and workers are refused in the handler
 * with `USAGE` saying what to use. The same checks in process mode: process-mode.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isParleyError } from '@parley/protocol';
import { computeMeasurement } from '../src/measurement.js';
import { canonicalEgress } from '../src/egress-policy.js';
import { Customer } from './customer.js';
import { startBot, startRelay } from './harness.js';
import { setupCrypto, tempDir, waitFor } from './helpers.js';
import { EGRESS_HANDLER, startService } from './egress-service.js';

await setupCrypto();

test('B7: the egress policy is part of the measurement, canonicalised; no policy measures as before', async () => {
  const none = await computeMeasurement(EGRESS_HANDLER);
  assert.deepEqual(none.egress, []);
  assert.ok(!none.files.some((f) => f.label === 'egress'), 'no egress entry without a policy');
  assert.equal((await computeMeasurement(EGRESS_HANDLER, {})).hex, none.hex);
  const api = await computeMeasurement(EGRESS_HANDLER, { egress: ['api.example.com'] });
  assert.notEqual(api.hex, none.hex, 'adding a host changes the measurement');
  assert.deepEqual(api.egress, ['https://api.example.com']);
  assert.equal(api.files.at(-1)!.label, 'egress');
  // The same policy written another way measures the same; another host or scheme does not.
  const same = await computeMeasurement(EGRESS_HANDLER, { egress: ['https://API.Example.com:443/', 'api.example.com'] });
  assert.equal(same.hex, api.hex);
  const two = await computeMeasurement(EGRESS_HANDLER, { egress: ['b.example.com', 'api.example.com'] });
  assert.equal((await computeMeasurement(EGRESS_HANDLER, { egress: ['api.example.com', 'b.example.com'] })).hex, two.hex, 'order does not matter');
  assert.notEqual(two.hex, api.hex);
  assert.notEqual((await computeMeasurement(EGRESS_HANDLER, { egress: ['http://api.example.com'] })).hex, api.hex, 'http is another origin');
  assert.notEqual((await computeMeasurement(EGRESS_HANDLER, { egress: ['api.example.com:8443'] })).hex, api.hex, 'another port is another origin');
  assert.deepEqual(canonicalEgress(['127.0.0.1:8080', 'http://127.0.0.1:8080', 'xn--bcher-kva.example', 'bücher.example']), [
    'http://127.0.0.1:8080',
    'https://127.0.0.1:8080',
    'https://xn--bcher-kva.example',
  ]);
  for (const bad of ['*.example.com', 'ftp://example.com', 'https://example.com/path', 'https://user:pw@example.com', '', 'exa mple.com']) {
    assert.throws(() => canonicalEgress([bad]), (e: unknown) => isParleyError(e, 'USAGE') && e.details?.reason === 'egressEntry', bad);
    await assert.rejects(computeMeasurement(EGRESS_HANDLER, { egress: [bad] }), (e: unknown) => isParleyError(e, 'USAGE'), bad);
  }
});

test('B7: ctx.fetch reaches the origins of the policy only; the handler has no other way out', { timeout: 120_000 }, async (t) => {
  const dir = tempDir(t);
  const service = await startService();
  t.after(() => service.close());
  const relay = await startRelay();
  t.after(() => relay.close());
  const egress = [service.origin];
  const { bot } = await startBot(relay, dir, { handler: EGRESS_HANDLER, egress });
  t.after(() => bot.close());
  assert.equal(bot.measurement, (await computeMeasurement(EGRESS_HANDLER, { egress })).hex, 'the enclave measured the policy it enforces');
  assert.notEqual(bot.measurement, (await computeMeasurement(EGRESS_HANDLER)).hex);

  const customer = await Customer.connect(relay.url);
  t.after(() => customer.close());
  const ask = async (text: string): Promise<Record<string, unknown>> => {
    const before = customer.replies.length;
    await customer.send(bot.deviceId, text);
    await waitFor(() => customer.replies.length > before, 20_000, `reply to ${text}`);
    return customer.replies[before]!.json as Record<string, unknown>;
  };
  const p = service.port;

  // Inside the policy: GET, POST, a redirect that stays inside.
  assert.deepEqual(await ask(`fetch ${service.origin}/hello`), { status: 200, url: `${service.origin}/hello`, body: 'hello' });
  assert.deepEqual(await ask(`post ${service.origin}/hello`), { status: 200, url: `${service.origin}/hello`, body: 'posted' });
  assert.deepEqual(await ask(`fetch ${service.origin}/redirect-in`), { status: 200, url: `${service.origin}/hello`, body: 'hello' });

  // Outside: another host name for the same server, https instead of http, a redirect out.
  const hits = service.seen.length;
  const outside = await ask(`fetch http://localhost:${p}/hello`);
  assert.deepEqual(outside.error, {
    code: 'FORBIDDEN',
    reason: 'egress',
    host: `localhost:${p}`,
    message: `ctx.fetch to http://localhost:${p} is outside the bot's egress policy: add http://localhost:${p} to the egress option (the measurement changes, so clients must pin the new one)`,
  });
  assert.equal(service.seen.length, hits, 'a refused request never leaves the enclave');
  const https = (await ask(`fetch https://127.0.0.1:${p}/hello`)).error as Record<string, unknown>;
  assert.equal(https.code, 'FORBIDDEN');
  assert.equal(https.host, `127.0.0.1:${p}`);
  const redirected = (await ask(`fetch ${service.origin}/redirect-out`)).error as Record<string, unknown>;
  assert.equal(redirected.code, 'FORBIDDEN', 'the redirect target is checked too');
  assert.equal(redirected.host, `localhost:${p}`);
  assert.equal(service.seen.filter((r) => r.headers.host?.startsWith('localhost')).length, 0, 'no request reached a host outside the policy');
  const big = (await ask(`fetch ${service.origin}/big`)).error as Record<string, unknown>;
  assert.equal(big.code, 'PAYLOAD_TOO_LARGE');

  // Every other way out is refused, with the error saying what to use.
  const probe = await ask('probe');
  const usage = (name: string, mentions: RegExp): void => {
    const o = probe[name] as { code?: string; message: string } | 'allowed';
    assert.ok(o !== 'allowed', `${name} is refused`);
    assert.equal(o.code, 'USAGE', `${name}: ${JSON.stringify(o)}`);
    assert.match(o.message, mentions, name);
  };
  usage('globalFetch', /ctx\.fetch/);
  usage('fs', /node:fs/);
  usage('fsBare', /node:fs/);
  usage('fsPromises', /node:fs\/promises/);
  usage('childProcess', /node:child_process/);
  usage('net', /node:net/);
  usage('http', /node:http/);
  assert.equal(probe.module, 'allowed', 'node:module loads (createRequire, isBuiltin, builtinModules)…');
  usage('moduleRegister', /no register/);
  usage('cjsRegister', /module\.register/);
  usage('vm', /node:vm/);
  usage('requireFs', /ctx\.state/);
  usage('worker', /Worker/);
  usage('processBinding', /process\.binding/);
  usage('getBuiltinModule', /process\.getBuiltinModule/);
  usage('dlopen', /process\.dlopen/);
  usage('kill', /process\.kill/);
  assert.equal(probe.crypto, 'allowed', 'built-ins without I/O stay available');
  await customer.send(bot.deviceId, 'hello');
  await waitFor(() => customer.replies.at(-1)?.text === 'echo:hello', 20_000, 'the handler still answers');
  assert.equal(bot.stats.crashes, 0);
});

test('B7: a handler that imports a refused built-in is refused at start, naming it and what to use', { timeout: 60_000 }, async (t) => {
  const dir = tempDir(t);
  const relay = await startRelay();
  t.after(() => relay.close());
  const handler = new URL('./fixtures/imports-fs-handler.mjs', import.meta.url);
  await assert.rejects(startBot(relay, dir, { handler }), (e: unknown) => {
    assert.ok(isParleyError(e, 'USAGE'), String(e));
    assert.equal(e.details?.reason, 'sandbox');
    assert.match(e.message, /node:fs.*ctx\.state/);
    return true;
  });
});
