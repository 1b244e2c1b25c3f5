/**
 * The server side of the relay bench, one per child process (forked by `common.ts`): the real
 * relay (`createRelay`, SQLite or memory store) or the bare socket.io forwarder. It answers IPC
 * requests from the runner one at a time (`serveRequests`): start, CPU time, an API key, a store
 * probe, stop.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createApiKey, createRelay, SqliteStore, type Relay, type RelayLimits } from '@parley/relay';
import { startBareForwarder, type BareForwarder } from './bare-forwarder.js';
import { processCpuSeconds, serveRequests } from './common.js';

export type ServerKind = 'relay-sqlite' | 'relay-memory' | 'bare';

export type ServerRequest =
  | { op: 'start'; kind: ServerKind; sqlitePath?: string }
  | { op: 'cpu' }
  | { op: 'apiKey'; label: string }
  | { op: 'storeProbe'; seconds: number; envelopeBytes: number };

/**
 * The relay's limits for the bench. Only the rate and connection limits are raised: the
 * defaults (20 events/s per device, burst 50; 50 sockets and 5 connects/s per address; 10
 * bundle fetches/min) protect a public relay from one device or address, and every bench
 * client comes from 127.0.0.1 and sends far faster than a person. Sizes, queue quota
 * (10,000 per recipient), violations and auth timeouts keep their defaults.
 */
export const BENCH_LIMITS: Partial<RelayLimits> = {
  eventsPerSecond: 1_000_000,
  eventBurst: 1_000_000,
  bundleFetchesPerMinute: 100_000,
  maxConnectionsPerAddress: 10_000,
  connectsPerSecondPerAddress: 10_000,
  connectBurst: 10_000,
};

let relay: Relay | undefined;
let bare: BareForwarder | undefined;

/**
 * Commits per second of the relay's own SQLite store, alone: sequential `enqueue`s of
 * `envelopeBytes`-byte envelopes into a fresh file (WAL, `synchronous = FULL`: one fsync per
 * commit), no network, no socket.io. The ceiling a relay storing one message per transaction
 * can reach on this disk.
 */
async function storeProbe(seconds: number, envelopeBytes: number): Promise<{ commitsPerSec: number; meanMs: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'parley-bench-probe-'));
  const store = new SqliteStore(join(dir, 'probe.db'));
  try {
    const envelope = new Uint8Array(envelopeBytes).fill(7);
    const t0 = performance.now();
    let n = 0;
    while (performance.now() - t0 < seconds * 1000) {
      await store.enqueue({ to: 'a'.repeat(32), from: 'b'.repeat(32), id: `p${n}`, envelope, receivedAt: Date.now() });
      n++;
    }
    const ms = performance.now() - t0;
    return { commitsPerSec: (n / ms) * 1000, meanMs: ms / n };
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function handle(req: ServerRequest): Promise<unknown> {
  switch (req.op) {
    case 'start': {
      if (relay || bare) throw new Error('already started');
      if (req.kind === 'bare') {
        bare = await startBareForwarder();
        return { url: bare.url, origin: new URL(bare.url).origin };
      }
      const store = req.kind === 'relay-sqlite' ? { sqlite: req.sqlitePath ?? '' } : 'memory';
      if (typeof store === 'object' && !store.sqlite) throw new Error('relay-sqlite needs sqlitePath');
      // `warn`: the relay logs nothing per message at info level either; auth lines would only
      // add noise to the progress output.
      relay = await createRelay({ store, logLevel: 'warn', limits: BENCH_LIMITS });
      return { url: relay.url, origin: relay.origin };
    }
    case 'cpu':
      return processCpuSeconds();
    case 'apiKey': {
      if (!relay) throw new Error('not a relay');
      return (await createApiKey(relay.store, req.label)).key;
    }
    case 'storeProbe':
      return storeProbe(req.seconds, req.envelopeBytes);
  }
}

serveRequests<ServerRequest>(handle, async () => {
  await relay?.close();
  await bare?.close();
});
