/**
 * The relay of the conversation bench, in a child process of its own (forked by
 * `conversations.ts` through `relay/common.ts`'s `Child`): `createRelay` on a SQLite file with
 * the org key (so agents' staff credentials give them their roles at login, and tickets can be
 * listed and claimed) and customers allowed to message customers (the latency case's members are
 * plain clients), limits raised as in the relay bench.
 */
import { createApiKey, createRelay, type Relay, type RelayLimits } from '@parley/relay';
import { processCpuSeconds, serveRequests } from './relay/common.js';

export type ConversationServerRequest = { op: 'start'; sqlitePath: string; orgKey: string } | { op: 'apiKey'; label: string } | { op: 'cpu' };

/** As `relay/server.ts`'s BENCH_LIMITS: every bench client is on 127.0.0.1 and sends faster than a person. */
const LIMITS: Partial<RelayLimits> = {
  eventsPerSecond: 1_000_000,
  eventBurst: 1_000_000,
  bundleFetchesPerMinute: 100_000,
  maxConnectionsPerAddress: 10_000,
  connectsPerSecondPerAddress: 10_000,
  connectBurst: 10_000,
};

let relay: Relay | undefined;

serveRequests<ConversationServerRequest>(
  async (req) => {
    switch (req.op) {
      case 'start':
        if (relay) throw new Error('already started');
        relay = await createRelay({
          store: { sqlite: req.sqlitePath }, orgKey: req.orgKey, customersMayMessageCustomers: true, logLevel: 'warn', limits: LIMITS,
        });
        return { url: relay.url };
      case 'apiKey':
        if (!relay) throw new Error('not started');
        return (await createApiKey(relay.store, req.label)).key;
      case 'cpu':
        return processCpuSeconds();
    }
  },
  async () => {
    await relay?.close();
  },
);
