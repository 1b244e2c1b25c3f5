/**
 * Mailbox delivery (docs/architecture.md "Relay protocol" 3). Envelopes are pushed from the store in
 * pages; the next page goes out when the client has acked half of the previous one, so a large
 * backlog never sits in the socket's write buffer all at once. A draining socket joins its
 * device room only once caught up, then reads once more: a message stored in between is pushed
 * twice at worst, never lost (at least once; clients dedupe by `(from, id)`).
 */
import type { RelayMessage } from '@parley/protocol/wire';
import { deviceRoom, type RelayContext, type RelaySocket } from './context.js';
import type { StoredMessage } from './store/types.js';

/** The wire form of a stored message. */
export function toWire(m: StoredMessage): RelayMessage {
  return { seq: m.seq, from: m.from, id: m.id, envelope: m.envelope, receivedAt: m.receivedAt };
}

/** Starts (or restarts, from seq 0) the backlog drain of an authenticated socket. */
export async function startDrain(ctx: RelayContext, socket: RelaySocket): Promise<void> {
  socket.data.cursor = 0;
  socket.data.inFlight = 0;
  socket.data.draining = true;
  await pushPage(ctx, socket);
}

/** Called after the client acked `deleted` messages: maybe push the next page. */
export async function onAcked(ctx: RelayContext, socket: RelaySocket, deleted: number): Promise<void> {
  const d = socket.data;
  d.inFlight = Math.max(0, d.inFlight - deleted);
  if (d.draining && d.inFlight <= ctx.limits.backlogPageSize / 2) await pushPage(ctx, socket);
}

async function pushPage(ctx: RelayContext, socket: RelaySocket): Promise<void> {
  const d = socket.data;
  const deviceId = d.deviceId;
  if (!deviceId || !socket.connected) return;
  const page = await ctx.store.listPending(deviceId, d.cursor, ctx.limits.backlogPageSize);
  for (const m of page) socket.emit('message', toWire(m));
  ctx.metrics.delivered.inc(page.length);
  const last = page.at(-1);
  if (last) d.cursor = Math.max(d.cursor, last.seq);
  d.inFlight += page.length;
  if (page.length < ctx.limits.backlogPageSize && d.draining) {
    d.draining = false;
    if (!socket.rooms.has(deviceRoom(deviceId))) {
      await socket.join(deviceRoom(deviceId));
      // Catch what was stored between the read above and the join.
      const gap = await ctx.store.listPending(deviceId, d.cursor, ctx.limits.backlogPageSize);
      for (const m of gap) socket.emit('message', toWire(m));
      ctx.metrics.delivered.inc(gap.length);
      d.inFlight += gap.length;
      const lastGap = gap.at(-1);
      if (lastGap) d.cursor = Math.max(d.cursor, lastGap.seq);
      // A full gap page means more may be waiting: keep draining (duplicates, never losses).
      if (gap.length === ctx.limits.backlogPageSize) d.draining = true;
    }
  }
  if (page.length > 0) ctx.log.debug({ event: 'push', deviceId, count: page.length });
}
