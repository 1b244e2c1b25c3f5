/**
 * The compliance archive in SQLite (the {@link ArchiveStore} part of `SqliteStore`): one
 * `archive_entries` table (schema version 8), one row per entry, `(ref, idx)` unique. Each append
 * is one transaction: it reads the ref's last entry, chains the submission to it
 * (`chainArchiveEntry`: index + 1, the previous entry's hash) and inserts it, so concurrent
 * appends to one ref through one file never fork the chain. Rows are never updated or deleted by
 * the relay (append-only); `parley-compliance verify --db` reads this table.
 */
import type Database from 'better-sqlite3';
import { chainArchiveEntry, type ArchiveSubmission } from '@parley/protocol/verify';

/** The table (created with `IF NOT EXISTS`: an older file gains it empty). */
export const ARCHIVE_SCHEMA = `
CREATE TABLE IF NOT EXISTS archive_entries (
  ref TEXT NOT NULL, idx INTEGER NOT NULL, entry BLOB NOT NULL, appended_at INTEGER NOT NULL,
  PRIMARY KEY (ref, idx)
);
`;

const bytes = (b: Buffer): Uint8Array => new Uint8Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
const blob = (u: Uint8Array): Buffer => Buffer.from(u.buffer, u.byteOffset, u.byteLength);

/** The archive steps on an open SQLite database. */
export function sqliteArchive(db: Database.Database): {
  append: (submission: ArchiveSubmission, at: number) => number;
  entries: (ref: string) => Uint8Array[];
} {
  const last = db.prepare('SELECT entry FROM archive_entries WHERE ref = ? ORDER BY idx DESC LIMIT 1').pluck();
  const insert = db.prepare('INSERT INTO archive_entries (ref, idx, entry, appended_at) VALUES (?, ?, ?, ?)');
  const all = db.prepare('SELECT entry FROM archive_entries WHERE ref = ? ORDER BY idx').pluck();
  const append = db.transaction((s: ArchiveSubmission, at: number): number => {
    const prev = last.get(s.ref) as Buffer | undefined;
    const entry = chainArchiveEntry(s, prev ? bytes(prev) : undefined);
    const index = new DataView(entry.buffer, entry.byteOffset + 1, 4).getUint32(0);
    insert.run(s.ref, index, blob(entry), at);
    return index;
  });
  return {
    append,
    entries: (ref) => (all.all(ref) as Buffer[]).map(bytes),
  };
}
