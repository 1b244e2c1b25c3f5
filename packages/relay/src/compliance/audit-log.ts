/**
 * The compliance audit log: one JSON line per opening or export of the archive, and per legal
 * hold put or lifted, hash-chained
 * (each line names the previous line's hash; the first names 64 zeros), so a deleted, reordered
 * or edited line is named by {@link verifyAuditLog}. Appended with `O_APPEND`, mode 0600.
 */
import { createHash } from 'node:crypto';
import { appendFileSync, existsSync, readFileSync } from 'node:fs';

/** One audit record. */
export interface AuditRecord {
  readonly n: number;
  readonly at: string;
  readonly action: 'open' | 'export' | 'hold' | 'release';
  readonly ref: string;
  /** Who opened (the `--opener` name) and under which role. */
  readonly opener: string;
  readonly entries: number;
  /** The reason given (`--reason`); records written before it existed have none. */
  readonly reason?: string;
  readonly prev: string;
  readonly hash: string;
}

const ZERO = '0'.repeat(64);

function hashOf(r: Omit<AuditRecord, 'hash'>): string {
  const canonical = JSON.stringify([r.n, r.at, r.action, r.ref, r.opener, r.entries, r.prev, ...(r.reason === undefined ? [] : [r.reason])]);
  return createHash('sha256').update(canonical).digest('hex');
}

function readLines(path: string): string[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8').split('\n').filter((l) => l.trim() !== '');
}

/** Appends a record after the file's last one; returns it. */
export function appendAudit(path: string, e: { action: AuditRecord['action']; ref: string; opener: string; entries: number; reason?: string; at?: Date }): AuditRecord {
  const lines = readLines(path);
  const last = lines.length > 0 ? (JSON.parse(lines[lines.length - 1] ?? '{}') as Partial<AuditRecord>) : undefined;
  const base = {
    n: lines.length,
    at: (e.at ?? new Date()).toISOString(),
    action: e.action,
    ref: e.ref,
    opener: e.opener,
    entries: e.entries,
    ...(e.reason === undefined ? {} : { reason: e.reason }),
    prev: typeof last?.hash === 'string' ? last.hash : ZERO,
  };
  const record: AuditRecord = { ...base, hash: hashOf(base) };
  appendFileSync(path, `${JSON.stringify(record)}\n`, { mode: 0o600, flag: 'a' });
  return record;
}

/** The verdict over an audit log: every break, in people's words. */
export function verifyAuditLog(path: string): { records: number; breaks: string[] } {
  const lines = readLines(path);
  const breaks: string[] = [];
  let prev = ZERO;
  lines.forEach((line, i) => {
    let r: AuditRecord;
    try {
      r = JSON.parse(line) as AuditRecord;
    } catch {
      breaks.push(`line ${i + 1} is not a record (replaced)`);
      prev = '';
      return;
    }
    const { hash, ...rest } = r;
    if (hashOf(rest) !== hash) breaks.push(`record ${r.n} (line ${i + 1}) replaced: its hash does not match its fields`); // ct-ok: a public log's hashes
    else if (r.n !== i) breaks.push(`record ${r.n} found at line ${i + 1}: ${r.n > i ? 'a record before it was deleted' : 'records reordered'}`);
    else if (prev !== '' && r.prev !== prev) breaks.push(`record ${r.n} does not follow the line before it (a record was deleted, reordered or replaced)`);
    prev = hash;
  });
  return { records: lines.length, breaks };
}
