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
  readonly stored: Counter;
  readonly duplicates: Counter;
  readonly delivered: Counter;
  readonly acked: Counter;
  readonly bundles: Counter<'opk'>;
  readonly errors: Counter<'code'>;
}

/** Creates the registry; `queue_depth` is read from the store at scrape time. */
export function createMetrics(store: RelayStore, defaults = false): RelayMetrics {
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
  return {
    registry,
    connections: new Gauge({ name: `${p}connections`, help: 'Open sockets', registers }),
    authenticated: new Gauge({ name: `${p}authenticated_sockets`, help: 'Authenticated sockets', registers }),
    auth: new Counter({ name: `${p}auth_total`, help: 'Auth attempts by result', labelNames: ['result'], registers }),
    stored: new Counter({ name: `${p}messages_stored_total`, help: 'Envelopes durably stored', registers }),
    duplicates: new Counter({ name: `${p}messages_duplicate_total`, help: 'Sends recognised as retries', registers }),
    delivered: new Counter({ name: `${p}messages_delivered_total`, help: 'Envelopes pushed to a recipient socket', registers }),
    acked: new Counter({ name: `${p}messages_acked_total`, help: 'Envelopes deleted after recipient ack', registers }),
    bundles: new Counter({ name: `${p}bundle_fetches_total`, help: 'Bundles handed out', labelNames: ['opk'], registers }),
    errors: new Counter({ name: `${p}errors_total`, help: 'Error replies by code', labelNames: ['code'], registers }),
  };
}
