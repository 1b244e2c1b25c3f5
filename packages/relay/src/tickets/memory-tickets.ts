/**
 * Handoff tickets in memory (the {@link TicketStore} part of `MemoryStore`): Maps, and every
 * step runs without an `await` inside, so it is atomic within the one process that holds it.
 */
import type { Ticket } from '@parley/protocol/wire';
import type { NewTicket, TicketOpenResult, TicketStep, TicketStore } from '../store/types.js';

interface Entry {
  ticket: Ticket;
  /** The current waiting period was reported unclaimed. */
  notified: boolean;
}

const isParty = (t: Ticket, by: string): boolean => t.customer === by || t.claimedBy === by;

/** Tickets kept in Maps. */
export class MemoryTickets implements TicketStore {
  readonly #byId = new Map<string, Entry>();
  /** `${customer}\n${ref}` → id of the open ticket. */
  readonly #byRef = new Map<string, string>();

  async openTicket(t: NewTicket, maxPerCustomer?: number): Promise<TicketOpenResult> {
    const have = this.#byRef.get(`${t.customer}\n${t.ref}`);
    const existing = have === undefined ? undefined : this.#byId.get(have);
    if (existing) return { ok: true, ticket: { ...existing.ticket }, existing: true };
    if (maxPerCustomer !== undefined) {
      let open = 0;
      for (const e of this.#byId.values()) if (e.ticket.customer === t.customer) open++;
      if (open >= maxPerCustomer) return { ok: false, open };
    }
    const ticket: Ticket = {
      id: t.id, queue: t.queue, customer: t.customer, ref: t.ref, ...(t.notify !== undefined ? { notify: t.notify } : {}),
      openedAt: t.openedAt, waitingSince: t.openedAt, state: 'waiting',
    };
    this.#byId.set(t.id, { ticket, notified: false });
    this.#byRef.set(`${t.customer}\n${t.ref}`, t.id);
    return { ok: true, ticket: { ...ticket }, existing: false };
  }

  async getTicket(id: string): Promise<Ticket | undefined> {
    const e = this.#byId.get(id);
    return e && { ...e.ticket };
  }

  async listTickets(queue?: string, limit = Number.MAX_SAFE_INTEGER): Promise<Ticket[]> {
    return [...this.#byId.values()].map((e) => e.ticket).filter((t) => queue === undefined || t.queue === queue)
      .sort((a, b) => a.openedAt - b.openedAt || (a.id < b.id ? -1 : 1)).slice(0, Math.max(0, limit)).map((t) => ({ ...t }));
  }

  async claimTicket(id: string, agent: string, at: number): Promise<TicketStep> {
    const e = this.#byId.get(id);
    if (!e) return { ok: false };
    if (e.ticket.state === 'claimed') return e.ticket.claimedBy === agent ? { ok: true, ticket: { ...e.ticket } } : { ok: false, ticket: { ...e.ticket } };
    e.ticket = { ...e.ticket, state: 'claimed', claimedBy: agent, claimedAt: at };
    return { ok: true, ticket: { ...e.ticket } };
  }

  async releaseTicket(id: string, by: string, at: number, queue?: string): Promise<TicketStep> {
    const e = this.#byId.get(id);
    if (!e) return { ok: false };
    if (!isParty(e.ticket, by)) return { ok: false, ticket: { ...e.ticket } };
    const { claimedBy: _by, claimedAt: _at, ...rest } = e.ticket;
    e.ticket = { ...rest, queue: queue ?? rest.queue, state: 'waiting', waitingSince: at };
    e.notified = false;
    return { ok: true, ticket: { ...e.ticket } };
  }

  async closeTicket(id: string, by: string): Promise<TicketStep> {
    const e = this.#byId.get(id);
    if (!e) return { ok: false };
    if (!isParty(e.ticket, by)) return { ok: false, ticket: { ...e.ticket } };
    this.#byId.delete(id);
    this.#byRef.delete(`${e.ticket.customer}\n${e.ticket.ref}`);
    return { ok: true, ticket: { ...e.ticket } };
  }

  async dueUnclaimed(before: number, limit: number): Promise<Ticket[]> {
    return [...this.#byId.values()].filter((e) => e.ticket.state === 'waiting' && !e.notified && e.ticket.waitingSince <= before)
      .map((e) => e.ticket).sort((a, b) => a.waitingSince - b.waitingSince || (a.id < b.id ? -1 : 1))
      .slice(0, Math.max(0, limit)).map((t) => ({ ...t }));
  }

  async markUnclaimedNotified(id: string, waitingSince: number): Promise<boolean> {
    const e = this.#byId.get(id);
    if (!e || e.notified || e.ticket.state !== 'waiting' || e.ticket.waitingSince !== waitingSince) return false;
    e.notified = true;
    return true;
  }

  async countWaitingTickets(): Promise<number> {
    let n = 0;
    for (const e of this.#byId.values()) if (e.ticket.state === 'waiting') n++;
    return n;
  }
}
