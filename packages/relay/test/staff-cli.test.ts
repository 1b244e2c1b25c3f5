/**
 * `parley-relay serve --org-key` / `PARLEY_RELAY_ORG_KEY`: the relay takes revocation lists of
 * that org (and only with a key); a malformed key ends the process with one line.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setupCrypto } from './helpers.js';
import { newOrg, postList } from './staff-helpers.js';

await setupCrypto();
const bin = join(import.meta.dirname, '..', 'bin', 'parley-relay.mjs');

test('CLI: PARLEY_RELAY_ORG_KEY enables revocation lists of that org; a malformed --org-key is one line and exit 1', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'parley-cli-staff-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const org = newOrg();
  const child = spawn(process.execPath, [bin, 'serve', '--db', join(dir, 'relay.db'), '--port', '0', '--log-level', 'silent'], {
    env: { ...process.env, PARLEY_RELAY_ORG_KEY: Buffer.from(org.orgKey).toString('hex') },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  try {
    const line = await new Promise<string>((resolve) => createInterface({ input: child.stdout! }).once('line', resolve));
    const url = /listening on (\S+)/.exec(line)![1]!;
    assert.equal(await postList(url, org.revocations({ devices: ['ab'.repeat(16)] })), 204);
    assert.equal(await postList(url, newOrg().revocations({ sequence: 5 })), 400, 'another org');
  } finally {
    child.kill('SIGTERM');
    await exited;
  }
  const bad = spawnSync(process.execPath, [bin, 'serve', '--db', join(dir, 'relay.db'), '--port', '0', '--org-key', 'not-hex'], { encoding: 'utf8' });
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /^parley-relay: invalid --org-key: expected the org root public key as 64 hex characters/);
  assert.equal(bad.stderr.trim().split('\n').length, 1);
});
