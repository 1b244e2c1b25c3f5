/**
 * The compliance archive in SQLite (the {@link ArchiveStore} part of `SqliteStore`): one
 * `archive_entries` table (schema version 8), one row per entry, `(ref, idx)` unique. Each append
 * is one transaction: it reads the ref's last entry, chains the submission to it
 * (`chainArchiveEntry`: index + 1, the previous entry's hash) and inserts it, so concurrent
 * appends to one ref through one file never fork the chain. The relay never updates an entry;
 * it deletes a ref's entries only whole: on a member's erasure purge or the retention sweep,
 * never while the ref is under a legal hold. `parley-compliance verify --db` reads this table.
 *
 * Schema version 9 adds (new tables, so an older file gains them; {@link migrateArchiveAppenders}
 * fills the appenders of older entries from the devices' signing keys):
 * - `archive_appenders (ref, device_id)`: who appended (purge authority, opening notices);
 * - `archive_holds (ref, reason, at)`: legal holds (`parley-compliance hold|release`);
 * - `archive_openings (id, ref, at, reason, audit_hash)`: openings (`parley-compliance open|export`);
 * - `archive_notices (opening, device_id)`: the openings each appender has not acknowledged.
 *
 * Schema version 10 adds `archive_erased (ref, at)`: the refs a member's erasure purge deleted
 * (tombstones, ref and time only); an append to one is refused in its transaction.
 */
import type Database from 'better-sqlite3';
import { chainArchiveEntry, decodeArchiveEntry, type ArchiveSubmission } from '@parley/protocol/verify';
import type { ArchiveHold, ArchiveOpening } from '../store/types.js';
import { archiveErasedError } from './erased.js';

/** The tables (created with `IF NOT EXISTS`: an older file gains them empty). */
export const ARCHIVE_SCHEMA = `
CREATE TABLE IF NOT EXISTS archive_entries (
  ref TEXT NOT NULL, idx INTEGER NOT NULL, entry BLOB NOT NULL, appended_at INTEGER NOT NULL,
  PRIMARY KEY (ref, idx)
);
CREATE TABLE IF NOT EXISTS archive_appenders (
  ref TEXT NOT NULL, device_id TEXT NOT NULL, PRIMARY KEY (ref, device_id)
);
CREATE TABLE IF NOT EXISTS archive_holds (ref TEXT PRIMARY KEY, reason TEXT NOT NULL, at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS archive_openings (
  id INTEGER PRIMARY KEY AUTOINCREMENT, ref TEXT NOT NULL, at INTEGER NOT NULL, reason TEXT NOT NULL, audit_hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS archive_openings_ref ON archive_openings (ref);
CREATE TABLE IF NOT EXISTS archive_notices (
  opening INTEGER NOT NULL, device_id TEXT NOT NULL, PRIMARY KEY (device_id, opening)
);
CREATE TABLE IF NOT EXISTS archive_erased (ref TEXT PRIMARY KEY, at INTEGER NOT NULL);
`;

const bytes = (b: Buffer): Uint8Array => new Uint8Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
const blob = (u: Uint8Array): Buffer => Buffer.from(u.buffer, u.byteOffset, u.byteLength);

interface OpeningRow { id: number; ref: string; at: number; reason: string; audit_hash: string }
const toOpening = (r: OpeningRow): ArchiveOpening => ({ id: r.id, ref: r.ref, at: r.at, reason: r.reason, auditHash: r.audit_hash });

/**
 * Schema 8 → 9: the appenders of entries stored before version 9, from each submission's sender
 * key and the devices table (a sender whose device row is gone stays unknown: only the retention
 * sweep, or an operator, removes that ref).
 */
export function migrateArchiveAppenders(db: Database.Database): void {
  const byKey = new Map<string, string>();
  for (const r of db.prepare('SELECT device_id, signing_key FROM devices').all() as { device_id: string; signing_key: Buffer }[]) byKey.set(r.signing_key.toString('hex'), r.device_id);
  const pairs = new Set<string>();
  // Read first, then write: better-sqlite3 runs no statement while another is iterating.
  for (const r of db.prepare('SELECT ref, entry FROM archive_entries').iterate() as IterableIterator<{ ref: string; entry: Buffer }>) {
    let device: string | undefined;
    try {
      device = byKey.get(Buffer.from(decodeArchiveEntry(bytes(r.entry)).submission.senderKey).toString('hex'));
    } catch {
      // An undecodable entry names no sender; `parley-compliance verify` reports it.
    }
    if (device !== undefined) pairs.add(JSON.stringify([r.ref, device]));
  }
  const add = db.prepare('INSERT OR IGNORE INTO archive_appenders (ref, device_id) VALUES (?, ?)');
  for (const p of pairs) add.run(...(JSON.parse(p) as [string, string]));
}

/** The archive steps on an open SQLite database (the relay's store and the compliance CLI). */
export function sqliteArchive(db: Database.Database): {
  append: (submission: ArchiveSubmission, at: number, deviceId?: string) => number;
  entries: (ref: string) => Uint8Array[];
  appenders: (ref: string) => string[];
  purge: (ref: string, erasedAt?: number) => { deleted: number; held: boolean };
  hold: (h: ArchiveHold) => void;
  release: (ref: string) => boolean;
  holds: () => ArchiveHold[];
  sweep: (before: number, limit: number) => { refs: number; entries: number };
  recordOpening: (o: Omit<ArchiveOpening, 'id'>) => number;
  openingsAfter: (afterId: number, limit: number) => ArchiveOpening[];
  pendingOpenings: (deviceId: string) => ArchiveOpening[];
  noticed: (id: number, deviceId: string) => void;
} {
  const last = db.prepare('SELECT entry FROM archive_entries WHERE ref = ? ORDER BY idx DESC LIMIT 1').pluck();
  const insert = db.prepare('INSERT INTO archive_entries (ref, idx, entry, appended_at) VALUES (?, ?, ?, ?)');
  const addAppender = db.prepare('INSERT OR IGNORE INTO archive_appenders (ref, device_id) VALUES (?, ?)');
  const all = db.prepare('SELECT entry FROM archive_entries WHERE ref = ? ORDER BY idx').pluck();
  const appenders = db.prepare('SELECT device_id FROM archive_appenders WHERE ref = ? ORDER BY device_id').pluck();
  const isHeld = db.prepare('SELECT 1 FROM archive_holds WHERE ref = ?').pluck();
  const isErased = db.prepare('SELECT 1 FROM archive_erased WHERE ref = ?').pluck();
  const putErased = db.prepare('INSERT OR IGNORE INTO archive_erased (ref, at) VALUES (?, ?)');
  const delEntries = db.prepare('DELETE FROM archive_entries WHERE ref = ?');
  const delAppenders = db.prepare('DELETE FROM archive_appenders WHERE ref = ?');
  const delNotices = db.prepare('DELETE FROM archive_notices WHERE opening IN (SELECT id FROM archive_openings WHERE ref = ?)');
  const delOpenings = db.prepare('DELETE FROM archive_openings WHERE ref = ?');
  const putHold = db.prepare('INSERT INTO archive_holds (ref, reason, at) VALUES (?, ?, ?) ON CONFLICT (ref) DO UPDATE SET reason = excluded.reason, at = excluded.at');
  const delHold = db.prepare('DELETE FROM archive_holds WHERE ref = ?');
  const listHolds = db.prepare('SELECT ref, reason, at FROM archive_holds ORDER BY ref');
  const due = db.prepare(`SELECT ref FROM archive_entries WHERE ref NOT IN (SELECT ref FROM archive_holds)
    GROUP BY ref HAVING MAX(appended_at) < ? LIMIT ?`).pluck();
  const insertOpening = db.prepare('INSERT INTO archive_openings (ref, at, reason, audit_hash) VALUES (?, ?, ?, ?)');
  const insertNotices = db.prepare('INSERT OR IGNORE INTO archive_notices (opening, device_id) SELECT ?, device_id FROM archive_appenders WHERE ref = ?');
  const after = db.prepare('SELECT * FROM archive_openings WHERE id > ? ORDER BY id LIMIT ?');
  const pending = db.prepare('SELECT o.* FROM archive_notices n JOIN archive_openings o ON o.id = n.opening WHERE n.device_id = ? ORDER BY o.id');
  const delNotice = db.prepare('DELETE FROM archive_notices WHERE opening = ? AND device_id = ?');

  const append = db.transaction((s: ArchiveSubmission, at: number, deviceId?: string): number => {
    if (isErased.get(s.ref) !== undefined) throw archiveErasedError();
    const prev = last.get(s.ref) as Buffer | undefined;
    const entry = chainArchiveEntry(s, prev ? bytes(prev) : undefined);
    const index = new DataView(entry.buffer, entry.byteOffset + 1, 4).getUint32(0);
    insert.run(s.ref, index, blob(entry), at);
    if (deviceId !== undefined) addAppender.run(s.ref, deviceId);
    return index;
  });
  const purgeNow = (ref: string): { deleted: number; held: boolean } => {
    if (isHeld.get(ref) !== undefined) return { deleted: 0, held: true };
    const deleted = delEntries.run(ref).changes;
    delAppenders.run(ref);
    delNotices.run(ref);
    delOpenings.run(ref);
    return { deleted, held: false };
  };
  const purge = db.transaction((ref: string, erasedAt?: number) => {
    const r = purgeNow(ref);
    if (!r.held && erasedAt !== undefined) putErased.run(ref, erasedAt);
    return r;
  });
  const sweep = db.transaction((before: number, limit: number) => {
    let entries = 0;
    const refs = due.all(before, limit) as string[];
    for (const ref of refs) entries += purgeNow(ref).deleted;
    return { refs: refs.length, entries };
  });
  const recordOpening = db.transaction((o: Omit<ArchiveOpening, 'id'>): number => {
    const id = Number(insertOpening.run(o.ref, o.at, o.reason, o.auditHash).lastInsertRowid);
    insertNotices.run(id, o.ref);
    return id;
  });
  return {
    append,
    entries: (ref) => (all.all(ref) as Buffer[]).map(bytes),
    appenders: (ref) => appenders.all(ref) as string[],
    purge,
    hold: (h) => void putHold.run(h.ref, h.reason, h.at),
    release: (ref) => delHold.run(ref).changes > 0,
    holds: () => listHolds.all() as ArchiveHold[],
    sweep,
    recordOpening,
    openingsAfter: (afterId, limit) => (after.all(afterId, limit) as OpeningRow[]).map(toOpening),
    pendingOpenings: (deviceId) => (pending.all(deviceId) as OpeningRow[]).map(toOpening),
    noticed: (id, deviceId) => void delNotice.run(id, deviceId),
  };
}
