/**
 * The README's headless demo command (`serve.ts --headless`), as CI runs it: builds the widget,
 * starts relay and bot, runs the scripted conversation in Chromium and exits 0. The demo runs
 * with the compliance archive on (its default): `parley-compliance` then verifies the chain in
 * the demo's relay database and opens it with the demo's compliance key.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { skipWithoutChromium, tempDir } from './helpers.js';

const root = fileURLToPath(new URL('../../', import.meta.url));

test('serve.ts --headless runs the scripted conversation and exits 0', { skip: skipWithoutChromium, timeout: 120_000 }, async () => {
  const data = tempDir('parley-headless-');
  try {
    const child = spawn(process.execPath, ['--import', 'tsx', 'examples/web/serve.ts', '--headless', '--data-dir', data.dir], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    assert.equal(code, 0, out);
    assert.match(out, /bot verified/);
    assert.match(out, /Thanks, Jane Doe-Headless/);
    assert.match(out, /none holds any of the conversation's plaintext/);
    assert.match(out, /headless demo: OK/);

    // Both sides archived the conversation; the CLI verifies the chain and opens it (audited).
    const compliance = (...args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', 'packages/relay/src/compliance/bin.ts', ...args], { cwd: root, encoding: 'utf8' });
    const db = join(data.dir, 'relay.db');
    const verify = compliance('verify', '--db', db, '--json');
    assert.equal(verify.status, 0, verify.stderr);
    const chains = JSON.parse(verify.stdout) as { ref: string; ok: boolean }[];
    assert.equal(chains.length, 1, 'one archived conversation');
    assert.equal(chains[0]!.ok, true);
    const audit = join(data.dir, 'audit.log');
    const opened = compliance('open', '--db', db, '--key', join(data.dir, 'compliance-key.json'), '--audit', audit, '--opener', 'CI', '--reason', 'headless demo test', '--ref', chains[0]!.ref);
    assert.equal(opened.status, 0, opened.stderr);
    assert.match(opened.stdout, /Where is order 1042\?/, "the customer's message");
    assert.match(opened.stdout, /Thanks, Jane Doe-Headless/, "the bot's reply");
    const senders = new Set([...opened.stdout.matchAll(/^#\d+ \S+ ([0-9a-f]{32}):/gm)].map((m) => m[1]));
    assert.equal(senders.size, 2, 'customer and bot each sealed their own messages');
    assert.equal(readFileSync(audit, 'utf8').trim().split('\n').length, 1, 'the opening is in the audit log');
  } finally {
    data.cleanup();
  }
});
