/**
 * Mailbox delivery (docs/architecture.md "Relay protocol" 3; docs/threats.md R13). Envelopes are
 * pushed from the store by one drain per socket at a time, bounded three ways:
 * - a window: at most `backlogPageSize` backlog envelopes pushed and not acked per socket;
 * - back-pressure: the next envelope goes out only while the socket's unsent bytes (engine.io's
 *   write buffer and the WebSocket's) are below `socketBufferBytes`; the drain waits for them to
 *   drain, and each store read is sized to the room left, so a drain never holds more than about
 *   `socketBufferBytes` of envelopes read ahead;
 * - no repeats on request: `fetchQueue` (and a cluster resync) only asks the running drain for
 *   one more pass from the start; many requests make one pass, and in it an envelope pushed on
 *   this socket less than `backlogRedeliveryMs` ago and not acked is not pushed again.
 * Live pushes (a `send` to a connected device) are broadcasts outside the drain: a socket whose
 * unsent bytes pass `maxSocketBufferBytes` is dropped as a slow consumer instead of growing
 * the relay's memory (its envelopes stay stored for its next login).
 *
 * A draining socket joins its device room only once caught up, then reads once more: a message
 * stored in between is pushed twice at worst, never lost (at least once; clients dedupe by
 * `(from, id)`).
 */
import type { RelayMessage } from '@parley/protocol/wire';
import { deviceRoom, type RelayContext, type RelaySocket } from './context.js';
import type { StoredMessage } from './store/types.js';

/** The wire form of a stored message. */
export function toWire(m: StoredMessage): RelayMessage {
  return { seq: m.seq, from: m.from, id: m.id, envelope: m.envelope, receivedAt: m.receivedAt };
}

interface EnginePacket {
  data?: unknown;
}
/** The parts of engine.io's socket the buffer accounting reads (not in its public types). */
interface EngineConn {
  writeBuffer?: EnginePacket[];
  transport?: { name?: string; socket?: { bufferedAmount?: number; terminate?: () => void } };
  on(event: 'packetCreate', fn: (p: EnginePacket) => void): void;
  on(event: 'flush', fn: (packets: EnginePacket[]) => void): void;
  on(event: 'drain' | 'close', fn: () => void): void;
  close(discard?: boolean): void;
}

const conn = (socket: RelaySocket): EngineConn => socket.conn as unknown as EngineConn;

function packetBytes(p: EnginePacket): number {
  const d = p.data;
  if (typeof d === 'string') return d.length;
  if (d instanceof ArrayBuffer || ArrayBuffer.isView(d)) return d.byteLength;
  return 0;
}

/**
 * Bytes pushed to this socket and not written out to the network yet: engine.io's write buffer
 * (counted as packets enter and leave it) plus the WebSocket's own buffer (`bufferedAmount`:
 * what Node's stream holds because the kernel's send buffer is full).
 */
export function bufferedBytes(socket: RelaySocket): number {
  const ws = conn(socket).transport?.socket;
  return socket.data.queuedBytes + (typeof ws?.bufferedAmount === 'number' ? ws.bufferedAmount : 0);
}

/** Starts the buffer accounting of a new socket and the slow-consumer drop. */
export function watchBuffer(ctx: RelayContext, socket: RelaySocket): void {
  const c = conn(socket);
  const d = socket.data;
  d.queuedBytes = 0;
  c.on('packetCreate', (p) => {
    d.queuedBytes += packetBytes(p);
    if (!d.slow && bufferedBytes(socket) > ctx.limits.maxSocketBufferBytes) {
      d.slow = true;
      // Not from inside engine.io's send path (this runs in the middle of an emit).
      setImmediate(() => dropSlowConsumer(ctx, socket));
    }
  });
  c.on('flush', (packets) => {
    for (const p of packets) d.queuedBytes -= packetBytes(p);
    if (d.queuedBytes < 0) d.queuedBytes = 0;
  });
  c.on('drain', () => d.wake?.());
  c.on('close', () => {
    d.queuedBytes = 0;
    d.wake?.();
  });
}

/**
 * Drops a socket that does not read what it is sent. socket.io's own close would wait for the
 * write buffer to drain (never, for this client), so the transport is discarded and the
 * WebSocket terminated: the buffered bytes are freed now, not after a close timeout.
 */
function dropSlowConsumer(ctx: RelayContext, socket: RelaySocket): void {
  const c = conn(socket);
  const ws = c.transport?.socket;
  ctx.metrics.slowConsumers.inc();
  ctx.log.warn({ event: 'drop', deviceId: socket.data.deviceId, code: 'SLOW_CONSUMER', buffered: bufferedBytes(socket) });
  socket.disconnect(true);
  c.close(true);
  if (typeof ws?.terminate === 'function') ws.terminate();
}

/**
 * Asks for the backlog of an authenticated socket to be pushed. `fromStart`: a pass from the
 * first pending seq (login, `fetchQueue`, resync). If a drain is running, it takes the request
 * over (one drain per socket). Returns at once: a drain may wait for its client for as long as
 * the socket lives, and retries a failing store read by itself.
 */
export function requestDrain(ctx: RelayContext, socket: RelaySocket, fromStart: boolean): void {
  const d = socket.data;
  if (fromStart) d.rescan = true;
  if (d.drain) {
    d.wake?.();
    return;
  }
  const run: Promise<void> = drain(ctx, socket).finally(() => {
    if (d.drain === run) d.drain = undefined;
    // A request that arrived as the drain was finishing.
    if (d.rescan && socket.connected) requestDrain(ctx, socket, false);
  });
  d.drain = run;
}

/** An ack on any socket of the device on this node: forget those seqs, let drains go on. */
export function onAcked(ctx: RelayContext, deviceId: string, seqs: readonly number[]): void {
  for (const s of ctx.deviceSockets.get(deviceId) ?? []) {
    for (const seq of seqs) s.data.inFlight.delete(seq);
    s.data.wake?.();
  }
}

/** Resolves on the next ack, buffer drain or close, or after `ms` (a fallback re-check). */
function nextWake(socket: RelaySocket, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      if (socket.data.wake === done) socket.data.wake = undefined;
      resolve();
    }
    socket.data.wake = done;
  });
}

async function drain(ctx: RelayContext, socket: RelaySocket): Promise<void> {
  const d = socket.data;
  const deviceId = d.deviceId;
  if (!deviceId) return;
  const L = ctx.limits;
  const room = deviceRoom(deviceId);
  let caughtUp = false;
  let waits = 0;
  let failures = 0;
  const wait = async () => {
    // Quick re-checks first, then at most once a second (a reader that stopped costs nothing).
    await nextWake(socket, Math.min(1000, 20 * 2 ** Math.min(waits++, 6)));
  };
  while (socket.connected) {
    if (d.rescan) {
      d.rescan = false;
      d.cursor = 0;
      caughtUp = false;
    }
    if (caughtUp) return;
    const free = L.socketBufferBytes - bufferedBytes(socket);
    if (free <= 0) {
      await wait();
      continue;
    }
    // A read never holds much more than the socket may still take.
    const want = Math.max(1, Math.min(L.backlogPageSize, 1 + Math.floor(free / L.maxEnvelopeBytes)));
    const since = ctx.now() - L.queueTtlMs;
    let page: StoredMessage[];
    try {
      page = await ctx.store.listPending(deviceId, d.cursor, want, since);
      failures = 0;
    } catch (e) {
      // The store is away (Redis restarting): try again while the socket lives.
      if (!socket.connected) return;
      ctx.log.error({ event: 'drain', deviceId, errorName: e instanceof Error ? e.name : typeof e });
      await nextWake(socket, Math.min(2000, 100 * 2 ** Math.min(failures++, 5)));
      continue;
    }
    if (!socket.connected) return;
    if (d.rescan) continue;
    const now = ctx.now();
    let pushed = 0;
    let blocked = false;
    for (const m of page) {
      // A store that ignores minReceivedAt: expired envelopes are still not delivered.
      if (m.receivedAt < since) {
        d.cursor = m.seq;
        continue;
      }
      const pushedAt = d.inFlight.get(m.seq);
      if (pushedAt !== undefined && now - pushedAt < L.backlogRedeliveryMs) {
        d.cursor = m.seq; // pushed recently on this socket and not acked yet
        continue;
      }
      if ((pushedAt === undefined && d.inFlight.size >= L.backlogPageSize) || (pushed > 0 && bufferedBytes(socket) >= L.socketBufferBytes)) {
        blocked = true; // the rest of this read is read again later
        break;
      }
      socket.emit('message', toWire(m));
      d.inFlight.set(m.seq, now);
      d.cursor = m.seq;
      pushed++;
    }
    if (pushed > 0) {
      ctx.metrics.delivered.inc(pushed);
      ctx.log.debug({ event: 'push', deviceId, count: pushed });
      waits = 0;
    }
    if (blocked) {
      await wait();
      continue;
    }
    if (page.length < want) {
      // The end of the queue. Join the room (live pushes from now on), then read once more for
      // what was stored between the read above and the join.
      if (!socket.rooms.has(room)) {
        await Promise.resolve(socket.join(room)).catch(() => undefined);
        continue;
      }
      caughtUp = true;
    }
  }
}
