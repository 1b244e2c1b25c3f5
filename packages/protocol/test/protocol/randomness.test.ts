/**
 * Keys and nonces come from the CSPRNG when they are needed (audit finding 3): no pool filled in
 * advance, so a memory snapshot holds no key or nonce made after it, and a restored VM snapshot
 * repeats none. Every backend's `randomBytes(n)` is one CSPRNG draw of exactly `n` bytes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadBackend, type BackendName } from '../../src/index.js';

/** Counts the bytes each WebCrypto draw asks for while `fn` runs. */
function recordDraws(fn: () => void): number[] {
  const draws: number[] = [];
  const original = globalThis.crypto.getRandomValues.bind(globalThis.crypto);
  const spy = (array: Uint8Array): Uint8Array => {
    draws.push(array.byteLength);
    return original(array);
  };
  Object.defineProperty(globalThis.crypto, 'getRandomValues', { value: spy, configurable: true, writable: true });
  try {
    fn();
  } finally {
    Object.defineProperty(globalThis.crypto, 'getRandomValues', { value: original, configurable: true, writable: true });
  }
  return draws;
}

for (const backend of ['node', 'sodium', 'noble'] as BackendName[]) {
  test(`${backend}: each randomBytes(n) is one fresh CSPRNG draw of exactly n bytes`, async () => {
    const c = await loadBackend(backend);
    const draws = recordDraws(() => {
      for (const n of [24, 24, 32, 48, 1]) c.randomBytes(n);
    });
    assert.deepEqual(draws, [24, 24, 32, 48, 1]);
    const a = c.randomBytes(32);
    const b = c.randomBytes(32);
    assert.notDeepEqual(a, b);
  });
}
