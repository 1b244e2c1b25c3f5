/**
 * The client SDK bundle-size report (examples/web/bundle-size.ts) builds for both backends, and
 * the pure-JS bundle really leaves libsodium and its WebAssembly out.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { measureBundle } from '../../examples/web/bundle-size.js';

test('client SDK bundle: sodium carries WebAssembly, noble carries none and is smaller', async () => {
  const sodium = await measureBundle('sodium');
  const noble = await measureBundle('noble');
  assert.equal(sodium.hasWasm, true);
  assert.equal(noble.hasWasm, false);
  assert.ok(noble.initial.gzip < sodium.initial.gzip);
  assert.ok(noble.initial.gzip > 10_000, 'the SDK is in the bundle');
  console.log(`sodium ${sodium.initial.raw} B (gzip ${sodium.initial.gzip} B); noble ${noble.initial.raw} B (gzip ${noble.initial.gzip} B)`);
});
