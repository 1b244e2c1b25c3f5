/**
 * The staff directory: people (username, display name, roles, disabled), one-time enrolment
 * invitations (stored as SHA-256 hashes, 72 h), admin sessions (hashed tokens) and revoked
 * persons and devices. Every change is an audit entry. Used by the server and by the CLI on the
 * same database file.
 */
import { STAFF_ROLES, getCrypto, toHex, utf8, type StaffRole } from '@parley/protocol';
import type Database from 'better-sqlite3';
import type { AuditLog } from './audit.js';
import { IssuerError } from './errors.js';

/** How long an invitation stays valid. */
export const INVITATION_TTL_MS = 72 * 3600 * 1000;
/** Usernames: what people type. */
export const USERNAME_PATTERN = /^[a-z0-9][a-z0-9._@-]{0,63}$/;

/** A person as the directory keeps them (no secrets). */
export interface Person {
  readonly personId: string;
  readonly username: string;
  readonly displayName: string;
  readonly roles: readonly StaffRole[];
  readonly disabled: boolean;
  readonly createdAt: number;
  /** A password is set. */
  readonly hasPassword: boolean;
  /** Enrolled second factors. */
  readonly factors: readonly ('passkey' | 'totp')[];
}

interface PersonRow { person_id: string; username: string; display_name: string; roles: string; password_hash: string | null; disabled_at: number | null; created_at: number }

const sha256Hex = (s: string): string => toHex(getCrypto().sha256(utf8(s)));
const randomToken = (bytes: number): string => Buffer.from(getCrypto().randomBytes(bytes)).toString('base64url');

/** Checks a role list (known roles, no duplicates, not empty). */
export function checkRoles(roles: readonly unknown[]): StaffRole[] {
  if (roles.length === 0) throw new IssuerError('USAGE', 'give at least one role');
  const out: StaffRole[] = [];
  for (const r of roles) {
    if (typeof r !== 'string' || !(STAFF_ROLES as readonly string[]).includes(r)) throw new IssuerError('USAGE', `unknown role ${String(r)} (roles: ${STAFF_ROLES.join(', ')})`);
    if (!out.includes(r as StaffRole)) out.push(r as StaffRole);
  }
  return out;
}

/** The directory on one database. */
export class Directory {
  readonly #db: Database.Database;
  readonly #audit: AuditLog;
  readonly #now: () => number;

  constructor(db: Database.Database, audit: AuditLog, now: () => number = Date.now) {
    this.#db = db;
    this.#audit = audit;
    this.#now = now;
  }

  get audit(): AuditLog {
    return this.#audit;
  }

  #row(personId: string): PersonRow | undefined {
    return this.#db.prepare('SELECT * FROM persons WHERE person_id = ?').get(personId) as PersonRow | undefined;
  }

  #toPerson(r: PersonRow): Person {
    const factors: ('passkey' | 'totp')[] = [];
    if (this.#db.prepare('SELECT 1 FROM passkeys WHERE person_id = ?').get(r.person_id)) factors.push('passkey');
    if (this.#db.prepare('SELECT 1 FROM totp WHERE person_id = ? AND pending = 0').get(r.person_id)) factors.push('totp');
    return {
      personId: r.person_id, username: r.username, displayName: r.display_name, roles: JSON.parse(r.roles) as StaffRole[],
      disabled: r.disabled_at !== null, createdAt: r.created_at, hasPassword: r.password_hash !== null, factors,
    };
  }

  /** A person by id. */
  get(personId: string): Person | undefined {
    const r = this.#row(personId);
    return r && this.#toPerson(r);
  }

  /** A person and their password hash, by username (sign-in). */
  byUsername(username: string): { person: Person; passwordHash: string | undefined } | undefined {
    const r = this.#db.prepare('SELECT * FROM persons WHERE username = ?').get(username) as PersonRow | undefined;
    return r && { person: this.#toPerson(r), passwordHash: r.password_hash ?? undefined };
  }

  /** Everyone, by username. */
  list(): Person[] {
    return (this.#db.prepare('SELECT * FROM persons ORDER BY username').all() as PersonRow[]).map((r) => this.#toPerson(r));
  }

  /** Adds a person and returns their first invitation (printed once, stored hashed). */
  add(f: { username: string; displayName: string; roles: readonly unknown[] }, actor: string): { personId: string; invitation: string } {
    const username = f.username.trim().toLowerCase();
    if (!USERNAME_PATTERN.test(username)) throw new IssuerError('USAGE', 'username: 1-64 of a-z 0-9 . _ @ - (starting with a letter or digit)');
    const displayName = f.displayName.trim();
    if (displayName.length === 0 || utf8(displayName).length > 128) throw new IssuerError('USAGE', 'display name: 1-128 bytes');
    const roles = checkRoles(f.roles);
    const personId = toHex(getCrypto().randomBytes(16));
    return this.#db.transaction(() => {
      if (this.#db.prepare('SELECT 1 FROM persons WHERE username = ?').get(username)) throw new IssuerError('USAGE', `username ${username} is taken`);
      this.#db.prepare('INSERT INTO persons (person_id, username, display_name, roles, created_at) VALUES (?, ?, ?, ?, ?)')
        .run(personId, username, displayName, JSON.stringify(roles), this.#now());
      this.#audit.append({ type: 'person.add', actor, subject: personId, details: { username, roles } }, this.#now());
      return { personId, invitation: this.#invite(personId) };
    }).immediate();
  }

  #invite(personId: string): string {
    const invitation = randomToken(24);
    this.#db.prepare('INSERT INTO invitations (hash, person_id, expires_at) VALUES (?, ?, ?)').run(sha256Hex(invitation), personId, this.#now() + INVITATION_TTL_MS);
    return invitation;
  }

  /** The person an unexpired, unconsumed invitation is for. */
  invitation(invitation: string): Person | undefined {
    if (typeof invitation !== 'string' || invitation.length > 200) return undefined;
    const r = this.#db.prepare('SELECT person_id, expires_at, consumed_at FROM invitations WHERE hash = ?').get(sha256Hex(invitation)) as
      { person_id: string; expires_at: number; consumed_at: number | null } | undefined;
    if (!r || r.consumed_at !== null || r.expires_at <= this.#now()) return undefined;
    const p = this.get(r.person_id);
    return p && !p.disabled ? p : undefined;
  }

  /** Marks an invitation used. */
  consumeInvitation(invitation: string): void {
    this.#db.prepare('UPDATE invitations SET consumed_at = ? WHERE hash = ?').run(this.#now(), sha256Hex(invitation));
  }

  /** Sets a password hash (enrolment). */
  setPasswordHash(personId: string, hash: string): void {
    this.#db.prepare('UPDATE persons SET password_hash = ? WHERE person_id = ?').run(hash, personId);
  }

  #mustGet(personId: string): Person {
    const p = this.get(personId);
    if (!p) throw new IssuerError('USAGE', `no person ${personId}`, 404);
    return p;
  }

  /** Replaces a person's roles (certificates already issued keep theirs until they expire). */
  setRoles(personId: string, roles: readonly unknown[], actor: string): Person {
    const before = this.#mustGet(personId);
    const next = checkRoles(roles);
    this.#db.prepare('UPDATE persons SET roles = ? WHERE person_id = ?').run(JSON.stringify(next), personId);
    this.#audit.append({ type: 'person.roles', actor, subject: personId, details: { from: [...before.roles], to: next } }, this.#now());
    return this.#mustGet(personId);
  }

  /** Disables a person: no more sign-ins, and the person goes on the revocation list. */
  disable(personId: string, actor: string): void {
    this.#mustGet(personId);
    this.#db.transaction(() => {
      this.#db.prepare('UPDATE persons SET disabled_at = ? WHERE person_id = ? AND disabled_at IS NULL').run(this.#now(), personId);
      this.#db.prepare('DELETE FROM sessions WHERE person_id = ?').run(personId);
      this.#db.prepare("INSERT OR IGNORE INTO revoked (kind, id, at) VALUES ('person', ?, ?)").run(personId, this.#now());
      this.#db.prepare("INSERT INTO state (key, value) VALUES ('revocationDirty', 1) ON CONFLICT (key) DO UPDATE SET value = 1").run();
      this.#audit.append({ type: 'person.disable', actor, subject: personId }, this.#now());
    }).immediate();
  }

  /** Removes a person's second factors (and password) and returns a new invitation to enrol again. */
  resetFactor(personId: string, actor: string): string {
    const p = this.#mustGet(personId);
    if (p.disabled) throw new IssuerError('USAGE', `${personId} is disabled`);
    return this.#db.transaction(() => {
      this.#db.prepare('DELETE FROM passkeys WHERE person_id = ?').run(personId);
      this.#db.prepare('DELETE FROM totp WHERE person_id = ?').run(personId);
      this.#db.prepare('UPDATE persons SET password_hash = NULL WHERE person_id = ?').run(personId);
      this.#db.prepare('DELETE FROM sessions WHERE person_id = ?').run(personId);
      this.#audit.append({ type: 'person.resetFactor', actor, subject: personId }, this.#now());
      return this.#invite(personId);
    }).immediate();
  }

  /** Puts a device (id, 32 hex chars) on the revocation list. */
  revokeDevice(deviceId: string, actor: string): void {
    if (!/^[0-9a-f]{32}$/.test(deviceId)) throw new IssuerError('USAGE', 'deviceId: 32 lower-case hex chars');
    this.#db.transaction(() => {
      this.#db.prepare("INSERT OR IGNORE INTO revoked (kind, id, at) VALUES ('device', ?, ?)").run(deviceId, this.#now());
      this.#db.prepare("INSERT INTO state (key, value) VALUES ('revocationDirty', 1) ON CONFLICT (key) DO UPDATE SET value = 1").run();
      this.#db.prepare('DELETE FROM sessions WHERE token_hash IN (SELECT s.token_hash FROM sessions s JOIN issuances i ON i.person_id = s.person_id WHERE i.device_id = ?)').run(deviceId);
      this.#audit.append({ type: 'revoke.device', actor, subject: deviceId }, this.#now());
    }).immediate();
  }

  /** Revoked person ids and device ids. */
  revoked(): { persons: string[]; devices: string[] } {
    const rows = this.#db.prepare('SELECT kind, id FROM revoked ORDER BY at, id').all() as { kind: string; id: string }[];
    return { persons: rows.filter((r) => r.kind === 'person').map((r) => r.id), devices: rows.filter((r) => r.kind === 'device').map((r) => r.id) };
  }

  /** Creates an admin session token (returned once, stored hashed) valid until `expiresAt`. */
  createSession(personId: string, roles: readonly StaffRole[], expiresAt: number): string {
    const token = randomToken(32);
    this.#db.prepare('DELETE FROM sessions WHERE expires_at <= ?').run(this.#now());
    this.#db.prepare('INSERT INTO sessions (token_hash, person_id, roles, expires_at) VALUES (?, ?, ?, ?)').run(sha256Hex(token), personId, JSON.stringify(roles), expiresAt);
    return token;
  }

  /** The person and roles of a live session token. */
  session(token: string): { person: Person; roles: readonly StaffRole[] } | undefined {
    const r = this.#db.prepare('SELECT person_id, roles, expires_at FROM sessions WHERE token_hash = ?').get(sha256Hex(token)) as
      { person_id: string; roles: string; expires_at: number } | undefined;
    if (!r || r.expires_at <= this.#now()) return undefined;
    const person = this.get(r.person_id);
    return person && !person.disabled ? { person, roles: JSON.parse(r.roles) as StaffRole[] } : undefined;
  }
}
