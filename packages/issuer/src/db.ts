/**
 * The issuer's embedded SQLite database (better-sqlite3): the staff directory, enrolment
 * invitations, TOTP and passkey records (sealed at rest), issuances, revocations, the audit log
 * and a little state. A new file is created with mode 0600; `serve` holds `<db>.lock` so a second
 * issuer on the same file fails at once (the CLI commands do not take it: they run beside it).
 */
import { closeSync, existsSync, openSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import Database from 'better-sqlite3';

/** Bumped when the schema changes; checked on open. 1: initial. */
export const SCHEMA_VERSION = 1;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS persons (
  person_id TEXT PRIMARY KEY, username TEXT NOT NULL UNIQUE, display_name TEXT NOT NULL,
  roles TEXT NOT NULL, password_hash TEXT, disabled_at INTEGER, created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS invitations (
  hash TEXT PRIMARY KEY, person_id TEXT NOT NULL, expires_at INTEGER NOT NULL, consumed_at INTEGER
);
-- secret: the TOTP secret sealed with the sealing key (record key "totp:<person>").
-- pending = 1 until the first code verifies; last_step: the last accepted time step (replays refused).
CREATE TABLE IF NOT EXISTS totp (
  person_id TEXT PRIMARY KEY, secret BLOB NOT NULL, pending INTEGER NOT NULL, last_step INTEGER NOT NULL
);
-- record: JSON { publicKey, counter, transports } sealed (record key "passkey:<credential id>").
CREATE TABLE IF NOT EXISTS passkeys (
  credential_id TEXT PRIMARY KEY, person_id TEXT NOT NULL, record BLOB NOT NULL, created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS passkeys_person ON passkeys (person_id);
CREATE TABLE IF NOT EXISTS issuances (
  serial TEXT PRIMARY KEY, person_id TEXT NOT NULL, device_id TEXT NOT NULL, roles TEXT NOT NULL,
  issued_at INTEGER NOT NULL, expires_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
  token_hash TEXT PRIMARY KEY, person_id TEXT NOT NULL, roles TEXT NOT NULL, expires_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS revoked (
  kind TEXT NOT NULL, id TEXT NOT NULL, at INTEGER NOT NULL, PRIMARY KEY (kind, id)
);
CREATE TABLE IF NOT EXISTS failures (
  account TEXT NOT NULL, at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS failures_account ON failures (account, at);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value BLOB NOT NULL);
-- The audit log: append-only (no UPDATE or DELETE path; triggers refuse both) and hash-chained.
CREATE TABLE IF NOT EXISTS audit (
  seq INTEGER PRIMARY KEY, time INTEGER NOT NULL, type TEXT NOT NULL, actor TEXT NOT NULL,
  subject TEXT NOT NULL, reason TEXT NOT NULL, details TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
`;

/** Checks the folder and creates a missing database file with mode 0600. */
export function prepareFile(path: string): void {
  const dir = dirname(resolve(path));
  if (!existsSync(dir)) throw new Error(`the database folder ${dir} does not exist (database ${path}): create it first`);
  try {
    closeSync(openSync(path, 'wx', 0o600));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new Error(`cannot create the database ${path}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
  }
}

/** Takes `<path>.lock` (SQLite's own exclusive lock, dropped by the kernel when the process dies). */
function takeLock(path: string): Database.Database {
  const lockPath = `${path}.lock`;
  prepareFile(lockPath);
  const lock = new Database(lockPath, { timeout: 0 });
  try {
    lock.pragma('locking_mode = EXCLUSIVE');
    lock.pragma('journal_mode = MEMORY');
    lock.exec('CREATE TABLE IF NOT EXISTS issuer_lock (pid INTEGER NOT NULL); DELETE FROM issuer_lock;');
    lock.prepare('INSERT INTO issuer_lock (pid) VALUES (?)').run(process.pid);
    return lock;
  } catch (e) {
    lock.close();
    if ((e as { code?: string }).code === 'SQLITE_BUSY') {
      throw new Error(`the database ${path} is in use by another issuer (it holds ${lockPath}): stop it, or give another --db`);
    }
    throw e;
  }
}

/** An open issuer database. */
export interface IssuerDb {
  readonly db: Database.Database;
  close(): void;
}

/**
 * Opens (creating if needed) the issuer database at `path` (`:memory:` for tests).
 * @param options.lock hold `<path>.lock` (the server does; the CLI does not).
 */
export function openIssuerDb(path: string, options: { lock?: boolean } = {}): IssuerDb {
  const onDisk = path !== ':memory:' && !path.startsWith('file:');
  if (onDisk) prepareFile(path);
  const lock = onDisk && options.lock ? takeLock(path) : undefined;
  let db: Database.Database;
  try {
    db = new Database(path);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('busy_timeout = 5000');
    const version = db.pragma('user_version', { simple: true }) as number;
    if (version > SCHEMA_VERSION) throw new Error(`issuer database schema ${version} is newer than this issuer (${SCHEMA_VERSION})`);
    db.exec(SCHEMA);
    db.pragma(`user_version = ${SCHEMA_VERSION}`);
  } catch (e) {
    lock?.close();
    throw e;
  }
  return {
    db,
    close() {
      db.close();
      lock?.close();
    },
  };
}
