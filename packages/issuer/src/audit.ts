/**
 * The audit log: every enrolment, sign-in (success or failure with its reason), issuance,
 * revocation and role change is one entry, appended to the `audit` table of the issuer database.
 * Entries are hash-chained: `hash = SHA-256(canonical JSON of { seq, time, type, actor, subject,
 * reason, details, prevHash })`, `prevHash` the previous entry's hash (64 zeros for the first).
 * The table has no UPDATE or DELETE path (triggers refuse both), and {@link verifyAudit} finds a
 * deleted, reordered or altered entry. It cannot see the newest entries cut off the end: keep the
 * head hash that `parley-issuer audit verify` prints elsewhere and compare (`--head`).
 * Entries never hold a password, a code, a secret or a token.
 */
import type Database from 'better-sqlite3';
import { getCrypto, toHex, utf8 } from '@parley/protocol';

/** What an audit entry records. */
export type AuditType =
  | 'person.add' | 'person.roles' | 'person.disable' | 'person.resetFactor'
  | 'enrol.start' | 'enrol.password' | 'enrol.passkey' | 'enrol.totp' | 'enrol.complete' | 'enrol.failure'
  | 'signin.success' | 'signin.failure' | 'issue'
  | 'revoke.device' | 'revocation.sign' | 'revocation.publish';

/** One audit entry as stored. */
export interface AuditEntry {
  readonly seq: number;
  readonly time: number;
  readonly type: string;
  /** Who acted: `cli`, `issuer`, `person:<id>`, or `ip:<address>` for a sign-in attempt. */
  readonly actor: string;
  /** What it was about: a person id, a username tried, a device id, a serial. */
  readonly subject: string;
  /** Why (failures): `badPassword`, `unknownUser`, `badTotp`, … ; '' otherwise. */
  readonly reason: string;
  /** Public details (roles, serial, expiry); never secrets. */
  readonly details: Readonly<Record<string, string | number | boolean | readonly string[]>>;
  readonly prevHash: string;
  readonly hash: string;
}

/** Genesis prevHash. */
export const AUDIT_GENESIS = '0'.repeat(64);

/** JSON with object keys sorted at every level (the canonical form that is hashed). */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const o = value as Record<string, unknown>;
    return `{${Object.keys(o).sort().filter((k) => o[k] !== undefined).map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** The hash of an entry (everything but the hash itself). */
export function auditHash(e: Omit<AuditEntry, 'hash'>): string {
  const { seq, time, type, actor, subject, reason, details, prevHash } = e;
  return toHex(getCrypto().sha256(utf8(canonicalJson({ seq, time, type, actor, subject, reason, details, prevHash }))));
}

interface AuditRow { seq: number; time: number; type: string; actor: string; subject: string; reason: string; details: string; prev_hash: string; hash: string }

function toEntry(r: AuditRow): AuditEntry {
  return { seq: r.seq, time: r.time, type: r.type, actor: r.actor, subject: r.subject, reason: r.reason, details: JSON.parse(r.details) as AuditEntry['details'], prevHash: r.prev_hash, hash: r.hash };
}

/** What to append. */
export interface AuditEvent {
  readonly type: AuditType;
  readonly actor: string;
  readonly subject: string;
  readonly reason?: string;
  readonly details?: AuditEntry['details'];
}

/** Appends and chains audit entries; safe across processes (one IMMEDIATE transaction each). */
export class AuditLog {
  readonly #append: (e: AuditEvent, time: number) => AuditEntry;
  readonly #db: Database.Database;

  constructor(db: Database.Database) {
    this.#db = db;
    const last = db.prepare('SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1');
    const insert = db.prepare('INSERT INTO audit (seq, time, type, actor, subject, reason, details, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)');
    const tx = db.transaction((e: AuditEvent, time: number): AuditEntry => {
      const prev = last.get() as { seq: number; hash: string } | undefined;
      const base = { seq: (prev?.seq ?? 0) + 1, time, type: e.type, actor: e.actor, subject: e.subject, reason: e.reason ?? '', details: e.details ?? {}, prevHash: prev?.hash ?? AUDIT_GENESIS };
      const entry = { ...base, hash: auditHash(base) };
      insert.run(entry.seq, entry.time, entry.type, entry.actor, entry.subject, entry.reason, canonicalJson(entry.details), entry.prevHash, entry.hash);
      return entry;
    });
    this.#append = (e, time) => tx.immediate(e, time);
  }

  /** Appends one entry. */
  append(e: AuditEvent, time = Date.now()): AuditEntry {
    return this.#append(e, time);
  }

  /** Entries in order (optionally from `fromSeq`, at most `limit`). */
  list(options: { fromSeq?: number; limit?: number } = {}): AuditEntry[] {
    const rows = this.#db.prepare('SELECT * FROM audit WHERE seq >= ? ORDER BY seq LIMIT ?').all(options.fromSeq ?? 0, options.limit ?? -1) as AuditRow[];
    return rows.map(toEntry);
  }

  /** Checks the whole chain; see {@link verifyAudit}. */
  verify(): AuditVerdict {
    const rows = this.#db.prepare('SELECT * FROM audit ORDER BY rowid').all() as AuditRow[];
    return verifyAudit(rows.map((r) => {
      try {
        return toEntry(r);
      } catch {
        return { ...toEntry({ ...r, details: '{}' }), hash: `unparsable:${r.hash}` };
      }
    }));
  }
}

/** The result of checking the chain. */
export type AuditVerdict =
  | { readonly ok: true; readonly entries: number; readonly head: string }
  | { readonly ok: false; readonly entries: number; readonly brokenAt: number; readonly position: number; readonly why: 'sequence' | 'prevHash' | 'hash' };

/**
 * Checks entries in storage order: sequence numbers 1, 2, 3, … without gap (a deleted or moved
 * entry), each `prevHash` the previous `hash` (deleted, reordered), each hash recomputed
 * (altered). `brokenAt` is the seq of the first entry that fails, `position` its 1-based place.
 */
export function verifyAudit(entries: readonly AuditEntry[]): AuditVerdict {
  let prev = AUDIT_GENESIS;
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]!;
    const fail = (why: 'sequence' | 'prevHash' | 'hash'): AuditVerdict => ({ ok: false, entries: entries.length, brokenAt: e.seq, position: i + 1, why });
    if (e.seq !== i + 1) return fail('sequence'); // ct-ok: public sequence numbers
    if (e.prevHash !== prev) return fail('prevHash'); // ct-ok: public hashes
    if (auditHash(e) !== e.hash) return fail('hash'); // ct-ok: public hashes
    prev = e.hash;
  }
  return { ok: true, entries: entries.length, head: prev };
}
