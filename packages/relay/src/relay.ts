/**
 * `createRelay`: an HTTP(S) server carrying socket.io (the relay protocol), `/healthz` and
 * `/metrics`. Durable state lives in the store only; what is in memory here (nonces, rate
 * buckets, connection counts) may be lost on restart without losing a message or a prekey.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { pino, type Logger } from 'pino';
import type { Registry } from 'prom-client';
import { Server } from 'socket.io';
import { getCrypto, initCrypto } from '@parley/protocol/verify';
import { onConnection } from './connection.js';
import type { RelayContext, RelayServer, RelaySocket } from './context.js';
import { httpHandler } from './http.js';
import { boundedParser } from './parser.js';
import { ConnectionCounter, KeyedLimiter } from './limits.js';
import { createMetrics } from './metrics.js';
import { normalizeOrigin, originWarnings } from './origin.js';
import { watchRevocations } from './revocation.js';
import { DEFAULT_LIMITS, checkLimits, type RelayLimits, type RelayOptions } from './options.js';
import { openStore } from './store/open.js';
import { attachRedisAdapter, openRedisStore } from './cluster/redis-adapter.js';
import { bufferedBytes, requestDrain } from './mailbox.js';
import { StaffAuthority, parseOrgKey } from './staff/authority.js';
import { dropRevokedStaff, revocationRoutes } from './staff/revocations.js';
import type { RelayStore } from './store/types.js';
import { startTicketSweeper } from './tickets/sweeper.js';
import { startArchiveOps } from './archive/ops.js';
import { DEFAULT_TICKET_UNCLAIMED_MS } from '@parley/protocol/wire';

/** A running relay. */
export interface Relay {
  /** Base URL, e.g. `http://127.0.0.1:41234` (socket.io path `/socket.io/`). */
  readonly url: string;
  readonly port: number;
  /** The origin clients must sign. */
  readonly origin: string;
  readonly store: RelayStore;
  /**
   * This instance's Prometheus registry (the relay's own metrics; `/metrics` serves it together
   * with the process metrics, see `processMetrics`).
   */
  readonly metrics: Registry;
  /** Where `/metrics` is served: the admin listener's URL when `metrics.port` is set, else on {@link url}. */
  readonly metricsUrl: string;
  readonly limits: Readonly<RelayLimits>;
  readonly logger: Logger;
  /** Disconnects every socket, stops listening, waits for running handlers, closes an owned store. */
  close(): Promise<void>;
}

async function ensureCrypto(): Promise<void> {
  try {
    getCrypto();
  } catch {
    await initCrypto();
  }
}

/**
 * Starts a relay.
 * @throws if the port is taken or the store cannot be opened.
 * @example
 * const relay = await createRelay({ store: { sqlite: './relay.db' } });
 * console.log(relay.url);
 * await relay.close();
 */
export async function createRelay(options: RelayOptions = {}): Promise<Relay> {
  await ensureCrypto();
  const limits: RelayLimits = { ...DEFAULT_LIMITS, ...options.limits };
  checkLimits(limits);
  const givenOrigin = options.origin === undefined ? undefined : normalizeOrigin(options.origin);
  const metricsOptions = options.metrics ?? {};
  if (metricsOptions.token !== undefined && metricsOptions.token.length < 16) throw new RangeError('the metrics token must be at least 16 characters');
  const log = options.logger ?? pino({ level: options.logLevel ?? 'info' });
  const now = options.now ?? Date.now;
  const orgKey = options.orgKey === undefined ? undefined : parseOrgKey(options.orgKey);
  const ticketUnclaimedMs = options.ticketUnclaimedMs ?? DEFAULT_TICKET_UNCLAIMED_MS;
  if (!Number.isSafeInteger(ticketUnclaimedMs) || ticketUnclaimedMs < 1) throw new RangeError('ticketUnclaimedMs must be a whole number of ms ≥ 1');
  const archiveRetentionDays = options.archiveRetentionDays;
  if (archiveRetentionDays !== undefined && (!Number.isSafeInteger(archiveRetentionDays) || archiveRetentionDays < 1)) throw new RangeError('archiveRetentionDays must be a whole number of days ≥ 1');
  const archiveNoticeIntervalMs = options.archiveNoticeIntervalMs ?? 2000;
  if (!Number.isSafeInteger(archiveNoticeIntervalMs) || archiveNoticeIntervalMs < 1) throw new RangeError('archiveNoticeIntervalMs must be a whole number of ms ≥ 1');
  if (options.redis !== undefined && options.store !== undefined) throw new TypeError('createRelay: give either store or redis, not both');
  // Scale-out: with `redis`, the store is Redis and socket.io's Redis adapter links the nodes.
  const { store, owned } = options.redis !== undefined
    ? { store: await openRedisStore(options.redis, log), owned: true }
    : openStore(options.store ?? 'memory');
  let liveSockets: () => Iterable<RelaySocket> = () => [];
  const metrics = createMetrics(store, false, () => {
    let n = 0;
    for (const s of liveSockets()) n += bufferedBytes(s);
    return n;
  });
  let closing = false;

  const server: HttpServer = options.tls
    ? createHttpsServer({ cert: options.tls.cert, key: options.tls.key })
    : createHttpServer();
  const adminPort = metricsOptions.port;
  const token = metricsOptions.token === undefined ? {} : { token: metricsOptions.token };
  // Set once the context exists (the revocation routes use it).
  let routes: ((req: IncomingMessage, res: ServerResponse) => boolean) | undefined;
  server.on('request', httpHandler(metrics.registry, () => !closing, {
    metrics: adminPort === undefined, ...token, routes: (req, res) => routes?.(req, res) ?? false,
  }));
  // The admin listener: /metrics (and /healthz) only, plain HTTP, loopback by default.
  const admin = adminPort === undefined ? undefined : createHttpServer(httpHandler(metrics.registry, () => !closing, { metrics: true, ...token }));

  const io: RelayServer = new Server(server, {
    serveClient: false,
    // THREATS R6: engine.io closes any frame above this, on polling and WebSocket alike.
    maxHttpBufferSize: limits.maxFrameBytes,
    // Same cap for a whole packet with its binary attachments (see parser.ts).
    parser: boundedParser(limits.maxFrameBytes),
    // Time for the socket.io CONNECT packet; auth has its own deadline on top.
    connectTimeout: limits.authTimeoutMs,
    // THREATS R3: no connectionStateRecovery. Every connection runs the challenge again.
  });
  liveSockets = () => io.of('/').sockets.values();

  const ctx: RelayContext = {
    io, store, log, metrics, limits, now,
    origin: givenOrigin ?? '',
    eventLimiter: new KeyedLimiter(limits.eventBurst, limits.eventsPerSecond, now),
    bundleLimiter: new KeyedLimiter(limits.bundleFetchesPerMinute, limits.bundleFetchesPerMinute / 60, now),
    addressBundleLimiter: new KeyedLimiter(limits.bundleFetchesPerMinutePerAddress, limits.bundleFetchesPerMinutePerAddress / 60, now),
    opkLimiter: new KeyedLimiter(limits.opksPerTargetPerMinute, limits.opksPerTargetPerMinute / 60, now),
    deviceSockets: new Map(),
    inFlight: new Set(),
    customersMayMessageCustomers: options.customersMayMessageCustomers ?? orgKey === undefined,
    ...(orgKey ? { staff: new StaffAuthority(orgKey, store, now) } : {}),
  };
  routes = revocationRoutes(ctx);

  // Per-address limits run before a socket exists (R5, R12). Memory only, per node.
  const connects = new KeyedLimiter(limits.connectBurst, limits.connectsPerSecondPerAddress, now);
  const open = new ConnectionCounter(limits.maxConnectionsPerAddress);
  io.use((socket, next) => {
    const address = socket.handshake.address;
    if (closing || !connects.take(address) || !open.open(address)) {
      log.warn({ event: 'connect', code: 'RATE_LIMITED' });
      ctx.metrics.errors.inc({ code: 'RATE_LIMITED' });
      const err = new Error('RATE_LIMITED') as Error & { data?: unknown };
      err.data = { code: 'RATE_LIMITED', message: 'too many connections' };
      next(err);
      return;
    }
    socket.data.address = address;
    socket.conn.once('close', () => open.close(address));
    next();
  });
  io.on('connection', (socket) => onConnection(ctx, socket));
  io.engine.on('connection_error', () => ctx.metrics.errors.inc({ code: 'TRANSPORT' }));
  // Broadcasts lost while this node's Redis subscription was down are in the store: re-drain.
  const cluster = options.redis === undefined ? undefined : await attachRedisAdapter(io, options.redis, {
    logger: log,
    // Each socket's drain makes one more pass from the start (it retries a failing store read
    // by itself while the socket lives, so nothing here can fail).
    onResync: () => {
      for (const s of ctx.io.of('/').sockets.values()) if (s.data.deviceId) requestDrain(ctx, s, true);
    },
  }).catch(async (e: unknown) => {
    if (owned) await store.close();
    throw e;
  });
  if (cluster) {
    ctx.broadcastBarrier = cluster.barrier;
    // A revocation list stored through another node: check this node's sockets too.
    ctx.notifyNodes = () => io.serverSideEmit('revocations');
    io.on('revocations', () => void dropRevokedStaff(ctx));
  }

  // Time-to-live (R14): expired envelopes are skipped on read at once and purged on a schedule.
  // With several nodes each purges (the store's purge is atomic, so that is only repeated work).
  let purging: Promise<void> | undefined;
  const purge = (): Promise<void> => (purging ??= (async () => {
    if (!store.purgeExpired) return;
    const batch = 1000;
    try {
      for (let n = batch; n === batch && !closing;) {
        n = await store.purgeExpired(now() - limits.queueTtlMs, batch);
        if (n > 0) {
          metrics.expired.inc(n);
          log.info({ event: 'purge', count: n });
        }
      }
    } catch (e) {
      log.error({ event: 'purge', errorName: e instanceof Error ? e.name : typeof e });
    }
  })().finally(() => {
    purging = undefined;
  }));

  const listen = (srv: HttpServer, port: number, host: string) => new Promise<void>((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(port, host, () => {
      srv.off('error', reject);
      resolve();
    });
  });
  try {
    await listen(server, options.port ?? 0, options.host ?? '127.0.0.1');
    if (admin) await listen(admin, adminPort ?? 0, metricsOptions.host ?? '127.0.0.1');
  } catch (e) {
    // Release what was taken (the port, the store and its lock) before reporting.
    closing = true;
    await new Promise<void>((resolve) => io.close(() => resolve()));
    if (admin?.listening) await new Promise((resolve) => admin.close(resolve));
    await cluster?.close();
    if (owned) await store.close();
    throw e;
  }
  admin?.on('error', () => log.error({ event: 'adminServer', errorName: 'ServerError' }));
  // A listening server that later fails must not crash the process.
  server.on('error', () => log.error({ event: 'server', errorName: 'ServerError' }));
  server.on('clientError', (_err, sock) => sock.destroy());

  const { port } = server.address() as AddressInfo;
  const host = options.host ?? '127.0.0.1';
  const url = `${options.tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}`;
  ctx.origin = givenOrigin ?? new URL(url).origin;
  let metricsUrl = `${url}/metrics`;
  if (admin) {
    const a = admin.address() as AddressInfo;
    const h = metricsOptions.host ?? '127.0.0.1';
    metricsUrl = `http://${h.includes(':') ? `[${h}]` : h}:${a.port}/metrics`;
  }
  log.info({
    event: 'listen', url, origin: ctx.origin, metricsUrl, metricsToken: metricsOptions.token !== undefined,
    staffRoles: ctx.staff !== undefined, customersMayMessageCustomers: ctx.customersMayMessageCustomers,
  });
  for (const warning of originWarnings(host, ctx.origin, givenOrigin !== undefined, options.tls !== undefined)) log.warn({ event: 'origin' }, warning);
  const stopRevocations = watchRevocations(ctx);
  const purgeTimer = setInterval(() => void purge(), Math.min(limits.queuePurgeIntervalMs, 2 ** 31 - 1));
  purgeTimer.unref();
  const stopTicketSweeper = startTicketSweeper(ctx, ticketUnclaimedMs);
  const stopArchiveOps = startArchiveOps(ctx, {
    noticeIntervalMs: archiveNoticeIntervalMs, sweepIntervalMs: limits.queuePurgeIntervalMs,
    ...(archiveRetentionDays === undefined ? {} : { retentionDays: archiveRetentionDays }),
  });

  let closed: Promise<void> | undefined;
  return {
    url, port, store, limits, metrics: metrics.registry, metricsUrl, logger: log,
    get origin() {
      return ctx.origin;
    },
    close() {
      closed ??= (async () => {
        closing = true;
        clearInterval(purgeTimer);
        const sweeperStopped = stopTicketSweeper();
        const archiveOpsStopped = stopArchiveOps();
        const done = new Promise<void>((resolve) => io.close(() => resolve()));
        server.closeAllConnections();
        const adminClosed = admin ? new Promise((resolve) => admin.close(resolve)) : undefined;
        admin?.closeAllConnections();
        await done;
        await adminClosed;
        await stopRevocations();
        await Promise.allSettled([...ctx.inFlight, purging, sweeperStopped, archiveOpsStopped]);
        await cluster?.close();
        if (owned) await store.close();
        log.info({ event: 'closed' });
      })();
      return closed;
    },
  };
}

