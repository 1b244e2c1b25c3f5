/**
 * The `parley-relay` CLI: --help, apikey create/list/revoke, serve with env vars, clean SIGTERM;
 * `--limit` overrides and the plain-HTTP warning (issue 10, Info).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { SqliteStore, hashApiKey } from '../src/index.js';
import { isLoopback, parseLimits, plainHttpWarning } from '../src/cli-options.js';
import type { Relay } from '../src/index.js';
import { login, newDevice, setupCrypto } from './helpers.js';

const bin = join(import.meta.dirname, '..', 'bin', 'parley-relay.mjs');
const run = (args: string[], env: NodeJS.ProcessEnv = {}) =>
  execFileSync(process.execPath, [bin, ...args], { encoding: 'utf8', env: { ...process.env, ...env } });

test('CLI: --help lists serve and apikey; serve --help lists every flag with its env var', () => {
  assert.match(run(['--help']), /serve[\s\S]*apikey/);
  const help = run(['serve', '--help']);
  for (const flag of ['--port', '--host', '--db', '--origin', '--tls-cert', '--tls-key', '--log-level', 'PARLEY_RELAY_PORT', '--limit', 'PARLEY_RELAY_LIMITS']) {
    assert.ok(help.includes(flag), flag);
  }
});

test('CLI: apikey create prints the key once, stores only its hash; list and revoke work', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'parley-cli-'));
  try {
    const db = join(dir, 'relay.db');
    const out = run(['apikey', 'create', '--db', db, '--create', '--label', 'support bot']);
    const id = /id:\s+(\S+)/.exec(out)![1]!;
    const key = /key:\s+(\S+)/.exec(out)![1]!;
    assert.match(run(['apikey', 'list'], { PARLEY_RELAY_DB: db }), new RegExp(`${id}.*active.*support bot`));
    const store = new SqliteStore(db);
    assert.equal((await store.findApiKey(hashApiKey(key)))?.id, id);
    await store.close();
    assert.match(run(['apikey', 'revoke', '--db', db, id]), /revoked/);
    assert.match(run(['apikey', 'list', '--db', db]), /revoked/);
    assert.throws(() => execFileSync(process.execPath, [bin, 'apikey', 'revoke', '--db', db, id], { stdio: 'pipe' }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('CLI: serve listens on 127.0.0.1 (port from PARLEY_RELAY_PORT), answers /healthz, exits 0 on SIGTERM', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'parley-cli-'));
  try {
    const child = spawn(process.execPath, [bin, 'serve', '--db', join(dir, 'relay.db'), '--log-level', 'silent'], {
      env: { ...process.env, PARLEY_RELAY_PORT: '0' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const line = await new Promise<string>((resolve) => createInterface({ input: child.stdout! }).once('line', resolve));
    const url = /listening on (\S+)/.exec(line)![1]!;
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.equal((await fetch(`${url}/healthz`)).status, 200);
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    assert.equal(await exited, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('CLI: --limit parses name=value (repeatable, comma-separated in the env) and refuses unknown names and bad values', () => {
  assert.deepEqual(parseLimits(['maxSocketsPerDevice=4', 'queueTtlMs=86400000,maxQueuePerPair=500']), {
    maxSocketsPerDevice: 4, queueTtlMs: 86_400_000, maxQueuePerPair: 500,
  });
  assert.throws(() => parseLimits(['noSuchLimit=1']), /noSuchLimit=1: expected name=value with one of .*maxSocketsPerDevice/);
  assert.throws(() => parseLimits(['maxSocketsPerDevice']), /expected name=value/);
  assert.throws(() => parseLimits(['maxSocketsPerDevice=lots']), /must be a number/);
  assert.throws(() => parseLimits(['__proto__=1']), /expected name=value/);
  // End to end: a bad value stops `serve` before it listens, with the reason.
  const dir = mkdtempSync(join(tmpdir(), 'parley-cli-'));
  try {
    for (const [args, reason] of [
      [['--limit', 'maxSocketsPerDevice=none'], /must be a number/],
      [['--limit', 'maxSocketsPerDevice=0'], /maxSocketsPerDevice must be a number ≥ 1/],
      [['--limit', 'queueReserve=20000'], /queueReserve must be below maxQueuePerDevice/],
    ] as const) {
      let stderr = '';
      assert.throws(() => {
        try {
          execFileSync(process.execPath, [bin, 'serve', '--db', join(dir, 'relay.db'), '--log-level', 'silent', ...args], { stdio: 'pipe', encoding: 'utf8' });
        } catch (e) {
          stderr = String((e as { stderr?: string }).stderr);
          throw e;
        }
      });
      assert.match(stderr, reason);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('CLI: plain HTTP beyond loopback gets a warning; TLS, loopback, or an https origin (proxy) do not', () => {
  for (const host of ['127.0.0.1', '127.0.0.2', 'localhost', '::1', '[::1]', '::ffff:127.0.0.1']) assert.ok(isLoopback(host), host);
  for (const host of ['0.0.0.0', '::', '10.0.0.5', '192.168.1.2', 'relay.example.com']) assert.ok(!isLoopback(host), host);
  assert.match(plainHttpWarning('0.0.0.0', false) ?? '', /plain HTTP on 0\.0\.0\.0.*--tls-cert/);
  assert.match(plainHttpWarning('10.0.0.5', false, 'http://10.0.0.5:8080') ?? '', /WARNING/);
  assert.equal(plainHttpWarning('0.0.0.0', true), undefined);
  assert.equal(plainHttpWarning('127.0.0.1', false), undefined);
  assert.equal(plainHttpWarning('0.0.0.0', false, 'https://relay.example.com'), undefined);
});

test('CLI: serve on loopback with PARLEY_RELAY_LIMITS starts without a warning and applies the limits', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'parley-cli-'));
  try {
    const child = spawn(process.execPath, [bin, 'serve', '--port', '0', '--db', join(dir, 'relay.db'), '--log-level', 'silent'], {
      env: { ...process.env, PARLEY_RELAY_LIMITS: 'maxSocketsPerDevice=1,connectBurst=100' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
    const line = await new Promise<string>((resolve) => createInterface({ input: child.stdout! }).once('line', resolve));
    const url = /listening on (\S+)/.exec(line)![1]!;
    assert.equal((await fetch(`${url}/healthz`)).status, 200);
    await setupCrypto();
    const relay = { url, origin: new URL(url).origin } as Relay;
    const d = newDevice();
    const first = await login(relay, d);
    await assert.rejects(login(relay, d), /RATE_LIMITED/, 'maxSocketsPerDevice=1 from PARLEY_RELAY_LIMITS');
    first.socket.disconnect();
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    assert.equal(await exited, 0);
    assert.doesNotMatch(stderr, /WARNING/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
