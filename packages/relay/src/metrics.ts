/**
 * Prometheus metrics, one registry per relay instance (so several relays in one process, as in
 * tests, don't collide). Labels are fixed sets (event names, error codes): never device ids.
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { RelayStore } from './store/types.js';

/** The relay's metric handles. */
export interface RelayMetrics {
  readonly registry: Registry;
  readonly connections: Gauge;
  readonly authenticated: Gauge;
  readonly auth: Counter<'result'>;
  /** Refused logins by `details.reason` (`origin`, `clockSkew`, `apiKeyRevoked`…; the code when none). */
  readonly authFailures: Counter<'reason'>;
  readonly stored: Counter;
  readonly duplicates: Counter;
  readonly delivered: Counter;
  readonly acked: Counter;
  /** `opk`: `yes`, `no` (none left), `withheld` (the target's hand-out rate was spent). */
  readonly bundles: Counter<'opk'>;
  readonly errors: Counter<'code'>;
  readonly quotaRefusals: Counter<'quota'>;
  readonly expired: Counter;
  readonly slowConsumers: Counter;
  /** Requests refused by the role table (`FORBIDDEN`), by the acting `role` and the `operation`. */
  readonly forbidden: Counter<'role' | 'operation'>;
  /** Ticket claims by `result`: `won`, `conflict` (another agent held it). */
  readonly ticketClaims: Counter<'result'>;
  /** Waiting periods reported unclaimed (`ticketUnclaimed` pushes). */
  readonly ticketsUnclaimed: Counter;
}

let processRegistry: Registry | undefined;

/**
 * Process and runtime metrics (`process_cpu_seconds_total`, `process_resident_memory_bytes`,
 * `nodejs_eventloop_lag_seconds`, heap, GC…), under their standard names. One registry per
 * process, created on first use and shared by every relay in it: they describe the process.
 */
export function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

/** The text `/metrics` serves: the relay's registry, then the process's. */
export async function scrape(registry: Registry): Promise<string> {
  const [own, proc] = await Promise.all([registry.metrics(), processMetrics().metrics()]);
  return `${own}\n${proc}`;
}

/**
 * Creates the registry; `queue_depth` is read from the store at scrape time, and
 * `socket_buffered_bytes` from `bufferedBytes` (the sum over this node's sockets).
 */
export function createMetrics(store: RelayStore, defaults = false, bufferedBytes: () => number = () => 0): RelayMetrics {
  const registry = new Registry();
  const p = 'parley_relay_';
  const registers = [registry];
  if (defaults) collectDefaultMetrics({ register: registry, prefix: p });
  new Gauge({
    name: `${p}queue_depth`,
    help: 'Envelopes stored and not yet acked by their recipient',
    registers,
    async collect() {
      this.set(await store.queueDepth());
    },
  });
  new Gauge({
    name: `${p}socket_buffered_bytes`,
    help: 'Bytes pushed to sockets of this node and not yet written out (engine.io and WebSocket buffers)',
    registers,
    collect() {
      this.set(bufferedBytes());
    },
  });
  new Gauge({
    name: `${p}tickets_waiting`,
    help: 'Handoff tickets waiting in a queue (not claimed)',
    registers,
    async collect() {
      this.set(await store.countWaitingTickets());
    },
  });
  return {
    registry,
    connections: new Gauge({ name: `${p}connections`, help: 'Open sockets', registers }),
    authenticated: new Gauge({ name: `${p}authenticated_sockets`, help: 'Authenticated sockets', registers }),
    auth: new Counter({ name: `${p}auth_total`, help: 'Auth attempts by result', labelNames: ['result'], registers }),
    authFailures: new Counter({ name: `${p}auth_failures_total`, help: 'Refused logins by reason', labelNames: ['reason'], registers }),
    stored: new Counter({ name: `${p}messages_stored_total`, help: 'Envelopes durably stored', registers }),
    duplicates: new Counter({ name: `${p}messages_duplicate_total`, help: 'Sends recognised as retries', registers }),
    delivered: new Counter({ name: `${p}messages_delivered_total`, help: 'Envelopes pushed to a recipient socket', registers }),
    acked: new Counter({ name: `${p}messages_acked_total`, help: 'Envelopes deleted after recipient ack', registers }),
    bundles: new Counter({ name: `${p}bundle_fetches_total`, help: 'Bundles handed out', labelNames: ['opk'], registers }),
    errors: new Counter({ name: `${p}errors_total`, help: 'Error replies by code', labelNames: ['code'], registers }),
    quotaRefusals: new Counter({ name: `${p}quota_refusals_total`, help: 'Sends refused with STORAGE_QUOTA, by mailbox quota', labelNames: ['quota'], registers }),
    expired: new Counter({ name: `${p}messages_expired_total`, help: 'Queued envelopes purged unacked after queueTtlMs', registers }),
    slowConsumers: new Counter({ name: `${p}slow_consumer_drops_total`, help: 'Sockets dropped because their unsent bytes exceeded maxSocketBufferBytes', registers }),
    forbidden: new Counter({ name: `${p}forbidden_total`, help: 'Requests refused by the role table (FORBIDDEN), by role and operation', labelNames: ['role', 'operation'], registers }),
    ticketClaims: new Counter({ name: `${p}ticket_claims_total`, help: 'Handoff ticket claims by result (won, conflict)', labelNames: ['result'], registers }),
    ticketsUnclaimed: new Counter({ name: `${p}tickets_unclaimed_total`, help: 'Handoff tickets reported waiting longer than ticketUnclaimedMs (once per waiting period)', registers }),
  };
}
