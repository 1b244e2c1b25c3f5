/** The `parley-relay` CLI: --help, apikey create/list/revoke, serve with env vars, clean SIGTERM. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { SqliteStore, hashApiKey } from '../src/index.js';

const bin = join(import.meta.dirname, '..', 'bin', 'parley-relay.mjs');
const run = (args: string[], env: NodeJS.ProcessEnv = {}) =>
  execFileSync(process.execPath, [bin, ...args], { encoding: 'utf8', env: { ...process.env, ...env } });

test('CLI: --help lists serve and apikey; serve --help lists every flag with its env var', () => {
  assert.match(run(['--help']), /serve[\s\S]*apikey/);
  const help = run(['serve', '--help']);
  for (const flag of ['--port', '--host', '--db', '--origin', '--tls-cert', '--tls-key', '--log-level', 'PARLEY_RELAY_PORT']) {
    assert.ok(help.includes(flag), flag);
  }
});

test('CLI: apikey create prints the key once, stores only its hash; list and revoke work', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'parley-cli-'));
  try {
    const db = join(dir, 'relay.db');
    const out = run(['apikey', 'create', '--db', db, '--label', 'support bot']);
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
