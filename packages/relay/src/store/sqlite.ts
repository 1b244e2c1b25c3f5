/**
 * The default durable {@link RelayStore}: an embedded SQLite file (better-sqlite3), no server
 * to run. WAL journal with `synchronous = FULL`, so a commit has reached the disk before
 * `enqueue` resolves and the relay acks (docs/threats.md R8: 0 acked messages lost on `kill -9`).
 *
 * better-sqlite3 is synchronous; every multi-statement operation is one transaction, which
 * also makes `takeBundle` atomic against concurrent fetches (one OPK, one requester).
 */
import { closeSync, existsSync, openSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import Database from 'better-sqlite3';
import type { ArchiveSubmission, PrekeyBundle } from '@parley/protocol/verify';
import type { Ticket } from '@parley/protocol/wire';
import { exceededQuota, quotaError } from './quota.js';
import { TICKETS_SCHEMA, sqliteTickets } from '../tickets/sqlite-tickets.js';
import { ARCHIVE_SCHEMA, migrateArchiveAppenders, sqliteArchive } from '../archive/sqlite-archive.js';
import type {
  ApiKeyRecord, DeviceStatements, FindApiKeyOptions, MailboxQuota, NewMessage, PrekeyPublication, RelayStore, StoredIdentity, StoredMessage, StoredRevocationList,
  TakeBundleOptions, NewTicket, TicketOpenResult, TicketStep, ArchiveHold, ArchiveOpening,
} from './types.js';

/**
 * Bumped when the schema changes; checked on open. 1: initial. 2: `devices.certificate` and
 * `devices.attestation` (opaque statements; {@link migrate} adds them to a version-1 file).
 * 3: the mailbox dedupes per recipient. 4: `mailbox_counts` (quota counts kept by triggers)
 * and an index on `received_at` (expiry). 5: `devices.manifests` (a bot's release manifest
 * list, opaque like the other statements; {@link migrate} adds the column). 6: `revocation_lists`
 * (the newest staff revocation list per issuer) and `device_roles` (each device's roles at its
 * last login); new tables, so an older file gains them empty. 7: `tickets` (handoff tickets,
 * tickets/sqlite-tickets.ts); a new table, so an older file gains it empty. 8: `archive_entries`
 * (the compliance archive, archive/sqlite-archive.ts; a new table) and `devices.disclosure` (an
 * org-signed archive disclosure, opaque; {@link migrate} adds the column). 9: the archive's
 * operations (archive/sqlite-archive.ts: appenders, legal holds, openings and their notices; new
 * tables, and {@link migrate} fills the appenders of older entries). 10: `archive_erased` (the
 * refs a member's erasure purge deleted, archive/sqlite-archive.ts; a new table, so an older file
 * gains it empty; the bump keeps an older relay, which would ignore it, from opening the file).
 */
const SCHEMA_VERSION = 10;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS devices (
  device_id TEXT PRIMARY KEY,
  signing_key BLOB NOT NULL, dh_key BLOB NOT NULL, binding BLOB NOT NULL,
  spk_id INTEGER NOT NULL, spk_created_at INTEGER NOT NULL, spk_public BLOB NOT NULL, spk_signature BLOB NOT NULL,
  certificate BLOB, attestation BLOB, manifests BLOB, disclosure BLOB
);
-- consumed_at stays set after hand-out, so a re-upload of the same id never revives a used OPK.
CREATE TABLE IF NOT EXISTS one_time_prekeys (
  device_id TEXT NOT NULL, opk_id INTEGER NOT NULL, public_key BLOB NOT NULL, consumed_at INTEGER,
  PRIMARY KEY (device_id, opk_id)
);
CREATE INDEX IF NOT EXISTS opk_available ON one_time_prekeys (device_id, consumed_at);
CREATE TABLE IF NOT EXISTS mailbox (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  recipient TEXT NOT NULL, sender TEXT NOT NULL, msg_id TEXT NOT NULL,
  envelope BLOB NOT NULL, received_at INTEGER NOT NULL,
  UNIQUE (sender, recipient, msg_id)
);
CREATE INDEX IF NOT EXISTS mailbox_recipient ON mailbox (recipient, seq);
-- Pending counts for the mailbox quotas, kept by the triggers of COUNTING: scope 'r' recipient,
-- 's' sender, 'p' sender || char(10) || recipient, 'g' the total (key ''). Rows at 0 are deleted.
CREATE TABLE IF NOT EXISTS mailbox_counts (
  scope TEXT NOT NULL, key TEXT NOT NULL, n INTEGER NOT NULL,
  PRIMARY KEY (scope, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS api_keys (
  id TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE, label TEXT NOT NULL,
  created_at INTEGER NOT NULL, revoked_at INTEGER
);
CREATE TABLE IF NOT EXISTS revocation_lists (
  issuer TEXT PRIMARY KEY, sequence INTEGER NOT NULL, list BLOB NOT NULL
);
-- roles: comma-separated (customer, bot, or staff roles), as at the device's last login.
CREATE TABLE IF NOT EXISTS device_roles (
  device_id TEXT PRIMARY KEY, roles TEXT NOT NULL
) WITHOUT ROWID;
`;

/** Run after {@link migrate}, which may rebuild the mailbox table (and so drop its triggers). */
const COUNTING = `
CREATE INDEX IF NOT EXISTS mailbox_received ON mailbox (received_at);
CREATE TRIGGER IF NOT EXISTS mailbox_count_insert AFTER INSERT ON mailbox BEGIN
  INSERT INTO mailbox_counts (scope, key, n)
    VALUES ('r', NEW.recipient, 1), ('s', NEW.sender, 1), ('p', NEW.sender || char(10) || NEW.recipient, 1), ('g', '', 1)
    ON CONFLICT (scope, key) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER IF NOT EXISTS mailbox_count_delete AFTER DELETE ON mailbox BEGIN
  UPDATE mailbox_counts SET n = n - 1
    WHERE (scope, key) IN (VALUES ('r', OLD.recipient), ('s', OLD.sender), ('p', OLD.sender || char(10) || OLD.recipient), ('g', ''));
  DELETE FROM mailbox_counts WHERE n <= 0
    AND (scope, key) IN (VALUES ('r', OLD.recipient), ('s', OLD.sender), ('p', OLD.sender || char(10) || OLD.recipient), ('g', ''));
END;
`;

interface DeviceRow {
  signing_key: Buffer; dh_key: Buffer; binding: Buffer;
  spk_id: number; spk_created_at: number; spk_public: Buffer; spk_signature: Buffer;
  certificate: Buffer | null; attestation: Buffer | null; manifests: Buffer | null; disclosure?: Buffer | null;
}
interface MessageRow { seq: number; recipient: string; sender: string; msg_id: string; envelope: Buffer; received_at: number }
interface ApiKeyRow { id: string; hash: string; label: string; created_at: number; revoked_at: number | null }

const bytes = (b: Buffer): Uint8Array => new Uint8Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
const blob = (u: Uint8Array): Buffer => Buffer.from(u.buffer, u.byteOffset, u.byteLength);

function toMessage(r: MessageRow): StoredMessage {
  return { seq: r.seq, to: r.recipient, from: r.sender, id: r.msg_id, envelope: bytes(r.envelope), receivedAt: r.received_at };
}

function statementsOf(d: DeviceRow): DeviceStatements {
  return {
    ...(d.certificate ? { certificate: bytes(d.certificate) } : {}),
    ...(d.attestation ? { attestation: bytes(d.attestation) } : {}),
    ...(d.manifests ? { manifests: bytes(d.manifests) } : {}),
    ...(d.disclosure ? { disclosure: bytes(d.disclosure) } : {}),
  };
}

/**
 * Brings an older database file up to {@link SCHEMA_VERSION}, in one transaction
 * (`CREATE TABLE IF NOT EXISTS` leaves an existing table as it is):
 * - version 1 files lack the statement columns of `devices`, and files before version 5 the
 *   `manifests` one: added, existing rows get none;
 * - files before version 3 dedupe the mailbox on (sender, id), so one id sent to a second
 *   recipient was taken for a retry and never stored: the table is rebuilt with the recipient
 *   in its unique key, keeping every queued row and its seq;
 * - files before version 4 have no quota counts: they are computed from the queued rows (the
 *   triggers that keep them from then on are created after this, see COUNTING).
 */
function migrate(db: Database.Database, from: number): void {
  db.transaction(() => {
    const columns = new Set((db.prepare('PRAGMA table_info(devices)').all() as { name: string }[]).map((c) => c.name));
    for (const column of ['certificate', 'attestation', 'manifests', 'disclosure']) {
      if (!columns.has(column)) db.exec(`ALTER TABLE devices ADD COLUMN ${column} BLOB`);
    }
    // 0: a new file, created just now with the current schema.
    if (from > 0 && from < 3) {
      db.exec(`
        CREATE TABLE mailbox_v3 (
          seq INTEGER PRIMARY KEY AUTOINCREMENT,
          recipient TEXT NOT NULL, sender TEXT NOT NULL, msg_id TEXT NOT NULL,
          envelope BLOB NOT NULL, received_at INTEGER NOT NULL,
          UNIQUE (sender, recipient, msg_id)
        );
        INSERT INTO mailbox_v3 (seq, recipient, sender, msg_id, envelope, received_at)
          SELECT seq, recipient, sender, msg_id, envelope, received_at FROM mailbox;
        DROP TABLE mailbox;
        ALTER TABLE mailbox_v3 RENAME TO mailbox;
        CREATE INDEX IF NOT EXISTS mailbox_recipient ON mailbox (recipient, seq);
      `);
    }
    if (from > 0 && from < 4) {
      db.exec(`
        DELETE FROM mailbox_counts;
        INSERT INTO mailbox_counts (scope, key, n) SELECT 'r', recipient, COUNT(*) FROM mailbox GROUP BY recipient;
        INSERT INTO mailbox_counts (scope, key, n) SELECT 's', sender, COUNT(*) FROM mailbox GROUP BY sender;
        INSERT INTO mailbox_counts (scope, key, n) SELECT 'p', sender || char(10) || recipient, COUNT(*) FROM mailbox GROUP BY sender, recipient;
        INSERT INTO mailbox_counts (scope, key, n) SELECT 'g', '', COUNT(*) FROM mailbox HAVING COUNT(*) > 0;
      `);
    }
    if (from > 0 && from < 9) migrateArchiveAppenders(db);
    db.pragma(`user_version = ${SCHEMA_VERSION}`);
  })();
}

function toApiKey(r: ApiKeyRow): ApiKeyRecord {
  const base = { id: r.id, hash: r.hash, label: r.label, createdAt: r.created_at };
  return r.revoked_at === null ? base : { ...base, revokedAt: r.revoked_at };
}

/** Options of {@link SqliteStore}. */
export interface SqliteStoreOptions {
  /**
   * Hold `<path>.lock` while open, so a second relay on the same file fails at once instead of
   * sharing it. The lock is SQLite's own file lock on that small file, so the kernel drops it
   * when the process dies (a `kill -9` leaves no stale lock). The `apikey` commands do not take
   * it: they may run beside the relay. Default `false`; `createRelay` sets it.
   */
  readonly lock?: boolean;
}

/** Checks the folder and creates a missing database file with mode 0600. */
function prepareFile(path: string): void {
  const dir = dirname(resolve(path));
  if (!existsSync(dir)) throw new Error(`the database folder ${dir} does not exist (database ${path}): create it first`);
  try {
    closeSync(openSync(path, 'wx', 0o600));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new Error(`cannot create the database ${path}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
  }
}

/** Takes the relay lock of `path` (see {@link SqliteStoreOptions.lock}); throws naming the file when held. */
function takeLock(path: string): Database.Database {
  const lockPath = `${path}.lock`;
  prepareFile(lockPath);
  const lock = new Database(lockPath, { timeout: 0 });
  try {
    // Exclusive locking mode: after the first write the connection keeps its exclusive lock
    // until it closes (or the process dies); any other connection then gets SQLITE_BUSY.
    lock.pragma('locking_mode = EXCLUSIVE');
    lock.pragma('journal_mode = MEMORY'); // no -journal file beside the lock
    lock.exec('CREATE TABLE IF NOT EXISTS relay_lock (pid INTEGER NOT NULL); DELETE FROM relay_lock;');
    lock.prepare('INSERT INTO relay_lock (pid) VALUES (?)').run(process.pid);
    return lock;
  } catch (e) {
    lock.close();
    if ((e as { code?: string }).code === 'SQLITE_BUSY') {
      throw new Error(`the database ${path} is in use by another relay (it holds ${lockPath}): stop that relay, or give another --db`);
    }
    throw e;
  }
}

interface QueuedWrite {
  readonly run: () => unknown;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: unknown) => void;
  outcome?: { ok: true; value: unknown } | { ok: false; error: unknown };
}

/** A store in one SQLite file. Opening creates the file and schema if needed. */
export class SqliteStore implements RelayStore {
  readonly #db: Database.Database;
  readonly #q;
  readonly #takeBundle;
  readonly #putPrekeys;
  readonly #enqueue;
  readonly #delete;
  readonly #purge;
  readonly #groupCommit;
  readonly #tickets;
  readonly #archive;
  /** Writes waiting for the next group commit. */
  #queuedWrites: QueuedWrite[] = [];
  #flushScheduled = false;

  /** The lock file's connection while this store holds it (see {@link SqliteStoreOptions.lock}). */
  readonly #lock: Database.Database | undefined;

  /**
   * @param path file path, or `:memory:`. A new file is created with mode 0600 (SQLite gives
   *   its `-wal` and `-shm` files the same mode); its folder must exist.
   * @throws Error with a one-line message when the folder is missing, or (with `lock`) when
   *   another relay holds the file.
   */
  constructor(path: string, options: SqliteStoreOptions = {}) {
    const onDisk = path !== '' && path !== ':memory:' && !path.startsWith('file:');
    if (onDisk) prepareFile(path);
    this.#lock = onDisk && options.lock ? takeLock(path) : undefined;
    let db: Database.Database;
    try {
      db = new Database(path);
    } catch (e) {
      this.#lock?.close();
      throw e;
    }
    this.#db = db;
    db.pragma('journal_mode = WAL');
    // Deleted rows are overwritten with zeros (erasure: a purged envelope leaves no bytes behind).
    db.pragma('secure_delete = ON');
    // FULL: fsync the WAL on every commit, so an acked send survives power loss, not only kill -9.
    db.pragma('synchronous = FULL');
    db.pragma('busy_timeout = 5000');
    const version = db.pragma('user_version', { simple: true }) as number;
    if (version > SCHEMA_VERSION) throw new Error(`relay database schema ${version} is newer than this relay (${SCHEMA_VERSION})`);
    db.exec(SCHEMA);
    db.exec(TICKETS_SCHEMA);
    db.exec(ARCHIVE_SCHEMA);
    migrate(db, version);
    db.exec(COUNTING);

    const q = {
      upsertDevice: db.prepare(`INSERT INTO devices
        (device_id, signing_key, dh_key, binding, spk_id, spk_created_at, spk_public, spk_signature)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT(device_id) DO UPDATE SET signing_key = excluded.signing_key, dh_key = excluded.dh_key,
        binding = excluded.binding, spk_id = excluded.spk_id, spk_created_at = excluded.spk_created_at,
        spk_public = excluded.spk_public, spk_signature = excluded.spk_signature`),
      setCertificate: db.prepare('UPDATE devices SET certificate = ? WHERE device_id = ?'),
      setAttestation: db.prepare('UPDATE devices SET attestation = ? WHERE device_id = ?'),
      setManifests: db.prepare('UPDATE devices SET manifests = ? WHERE device_id = ?'),
      setDisclosure: db.prepare('UPDATE devices SET disclosure = ? WHERE device_id = ?'),
      insertOpk: db.prepare('INSERT OR IGNORE INTO one_time_prekeys (device_id, opk_id, public_key) VALUES (?, ?, ?)'),
      countOpk: db.prepare('SELECT COUNT(*) AS n FROM one_time_prekeys WHERE device_id = ? AND consumed_at IS NULL'),
      device: db.prepare('SELECT * FROM devices WHERE device_id = ?'),
      nextOpk: db.prepare('SELECT rowid, opk_id, public_key FROM one_time_prekeys WHERE device_id = ? AND consumed_at IS NULL ORDER BY rowid LIMIT 1'),
      consumeOpk: db.prepare('UPDATE one_time_prekeys SET consumed_at = ? WHERE rowid = ?'),
      // Plain INSERT: the dedupe is looked up first in the same transaction, so any conflict is an error.
      insertMessage: db.prepare('INSERT INTO mailbox (recipient, sender, msg_id, envelope, received_at) VALUES (?, ?, ?, ?, ?)'),
      findSent: db.prepare('SELECT seq FROM mailbox WHERE sender = ? AND recipient = ? AND msg_id = ?'),
      pending: db.prepare('SELECT * FROM mailbox WHERE recipient = ? AND seq > ? AND received_at >= ? ORDER BY seq LIMIT ?'),
      count: db.prepare('SELECT n FROM mailbox_counts WHERE scope = ? AND key = ?').pluck(),
      expired: db.prepare('SELECT seq FROM mailbox WHERE received_at < ? ORDER BY received_at, seq LIMIT ?').pluck(),
      deleteSeq: db.prepare('DELETE FROM mailbox WHERE seq = ?'),
      deleteMessage: db.prepare('DELETE FROM mailbox WHERE recipient = ? AND seq = ?'),
      countPending: db.prepare("SELECT COALESCE((SELECT n FROM mailbox_counts WHERE scope = 'r' AND key = ?), 0) AS n"),
      depth: db.prepare("SELECT COALESCE((SELECT n FROM mailbox_counts WHERE scope = 'g' AND key = ''), 0) AS n"),
      insertKey: db.prepare('INSERT INTO api_keys (id, hash, label, created_at, revoked_at) VALUES (?, ?, ?, ?, ?)'),
      findKey: db.prepare('SELECT * FROM api_keys WHERE hash = ? AND revoked_at IS NULL'),
      findAnyKey: db.prepare('SELECT * FROM api_keys WHERE hash = ?'),
      revokeKey: db.prepare('UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL'),
      listKeys: db.prepare('SELECT * FROM api_keys ORDER BY created_at, id'),
      // Kept only when the sequence grows: one statement, so it is atomic.
      putRevocations: db.prepare(`INSERT INTO revocation_lists (issuer, sequence, list) VALUES (?, ?, ?)
        ON CONFLICT (issuer) DO UPDATE SET sequence = excluded.sequence, list = excluded.list WHERE excluded.sequence > revocation_lists.sequence`),
      listRevocations: db.prepare('SELECT issuer, sequence, list FROM revocation_lists ORDER BY issuer'),
      setRoles: db.prepare('INSERT INTO device_roles (device_id, roles) VALUES (?, ?) ON CONFLICT (device_id) DO UPDATE SET roles = excluded.roles'),
      getRoles: db.prepare('SELECT roles FROM device_roles WHERE device_id = ?').pluck(),
    };
    this.#q = q;
    this.#tickets = sqliteTickets(db);
    this.#archive = sqliteArchive(db);

    this.#putPrekeys = db.transaction((deviceId: string, u: PrekeyPublication): number => {
      const spk = u.signedPrekey;
      q.upsertDevice.run(deviceId, blob(u.identity.signingKey), blob(u.identity.dhKey), blob(u.identity.binding),
        spk.id, spk.createdAt, blob(spk.publicKey), blob(spk.signature));
      // Absent: keep; empty: remove (NULL); otherwise replace.
      if (u.certificate !== undefined) q.setCertificate.run(u.certificate.length === 0 ? null : blob(u.certificate), deviceId);
      if (u.attestation !== undefined) q.setAttestation.run(u.attestation.length === 0 ? null : blob(u.attestation), deviceId);
      if (u.manifests !== undefined) q.setManifests.run(u.manifests.length === 0 ? null : blob(u.manifests), deviceId);
      if (u.disclosure !== undefined) q.setDisclosure.run(u.disclosure.length === 0 ? null : blob(u.disclosure), deviceId);
      for (const opk of u.oneTimePrekeys) q.insertOpk.run(deviceId, opk.id, blob(opk.publicKey));
      return (q.countOpk.get(deviceId) as { n: number }).n;
    });

    this.#takeBundle = db.transaction((deviceId: string, withOpk: boolean) => {
      const d = q.device.get(deviceId) as DeviceRow | undefined;
      if (!d) return undefined;
      const opk = withOpk ? q.nextOpk.get(deviceId) as { rowid: number; opk_id: number; public_key: Buffer } | undefined : undefined;
      if (opk) q.consumeOpk.run(Date.now(), opk.rowid);
      const base = {
        identity: { signingKey: bytes(d.signing_key), dhKey: bytes(d.dh_key), binding: bytes(d.binding) },
        signedPrekey: { id: d.spk_id, createdAt: d.spk_created_at, publicKey: bytes(d.spk_public), signature: bytes(d.spk_signature) },
      };
      const bundle: PrekeyBundle = opk ? { ...base, oneTimePrekey: { id: opk.opk_id, publicKey: bytes(opk.public_key) } } : base;
      return { bundle, remaining: (q.countOpk.get(deviceId) as { n: number }).n, ...statementsOf(d) };
    });

    this.#enqueue = db.transaction((m: NewMessage, quota: MailboxQuota | undefined) => {
      const sent = q.findSent.get(m.from, m.to, m.id) as { seq: number } | undefined;
      if (sent) return { seq: sent.seq, duplicate: true };
      if (quota) {
        const n = (scope: string, key: string): number => (q.count.get(scope, key) as number | undefined) ?? 0;
        const over = exceededQuota({ pair: n('p', `${m.from}\n${m.to}`), recipient: n('r', m.to), sender: n('s', m.from), total: n('g', '') }, quota);
        if (over) throw quotaError(over);
      }
      const info = q.insertMessage.run(m.to, m.from, m.id, blob(m.envelope), m.receivedAt);
      return { seq: Number(info.lastInsertRowid), duplicate: false };
    });

    this.#purge = db.transaction((before: number, limit: number) => {
      const seqs = q.expired.all(before, limit) as number[];
      for (const seq of seqs) q.deleteSeq.run(seq);
      return seqs.length;
    });

    this.#delete = db.transaction((to: string, seqs: readonly number[]) => {
      let n = 0;
      for (const seq of seqs) n += q.deleteMessage.run(to, seq).changes;
      return n;
    });

    // Each write is its own (nested, i.e. savepoint) transaction inside this one, so one failing
    // write rolls back alone; the outer commit is one fsync for the whole group.
    this.#groupCommit = db.transaction((writes: QueuedWrite[]) => {
      for (const w of writes) {
        try {
          w.outcome = { ok: true, value: w.run() };
        } catch (error) {
          w.outcome = { ok: false, error };
        }
      }
    });
  }

  /**
   * Group commit: writes issued in the same event-loop turn (e.g. the sends of many sockets)
   * share one transaction and one fsync. Each promise resolves only after that commit, so
   * "acked means durably stored" holds per write, at a fraction of the fsyncs.
   */
  #write<T>(run: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#queuedWrites.push({ run, resolve: resolve as (v: unknown) => void, reject });
      if (!this.#flushScheduled) {
        this.#flushScheduled = true;
        setImmediate(() => this.#flushWrites());
      }
    });
  }

  #flushWrites(): void {
    this.#flushScheduled = false;
    const writes = this.#queuedWrites;
    if (writes.length === 0) return;
    this.#queuedWrites = [];
    if (!this.#db.open) {
      for (const w of writes) w.reject(new Error('relay store is closed'));
      return;
    }
    try {
      this.#groupCommit(writes);
    } catch (error) {
      // The commit itself failed (disk full, I/O error): nothing of this group is durable.
      for (const w of writes) w.reject(error);
      return;
    }
    for (const w of writes) {
      if (w.outcome?.ok) w.resolve(w.outcome.value);
      else w.reject(w.outcome?.error);
    }
  }

  putPrekeys(deviceId: string, upload: PrekeyPublication): Promise<number> {
    return this.#write(() => this.#putPrekeys(deviceId, upload));
  }

  takeBundle(deviceId: string, options: TakeBundleOptions = {}): Promise<({ bundle: PrekeyBundle; remaining: number } & DeviceStatements) | undefined> {
    // Through the group commit too: an OPK counts as handed out only once that is durable (R9).
    return this.#write(() => this.#takeBundle(deviceId, options.oneTimePrekey !== false));
  }

  async getIdentity(deviceId: string): Promise<StoredIdentity | undefined> {
    const d = this.#q.device.get(deviceId) as DeviceRow | undefined;
    if (!d) return undefined;
    return { identity: { signingKey: bytes(d.signing_key), dhKey: bytes(d.dh_key), binding: bytes(d.binding) }, ...statementsOf(d) };
  }

  async countOneTimePrekeys(deviceId: string): Promise<number> {
    return (this.#q.countOpk.get(deviceId) as { n: number }).n;
  }

  enqueue(message: NewMessage, quota?: MailboxQuota): Promise<{ seq: number; duplicate: boolean }> {
    return this.#write(() => this.#enqueue(message, quota));
  }

  async listPending(to: string, afterSeq: number, limit: number, minReceivedAt = 0): Promise<StoredMessage[]> {
    return (this.#q.pending.all(to, afterSeq, minReceivedAt, Math.max(0, limit)) as MessageRow[]).map(toMessage);
  }

  purgeExpired(before: number, limit: number): Promise<number> {
    return this.#write(() => this.#purge(before, Math.max(0, limit)));
  }

  deleteMessages(to: string, seqs: readonly number[]): Promise<number> {
    return this.#write(() => this.#delete(to, seqs));
  }

  async compact(): Promise<void> {
    await this.#write(() => this.#db.pragma('wal_checkpoint(TRUNCATE)'));
  }

  async countPending(to: string): Promise<number> {
    return (this.#q.countPending.get(to) as { n: number }).n;
  }

  async queueDepth(): Promise<number> {
    return (this.#q.depth.get() as { n: number }).n;
  }

  async putApiKey(r: ApiKeyRecord): Promise<void> {
    this.#q.insertKey.run(r.id, r.hash, r.label, r.createdAt, r.revokedAt ?? null);
  }

  async findApiKey(hash: string, options: FindApiKeyOptions = {}): Promise<ApiKeyRecord | undefined> {
    const row = (options.includeRevoked ? this.#q.findAnyKey : this.#q.findKey).get(hash) as ApiKeyRow | undefined;
    return row && toApiKey(row);
  }

  async revokeApiKey(id: string, at: number): Promise<boolean> {
    return this.#q.revokeKey.run(at, id).changes === 1;
  }

  async listApiKeys(): Promise<ApiKeyRecord[]> {
    return (this.#q.listKeys.all() as ApiKeyRow[]).map(toApiKey);
  }

  async putRevocationList(issuer: string, sequence: number, list: Uint8Array): Promise<boolean> {
    return this.#q.putRevocations.run(issuer, sequence, blob(list)).changes === 1;
  }

  async listRevocationLists(): Promise<StoredRevocationList[]> {
    return (this.#q.listRevocations.all() as { issuer: string; sequence: number; list: Buffer }[])
      .map((r) => ({ issuer: r.issuer, sequence: r.sequence, list: bytes(r.list) }));
  }

  async setDeviceRoles(deviceId: string, roles: readonly string[]): Promise<void> {
    this.#q.setRoles.run(deviceId, roles.join(','));
  }

  async getDeviceRoles(deviceId: string): Promise<string[] | undefined> {
    const roles = this.#q.getRoles.get(deviceId) as string | undefined;
    return roles === undefined ? undefined : roles === '' ? [] : roles.split(',');
  }

  // The compliance archive (archive/sqlite-archive.ts); appends through the group commit.
  async archiveAppend(submission: ArchiveSubmission, at: number, deviceId?: string): Promise<number> {
    return this.#write(() => this.#archive.append(submission, at, deviceId));
  }
  async archiveEntries(ref: string): Promise<Uint8Array[]> {
    return this.#archive.entries(ref);
  }
  async archiveAppenders(ref: string): Promise<string[]> {
    return this.#archive.appenders(ref);
  }
  archivePurge(ref: string, erasedAt?: number): Promise<{ deleted: number; held: boolean }> {
    return this.#write(() => this.#archive.purge(ref, erasedAt));
  }
  archiveHold(hold: ArchiveHold): Promise<void> {
    return this.#write(() => this.#archive.hold(hold));
  }
  archiveRelease(ref: string): Promise<boolean> {
    return this.#write(() => this.#archive.release(ref));
  }
  async archiveHolds(): Promise<ArchiveHold[]> {
    return this.#archive.holds();
  }
  archiveSweep(before: number, limit: number): Promise<{ refs: number; entries: number }> {
    return this.#write(() => this.#archive.sweep(before, limit));
  }
  archiveRecordOpening(opening: Omit<ArchiveOpening, 'id'>): Promise<number> {
    return this.#write(() => this.#archive.recordOpening(opening));
  }
  async archiveOpeningsAfter(afterId: number, limit: number): Promise<ArchiveOpening[]> {
    return this.#archive.openingsAfter(afterId, limit);
  }
  async archivePendingOpenings(deviceId: string): Promise<ArchiveOpening[]> {
    return this.#archive.pendingOpenings(deviceId);
  }
  archiveOpeningNoticed(id: number, deviceId: string): Promise<void> {
    return this.#write(() => this.#archive.noticed(id, deviceId));
  }

  // Handoff tickets (tickets/sqlite-tickets.ts); writes through the group commit, like every write.
  openTicket(ticket: NewTicket, maxPerCustomer?: number): Promise<TicketOpenResult> {
    return this.#write(() => this.#tickets.open(ticket, maxPerCustomer));
  }

  async getTicket(id: string): Promise<Ticket | undefined> {
    return this.#tickets.get(id);
  }

  async listTickets(queue?: string, limit = -1): Promise<Ticket[]> {
    return this.#tickets.list(queue, limit); // LIMIT -1: all
  }

  claimTicket(id: string, agent: string, at: number): Promise<TicketStep> {
    return this.#write(() => this.#tickets.claim(id, agent, at));
  }

  releaseTicket(id: string, by: string, at: number, queue?: string): Promise<TicketStep> {
    return this.#write(() => this.#tickets.release(id, by, at, queue));
  }

  closeTicket(id: string, by: string): Promise<TicketStep> {
    return this.#write(() => this.#tickets.close(id, by));
  }

  async dueUnclaimed(before: number, limit: number): Promise<Ticket[]> {
    return this.#tickets.due(before, Math.max(0, limit));
  }

  markUnclaimedNotified(id: string, waitingSince: number): Promise<boolean> {
    return this.#write(() => this.#tickets.mark(id, waitingSince));
  }

  async countWaitingTickets(): Promise<number> {
    return this.#tickets.waiting();
  }

  async close(): Promise<void> {
    if (!this.#db.open) return;
    this.#flushWrites(); // writes already issued still commit (or fail) before the file closes
    this.#db.close();
    this.#lock?.close();
  }
}
