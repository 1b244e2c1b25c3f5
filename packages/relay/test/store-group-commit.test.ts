/**
 * The SQLite store's group commit: writes issued in one event-loop turn share one transaction,
 * yet each resolves only once durable and fails on its own.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStore } from '../src/store/sqlite.js';
import type { NewMessage } from '../src/store/types.js';

const message = (i: number, to = 'b'.repeat(32)): NewMessage => ({
  to,
  from: 'a'.repeat(32),
  id: `m-${i}`,
  envelope: new Uint8Array([i & 0xff, 1, 2, 3]),
  receivedAt: 1_000 + i,
});

test('50 enqueues in one turn: one group, distinct seqs in call order, all on disk after reopening', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'parley-group-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'relay.db');
  const store = new SqliteStore(path);
  const results = await Promise.all(Array.from({ length: 50 }, (_, i) => store.enqueue(message(i))));
  const seqs = results.map((r) => r.seq);
  assert.ok(results.every((r) => !r.duplicate));
  assert.deepEqual(seqs, [...seqs].sort((x, y) => x - y), 'seqs follow call order');
  assert.equal(new Set(seqs).size, 50);
  await store.close();

  const reopened = new SqliteStore(path);
  t.after(() => reopened.close());
  const pending = await reopened.listPending('b'.repeat(32), 0, 100);
  assert.deepEqual(pending.map((m) => m.id), results.map((_, i) => `m-${i}`));
});

test('a failing write in a group rejects alone; the others in its group still commit', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'parley-group-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const store = new SqliteStore(join(dir, 'relay.db'));
  t.after(() => store.close());
  // A NULL recipient violates NOT NULL inside the shared transaction.
  const bad = { ...message(99), to: null } as unknown as NewMessage;
  const outcomes = await Promise.allSettled([store.enqueue(message(1)), store.enqueue(bad), store.enqueue(message(2))]);
  assert.deepEqual(outcomes.map((o) => o.status), ['fulfilled', 'rejected', 'fulfilled']);
  const pending = await store.listPending('b'.repeat(32), 0, 10);
  assert.deepEqual(pending.map((m) => m.id), ['m-1', 'm-2']);
});

test('writes issued before close() still commit; writes after close() reject', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'parley-group-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'relay.db');
  const store = new SqliteStore(path);
  const inFlight = store.enqueue(message(1));
  await store.close();
  assert.equal((await inFlight).duplicate, false);
  await assert.rejects(store.enqueue(message(2)));
  const reopened = new SqliteStore(path);
  t.after(() => reopened.close());
  assert.equal(await reopened.countPending('b'.repeat(32)), 1);
});
