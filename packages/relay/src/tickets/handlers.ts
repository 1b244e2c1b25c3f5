/**
 * Handoff tickets at the relay (README "Handoff tickets"; wire contract `@parley/protocol/wire`
 * tickets.ts). The relay keeps queues of tickets with metadata only: the customer's device, an
 * opaque reference its client chose, the queue, who claimed it. Nothing of the conversation.
 *
 * Who may do what:
 * - `ticketOpen`: any logged-in device, for itself (the ticket's customer is the socket's
 *   device); `notify` must be a bot (a device whose last login used an API key);
 * - `ticketList`, `ticketClaim`: the staff roles `agent` and `supervisor` only (`FORBIDDEN`,
 *   reason `role`);
 * - `ticketGet`: the customer, the notify device, the claimant, or an agent/supervisor
 *   (`FORBIDDEN`, reason `notParty`);
 * - `ticketRelease`, `ticketClose`: the customer or the claimant (`FORBIDDEN`, reason `notParty`),
 *   checked by the store in the same atomic step as the change.
 * Unknown ids are `USAGE` (reason `noSuchTicket`); a ticket another agent holds is `CONFLICT`
 * (reason `claimed`, `ticketId`).
 *
 * Every change is pushed as `ticket` to the room {@link STAFF_ROOM} (agent and supervisor
 * sockets, on every node through the Redis adapter) and to the customer's and notify device's
 * rooms.
 */
import { randomBytes } from 'node:crypto';
import { ParleyError } from '@parley/protocol/verify';
import type { Ticket, TicketChange } from '@parley/protocol/wire';
import { deviceRoom, type RelayContext, type RelaySocket } from '../context.js';
import type { HandlerResult } from '../handlers.js';
import { primaryRole } from '../staff/roles.js';
import { parse, ticketIdSchema, ticketListSchema, ticketOpenSchema, ticketReleaseSchema } from '../schemas.js';

/** socket.io room of every agent and supervisor socket (joined at login). */
export const STAFF_ROOM = 'staff';

/** Roles that see the queues and claim tickets. */
const QUEUE_ROLES: ReadonlySet<string> = new Set(['agent', 'supervisor']);

/** Tickets one `ticketList` answer holds at most (oldest first). */
export const TICKET_LIST_MAX = 1000;

/** True when a login's roles let it see the queues. */
export function isQueueStaff(roles: readonly string[] | undefined): boolean {
  return roles?.some((r) => QUEUE_ROLES.has(r)) ?? false;
}

/** After a login: agents and supervisors join {@link STAFF_ROOM} (the live queue). */
export async function joinStaffRoom(socket: RelaySocket): Promise<void> {
  if (isQueueStaff(socket.data.roles)) await Promise.resolve(socket.join(STAFF_ROOM)).catch(() => undefined);
}

type TicketHandler = (ctx: RelayContext, socket: RelaySocket, payload: unknown) => Promise<HandlerResult>;

function me(socket: RelaySocket): string {
  const id = socket.data.deviceId;
  if (!id) throw new ParleyError('UNAUTHENTICATED', 'authenticate first');
  return id;
}

const malformed = (what: string) => new ParleyError('MALFORMED_MESSAGE', `malformed ${what} payload`);
const noSuchTicket = () => new ParleyError('USAGE', 'no such ticket (closed, or never opened)', { details: { reason: 'noSuchTicket' } });

/** `FORBIDDEN` for `operation`, logged and counted like the role table's refusals. */
function refuse(ctx: RelayContext, socket: RelaySocket, operation: string, reason: 'role' | 'notParty', message: string): ParleyError {
  const role = primaryRole(socket.data.roles);
  ctx.metrics.forbidden.inc({ role, operation });
  ctx.log.warn({ event: 'forbidden', deviceId: socket.data.deviceId, role, operation, reason });
  return new ParleyError('FORBIDDEN', message, { details: { reason, role, operation } });
}

function requireQueueStaff(ctx: RelayContext, socket: RelaySocket, operation: string): void {
  if (!isQueueStaff(socket.data.roles)) throw refuse(ctx, socket, operation, 'role', `${operation}: agents and supervisors only`);
}

/** Pushes a change to staff on every node, the customer and the notify device. */
export function pushTicket(ctx: RelayContext, ticket: Ticket, change: TicketChange): void {
  const rooms = [STAFF_ROOM, deviceRoom(ticket.customer), ...(ticket.notify ? [deviceRoom(ticket.notify)] : [])];
  ctx.io.to(rooms).emit('ticket', { ticket, change });
}

/** The ids a log line may carry (never the ref or anything chosen by the customer's client). */
const logIds = (t: Ticket) => ({ ticketId: t.id, customer: t.customer, ...(t.claimedBy ? { claimedBy: t.claimedBy } : {}) });

const ticketOpen: TicketHandler = async (ctx, socket, payload) => {
  const customer = me(socket);
  const req = parse(ticketOpenSchema, payload);
  if (!req) throw malformed('ticketOpen');
  if (req.notify !== undefined) {
    const roles = await ctx.store.getDeviceRoles(req.notify);
    if (!roles?.includes('bot')) throw new ParleyError('USAGE', 'ticket notify must be a bot', { details: { reason: 'notifyNotBot' } });
  }
  const id = randomBytes(16).toString('base64url');
  const opened = await ctx.store.openTicket(
    { id, queue: req.queue, customer, ref: req.ref, ...(req.notify !== undefined ? { notify: req.notify } : {}), openedAt: ctx.now() },
    ctx.limits.maxOpenTicketsPerDevice,
  );
  if (!opened.ok) {
    throw new ParleyError('RATE_LIMITED', 'too many open tickets for this device', {
      details: { scope: 'tickets', max: ctx.limits.maxOpenTicketsPerDevice },
    });
  }
  const { ticket, existing } = opened;
  ctx.log.info({ event: 'ticketOpen', deviceId: customer, ...logIds(ticket), existing });
  if (!existing) pushTicket(ctx, ticket, 'opened');
  return { result: { ticket } };
};

const ticketList: TicketHandler = async (ctx, socket, payload) => {
  const deviceId = me(socket);
  const req = parse(ticketListSchema, payload);
  if (!req) throw malformed('ticketList');
  requireQueueStaff(ctx, socket, 'ticketList');
  const tickets = await ctx.store.listTickets(req.queue, TICKET_LIST_MAX);
  ctx.log.debug({ event: 'ticketList', deviceId, count: tickets.length });
  return { result: { tickets } };
};

const ticketGet: TicketHandler = async (ctx, socket, payload) => {
  const deviceId = me(socket);
  const req = parse(ticketIdSchema, payload);
  if (!req) throw malformed('ticketGet');
  const ticket = await ctx.store.getTicket(req.ticketId);
  if (!ticket) throw noSuchTicket();
  const party = ticket.customer === deviceId || ticket.notify === deviceId || ticket.claimedBy === deviceId; // ct-ok: public device ids
  if (!party && !isQueueStaff(socket.data.roles)) throw refuse(ctx, socket, 'ticketGet', 'notParty', 'not a party to this ticket');
  return { result: { ticket } };
};

const ticketClaim: TicketHandler = async (ctx, socket, payload) => {
  const agent = me(socket);
  const req = parse(ticketIdSchema, payload);
  if (!req) throw malformed('ticketClaim');
  requireQueueStaff(ctx, socket, 'ticketClaim');
  const claimedAt = ctx.now();
  const r = await ctx.store.claimTicket(req.ticketId, agent, claimedAt);
  if (!r.ok) {
    if (!r.ticket) throw noSuchTicket();
    ctx.metrics.ticketClaims.inc({ result: 'conflict' });
    ctx.log.info({ event: 'ticketClaim', deviceId: agent, ...logIds(r.ticket), result: 'conflict' });
    throw new ParleyError('CONFLICT', 'another agent holds this ticket', { details: { reason: 'claimed', ticketId: req.ticketId } });
  }
  // Claiming one's own claim again changes nothing: no second push, not counted again.
  const fresh = r.ticket.claimedAt === claimedAt; // ct-ok: public timestamps
  if (fresh) {
    ctx.metrics.ticketClaims.inc({ result: 'won' });
    pushTicket(ctx, r.ticket, 'claimed');
  }
  ctx.log.info({ event: 'ticketClaim', deviceId: agent, ...logIds(r.ticket), result: fresh ? 'won' : 'again' });
  return { result: { ticket: r.ticket } };
};

const ticketRelease: TicketHandler = async (ctx, socket, payload) => {
  const deviceId = me(socket);
  const req = parse(ticketReleaseSchema, payload);
  if (!req) throw malformed('ticketRelease');
  const r = await ctx.store.releaseTicket(req.ticketId, deviceId, ctx.now(), req.queue);
  if (!r.ok) {
    if (!r.ticket) throw noSuchTicket();
    throw refuse(ctx, socket, 'ticketRelease', 'notParty', 'only the customer or the claimant releases a ticket');
  }
  ctx.log.info({ event: 'ticketRelease', deviceId, ...logIds(r.ticket), moved: req.queue !== undefined });
  pushTicket(ctx, r.ticket, 'released');
  return { result: { ticket: r.ticket } };
};

const ticketClose: TicketHandler = async (ctx, socket, payload) => {
  const deviceId = me(socket);
  const req = parse(ticketIdSchema, payload);
  if (!req) throw malformed('ticketClose');
  const r = await ctx.store.closeTicket(req.ticketId, deviceId);
  if (!r.ok) {
    if (!r.ticket) throw noSuchTicket();
    throw refuse(ctx, socket, 'ticketClose', 'notParty', 'only the customer or the claimant closes a ticket');
  }
  ctx.log.info({ event: 'ticketClose', deviceId, ...logIds(r.ticket) });
  pushTicket(ctx, r.ticket, 'closed');
  return { result: { closed: true } };
};

/** The ticket handlers by event name (merged into `HANDLERS`). */
export const TICKET_HANDLERS: readonly (readonly [string, TicketHandler])[] = [
  ['ticketOpen', ticketOpen],
  ['ticketList', ticketList],
  ['ticketGet', ticketGet],
  ['ticketClaim', ticketClaim],
  ['ticketRelease', ticketRelease],
  ['ticketClose', ticketClose],
];
