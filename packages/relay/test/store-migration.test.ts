/**
 * The SQLite store opens a database file written by an older relay (schema version 1, before
 * devices could publish a certificate and an attestation) and upgrades it in place: existing
 * prekeys, OPKs, queued messages and API keys survive, and the new statement columns work.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { SqliteStore } from '../src/index.js';

/** The version-1 schema, as shipped before the statements existed. */
const SCHEMA_V1 = `
CREATE TABLE devices (
  device_id TEXT PRIMARY KEY,
  signing_key BLOB NOT NULL, dh_key BLOB NOT NULL, binding BLOB NOT NULL,
  spk_id INTEGER NOT NULL, spk_created_at INTEGER NOT NULL, spk_public BLOB NOT NULL, spk_signature BLOB NOT NULL
);
CREATE TABLE one_time_prekeys (
  device_id TEXT NOT NULL, opk_id INTEGER NOT NULL, public_key BLOB NOT NULL, consumed_at INTEGER,
  PRIMARY KEY (device_id, opk_id)
);
CREATE INDEX opk_available ON one_time_prekeys (device_id, consumed_at);
CREATE TABLE mailbox (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  recipient TEXT NOT NULL, sender TEXT NOT NULL, msg_id TEXT NOT NULL,
  envelope BLOB NOT NULL, received_at INTEGER NOT NULL,
  UNIQUE (sender, msg_id)
);
CREATE INDEX mailbox_recipient ON mailbox (recipient, seq);
CREATE TABLE api_keys (
  id TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE, label TEXT NOT NULL,
  created_at INTEGER NOT NULL, revoked_at INTEGER
);
`;

const rnd = (n: number) => randomBytes(n);

test('a version-1 SQLite file is migrated in place; old rows survive and statements work', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'parley-migrate-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'relay.db');
  const device = randomBytes(16).toString('hex');
  const signingKey = rnd(32);
  const envelope = rnd(40);
  {
    const db = new Database(path);
    db.pragma('journal_mode = WAL');
    db.exec(SCHEMA_V1);
    db.pragma('user_version = 1');
    db.prepare('INSERT INTO devices VALUES (?, ?, ?, ?, ?, ?, ?, ?)').run(device, signingKey, rnd(32), rnd(64), 7, 1_700_000_000_000, rnd(32), rnd(64));
    db.prepare('INSERT INTO one_time_prekeys (device_id, opk_id, public_key) VALUES (?, ?, ?)').run(device, 3, rnd(32));
    db.prepare('INSERT INTO mailbox (recipient, sender, msg_id, envelope, received_at) VALUES (?, ?, ?, ?, ?)').run(device, 'a'.repeat(32), 'm1', envelope, 5);
    db.prepare('INSERT INTO api_keys VALUES (?, ?, ?, ?, ?)').run('k1', 'h1', 'bot', 1, null);
    db.close();
  }

  const store = new SqliteStore(path);
  try {
    const id = await store.getIdentity(device);
    assert.ok(id);
    assert.deepEqual([...id.identity.signingKey], [...signingKey]);
    assert.equal(id.certificate, undefined);
    assert.equal(id.attestation, undefined);
    assert.deepEqual((await store.listPending(device, 0, 10)).map((m) => [m.id, [...m.envelope]]), [['m1', [...envelope]]]);
    assert.equal((await store.findApiKey('h1'))?.id, 'k1');
    // Schema 3: the migrated mailbox dedupes per recipient, and the old row keeps its dedupe.
    assert.equal((await store.enqueue({ to: 'b'.repeat(32), from: 'a'.repeat(32), id: 'm1', envelope: rnd(8), receivedAt: 6 })).duplicate, false);
    assert.equal((await store.enqueue({ to: device, from: 'a'.repeat(32), id: 'm1', envelope: rnd(8), receivedAt: 7 })).duplicate, true);
    // Schema 4: quota counts include the rows queued before the upgrade.
    assert.equal(await store.queueDepth(), 2);
    assert.equal(await store.countPending(device), 1);
    const quota = { perPair: 1, perRecipient: 100, reserve: 0, reservePerSender: 0, perSender: 100, total: 100 };
    await assert.rejects(store.enqueue({ to: device, from: 'a'.repeat(32), id: 'm2', envelope: rnd(8), receivedAt: 8 }, quota), /pending for this recipient/);
    assert.equal(await store.purgeExpired(6, 10), 1, 'the old row (received at 5) expires');
    assert.equal(await store.queueDepth(), 1);

    const certificate = new Uint8Array(rnd(139));
    const attestation = new Uint8Array(rnd(121));
    const b0 = await store.takeBundle(device);
    assert.ok(b0);
    await store.putPrekeys(device, { identity: b0.bundle.identity, signedPrekey: b0.bundle.signedPrekey, oneTimePrekeys: [], certificate, attestation });
    const b1 = await store.takeBundle(device);
    assert.deepEqual([...b1!.certificate!], [...certificate]);
    assert.deepEqual([...b1!.attestation!], [...attestation]);
  } finally {
    await store.close();
  }

  // Reopening the migrated file is a no-op; the version is recorded.
  const again = new SqliteStore(path);
  await again.close();
  const db = new Database(path, { readonly: true });
  assert.equal(db.pragma('user_version', { simple: true }), 10, 'upgraded to the current schema');
  const columns = (db.prepare('PRAGMA table_info(devices)').all() as { name: string }[]).map((c) => c.name);
  assert.ok(columns.includes('certificate') && columns.includes('attestation'));
  db.close();
});
