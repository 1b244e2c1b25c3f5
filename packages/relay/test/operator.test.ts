/**
 * The relay operator never meets a silent failure (issue 11): login refusals name their reason
 * on both sides (origin mismatch with both origins, unknown vs revoked API key, clock skew) and
 * in the log (reason, key id, address; never the key); a revoked bot is disconnected; `/metrics`
 * on an admin listener behind a bearer token with process metrics; and the CLIs: one-line
 * start-up errors, no accidental databases, one relay per SQLite file, mode 0600, `--version`,
 * the ready file, limits from the environment, `parley-org inspect` failing on a bad certificate.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { relayAuthPayload } from '@parley/protocol/wire';
import { isParleyError, orgCertificateToBase64, signOrgCertificate, generateOrgKey, toHex } from '../../protocol/src/index.js';
import { RelayLink } from '../../relay-link/src/index.js';
import { createApiKey, type Relay } from '../src/index.js';
import { answer, call, disconnected, login, newDevice, open, setupCrypto, startRelay } from './helpers.js';

const relayBin = join(import.meta.dirname, '..', 'bin', 'parley-relay.mjs');
const orgBin = join(import.meta.dirname, '..', '..', 'client', 'bin', 'parley-org.mjs');
const TOKEN = 'metrics-token-0123456789abcdef';

let relay: Awaited<ReturnType<typeof startRelay>>;
let dir: string;
before(async () => {
  await setupCrypto();
  dir = mkdtempSync(join(tmpdir(), 'parley-operator-'));
  relay = await startRelay({ limits: { apiKeyCheckIntervalMs: 100 }, metrics: { port: 0, token: TOKEN } });
});
after(async () => {
  await relay.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Sends one auth answer on a fresh socket; returns the relay's error. */
async function refusal(build: (hello: Parameters<typeof answer>[1]) => unknown) {
  const { socket, hello } = await open(relay.url);
  const r = await call(socket, 'auth', build(hello));
  socket.disconnect();
  assert.equal(r.ok, false);
  return r.error as { code: string; message: string; details?: Record<string, unknown> };
}

/** The relay's JSON log lines with `event: authFailed`. */
const failedLogins = () => relay.logs().split('\n').filter((l) => l.includes('"authFailed"')).map((l) => JSON.parse(l) as Record<string, unknown>);

test('origin mismatch: the relay refuses with reason origin and both origins, through the link too, and logs it the same way', async () => {
  const port = relay.port;
  const dialled = `http://localhost:${port}`;
  assert.equal(relay.origin, `http://127.0.0.1:${port}`);
  const device = newDevice();
  // The raw answer, as any client sends it: the origin it signed rides along.
  const error = await refusal((h) => ({ ...answer(device, h, dialled), origin: dialled }));
  assert.equal(error.code, 'UNAUTHENTICATED');
  assert.deepEqual(error.details, { reason: 'origin', expectedOrigin: relay.origin, signedOrigin: dialled });
  assert.match(error.message, new RegExp(`dialled ${dialled} but this relay's origin is ${relay.origin}: dial the relay's origin, or start the relay with --origin`));

  // The device side: RelayLink signs the origin it was given and passes the relay's error through.
  const link = new RelayLink({
    url: relay.url,
    origin: dialled,
    connectTimeoutMs: 5000,
    credentials: {
      answer: (c) => {
        const clientNonce = new Uint8Array(randomBytes(32));
        const timestamp = Date.now();
        const payload = relayAuthPayload({ serverNonce: c.serverNonce, clientNonce, origin: c.origin, timestamp, deviceId: device.deviceId });
        return { identity: device.publicIdentity, clientNonce, timestamp, signature: device.sign('relayAuth', payload) };
      },
    },
  });
  try {
    const e = await link.connect().then(() => undefined, (x: unknown) => x);
    assert.ok(isParleyError(e, 'UNAUTHENTICATED'), String(e));
    assert.equal(e.details?.reason, 'origin');
    assert.equal(e.details?.expectedOrigin, relay.origin);
    assert.equal(e.details?.signedOrigin, dialled);
    assert.ok(e.message.includes(relay.origin) && e.message.includes(dialled), e.message);
  } finally {
    await link.close();
  }

  const logged = failedLogins().filter((l) => l['reason'] === 'origin');
  assert.equal(logged.length, 2);
  assert.equal(logged[0]!['expectedOrigin'], relay.origin);
  assert.equal(logged[0]!['signedOrigin'], dialled);
  assert.equal(logged[0]!['address'], '127.0.0.1');
  assert.match(String(logged[0]!['msg']), /dialled http:\/\/localhost:\d+ but this relay's origin is http:\/\/127\.0\.0\.1:\d+/);

  // An old client (no origin field) signing the wrong origin: still refused, as a bad signature with a hint.
  const old = await refusal((h) => answer(device, h, dialled));
  assert.equal(old.details?.['reason'], 'signature');
  assert.match(old.message, /another origin than http:\/\/127\.0\.0\.1/);
  // A right origin named but a bad signature: signature.
  const forged = await refusal((h) => ({ ...answer(device, h, relay.origin, { signer: newDevice() }), origin: relay.origin }));
  assert.equal(forged.details?.['reason'], 'signature');
});

test('refusal reasons: clock skew (with skewMs), malformed answer; the log has the reason and the address', async () => {
  const d = newDevice();
  const skew = await refusal((h) => answer(d, h, relay.origin, { timestamp: Date.now() - 120_000 }));
  assert.equal(skew.details?.['reason'], 'clockSkew');
  assert.ok(Math.abs(Number(skew.details?.['skewMs']) + 120_000) < 5000);
  assert.match(skew.message, /clock is -12\d s off/);
  assert.equal((await refusal(() => ({ nonsense: true }))).details?.['reason'], 'malformed');
  const last = failedLogins().at(-1)!;
  assert.equal(last['reason'], 'malformed');
  assert.equal(last['address'], '127.0.0.1');
});

test('API keys: an unknown key and a revoked key are told apart; the log has the key id and address, never the key', async () => {
  const { id, key } = await createApiKey(relay.store, 'bot');
  const bot = newDevice();
  const ok = await login(relay, bot, { apiKey: key });
  assert.equal(ok.auth.role, 'bot');
  ok.socket.disconnect();

  const unknownKey = `prk_${'ab'.repeat(8)}_${randomBytes(32).toString('base64url')}`;
  const unknown = await refusal((h) => answer(bot, h, relay.origin, { apiKey: unknownKey }));
  assert.equal(unknown.details?.['reason'], 'apiKey');

  assert.equal(await relay.store.revokeApiKey(id, Date.now()), true);
  const revoked = await refusal((h) => answer(bot, h, relay.origin, { apiKey: key }));
  assert.equal(revoked.code, 'UNAUTHENTICATED');
  assert.equal(revoked.details?.['reason'], 'apiKeyRevoked');
  assert.match(revoked.message, new RegExp(`${id} was revoked`));

  const logs = failedLogins();
  const u = logs.find((l) => l['reason'] === 'apiKey')!;
  assert.equal(u['keyId'], 'ab'.repeat(8));
  assert.equal(u['address'], '127.0.0.1');
  const r = logs.find((l) => l['reason'] === 'apiKeyRevoked')!;
  assert.equal(r['keyId'], id);
  const secret = key.slice(key.lastIndexOf('_') + 1);
  assert.ok(!relay.logs().includes(secret), 'the key never reaches the log');
  assert.ok(!relay.logs().includes(unknownKey.slice(-43)), 'nor an unknown one');
});

test('a bot whose key is revoked while connected is told (apiKeyRevoked) and disconnected', async () => {
  const { id, key } = await createApiKey(relay.store, 'doomed bot');
  const { socket } = await login(relay, newDevice(), { apiKey: key });
  const pushed: { code: string; details?: Record<string, unknown> }[] = [];
  socket.on('relayError', (e) => pushed.push(e as (typeof pushed)[number]));
  await relay.store.revokeApiKey(id, Date.now());
  assert.ok(await disconnected(socket, 3000), 'dropped within apiKeyCheckIntervalMs');
  assert.deepEqual(pushed.map((e) => [e.code, e.details?.['reason']]), [['UNAUTHENTICATED', 'apiKeyRevoked']]);
  assert.match(relay.logs(), new RegExp(`"event":"apiKeyRevoked","keyId":"${id}"`));
});

test('/metrics: only on the admin listener, behind the bearer token, with process metrics and failed logins by reason', async () => {
  assert.equal((await fetch(`${relay.url}/metrics`)).status, 404, 'not on the public listener');
  assert.notEqual(relay.metricsUrl, `${relay.url}/metrics`);
  assert.equal((await fetch(relay.metricsUrl)).status, 401);
  const wrong = await fetch(relay.metricsUrl, { headers: { authorization: 'Bearer nope' } });
  assert.equal(wrong.status, 401);
  assert.equal(wrong.headers.get('www-authenticate')?.startsWith('Bearer'), true);
  const res = await fetch(relay.metricsUrl, { headers: { authorization: `Bearer ${TOKEN}` } });
  assert.equal(res.status, 200);
  const text = await res.text();
  assert.match(text, /^process_cpu_seconds_total \d/m);
  assert.match(text, /^nodejs_eventloop_lag_seconds /m);
  assert.match(text, /^parley_relay_auth_failures_total\{reason="origin"\} 2$/m);
  assert.match(text, /^parley_relay_auth_failures_total\{reason="apiKeyRevoked"\} 1$/m);
});

// ---- the CLIs, as child processes --------------------------------------------------------------

interface Run { code: number | null; stdout: string; stderr: string }
function runAsync(bin: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args], { env: { ...process.env, ...env }, timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

/** One line on stderr, exit code ≠ 0, no stack frames. */
function oneLine(r: Run, pattern: RegExp): void {
  assert.notEqual(r.code, 0);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0]!, pattern);
  assert.doesNotMatch(r.stderr, /^\s+at /m);
}

async function serve(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ child: ChildProcess; line: string }> {
  const child = spawn(process.execPath, [relayBin, 'serve', '--log-level', 'silent', ...args], {
    env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`serve exited (${code})`)));
  });
  return { child, line };
}

test('CLI: --port 0 with --ready-file, limits and the metrics token from the environment, one relay per database, mode 0600', async () => {
  const db = join(dir, 'relay.db');
  const ready = join(dir, 'ready.json');
  const { child, line } = await serve(['--port', '0', '--db', db, '--ready-file', ready, '--metrics-port', '0'], {
    PARLEY_RELAY_MAX_SOCKETS_PER_DEVICE: '1',
    PARLEY_RELAY_METRICS_TOKEN: TOKEN,
  });
  try {
    const info = JSON.parse(readFileSync(ready, 'utf8')) as { url: string; origin: string; port: number; metricsUrl: string; pid: number };
    assert.match(line, /^parley-relay listening on http:\/\/127\.0\.0\.1:\d+ \(origin http:\/\/127\.0\.0\.1:\d+\)$/);
    assert.equal(line, `parley-relay listening on ${info.url} (origin ${info.origin})`);
    assert.equal(info.pid, child.pid);
    assert.equal(new URL(info.url).port, String(info.port));
    assert.notEqual(info.port, 0);

    // The URL works, and PARLEY_RELAY_MAX_SOCKETS_PER_DEVICE=1 took effect.
    const d = newDevice();
    const first = await login({ url: info.url, origin: info.origin } as Relay, d);
    await assert.rejects(login({ url: info.url, origin: info.origin } as Relay, d), /RATE_LIMITED/);
    first.socket.disconnect();
    assert.equal((await fetch(info.metricsUrl)).status, 401);
    assert.equal((await fetch(info.metricsUrl, { headers: { authorization: `Bearer ${TOKEN}` } })).status, 200);

    for (const f of [db, `${db}-wal`, `${db}-shm`, `${db}.lock`]) assert.equal(statSync(f).mode & 0o777, 0o600, f);

    const busy = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => resolve((s.address() as { port: number }).port));
      after(() => s.close());
    });
    const [second, portInUse, apikeyBeside] = await Promise.all([
      runAsync(relayBin, ['serve', '--port', '0', '--db', db]),
      runAsync(relayBin, ['serve', '--port', String(busy), '--db', join(dir, 'other.db')]),
      runAsync(relayBin, ['apikey', 'create', '--db', db, '--label', 'beside']),
    ]);
    oneLine(second, new RegExp(`^parley-relay: the database ${db.replace(/[.]/g, '[.]')} is in use by another relay`));
    oneLine(portInUse, new RegExp(`^parley-relay: 127\\.0\\.0\\.1:${busy} is already in use .*choose another --port$`));
    assert.equal(apikeyBeside.code, 0, apikeyBeside.stderr);
    assert.match(apikeyBeside.stdout, /^id: {2}[0-9a-f]{16}$/m);
  } finally {
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    assert.equal(await exited, 0);
  }
  assert.equal(existsSync(ready), false, 'the ready file goes with the relay');
});

test('CLI: one-line errors for missing and mismatched TLS files and a missing database folder; apikey refuses a missing --db', async (t) => {
  let cert: string;
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1',
      '-subj', '/CN=127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
    cert = join(dir, 'cert.pem');
  } catch {
    t.skip('openssl not available');
    return;
  }
  const otherKey = join(dir, 'other-key.pem');
  writeFileSync(otherKey, generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
  const db = join(dir, 'tls.db');
  const missing = join(dir, 'no-such-folder', 'relay.db');
  const [noCert, mismatch, noFolder, noDb, created] = await Promise.all([
    runAsync(relayBin, ['serve', '--port', '0', '--db', db, '--tls-cert', join(dir, 'nope.pem'), '--tls-key', otherKey]),
    runAsync(relayBin, ['serve', '--port', '0', '--db', db, '--tls-cert', cert, '--tls-key', otherKey]),
    runAsync(relayBin, ['serve', '--port', '0', '--db', missing]),
    runAsync(relayBin, ['apikey', 'list', '--db', join(dir, 'typo.db')]),
    runAsync(relayBin, ['apikey', 'create', '--create', '--db', join(dir, 'new.db')]),
  ]);
  oneLine(noCert, /^parley-relay: cannot read --tls-cert .*nope\.pem: no such file$/);
  oneLine(mismatch, /^parley-relay: --tls-key .*other-key\.pem is not the key of --tls-cert .*cert\.pem \(they do not match\)$/);
  oneLine(noFolder, /^parley-relay: the database folder .*no-such-folder does not exist/);
  oneLine(noDb, /^parley-relay: no database at .*typo\.db: .*--create/);
  assert.equal(existsSync(join(dir, 'typo.db')), false, 'no accidental database');
  assert.equal(created.code, 0, created.stderr);
  assert.equal(statSync(join(dir, 'new.db')).mode & 0o777, 0o600);
});

test('CLI: --version for parley-relay and parley-org; parley-org inspect exits 1 for a corrupted or expired certificate', async () => {
  const org = generateOrgKey();
  const device = newDevice();
  const sign = (expiresAt: number) => signOrgCertificate(org.seed, { role: 'bot', label: 'support', ...device.publicIdentity, expiresAt });
  const good = sign(Date.now() + 86_400_000);
  const corrupted = good.slice();
  corrupted[corrupted.length - 1]! ^= 1; // the signature's last byte
  const orgKey = ['--org-key-public', toHex(org.publicKey)];
  const relayVersion = JSON.parse(readFileSync(join(import.meta.dirname, '..', 'package.json'), 'utf8')).version as string;
  const [rv, ov, ok, bad, expired] = await Promise.all([
    runAsync(relayBin, ['--version']),
    runAsync(orgBin, ['--version']),
    runAsync(orgBin, ['inspect', orgCertificateToBase64(good), ...orgKey]),
    runAsync(orgBin, ['inspect', orgCertificateToBase64(corrupted), ...orgKey]),
    runAsync(orgBin, ['inspect', orgCertificateToBase64(sign(Date.now() - 1000))]),
  ]);
  assert.equal(rv.stdout.trim(), relayVersion);
  assert.match(ov.stdout.trim(), /^\d+\.\d+\.\d+/);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(JSON.parse(ok.stdout).valid, true);
  assert.equal(bad.code, 1);
  assert.equal(JSON.parse(bad.stdout).valid, false);
  oneLine(bad, /^parley-org: the certificate is not valid \(signature\)$/);
  assert.equal(expired.code, 1);
  assert.equal(JSON.parse(expired.stdout).reason, 'expired');
});
