/**
 * Account lock-out: `maxFailures` failed sign-ins within `windowMs` lock the account name for
 * `lockMs` after the last of them. Counted per username as typed (lower-cased), whether or not
 * such a person exists, so the lock-out says nothing about which usernames are real. Attempts
 * refused because of the lock are audited but not counted (the lock does not extend itself).
 */
import type Database from 'better-sqlite3';

/** Lock-out settings. */
export interface LockoutPolicy {
  /** Failures that lock (default 5). */
  readonly maxFailures: number;
  /** Within this window (default 15 min). */
  readonly windowMs: number;
  /** Locked this long after the last failure (default 15 min). */
  readonly lockMs: number;
}

export const DEFAULT_LOCKOUT: LockoutPolicy = { maxFailures: 5, windowMs: 15 * 60_000, lockMs: 15 * 60_000 };

/** Failure counting on the `failures` table. */
export class Lockout {
  readonly #db: Database.Database;
  readonly #policy: LockoutPolicy;

  constructor(db: Database.Database, policy: LockoutPolicy = DEFAULT_LOCKOUT) {
    this.#db = db;
    this.#policy = policy;
  }

  /** Until when `account` is locked, or undefined. */
  lockedUntil(account: string, now: number): number | undefined {
    const recent = this.#db.prepare('SELECT at FROM failures WHERE account = ? ORDER BY at DESC LIMIT ?').all(account, this.#policy.maxFailures) as { at: number }[];
    if (recent.length < this.#policy.maxFailures) return undefined;
    const newest = recent[0]!.at;
    const oldest = recent[recent.length - 1]!.at;
    if (newest - oldest > this.#policy.windowMs) return undefined;
    const until = newest + this.#policy.lockMs;
    return until > now ? until : undefined;
  }

  /** Counts a failure. */
  fail(account: string, now: number): void {
    this.#db.prepare('INSERT INTO failures (account, at) VALUES (?, ?)').run(account, now);
    this.#db.prepare('DELETE FROM failures WHERE at < ?').run(now - this.#policy.windowMs - this.#policy.lockMs);
  }

  /** Forgets an account's failures (after a successful sign-in). */
  clear(account: string): void {
    this.#db.prepare('DELETE FROM failures WHERE account = ?').run(account);
  }
}
