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
  /** Bundle (and identity) fetches per requester per minute. THREATS (c) / C20: 10/min. */
  bundleFetchesPerMinute: number;
  /**
   * Bundle (and identity) fetches per remote address per minute, all identities together:
   * device ids are free, so a per-device budget alone lets ten fresh identities fetch ten times
   * as much (C20b). Behind a proxy every client has the proxy's address: raise it there.
   */
  bundleFetchesPerMinutePerAddress: number;
  /**
   * One-time prekeys handed out per target device per minute (token bucket, burst the same).
   * Past it, bundles come without a one-time prekey (X3DH's last-resort path, which the signed
   * prekey's replay memory covers): requesters from any number of identities and addresses
   * together drain at most this many a minute (C20b).
   */
  opksPerTargetPerMinute: number;
  /** `prekeysLow` is sent when a device's OPK supply drops below this. */
  prekeyLowThreshold: number;
  /** OPKs one device may have stored (stops a device filling the disk with prekeys). */
  maxOneTimePrekeys: number;
  /** Pending messages per recipient before `send` answers `STORAGE_QUOTA` (quota `recipient`). */
  maxQueuePerDevice: number;
  /** Pending messages from one sender to one recipient (quota `pair`): one sender fills only its share. */
  maxQueuePerPair: number;
  /**
   * The last `queueReserve` places of a recipient's queue are kept for senders that have fewer
   * than `queueReservePerSender` messages pending for it: senders that fill the shared part
   * cannot shut out the next one (quota `recipient`, `reserved: true`).
   */
  queueReserve: number;
  queueReservePerSender: number;
  /** Pending messages from one sender across all recipients (quota `sender`). */
  maxQueuePerSender: number;
  /** Pending messages in the whole store (quota `total`). */
  maxQueueTotal: number;
  /** Queued envelopes older than this are not delivered and are purged (time-to-live). */
  queueTtlMs: number;
  /** How often expired envelopes are purged. */
  queuePurgeIntervalMs: number;
  /** Sockets one device may hold at once, on one node; one more login gets `RATE_LIMITED`. */
  maxSocketsPerDevice: number;
  /**
   * Back-pressure: the backlog drain pushes the next envelope only while the socket's unsent
   * bytes (engine.io's write buffer and the WebSocket's) are below this; it resumes as they drain.
   */
  socketBufferBytes: number;
  /**
   * A socket whose unsent bytes exceed this (live pushes to a client that stopped reading) is
   * dropped as a slow consumer. Its envelopes stay queued for its next login.
   */
  maxSocketBufferBytes: number;
  /**
   * A backlog envelope pushed on a socket and not acked yet is pushed again on that socket (by
   * `fetchQueue`, or a cluster resync) only when it was pushed at least this long ago.
   */
  backlogRedeliveryMs: number;
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
  /**
   * Backlog window: envelopes pushed from the store and not acked yet, per socket. Also the
   * largest store read of the drain.
   */
  backlogPageSize: number;
  /**
   * How often the API keys of connected bots are checked again: a bot whose key was revoked
   * (by `parley-relay apikey revoke`, from any process or node) is told (`relayError`
   * `UNAUTHENTICATED`, reason `apiKeyRevoked`) and disconnected within this time.
   */
  apiKeyCheckIntervalMs: number;
  /**
   * `POST /v1/revocations` requests per remote address per minute (token bucket, burst the same):
   * each one costs signature checks, and only an issuer has anything to post.
   */
  revocationPostsPerMinutePerAddress: number;
  /**
   * Handoff tickets one device may hold open at once (`ticketOpen` past it: `RATE_LIMITED`,
   * `details.scope: 'tickets'`): a customer cannot flood the queues or the store.
   */
  maxOpenTicketsPerDevice: number;
}

/** The defaults. */
export const DEFAULT_LIMITS: Readonly<RelayLimits> = Object.freeze({
  maxEnvelopeBytes: 64 * 1024,
  maxFrameBytes: 64 * 1024 + 8 * 1024,
  eventsPerSecond: 20,
  eventBurst: 50,
  bundleFetchesPerMinute: 10,
  bundleFetchesPerMinutePerAddress: 60,
  opksPerTargetPerMinute: 10,
  prekeyLowThreshold: 10,
  maxOneTimePrekeys: 500,
  maxQueuePerDevice: 10_000,
  maxQueuePerPair: 1_000,
  queueReserve: 2_000,
  queueReservePerSender: 20,
  maxQueuePerSender: 20_000,
  maxQueueTotal: 1_000_000,
  queueTtlMs: 30 * 24 * 60 * 60 * 1000,
  queuePurgeIntervalMs: 60_000,
  maxSocketsPerDevice: 8,
  socketBufferBytes: 1024 * 1024,
  maxSocketBufferBytes: 4 * 1024 * 1024,
  backlogRedeliveryMs: 30_000,
  maxConnectionsPerAddress: 50,
  connectsPerSecondPerAddress: 5,
  connectBurst: 20,
  maxViolations: 5,
  authTimeoutMs: 10_000,
  authMaxSkewMs: 30_000,
  backlogPageSize: 200,
  apiKeyCheckIntervalMs: 5_000,
  revocationPostsPerMinutePerAddress: 30,
  maxOpenTicketsPerDevice: 16,
});

/** TLS material; when given the relay serves HTTPS/WSS only. */
export interface TlsOptions {
  cert: string | Buffer;
  key: string | Buffer;
}

/** Options of `createRelay`'s `metrics`. */
export interface MetricsOptions {
  /**
   * Serve `/metrics` (and `/healthz`) on a separate plain-HTTP admin listener on this port
   * (`0`: any free one); the relay's public listener then has no `/metrics`.
   */
  port?: number;
  /** Interface of the admin listener. Default `127.0.0.1`. */
  host?: string;
  /** Require `Authorization: Bearer <token>` for `/metrics`, on whichever listener serves it. */
  token?: string;
}

/** Options of `createRelay`. */
export interface RelayOptions {
  /** Interface to listen on. Default `127.0.0.1`. */
  host?: string;
  /** Port; `0` (default) picks a free one. */
  port?: number;
  /**
   * The origin clients sign in their auth answer, e.g. `https://relay.example.com`: scheme,
   * host and port only (normalised like `URL.origin`; a path is refused with a `RangeError`).
   * Default: the relay's own URL origin (`http://127.0.0.1:<port>`). Set it behind a proxy, and
   * whenever the relay listens on `0.0.0.0`/`::` (no client dials those).
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
  /** Where and how `/metrics` is served. Default: on the relay's own listener, without a token. */
  metrics?: MetricsOptions;
  /**
   * The organisation root public key (32 bytes, or 64 hex chars). With it the relay reads staff
   * roles from the credential a device presents at login (`verifyStaffCredential`: root →
   * issuer → device, policy, expiry, revocation), accepts signed revocation lists on
   * `POST /v1/revocations`, and enforces the role table (README "Roles"). Without it, credentials
   * are ignored and every non-bot device is a `customer`.
   */
  orgKey?: Uint8Array | string;
  /**
   * May a `customer` send to another `customer` (or to a device this relay never saw log in)?
   * Default `false` when {@link orgKey} is set, `true` without one (so older deployments keep
   * working). Refusals are `FORBIDDEN` (`details.role`, `details.operation: 'sendToCustomer'`).
   */
  customersMayMessageCustomers?: boolean;
  /**
   * A handoff ticket waiting unclaimed this long gets one `ticketUnclaimed` push to its
   * customer and notify device (the bot tells the customer), per waiting period, and counts in
   * `parley_relay_tickets_unclaimed_total`. Default `DEFAULT_TICKET_UNCLAIMED_MS` (120 s).
   * CLI `--ticket-unclaimed-ms`, env `PARLEY_RELAY_TICKET_UNCLAIMED_MS`.
   */
  ticketUnclaimedMs?: number;
  /**
   * The compliance archive's retention: every `queuePurgeIntervalMs`, the archive refs whose
   * newest entry is older than this many days are deleted whole, except refs under a legal hold
   * (`parley-compliance hold`). Default: off (kept until a member's erasure purges them).
   * CLI `--archive-retention-days`, env `PARLEY_RELAY_ARCHIVE_RETENTION_DAYS`.
   */
  archiveRetentionDays?: number;
  /**
   * How often this node looks for new archive openings (`parley-compliance open|export`) to push
   * `archiveOpened` to connected appenders. Default 2000 ms.
   */
  archiveNoticeIntervalMs?: number;
  /** Clock (tests). Default `Date.now`. */
  now?: () => number;
}

/**
 * Checks a limits object: every value a finite number ≥ 0 (counts and byte sizes ≥ 1), and the
 * pairs that must be ordered are.
 * @throws RangeError naming the first bad limit.
 */
export function checkLimits(limits: RelayLimits): void {
  const zeroOk = new Set<keyof RelayLimits>(['queueReserve', 'backlogRedeliveryMs', 'prekeyLowThreshold']);
  for (const [k, v] of Object.entries(limits) as [keyof RelayLimits, unknown][]) {
    if (!(k in DEFAULT_LIMITS)) throw new RangeError(`unknown relay limit ${k}`);
    if (typeof v !== 'number' || !Number.isFinite(v) || v < (zeroOk.has(k) ? 0 : 1)) {
      throw new RangeError(`relay limit ${k} must be a number ≥ ${zeroOk.has(k) ? 0 : 1}`);
    }
  }
  if (limits.queueReserve >= limits.maxQueuePerDevice) throw new RangeError('relay limit queueReserve must be below maxQueuePerDevice');
  if (limits.maxSocketBufferBytes < limits.socketBufferBytes + limits.maxFrameBytes) {
    throw new RangeError('relay limit maxSocketBufferBytes must be at least socketBufferBytes + maxFrameBytes');
  }
}
