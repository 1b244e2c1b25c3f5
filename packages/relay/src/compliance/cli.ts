/**
 * `parley-compliance`: the compliance officer's tool over the relay's append-only archive.
 *
 * ```
 * parley-compliance keygen --out compliance.key
 *     writes an X25519 compliance key pair (mode 0600) and prints the public key to disclose
 *     (`parley-org disclose --archive-key <hex>`)
 * parley-compliance verify --db relay.db [--ref R | --conversation ID] [--json]
 *     checks every chain (or one) and names each break: "entry 3 deleted", "entries 1 and 4
 *     reordered", "entry 2 replaced (signature)"; exits 1 when any chain is broken
 * parley-compliance open --db relay.db --key compliance.key (--ref R | --conversation ID) --audit audit.log --opener <name> --reason <text>
 *     appends an audit record, records the opening in the relay's database (the relay tells
 *     every device that appended to the ref: `archiveOpened`), then prints the transcript
 * parley-compliance export … (as open) --format json
 *     the same, the transcript as JSON
 * parley-compliance hold --db relay.db (--ref R | --conversation ID) --reason <text> --audit audit.log --by <name>
 *     puts the ref under a legal hold: its entries survive erasure purges and the retention sweep
 * parley-compliance release --db relay.db (--ref R | --conversation ID) --reason <text> --audit audit.log --by <name>
 *     lifts the hold
 * parley-compliance holds --db relay.db [--json]
 *     lists the holds
 * parley-compliance audit-verify --audit audit.log
 *     checks the audit log's hash chain; exits 1 when a record was deleted, reordered or edited
 * ```
 * It ships with the relay package because it reads the relay's SQLite file with the relay's driver
 * (SQLite only: with a Redis store, call the store's `archiveHold`/`archiveRecordOpening`); the
 * relay server never imports it (and never holds the compliance key). `hold`, `release`, `open`
 * and `export` write to the database beside the running relay (WAL, busy timeout).
 */
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import Database from 'better-sqlite3';
import { Command } from 'commander';
import {
  ARCHIVE_REF_PATTERN,
  ParleyError,
  archiveRef,
  archiveSealAd,
  decodeArchiveEntry,
  decodeArchivedMessage,
  describeArchiveBreak,
  fromHex,
  getCrypto,
  initCrypto,
  openArchiveSeal,
  toHex,
  verifyArchiveChain,
  type ArchiveChainReport,
  type ArchivedMessage,
} from '@parley/protocol/verify';
import { appendAudit, verifyAuditLog } from './audit-log.js';
import { ARCHIVE_SCHEMA, sqliteArchive } from '../archive/sqlite-archive.js';

const KEY_FORMAT = 'parley-compliance-key';

interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
}

function openDb(path: string): Database.Database {
  if (!existsSync(path)) throw new ParleyError('USAGE', `${path} does not exist`);
  return new Database(path, { readonly: true, fileMustExist: true });
}

/** The relay's database for writing (holds, openings): the archive tables exist after this. */
function openDbForWrite(path: string): Database.Database {
  if (!existsSync(path)) throw new ParleyError('USAGE', `${path} does not exist`);
  const db = new Database(path, { fileMustExist: true });
  db.pragma('busy_timeout = 5000');
  db.exec(ARCHIVE_SCHEMA);
  return db;
}

/** `--reason`: 1-500 characters, no control characters (it is shown to the customer). */
function reasonOf(raw: string): string {
  const reason = raw.trim();
  if (reason.length < 1 || reason.length > 500 || /[\u0000-\u001f\u007f]/.test(reason)) throw new ParleyError('USAGE', '--reason must be 1-500 characters without control characters');
  return reason;
}

function readChains(db: Database.Database, ref?: string): Map<string, Uint8Array[]> {
  const rows = (ref === undefined
    ? db.prepare('SELECT ref, entry FROM archive_entries ORDER BY ref, idx').all()
    : db.prepare('SELECT ref, entry FROM archive_entries WHERE ref = ? ORDER BY idx').all(ref)) as { ref: string; entry: Buffer }[];
  const chains = new Map<string, Uint8Array[]>();
  for (const r of rows) {
    let c = chains.get(r.ref);
    if (!c) chains.set(r.ref, (c = []));
    c.push(new Uint8Array(r.entry));
  }
  return chains;
}

function readKey(path: string): Uint8Array {
  const parsed = JSON.parse(readFileSync(path, 'utf8')) as { format?: string; privateKey?: string };
  if (parsed.format !== KEY_FORMAT || typeof parsed.privateKey !== 'string' || !/^[0-9a-f]{64}$/.test(parsed.privateKey)) {
    throw new ParleyError('USAGE', `${path} is not a parley compliance key file`);
  }
  return fromHex(parsed.privateKey);
}

/** `--ref R` or `--conversation ID` (→ `archiveRef(ID)`): exactly one. */
function refOf(opts: { ref?: string; conversation?: string }, required: boolean): string | undefined {
  if (opts.ref !== undefined && opts.conversation !== undefined) throw new ParleyError('USAGE', 'give --ref or --conversation, not both');
  if (opts.conversation !== undefined) return archiveRef(opts.conversation);
  if (opts.ref === undefined && required) throw new ParleyError('USAGE', 'give --ref <ref> or --conversation <id>');
  if (opts.ref !== undefined && !ARCHIVE_REF_PATTERN.test(opts.ref)) throw new ParleyError('USAGE', 'not an archive ref');
  return opts.ref;
}

/** Verifies, then opens every entry of `ref` (a broken chain is reported and still opened). */
function transcript(dbPath: string, keyPath: string, ref: string): { report: ArchiveChainReport; messages: (ArchivedMessage & { index: number })[] } {
  const db = openDb(dbPath);
  try {
    const entries = readChains(db, ref).get(ref) ?? [];
    if (entries.length === 0) throw new ParleyError('USAGE', `no archive entries for ref ${ref}`);
    const report = verifyArchiveChain(ref, entries);
    const key = readKey(keyPath);
    try {
      const messages = entries.map((bytes) => {
        const e = decodeArchiveEntry(bytes);
        const plain = openArchiveSeal(key, e.submission.sealed, archiveSealAd(ref, e.submission.senderKey));
        return { index: e.index, ...decodeArchivedMessage(plain) };
      });
      return { report, messages };
    } finally {
      key.fill(0);
    }
  } finally {
    db.close();
  }
}

/** The program (for tests: `main(argv, io)`). */
export function buildProgram(io: Io, setExit: (code: number) => void): Command {
  const program = new Command('parley-compliance')
    .description('verify, open and export the relay\'s compliance archive; every opening is audited')
    .exitOverride()
    .configureOutput({ writeOut: io.out, writeErr: io.err });

  program
    .command('keygen')
    .description('write an X25519 compliance key pair and print its public key')
    .requiredOption('--out <file>', 'key file to write (mode 0600; refuses to overwrite)')
    .action((opts: { out: string }) => {
      if (existsSync(opts.out)) throw new ParleyError('USAGE', `${opts.out} exists; not overwriting a key`);
      const kp = getCrypto().x25519Generate();
      writeFileSync(opts.out, `${JSON.stringify({ format: KEY_FORMAT, version: 1, privateKey: toHex(kp.privateKey), publicKey: toHex(kp.publicKey) })}\n`, { mode: 0o600, flag: 'wx' });
      kp.privateKey.fill(0);
      io.out(`${toHex(kp.publicKey)}\n`);
    });

  program
    .command('verify')
    .description('check the archive\'s hash chains and name each break; exit 1 when any is broken')
    .requiredOption('--db <file>', 'the relay\'s SQLite database')
    .option('--ref <ref>', 'one conversation ref (default: every ref)')
    .option('--conversation <id>', 'one conversation, by its id (its ref is archiveRef(id))')
    .option('--json', 'print JSON reports')
    .action((opts: { db: string; ref?: string; conversation?: string; json?: boolean }) => {
      const one = refOf(opts, false);
      const db = openDb(opts.db);
      let reports: ArchiveChainReport[];
      try {
        reports = [...readChains(db, one)].map(([ref, entries]) => verifyArchiveChain(ref, entries));
      } finally {
        db.close();
      }
      if (one !== undefined && reports.length === 0) throw new ParleyError('USAGE', `no archive entries for ref ${one}`);
      if (opts.json) {
        io.out(`${JSON.stringify(reports.map((r) => ({ ref: r.ref, entries: r.entries, ok: r.ok, breaks: r.breaks.map(describeArchiveBreak) })), null, 2)}\n`);
      } else {
        for (const r of reports) io.out(r.ok ? `${r.ref}: OK (${r.entries} entries)\n` : `${r.ref}: BROKEN: ${r.breaks.map(describeArchiveBreak).join('; ')}\n`);
      }
      if (reports.some((r) => !r.ok)) setExit(1);
    });

  const openLike = (name: 'open' | 'export') =>
    program
      .command(name)
      .description(name === 'open' ? 'print a conversation\'s transcript (audited)' : 'export a conversation\'s transcript (audited)')
      .requiredOption('--db <file>', 'the relay\'s SQLite database')
      .requiredOption('--key <file>', 'the compliance key file (keygen)')
      .option('--ref <ref>', 'the conversation\'s archive ref')
      .option('--conversation <id>', 'the conversation, by its id (instead of --ref)')
      .requiredOption('--audit <file>', 'the audit log to append to')
      .requiredOption('--opener <name>', 'who opens it (recorded in the audit log)')
      .requiredOption('--reason <text>', 'why (recorded in the audit log and shown to the conversation\'s members)');

  /** Audits, then records the opening in the relay's database (the relay notifies the appenders). */
  const recordOpening = (opts: { db: string; audit: string; opener: string; reason: string }, action: 'open' | 'export', ref: string, entries: number): void => {
    const reason = reasonOf(opts.reason);
    const record = appendAudit(opts.audit, { action, ref, opener: opts.opener, entries, reason });
    const db = openDbForWrite(opts.db);
    try {
      sqliteArchive(db).recordOpening({ ref, at: Date.parse(record.at), reason, auditHash: record.hash });
    } finally {
      db.close();
    }
  };

  openLike('open').action((opts: { db: string; key: string; ref?: string; conversation?: string; audit: string; opener: string; reason: string }) => {
    const ref = refOf(opts, true)!;
    reasonOf(opts.reason);
    const { report, messages } = transcript(opts.db, opts.key, ref);
    // Audited and recorded before anything is shown.
    recordOpening(opts, 'open', ref, messages.length);
    if (!report.ok) io.err(`warning: the chain of ${ref} is broken: ${report.breaks.map(describeArchiveBreak).join('; ')}\n`);
    for (const m of messages) io.out(`#${m.index} ${new Date(m.at).toISOString()} ${m.from}: ${m.body}\n`);
    if (!report.ok) setExit(1);
  });

  openLike('export')
    .option('--format <format>', 'json', 'json')
    .action((opts: { db: string; key: string; ref?: string; conversation?: string; audit: string; opener: string; reason: string; format: string }) => {
      if (opts.format !== 'json') throw new ParleyError('USAGE', '--format must be json');
      const ref = refOf(opts, true)!;
      reasonOf(opts.reason);
      const { report, messages } = transcript(opts.db, opts.key, ref);
      recordOpening(opts, 'export', ref, messages.length);
      io.out(`${JSON.stringify({ ref, chain: { ok: report.ok, breaks: report.breaks.map(describeArchiveBreak) }, messages }, null, 2)}\n`);
      if (!report.ok) setExit(1);
    });

  const holdLike = (name: 'hold' | 'release') =>
    program
      .command(name)
      .description(name === 'hold' ? 'put a conversation\'s archive under a legal hold (audited)' : 'lift a legal hold (audited)')
      .requiredOption('--db <file>', 'the relay\'s SQLite database')
      .option('--ref <ref>', 'the conversation\'s archive ref')
      .option('--conversation <id>', 'the conversation, by its id (instead of --ref)')
      .requiredOption('--reason <text>', 'why (a case or request reference; recorded in the audit log)')
      .requiredOption('--audit <file>', 'the audit log to append to')
      .requiredOption('--by <name>', 'who decides it (recorded in the audit log)')
      .action((opts: { db: string; ref?: string; conversation?: string; reason: string; audit: string; by: string }) => {
        const ref = refOf(opts, true)!;
        const reason = reasonOf(opts.reason);
        const db = openDbForWrite(opts.db);
        try {
          const archive = sqliteArchive(db);
          const entries = archive.entries(ref).length;
          if (name === 'release' && !archive.holds().some((h) => h.ref === ref)) throw new ParleyError('USAGE', `${ref} is not under a legal hold`); // ct-ok: public refs
          appendAudit(opts.audit, { action: name, ref, opener: opts.by, entries, reason });
          if (name === 'hold') archive.hold({ ref, reason, at: Date.now() });
          else archive.release(ref);
          io.out(`${ref}: ${name === 'hold' ? 'held' : 'released'} (${entries} entries)\n`);
        } finally {
          db.close();
        }
      });
  holdLike('hold');
  holdLike('release');

  program
    .command('holds')
    .description('list the legal holds')
    .requiredOption('--db <file>', 'the relay\'s SQLite database')
    .option('--json', 'print JSON')
    .action((opts: { db: string; json?: boolean }) => {
      const db = openDbForWrite(opts.db);
      try {
        const holds = sqliteArchive(db).holds();
        if (opts.json) io.out(`${JSON.stringify(holds.map((h) => ({ ...h, at: new Date(h.at).toISOString() })), null, 2)}\n`);
        else for (const h of holds) io.out(`${h.ref} since ${new Date(h.at).toISOString()}: ${h.reason}\n`);
      } finally {
        db.close();
      }
    });

  program
    .command('audit-verify')
    .description('check the audit log\'s hash chain; exit 1 when a record was deleted, reordered or edited')
    .requiredOption('--audit <file>', 'the audit log')
    .action((opts: { audit: string }) => {
      const r = verifyAuditLog(opts.audit);
      if (r.breaks.length === 0) io.out(`audit log OK (${r.records} records)\n`);
      else {
        io.out(`audit log BROKEN: ${r.breaks.join('; ')}\n`);
        setExit(1);
      }
    });
  return program;
}

/** Entry point; returns the exit code. */
export async function main(
  argv: string[],
  io: Io = { out: (s) => void process.stdout.write(s), err: (s) => void process.stderr.write(s) },
): Promise<number> {
  await initCrypto();
  let exit = 0;
  const program = buildProgram(io, (c) => (exit = c));
  try {
    await program.parseAsync(argv);
    return exit;
  } catch (e) {
    const code = (e as { exitCode?: number }).exitCode;
    if (typeof code === 'number' && (e as { code?: string }).code?.startsWith('commander.')) return code;
    io.err(`parley-compliance: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  }
}
