/**
 * SQLite schema 6 adds `revocation_lists` and `device_roles`. A version-5 file (the schema before
 * it, made here by dropping the two tables from a fresh file) is upgraded in place: its rows
 * survive, and revocation lists and roles can be stored.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { SqliteStore } from '../src/index.js';

const rnd = (n: number) => new Uint8Array(randomBytes(n));

test('a version-5 SQLite file gains the revocation list and device role tables; rows survive', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'parley-migrate6-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'relay.db');
  const device = randomBytes(16).toString('hex');
  const upload = {
    identity: { signingKey: rnd(32), dhKey: rnd(32), binding: rnd(64) },
    signedPrekey: { id: 1, createdAt: 1_700_000_000_000, publicKey: rnd(32), signature: rnd(64) },
    oneTimePrekeys: [{ id: 1, publicKey: rnd(32) }],
  };
  {
    const store = new SqliteStore(path);
    await store.putPrekeys(device, upload);
    await store.enqueue({ to: device, from: 'a'.repeat(32), id: 'm1', envelope: rnd(10), receivedAt: Date.now() });
    await store.close();
    const db = new Database(path);
    db.exec('DROP TABLE revocation_lists; DROP TABLE device_roles;');
    db.pragma('user_version = 5');
    db.close();
  }

  const store = new SqliteStore(path);
  try {
    assert.equal((await store.takeBundle(device))!.bundle.oneTimePrekey!.id, 1);
    assert.equal(await store.countPending(device), 1);
    assert.deepEqual(await store.listRevocationLists(), []);
    assert.equal(await store.getDeviceRoles(device), undefined);
    assert.equal(await store.putRevocationList('ab'.repeat(32), 3, rnd(50)), true);
    await store.setDeviceRoles(device, ['agent']);
    assert.deepEqual(await store.getDeviceRoles(device), ['agent']);
    assert.equal((await store.listRevocationLists())[0]!.sequence, 3);
  } finally {
    await store.close();
  }
  const db = new Database(path, { readonly: true });
  assert.equal(db.pragma('user_version', { simple: true }), 10, 'upgraded to the current schema');
  db.close();
});
