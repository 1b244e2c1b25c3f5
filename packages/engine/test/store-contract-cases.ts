/**
 * The `KeyValueStore` contract (packages/engine/src/store.ts) as a list of named async cases.
 *
 * Plain code with no Node imports, so the SAME cases run under node:test (see
 * `store-contract.ts`, the adapter) and inside a browser page bundled by Vite (see
 * test/browser/store-contract.test.ts, which runs them against `IndexedDbStore` in Chromium).
 * Assertions go through the tiny throwing helpers below instead of node:assert.
 *
 * What the contract promises (TSDoc of `KeyValueStore`):
 * - `get` returns the value as written, or `undefined` for a missing key;
 * - `setMany` writes every entry atomically and resolves once they are durable;
 * - `delMany` removes keys;
 * - `keys(prefix)` lists every key starting with `prefix`, in ANY order (so lists are compared
 *   sorted, but as arrays: a duplicate key in the answer is a failure too).
 * `MemoryStore` adds that values are copied in and out; every store must behave that way, since
 * the engine reuses buffers.
 */
import type { KeyValueStore } from '../src/store.js';

/** What a store factory hands to a case. */
export interface StoreHandle {
  /** A fresh, empty store. */
  readonly store: KeyValueStore;
  /**
   * Opens the store again from its durable state only (a new process would see exactly this),
   * releasing the current one first if it must. After it, {@link StoreHandle.close} releases the
   * reopened store. Absent for stores that keep nothing (MemoryStore).
   */
  readonly reopen?: () => Promise<KeyValueStore>;
  /** Releases the store (and whatever `reopen` opened) and removes its files or database. */
  readonly close?: () => Promise<void>;
}

/** Makes a fresh, empty store for one case. */
export type StoreFactory = () => Promise<StoreHandle>;

/** One contract case. */
export interface ContractCase {
  readonly name: string;
  /** The case is about durability: it cannot run without `reopen`. */
  readonly needsReopen?: boolean;
  readonly run: (h: StoreHandle) => Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Tiny expect helpers (throw an Error with a precise message).

export class ContractFailure extends Error {
  override name = 'ContractFailure';
}

function fail(message: string): never {
  throw new ContractFailure(message);
}

function show(v: unknown): string {
  if (v === undefined) return 'undefined';
  if (v instanceof Uint8Array) return `Uint8Array(${v.length})[${hexHead(v)}]`;
  return readable(JSON.stringify(v));
}

/** JSON text with invisible code units (controls, surrogates, U+FFF0..U+FFFF) escaped. */
function readable(json: string): string {
  return json.replace(/[\u007f-\u009f\ud800-\udfff\ufff0-\uffff]/gu, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function hexHead(b: Uint8Array, n = 16): string {
  let s = '';
  for (let i = 0; i < Math.min(b.length, n); i++) s += b[i]!.toString(16).padStart(2, '0');
  return b.length > n ? `${s}…` : s;
}

export function expectTrue(cond: boolean, what: string): void {
  if (!cond) fail(what);
}

export function expectUndefined(actual: unknown, what: string): void {
  if (actual !== undefined) fail(`${what}: expected undefined, got ${show(actual)}`);
}

/** `actual` is a Uint8Array holding exactly `expected`'s bytes. */
export function expectBytes(actual: unknown, expected: Uint8Array, what: string): void {
  if (actual === undefined) fail(`${what}: expected ${show(expected)}, got undefined (missing)`);
  if (!(actual instanceof Uint8Array)) fail(`${what}: expected a Uint8Array, got ${Object.prototype.toString.call(actual)}`);
  if (actual.length !== expected.length) fail(`${what}: expected ${expected.length} bytes, got ${actual.length} (${show(actual)})`);
  for (let i = 0; i < expected.length; i++) {
    if (actual[i] !== expected[i]) fail(`${what}: byte ${i} differs: expected ${expected[i]}, got ${actual[i]} (${show(actual)})`);
  }
}

/** The key list, sorted, equals `expected` sorted (keys() promises no order; duplicates fail). */
export function expectKeys(actual: string[], expected: string[], what: string): void {
  if (!Array.isArray(actual)) fail(`${what}: keys() did not return an array: ${show(actual)}`);
  const a = [...actual].sort();
  const e = [...expected].sort();
  if (a.length !== e.length || a.some((k, i) => k !== e[i])) fail(`${what}: expected keys ${readable(JSON.stringify(e))}, got ${readable(JSON.stringify(a))}`);
}

// ---------------------------------------------------------------------------------------------
// Test data.

/** `n` bytes of a deterministic non-constant pattern (no two neighbours equal, seeded). */
export function pattern(n: number, seed = 1): Uint8Array {
  const out = new Uint8Array(n);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

const bytes = (...b: number[]) => new Uint8Array(b);

/** Every key the store lists, checked against the values it must hold (and nothing else). */
async function expectExactly(store: KeyValueStore, expected: Record<string, Uint8Array>, what: string): Promise<void> {
  expectKeys(await store.keys(''), Object.keys(expected), `${what}: keys('')`);
  for (const [k, v] of Object.entries(expected)) expectBytes(await store.get(k), v, `${what}: get(${JSON.stringify(k)})`);
}

// ---------------------------------------------------------------------------------------------
// The cases.

export const storeContractCases: readonly ContractCase[] = [
  {
    name: 'get of a missing key is undefined (empty store, and next to similar keys)',
    async run({ store }) {
      expectUndefined(await store.get('nope'), 'get on an empty store');
      expectKeys(await store.keys(''), [], "keys('') of a fresh store");
      await store.setMany([['session/a/1', bytes(1)]]);
      expectUndefined(await store.get('session/a/2'), 'get of a sibling key');
      expectUndefined(await store.get('session/a/'), 'get of a prefix of a stored key');
      expectUndefined(await store.get('session/a/1/x'), 'get of a key extending a stored key');
      expectUndefined(await store.get('Session/a/1'), 'get differs by case');
      expectBytes(await store.get('session/a/1'), bytes(1), 'the stored key is still there');
    },
  },
  {
    name: 'setMany then get returns equal bytes',
    async run({ store }) {
      const v = pattern(100, 7);
      await store.setMany([['identity', v]]);
      expectBytes(await store.get('identity'), pattern(100, 7), 'get after setMany');
      expectBytes(await store.get('identity'), pattern(100, 7), 'a second get returns the same bytes');
      await store.setMany([['one', bytes(0xff)]]);
      expectBytes(await store.get('one'), bytes(0xff), 'a 1-byte value');
    },
  },
  {
    name: 'returned bytes are a copy: mutating the input after set, or a returned value, does not change the store',
    async run({ store }) {
      const input = pattern(64, 3);
      await store.setMany([['k', input]]);
      input.fill(0);
      input[0] = 0x99;
      expectBytes(await store.get('k'), pattern(64, 3), 'after mutating the buffer passed to setMany');
      const out1 = await store.get('k');
      expectBytes(out1, pattern(64, 3), 'first get');
      out1!.fill(0xee);
      expectBytes(await store.get('k'), pattern(64, 3), 'after mutating a value returned by get');
      const a = await store.get('k');
      const b = await store.get('k');
      a![5] = a![5]! ^ 0xff;
      expectBytes(b, pattern(64, 3), 'two gets return independent buffers');
    },
  },
  {
    name: 'a value that is a view into a larger buffer stores only the view bytes',
    async run({ store }) {
      const big = pattern(200, 11);
      const view = big.subarray(50, 80);
      await store.setMany([['view', view]]);
      expectBytes(await store.get('view'), pattern(200, 11).slice(50, 80), 'get of a subarray value (offset 50, length 30)');
      await store.setMany([['view0', big.subarray(0, 10)]]);
      expectBytes(await store.get('view0'), pattern(200, 11).slice(0, 10), 'get of a subarray value at offset 0, shorter than its buffer');
    },
  },
  {
    name: 'setMany with several entries writes them all; a later setMany overwrites only its keys',
    async run({ store }) {
      await store.setMany([
        ['a', bytes(1, 1)],
        ['b', bytes(2, 2)],
        ['c', bytes(3, 3)],
        ['d', pattern(40, 4)],
      ]);
      await expectExactly(store, { a: bytes(1, 1), b: bytes(2, 2), c: bytes(3, 3), d: pattern(40, 4) }, 'after the first batch');
      await store.setMany([
        ['b', bytes(20)],
        ['d', pattern(5, 40)],
        ['e', bytes(5)],
      ]);
      await expectExactly(store, { a: bytes(1, 1), b: bytes(20), c: bytes(3, 3), d: pattern(5, 40), e: bytes(5) }, 'after the overwriting batch');
      // Overwriting with a longer value (no truncation to the old length).
      await store.setMany([['b', pattern(300, 9)]]);
      expectBytes(await store.get('b'), pattern(300, 9), 'overwrite with a longer value');
    },
  },
  {
    name: 'setMany([]) and delMany([]) change nothing',
    async run({ store }) {
      await store.setMany([['x', bytes(9)]]);
      await store.setMany([]);
      await store.delMany([]);
      await expectExactly(store, { x: bytes(9) }, 'after empty batches');
    },
  },
  {
    name: 'delMany removes the keys, tolerates missing (and repeated) keys, and leaves the others',
    async run({ store }) {
      await store.setMany([
        ['m/1', bytes(1)],
        ['m/2', bytes(2)],
        ['m/3', bytes(3)],
        ['n/1', bytes(4)],
      ]);
      await store.delMany(['m/1', 'missing', 'm/3', 'm/3']);
      expectUndefined(await store.get('m/1'), 'get of a deleted key');
      expectUndefined(await store.get('m/3'), 'get of a deleted key');
      await expectExactly(store, { 'm/2': bytes(2), 'n/1': bytes(4) }, 'after delMany');
      await store.delMany(['never', 'was', 'here']);
      await expectExactly(store, { 'm/2': bytes(2), 'n/1': bytes(4) }, 'after a delMany of only missing keys');
      await store.delMany(['m/1']); // already deleted
      await expectExactly(store, { 'm/2': bytes(2), 'n/1': bytes(4) }, 'after deleting an already deleted key');
      await store.delMany(['m/2', 'n/1']);
      await expectExactly(store, {}, 'after deleting everything');
    },
  },
  {
    name: 'keys(prefix) returns exactly the keys with that prefix (no other prefixes, no deleted keys)',
    async run({ store }) {
      const all = ['session/a/1', 'session/a/2', 'session/b/1', 'sessions/x', 'session', 'sess', 'other/session/a', 'Session/a/1', 'outbox/1'];
      await store.setMany(all.map((k, i) => [k, bytes(i)]));
      expectKeys(await store.keys(''), all, "keys('') lists every key");
      expectKeys(await store.keys('session/'), ['session/a/1', 'session/a/2', 'session/b/1'], "keys('session/')");
      expectKeys(await store.keys('session/a/'), ['session/a/1', 'session/a/2'], "keys('session/a/')");
      expectKeys(await store.keys('session'), ['session/a/1', 'session/a/2', 'session/b/1', 'sessions/x', 'session'], "keys('session')");
      expectKeys(await store.keys('session/a/1'), ['session/a/1'], 'keys(a whole key)');
      expectKeys(await store.keys('s'), ['session/a/1', 'session/a/2', 'session/b/1', 'sessions/x', 'session', 'sess'], "keys('s') is case-sensitive");
      expectKeys(await store.keys('nope/'), [], 'keys of an unused prefix');
      expectKeys(await store.keys('session/c'), [], 'keys of a prefix between stored keys');
      await store.delMany(['session/a/2', 'sessions/x']);
      expectKeys(await store.keys('session/'), ['session/a/1', 'session/b/1'], "keys('session/') after delMany");
      expectKeys(await store.keys('session'), ['session/a/1', 'session/b/1', 'session'], "keys('session') after delMany");
      await store.setMany([['session/a/2', bytes(42)]]);
      expectKeys(await store.keys('session/a/'), ['session/a/1', 'session/a/2'], 'a re-set key is listed again');
    },
  },
  {
    name: 'an empty value (0-byte Uint8Array) round-trips and is present, not missing',
    async run({ store }) {
      await store.setMany([
        ['empty', new Uint8Array(0)],
        ['full', bytes(1, 2)],
      ]);
      const got = await store.get('empty');
      expectTrue(got !== undefined, 'get of a key set to an empty value returned undefined (the key was lost)');
      expectBytes(got, new Uint8Array(0), 'get of an empty value');
      expectKeys(await store.keys(''), ['empty', 'full'], 'an empty value is listed');
      // Overwrite a non-empty value with an empty one, and back.
      await store.setMany([['full', new Uint8Array(0)]]);
      expectBytes(await store.get('full'), new Uint8Array(0), 'overwrite with an empty value');
      await store.setMany([['empty', bytes(7)]]);
      expectBytes(await store.get('empty'), bytes(7), 'overwrite an empty value');
    },
  },
  {
    name: 'a large value (256 KiB) round-trips',
    async run({ store }) {
      const big = pattern(256 * 1024, 21);
      await store.setMany([
        ['big', big],
        ['small', bytes(1)],
      ]);
      expectBytes(await store.get('big'), pattern(256 * 1024, 21), 'get of a 256 KiB value');
      expectBytes(await store.get('small'), bytes(1), 'a small value of the same batch');
      await store.setMany([['big', pattern(256 * 1024 + 1, 22)]]);
      expectBytes(await store.get('big'), pattern(256 * 1024 + 1, 22), 'overwrite of a large value');
    },
  },
  {
    name: "keys with '/' and unicode round-trip and list by prefix",
    async run({ store }) {
      const entries: [string, Uint8Array][] = [
        ['a/b/c', bytes(1)],
        ['a//b', bytes(2)],
        ['/leading', bytes(3)],
        ['trailing/', bytes(4)],
        ['a/ü', bytes(5)],
        ['ünïcödé/日本語/1', bytes(6)],
        ['ünïcödé/日本語/2', bytes(7)],
        ['ünïcödé/x', bytes(8)],
        ['emoji/😀/x', bytes(9)],
        ['emoji/😀😀', bytes(10)],
        ['e\u0301/combining', bytes(11)],
        ['\u00e9/precomposed', bytes(12)],
      ];
      await store.setMany(entries);
      for (const [k, v] of entries) expectBytes(await store.get(k), v, `get(${JSON.stringify(k)})`);
      expectKeys(await store.keys(''), entries.map(([k]) => k), "keys('')");
      expectKeys(await store.keys('a/'), ['a/b/c', 'a//b', 'a/ü'], "keys('a/')");
      expectKeys(await store.keys('a//'), ['a//b'], "keys('a//')");
      expectKeys(await store.keys('/'), ['/leading'], "keys('/')");
      expectKeys(await store.keys('ünïcödé/'), ['ünïcödé/日本語/1', 'ünïcödé/日本語/2', 'ünïcödé/x'], "keys('ünïcödé/')");
      expectKeys(await store.keys('ünïcödé/日本語/'), ['ünïcödé/日本語/1', 'ünïcödé/日本語/2'], "keys('ünïcödé/日本語/')");
      expectKeys(await store.keys('emoji/😀'), ['emoji/😀/x', 'emoji/😀😀'], "keys('emoji/😀')");
      expectKeys(await store.keys('e\u0301'), ['e\u0301/combining'], 'keys(decomposed é) is not normalised');
      expectKeys(await store.keys('\u00e9'), ['\u00e9/precomposed'], 'keys(precomposed é) is not normalised');
      expectUndefined(await store.get('a/u'), 'a/ü and a/u are different keys');
      await store.delMany(['ünïcödé/日本語/1', 'emoji/😀😀']);
      expectUndefined(await store.get('ünïcödé/日本語/1'), 'deleted unicode key');
      expectKeys(await store.keys('ünïcödé/'), ['ünïcödé/日本語/2', 'ünïcödé/x'], "keys('ünïcödé/') after delMany");
      expectKeys(await store.keys('emoji/'), ['emoji/😀/x'], "keys('emoji/') after delMany");
    },
  },
  {
    name: 'keys(prefix) also lists keys whose next character is at the top of the BMP (U+FFFF, U+FFFD)',
    async run({ store }) {
      // The contract says "every key starting with prefix"; a range scan bounded by
      // `${prefix}\uffff` misses keys that continue past U+FFFF itself.
      const ks = ['p/\ufffd', 'p/\uffff', 'p/\uffffz', 'p/\uffff\uffff', 'p/😀', 'q/\uffff'];
      await store.setMany(ks.map((k, i) => [k, bytes(i)]));
      expectKeys(await store.keys('p/'), ['p/\ufffd', 'p/\uffff', 'p/\uffffz', 'p/\uffff\uffff', 'p/😀'], "keys('p/')");
      expectKeys(await store.keys('p/\uffff'), ['p/\uffff', 'p/\uffffz', 'p/\uffff\uffff'], "keys('p/\\uffff')");
      expectKeys(await store.keys(''), ks, "keys('')");
    },
  },
  {
    name: 'a batch written by setMany, then partly deleted and partly re-set: get and keys track every step',
    async run({ store }) {
      await store.setMany([
        ['t/1', bytes(1)],
        ['t/2', bytes(2)],
        ['t/3', bytes(3)],
      ]);
      await store.delMany(['t/1', 't/3']);
      await expectExactly(store, { 't/2': bytes(2) }, 'after deleting part of the batch');
      await store.setMany([
        ['t/3', bytes(33)],
        ['t/4', bytes(4)],
      ]);
      await expectExactly(store, { 't/2': bytes(2), 't/3': bytes(33), 't/4': bytes(4) }, 'after re-setting a deleted key');
      expectUndefined(await store.get('t/1'), 'a deleted key stays deleted');
      await store.delMany(['t/3']);
      await store.setMany([['t/1', bytes(11)]]);
      await expectExactly(store, { 't/1': bytes(11), 't/2': bytes(2), 't/4': bytes(4) }, 'after another delete and re-set');
    },
  },
  {
    name: 'concurrent setMany and delMany calls (not awaited one by one) all take effect',
    async run({ store }) {
      const n = 24;
      await Promise.all(Array.from({ length: n }, (_, i) => store.setMany([[`c/${i}`, pattern(i + 1, i + 100)], [`d/${i}`, bytes(i)]])));
      await Promise.all(Array.from({ length: n }, (_, i) => store.delMany([`d/${i}`])));
      const expected: Record<string, Uint8Array> = {};
      for (let i = 0; i < n; i++) expected[`c/${i}`] = pattern(i + 1, i + 100);
      await expectExactly(store, expected, 'after concurrent writes');
    },
  },
  {
    // Enough dead bytes to make a log-structured store compact (FileStore: > 1 MiB and mostly dead).
    name: 'many overwrites of a large value keep only the latest value (and, where the store has reopen, survive it)',
    async run(h) {
      const { store } = h;
      await store.setMany([
        ['keep', bytes(1)],
        ['drop', bytes(2)],
      ]);
      for (let i = 0; i < 8; i++) {
        await store.setMany([
          ['big', pattern(256 * 1024, 50 + i)],
          [`small/${i}`, bytes(i)],
        ]);
        if (i === 3) await store.delMany(['drop']);
      }
      const expected: Record<string, Uint8Array> = { keep: bytes(1), big: pattern(256 * 1024, 57) };
      for (let i = 0; i < 8; i++) expected[`small/${i}`] = bytes(i);
      await expectExactly(store, expected, 'after the overwrites');
      if (h.reopen) await expectExactly(await h.reopen(), expected, 'after reopen');
    },
  },
  {
    name: 'durable across reopen: sets, overwrites and deletes survive, deleted keys stay deleted',
    needsReopen: true,
    async run(h) {
      const { store } = h;
      const big = pattern(256 * 1024, 31);
      await store.setMany([
        ['session/a/1', bytes(1, 2, 3)],
        ['session/b/1', bytes(4)],
        ['identity', pattern(32, 5)],
        ['empty', new Uint8Array(0)],
        ['big', big],
        ['ünïcödé/日本語/😀', bytes(8)],
        ['gone', bytes(9)],
        ['back', bytes(10)],
      ]);
      await store.setMany([['session/a/1', bytes(7, 7)]]);
      await store.delMany(['gone', 'back', 'never-existed']);
      await store.setMany([['back', bytes(11)]]);
      const expected: Record<string, Uint8Array> = {
        'session/a/1': bytes(7, 7),
        'session/b/1': bytes(4),
        identity: pattern(32, 5),
        empty: new Uint8Array(0),
        big: pattern(256 * 1024, 31),
        'ünïcödé/日本語/😀': bytes(8),
        back: bytes(11),
      };
      await expectExactly(store, expected, 'before reopen');

      const again = await h.reopen!();
      expectTrue(again !== store, 'reopen returned the same store object (it must open a new one from durable state)');
      await expectExactly(again, expected, 'after reopen');
      expectUndefined(await again.get('gone'), 'a deleted key after reopen');
      expectKeys(await again.keys('session/'), ['session/a/1', 'session/b/1'], "keys('session/') after reopen");

      // The reopened store keeps working, and its writes are durable too.
      await again.setMany([['after', bytes(12)]]);
      await again.delMany(['session/b/1']);
      delete expected['session/b/1'];
      expected['after'] = bytes(12);
      const third = await h.reopen!();
      await expectExactly(third, expected, 'after a second reopen');
    },
  },
  {
    name: 'durable across reopen: concurrent setMany calls that resolved are all there',
    needsReopen: true,
    async run(h) {
      const n = 16;
      await Promise.all(Array.from({ length: n }, (_, i) => h.store.setMany([[`c/${i}`, pattern(8, i + 1)]])));
      const again = await h.reopen!();
      const expected: Record<string, Uint8Array> = {};
      for (let i = 0; i < n; i++) expected[`c/${i}`] = pattern(8, i + 1);
      await expectExactly(again, expected, 'after reopen');
    },
  },
];

/** Runs one case on a fresh store from `factory`, always releasing the store. */
export async function runContractCase(c: ContractCase, factory: StoreFactory): Promise<void> {
  const h = await factory();
  try {
    if (c.needsReopen && !h.reopen) throw new ContractFailure(`case "${c.name}" needs reopen, which this store does not have`);
    await c.run(h);
  } finally {
    await h.close?.();
  }
}
