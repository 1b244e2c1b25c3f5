/**
 * The server side of the relay bench, one per child process (forked by `common.ts`): the real
 * relay (`createRelay`, SQLite or memory store) or the bare socket.io forwarder. It answers IPC
 * requests from the runner one at a time (`serveRequests`): start, CPU and event-loop time, an
 * API key, a store probe, stop.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { performance } from 'node:perf_hooks';
import { join } from 'node:path';
import { createApiKey, createRelay, SqliteStore, type Relay, type RelayLimits } from '@parley/relay';
import { startBareForwarder, type BareForwarder } from './bare-forwarder.js';
import { processCpuSeconds, serveRequests } from './common.js';

export type ServerKind = 'relay-sqlite' | 'relay-memory' | 'bare';

/** Cumulative use of the server process: what `{ op: 'usage' }` answers. */
export interface ServerUsage {
  /** CPU seconds, user + system, all threads. */
  readonly cpuSecs: number;
  /**
   * Seconds the event loop was busy (not waiting for I/O). Unlike CPU time it includes the time
   * the loop is blocked in a synchronous fsync (better-sqlite3 commits on the main thread).
   */
  readonly loopActiveSecs: number;
  /** The server's clock (`performance.now()`, seconds) when this was taken. */
  readonly atSecs: number;
}

export type ServerRequest =
  | { op: 'start'; kind: ServerKind; sqlitePath?: string }
  | { op: 'usage' }
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

/** What the store probe found: writes per second with groups of one and of {@link PROBE_GROUP}. */
export interface StoreProbe {
  /** `enqueue` awaited one at a time: every write is its own commit, so this is 1 ÷ fsync latency. */
  readonly singlePerSec: number;
  /** {@link PROBE_GROUP} `enqueue`s issued together, then awaited: they share one group commit. */
  readonly groupedPerSec: number;
  readonly group: number;
}

/** Writes issued per event-loop turn in the grouped probe: one per throughput pair. */
export const PROBE_GROUP = 50;

/**
 * The relay's own SQLite store alone, no network, no socket.io: `enqueue`s of
 * `envelopeBytes`-byte envelopes into a fresh file (WAL, `synchronous = FULL`), for half of
 * `seconds` one at a time and for the other half {@link PROBE_GROUP} at a time (the store's
 * group commit then makes them one transaction and one fsync).
 */
async function storeProbe(seconds: number, envelopeBytes: number): Promise<StoreProbe> {
  const dir = mkdtempSync(join(tmpdir(), 'parley-bench-probe-'));
  const store = new SqliteStore(join(dir, 'probe.db'));
  try {
    const envelope = new Uint8Array(envelopeBytes).fill(7);
    let n = 0;
    const write = () => store.enqueue({ to: 'a'.repeat(32), from: 'b'.repeat(32), id: `p${n++}`, envelope, receivedAt: Date.now() });
    const timed = async (step: () => Promise<unknown>, perStep: number): Promise<number> => {
      const t0 = performance.now();
      let writes = 0;
      while (performance.now() - t0 < (seconds * 1000) / 2) {
        await step();
        writes += perStep;
      }
      return (writes / (performance.now() - t0)) * 1000;
    };
    const singlePerSec = await timed(write, 1);
    const groupedPerSec = await timed(() => Promise.all(Array.from({ length: PROBE_GROUP }, write)), PROBE_GROUP);
    return { singlePerSec, groupedPerSec, group: PROBE_GROUP };
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
    case 'usage':
      return { cpuSecs: processCpuSeconds(), loopActiveSecs: performance.eventLoopUtilization().active / 1000, atSecs: performance.now() / 1000 } satisfies ServerUsage;
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
