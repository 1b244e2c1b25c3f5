/**
 * The unclaimed-ticket sweeper, one per relay node: tickets waiting longer than
 * `ticketUnclaimedMs` get one `ticketUnclaimed` push (to the customer and the notify device)
 * per waiting period. Every node sweeps; the store's `markUnclaimedNotified` lets exactly one of
 * them report a period, so each is reported once however many nodes run.
 */
import { deviceRoom, type RelayContext } from '../context.js';

/** Tickets handled per store read. */
const BATCH = 100;

/** Sweep interval: a quarter of `unclaimedMs`, between 50 ms and 1 s. */
export function sweepIntervalMs(unclaimedMs: number): number {
  return Math.max(50, Math.min(1000, Math.floor(unclaimedMs / 4)));
}

/**
 * Starts sweeping; returns the stop function (which waits for a running sweep).
 */
export function startTicketSweeper(ctx: RelayContext, unclaimedMs: number): () => Promise<void> {
  let running: Promise<void> | undefined;
  let stopped = false;
  const sweep = async (): Promise<void> => {
    try {
      for (let n = BATCH; n === BATCH && !stopped;) {
        const now = ctx.now();
        const due = await ctx.store.dueUnclaimed(now - unclaimedMs, BATCH);
        n = due.length;
        for (const ticket of due) {
          if (stopped) return;
          if (!(await ctx.store.markUnclaimedNotified(ticket.id, ticket.waitingSince))) continue; // another node did
          const waitingMs = Math.max(0, now - ticket.waitingSince);
          const rooms = [deviceRoom(ticket.customer), ...(ticket.notify ? [deviceRoom(ticket.notify)] : [])];
          ctx.io.to(rooms).emit('ticketUnclaimed', { ticket, waitingMs });
          ctx.metrics.ticketsUnclaimed.inc();
          ctx.log.info({ event: 'ticketUnclaimed', ticketId: ticket.id, customer: ticket.customer, waitingMs });
        }
      }
    } catch (e) {
      ctx.log.error({ event: 'ticketSweep', errorName: e instanceof Error ? e.name : typeof e });
    }
  };
  const timer = setInterval(() => {
    running ??= sweep().finally(() => {
      running = undefined;
    });
  }, sweepIntervalMs(unclaimedMs));
  timer.unref();
  return async () => {
    stopped = true;
    clearInterval(timer);
    await running;
  };
}
