/**
 * SQLite schema 5 adds `devices.manifests` (a bot's release manifest list). A version-4 file
 * (the schema before it, made here by dropping the column from a fresh file) is upgraded in
 * place: the device's prekeys and other statements survive, and manifests can be published.
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

test('a version-4 SQLite file gains the manifests column; rows and statements survive', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'parley-migrate5-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'relay.db');
  const device = randomBytes(16).toString('hex');
  const upload = {
    identity: { signingKey: rnd(32), dhKey: rnd(32), binding: rnd(64) },
    signedPrekey: { id: 1, createdAt: 1_700_000_000_000, publicKey: rnd(32), signature: rnd(64) },
    oneTimePrekeys: [{ id: 1, publicKey: rnd(32) }, { id: 2, publicKey: rnd(32) }],
  };
  const certificate = rnd(139);
  const attestation = rnd(121);
  {
    const store = new SqliteStore(path);
    await store.putPrekeys(device, { ...upload, certificate, attestation });
    await store.close();
    // Back to schema 4: no manifests column.
    const db = new Database(path);
    db.exec('ALTER TABLE devices DROP COLUMN manifests');
    db.pragma('user_version = 4');
    db.close();
  }

  const store = new SqliteStore(path);
  try {
    const id = await store.getIdentity(device);
    assert.deepEqual([...id!.certificate!], [...certificate]);
    assert.deepEqual([...id!.attestation!], [...attestation]);
    assert.equal('manifests' in id!, false);
    const manifests = rnd(300);
    await store.putPrekeys(device, { ...upload, oneTimePrekeys: [], manifests });
    const b = await store.takeBundle(device);
    assert.deepEqual([...b!.manifests!], [...manifests]);
    assert.equal(b!.bundle.oneTimePrekey!.id, 1, 'the OPKs stored before the upgrade are handed out');
  } finally {
    await store.close();
  }
  const db = new Database(path, { readonly: true });
  assert.equal(db.pragma('user_version', { simple: true }), 10, 'upgraded to the current schema');
  db.close();
});
