/**
 * valibot schemas for the relay's handoff-ticket answers and pushes (`@parley/protocol/wire`,
 * tickets.ts), checked like every other answer (answers.ts): the relay is untrusted, so a
 * malformed ticket is a typed `MALFORMED_MESSAGE` (answers) or a dropped push, never a
 * `TypeError` deeper in. Parsed outputs hold only known fields.
 */
import * as v from 'valibot';
import { DEVICE_ID_PATTERN, TICKET_ID_PATTERN, TICKET_NAME_PATTERN, type Ticket } from '@parley/protocol/wire';

const count = v.pipe(v.number(), v.safeInteger(), v.minValue(0));
const deviceId = v.pipe(v.string(), v.regex(DEVICE_ID_PATTERN));
const name = v.pipe(v.string(), v.regex(TICKET_NAME_PATTERN));

/** One ticket as the relay shows it. */
export const TICKET = v.object({
  id: v.pipe(v.string(), v.regex(TICKET_ID_PATTERN)),
  queue: name,
  customer: deviceId,
  ref: name,
  notify: v.optional(deviceId),
  openedAt: count,
  waitingSince: count,
  state: v.picklist(['waiting', 'claimed']),
  claimedBy: v.optional(deviceId),
  claimedAt: v.optional(count),
});

/** The answers of the ticket calls (after `ok: true`). */
export const TICKET_ANSWERS = {
  ticketOpen: v.object({ ticket: TICKET }),
  // A queue view, not a store dump: bounded so a hostile relay cannot make the app hold millions.
  ticketList: v.object({ tickets: v.pipe(v.array(TICKET), v.maxLength(10_000)) }),
  ticketGet: v.object({ ticket: TICKET }),
  ticketClaim: v.object({ ticket: TICKET }),
  ticketRelease: v.object({ ticket: TICKET }),
  ticketClose: v.object({ closed: v.literal(true) }),
} as const;

/** The ticket pushes. */
export const TICKET_PUSHES = {
  ticket: v.object({ ticket: TICKET, change: v.picklist(['opened', 'claimed', 'released', 'closed']) }),
  ticketUnclaimed: v.object({ ticket: TICKET, waitingMs: count }),
} as const;

/** A parsed ticket as the wire type (absent optional fields left out, not `undefined`). */
export function toTicket(t: v.InferOutput<typeof TICKET>): Ticket {
  return {
    id: t.id,
    queue: t.queue,
    customer: t.customer,
    ref: t.ref,
    ...(t.notify !== undefined ? { notify: t.notify } : {}),
    openedAt: t.openedAt,
    waitingSince: t.waitingSince,
    state: t.state,
    ...(t.claimedBy !== undefined ? { claimedBy: t.claimedBy } : {}),
    ...(t.claimedAt !== undefined ? { claimedAt: t.claimedAt } : {}),
  };
}
