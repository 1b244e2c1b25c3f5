/**
 * Handoff tickets in SQLite (the {@link TicketStore} part of `SqliteStore`): one `tickets` table
 * (schema version 7). better-sqlite3 is synchronous and each step is one transaction, so a
 * claim or a "reported unclaimed" mark has one winner.
 */
import type Database from 'better-sqlite3';
import type { Ticket } from '@parley/protocol/wire';
import type { NewTicket, TicketOpenResult, TicketStep } from '../store/types.js';

/** The table (created with `IF NOT EXISTS`: an older file gains it empty). */
export const TICKETS_SCHEMA = `
CREATE TABLE IF NOT EXISTS tickets (
  id TEXT PRIMARY KEY, queue TEXT NOT NULL, customer TEXT NOT NULL, ref TEXT NOT NULL, notify TEXT,
  opened_at INTEGER NOT NULL, waiting_since INTEGER NOT NULL, state TEXT NOT NULL,
  claimed_by TEXT, claimed_at INTEGER,
  -- 1 once the current waiting period was reported unclaimed (a release sets it back to 0).
  notified INTEGER NOT NULL DEFAULT 0,
  UNIQUE (customer, ref)
);
CREATE INDEX IF NOT EXISTS tickets_opened ON tickets (opened_at, id);
CREATE INDEX IF NOT EXISTS tickets_due ON tickets (state, notified, waiting_since);
`;

interface TicketRow {
  id: string; queue: string; customer: string; ref: string; notify: string | null;
  opened_at: number; waiting_since: number; state: string; claimed_by: string | null; claimed_at: number | null;
}

function toTicket(r: TicketRow): Ticket {
  return {
    id: r.id, queue: r.queue, customer: r.customer, ref: r.ref, ...(r.notify !== null ? { notify: r.notify } : {}),
    openedAt: r.opened_at, waitingSince: r.waiting_since, state: r.state === 'claimed' ? 'claimed' : 'waiting',
    ...(r.claimed_by !== null ? { claimedBy: r.claimed_by } : {}),
    ...(r.claimed_at !== null ? { claimedAt: r.claimed_at } : {}),
  };
}

const isParty = (t: TicketRow, by: string): boolean => t.customer === by || t.claimed_by === by;

/** The ticket steps on an open SQLite database; each write is one transaction. */
export interface SqliteTickets {
  open(t: NewTicket, maxPerCustomer: number | undefined): TicketOpenResult;
  get(id: string): Ticket | undefined;
  list(queue: string | undefined, limit: number): Ticket[];
  claim(id: string, agent: string, at: number): TicketStep;
  release(id: string, by: string, at: number, queue: string | undefined): TicketStep;
  close(id: string, by: string): TicketStep;
  due(before: number, limit: number): Ticket[];
  mark(id: string, waitingSince: number): boolean;
  waiting(): number;
}

/** The ticket steps on an open database (writes to be run through the store's group commit). */
export function sqliteTickets(db: Database.Database): SqliteTickets {
  const q = {
    get: db.prepare('SELECT * FROM tickets WHERE id = ?'),
    byRef: db.prepare('SELECT * FROM tickets WHERE customer = ? AND ref = ?'),
    countCustomer: db.prepare('SELECT COUNT(*) FROM tickets WHERE customer = ?').pluck(),
    insert: db.prepare(`INSERT INTO tickets (id, queue, customer, ref, notify, opened_at, waiting_since, state)
      VALUES (?, ?, ?, ?, ?, ?, ?, 'waiting')`),
    list: db.prepare('SELECT * FROM tickets ORDER BY opened_at, id LIMIT ?'),
    listQueue: db.prepare('SELECT * FROM tickets WHERE queue = ? ORDER BY opened_at, id LIMIT ?'),
    claim: db.prepare("UPDATE tickets SET state = 'claimed', claimed_by = ?, claimed_at = ? WHERE id = ? AND state = 'waiting'"),
    release: db.prepare(`UPDATE tickets SET state = 'waiting', waiting_since = ?, queue = COALESCE(?, queue),
      claimed_by = NULL, claimed_at = NULL, notified = 0 WHERE id = ?`),
    delete: db.prepare('DELETE FROM tickets WHERE id = ?'),
    due: db.prepare("SELECT * FROM tickets WHERE state = 'waiting' AND notified = 0 AND waiting_since <= ? ORDER BY waiting_since, id LIMIT ?"),
    mark: db.prepare("UPDATE tickets SET notified = 1 WHERE id = ? AND state = 'waiting' AND notified = 0 AND waiting_since = ?"),
    waiting: db.prepare("SELECT COUNT(*) FROM tickets WHERE state = 'waiting'").pluck(),
  };
  const row = (id: string): TicketRow | undefined => q.get.get(id) as TicketRow | undefined;
  return {
    open: db.transaction((t: NewTicket, maxPerCustomer: number | undefined): TicketOpenResult => {
      const have = q.byRef.get(t.customer, t.ref) as TicketRow | undefined;
      if (have) return { ok: true, ticket: toTicket(have), existing: true };
      if (maxPerCustomer !== undefined) {
        const open = q.countCustomer.get(t.customer) as number;
        if (open >= maxPerCustomer) return { ok: false, open };
      }
      q.insert.run(t.id, t.queue, t.customer, t.ref, t.notify ?? null, t.openedAt, t.openedAt);
      return { ok: true, ticket: toTicket(row(t.id)!), existing: false };
    }),
    get: (id: string): Ticket | undefined => {
      const r = row(id);
      return r && toTicket(r);
    },
    list: (queue: string | undefined, limit: number): Ticket[] =>
      ((queue === undefined ? q.list.all(limit) : q.listQueue.all(queue, limit)) as TicketRow[]).map(toTicket),
    claim: db.transaction((id: string, agent: string, at: number): TicketStep => {
      const r = row(id);
      if (!r) return { ok: false };
      if (r.state === 'claimed') return r.claimed_by === agent ? { ok: true, ticket: toTicket(r) } : { ok: false, ticket: toTicket(r) };
      q.claim.run(agent, at, id);
      return { ok: true, ticket: toTicket(row(id)!) };
    }),
    release: db.transaction((id: string, by: string, at: number, queue: string | undefined): TicketStep => {
      const r = row(id);
      if (!r) return { ok: false };
      if (!isParty(r, by)) return { ok: false, ticket: toTicket(r) };
      q.release.run(at, queue ?? null, id);
      return { ok: true, ticket: toTicket(row(id)!) };
    }),
    close: db.transaction((id: string, by: string): TicketStep => {
      const r = row(id);
      if (!r) return { ok: false };
      if (!isParty(r, by)) return { ok: false, ticket: toTicket(r) };
      q.delete.run(id);
      return { ok: true, ticket: toTicket(r) };
    }),
    due: (before: number, limit: number): Ticket[] => (q.due.all(before, limit) as TicketRow[]).map(toTicket),
    mark: (id: string, waitingSince: number): boolean => q.mark.run(id, waitingSince).changes === 1,
    waiting: (): number => q.waiting.get() as number,
  };
}
