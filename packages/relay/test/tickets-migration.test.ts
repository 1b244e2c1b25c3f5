/**
 * SQLite schema 7 adds `tickets` (handoff tickets). A version-6 file (the schema before it,
 * made here by dropping the table from a fresh file) is upgraded in place: its rows survive,
 * and tickets can be opened, claimed and closed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { SqliteStore } from '../src/index.js';

test('a version-6 SQLite file gains the tickets table; rows survive', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'parley-migrate7-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'relay.db');
  const [customer, agent] = [randomBytes(16).toString('hex'), randomBytes(16).toString('hex')];
  {
    const store = new SqliteStore(path);
    await store.setDeviceRoles(customer, ['customer']);
    await store.enqueue({ to: customer, from: agent, id: 'm1', envelope: new Uint8Array(10), receivedAt: Date.now() });
    await store.close();
    const db = new Database(path);
    db.exec('DROP TABLE tickets;');
    db.pragma('user_version = 6');
    db.close();
  }

  const store = new SqliteStore(path);
  try {
    assert.deepEqual(await store.getDeviceRoles(customer), ['customer']);
    assert.equal(await store.countPending(customer), 1);
    assert.deepEqual(await store.listTickets(), []);
    const id = randomBytes(16).toString('base64url');
    assert.equal((await store.openTicket({ id, queue: 'billing', customer, ref: 'r1', openedAt: 1 })).ok, true);
    assert.equal((await store.claimTicket(id, agent, 2)).ok, true);
    assert.equal((await store.closeTicket(id, agent)).ok, true);
  } finally {
    await store.close();
  }
  const db = new Database(path, { readonly: true });
  assert.equal(db.pragma('user_version', { simple: true }), 10);
  db.close();
});
