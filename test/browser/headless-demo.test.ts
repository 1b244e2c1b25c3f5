/**
 * The README's headless demo command (`serve.ts --headless`), as CI runs it: builds the widget,
 * starts relay and bot, runs the scripted conversation in Chromium and exits 0.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
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
  } finally {
    data.cleanup();
  }
});
