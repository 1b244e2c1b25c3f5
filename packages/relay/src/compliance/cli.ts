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
 * parley-compliance open --db relay.db --key compliance.key (--ref R | --conversation ID) --audit audit.log --opener <name>
 *     appends an audit record, then prints the transcript (one line per message)
 * parley-compliance export --db relay.db --key compliance.key (--ref R | --conversation ID) --audit audit.log --opener <name> --format json
 *     appends an audit record, then prints the transcript as JSON
 * parley-compliance audit-verify --audit audit.log
 *     checks the audit log's hash chain; exits 1 when a record was deleted, reordered or edited
 * ```
 * It ships with the relay package because it reads the relay's SQLite file with the relay's driver;
 * the relay server never imports it (and never holds the compliance key).
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

const KEY_FORMAT = 'parley-compliance-key';

interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
}

function openDb(path: string): Database.Database {
  if (!existsSync(path)) throw new ParleyError('USAGE', `${path} does not exist`);
  return new Database(path, { readonly: true, fileMustExist: true });
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
      .requiredOption('--opener <name>', 'who opens it (recorded in the audit log)');

  openLike('open').action((opts: { db: string; key: string; ref?: string; conversation?: string; audit: string; opener: string }) => {
    const ref = refOf(opts, true)!;
    const { report, messages } = transcript(opts.db, opts.key, ref);
    // Audited before anything is shown.
    appendAudit(opts.audit, { action: 'open', ref, opener: opts.opener, entries: messages.length });
    if (!report.ok) io.err(`warning: the chain of ${ref} is broken: ${report.breaks.map(describeArchiveBreak).join('; ')}\n`);
    for (const m of messages) io.out(`#${m.index} ${new Date(m.at).toISOString()} ${m.from}: ${m.body}\n`);
    if (!report.ok) setExit(1);
  });

  openLike('export')
    .option('--format <format>', 'json', 'json')
    .action((opts: { db: string; key: string; ref?: string; conversation?: string; audit: string; opener: string; format: string }) => {
      if (opts.format !== 'json') throw new ParleyError('USAGE', '--format must be json');
      const ref = refOf(opts, true)!;
      const { report, messages } = transcript(opts.db, opts.key, ref);
      appendAudit(opts.audit, { action: 'export', ref, opener: opts.opener, entries: messages.length });
      io.out(`${JSON.stringify({ ref, chain: { ok: report.ok, breaks: report.breaks.map(describeArchiveBreak) }, messages }, null, 2)}\n`);
      if (!report.ok) setExit(1);
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
