/** Options of `createRelay` and the named defaults behind them (docs/threats.md section (c)). */
import type { Logger } from 'pino';
import type { StoreOption } from './store/open.js';
import type { RedisOption } from './cluster/redis-adapter.js';

/** Tunable limits. Every default is named and has a reason. */
export interface RelayLimits {
  /** Largest stored envelope. THREATS (c) "Oversize": 64 KiB. */
  maxEnvelopeBytes: number;
  /** engine.io frame cap (`maxHttpBufferSize`): envelope + socket.io framing and other fields. */
  maxFrameBytes: number;
  /** Per-device events per second (token refill rate). THREATS (c): 20 msg/s. */
  eventsPerSecond: number;
  /** Per-device burst. THREATS (c): burst 50. */
  eventBurst: number;
  /** Bundle fetches per requester per minute. THREATS (c) / C20: 10/min. */
  bundleFetchesPerMinute: number;
  /** `prekeysLow` is sent when a device's OPK supply drops below this. */
  prekeyLowThreshold: number;
  /** OPKs one device may have stored (stops a device filling the disk with prekeys). */
  maxOneTimePrekeys: number;
  /** Pending messages per recipient before `send` answers `STORAGE_QUOTA`. */
  maxQueuePerDevice: number;
  /** Concurrent sockets per remote address (R12). */
  maxConnectionsPerAddress: number;
  /** New connections per second per remote address (THREATS (c): 5/s). */
  connectsPerSecondPerAddress: number;
  /** Burst of new connections per address. */
  connectBurst: number;
  /** Protocol violations (malformed, pre-auth, forbidden) before the socket is dropped. */
  maxViolations: number;
  /** An unauthenticated socket is dropped after this long (R1: ≤ 10 s). */
  authTimeoutMs: number;
  /** Accepted auth clock skew (R2: ≤ 30 s). */
  authMaxSkewMs: number;
  /** Messages pushed per store page when draining a backlog. */
  backlogPageSize: number;
}

/** The defaults. */
export const DEFAULT_LIMITS: Readonly<RelayLimits> = Object.freeze({
  maxEnvelopeBytes: 64 * 1024,
  maxFrameBytes: 64 * 1024 + 8 * 1024,
  eventsPerSecond: 20,
  eventBurst: 50,
  bundleFetchesPerMinute: 10,
  prekeyLowThreshold: 10,
  maxOneTimePrekeys: 500,
  maxQueuePerDevice: 10_000,
  maxConnectionsPerAddress: 50,
  connectsPerSecondPerAddress: 5,
  connectBurst: 20,
  maxViolations: 5,
  authTimeoutMs: 10_000,
  authMaxSkewMs: 30_000,
  backlogPageSize: 200,
});

/** TLS material; when given the relay serves HTTPS/WSS only. */
export interface TlsOptions {
  cert: string | Buffer;
  key: string | Buffer;
}

/** Options of `createRelay`. */
export interface RelayOptions {
  /** Interface to listen on. Default `127.0.0.1`. */
  host?: string;
  /** Port; `0` (default) picks a free one. */
  port?: number;
  /**
   * The origin clients sign in their auth answer, e.g. `https://relay.example.com`.
   * Default: the relay's own URL origin (`http://127.0.0.1:<port>`). Set it behind a proxy.
   */
  origin?: string;
  /** Default `'memory'`. The CLI defaults to a SQLite file. */
  store?: StoreOption;
  /**
   * Scale-out: a Redis URL (or settings). The relay then keeps its state in a Redis store and
   * links its nodes with socket.io's Redis adapter. Exclusive with `store`. Redis must run with
   * `appendonly yes` and `appendfsync always` (checked at start, see README).
   */
  redis?: RedisOption;
  /** A pino logger. Default: pino at `logLevel` to stdout. */
  logger?: Logger;
  /** Used only when `logger` is absent. Default `info`. */
  logLevel?: string;
  /** Overrides of {@link DEFAULT_LIMITS}. */
  limits?: Partial<RelayLimits>;
  /** Serve HTTPS/WSS. */
  tls?: TlsOptions;
  /** Clock (tests). Default `Date.now`. */
  now?: () => number;
}
