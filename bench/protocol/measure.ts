/**
 * Runs every case for ONE implementation and returns numbers. Used by `worker.ts`, one child
 * process per implementation (see `bench/README.md` for why).
 */
import type { Peer } from './adapter.js';

/** Everything the bench measures, in report order; each runs in its own child process. */
export const IMPLEMENTATIONS = ['parley-node', 'parley-sodium', 'parley-noble', 'libsignal', 'olm'] as const;
export type ImplId = (typeof IMPLEMENTATIONS)[number];

export interface Timing {
  /** Median over samples, ops per second. */
  readonly opsPerSec: number;
  /** Per-sample ops/s, in run order. */
  readonly samples: readonly number[];
  /** Total timed operations over all samples. */
  readonly ops: number;
}

export interface ImplResult {
  readonly name: string;
  readonly notes: readonly string[];
  readonly establish: Timing;
  readonly oneDirection: Timing;
  readonly pingPong: Timing;
  /** Serialised bytes of Alice's session after one round trip. */
  readonly sessionBytes: number;
  /** The same after 20 more ping-pong messages (old receiving chains kept, etc.). */
  readonly sessionBytesAfterPingPong: number;
  readonly idle: IdleMemory;
}

export interface IdleMemory {
  readonly sessions: number;
  /** Growth of V8 heapUsed + external (ArrayBuffers, WASM memory) while they are held, bytes. */
  readonly jsBytes: number;
  /** Growth of the resident set, bytes: the only figure that sees native (Rust) allocations. */
  readonly rssBytes: number;
}

export interface Budget {
  /** Warm-up per case, seconds (JIT, WASM tier-up, caches). */
  readonly warmup: number;
  /** Number of timed samples per case; the median is reported. */
  readonly samples: number;
  /** Timed seconds per sample. */
  readonly sampleSeconds: number;
  /** Idle sessions held for the memory figure. */
  readonly idleSessions: number;
}

type Progress = (line: string) => void;

const now = (): number => performance.now() / 1000;

function gc(): void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g) {
    g();
    g();
  }
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const clamp = (x: number, lo: number, hi: number): number => Math.max(lo, Math.min(hi, Math.round(x)));

/**
 * Times `chunk(k)` (which runs k ops) until `seconds` of timed work have accumulated, with
 * untimed `between` work allowed before each chunk; returns ops/s. Chunk size adapts so one
 * chunk takes about `target` seconds.
 */
async function timeFor(
  seconds: number,
  run: (k: number) => Promise<number>,
  startK: number,
  maxK: number,
  target: number,
): Promise<{ ops: number; secs: number }> {
  let ops = 0;
  let secs = 0;
  let k = startK;
  while (secs < seconds) {
    const dt = await run(k);
    ops += k;
    secs += dt;
    k = clamp((k / Math.max(dt, 1e-6)) * target, 1, maxK);
  }
  return { ops, secs };
}

async function measureCase(
  label: string,
  budget: Budget,
  progress: Progress,
  newRunner: () => Promise<{ run: (k: number) => Promise<number>; done(): void }>,
  startK: number,
  maxK: number,
): Promise<Timing> {
  // Warm-up: same code path, results thrown away.
  {
    const r = await newRunner();
    await timeFor(budget.warmup, r.run, startK, maxK, 0.05);
    r.done();
  }
  const samples: number[] = [];
  let total = 0;
  for (let s = 0; s < budget.samples; s++) {
    const r = await newRunner();
    gc();
    const { ops, secs } = await timeFor(budget.sampleSeconds, r.run, startK, maxK, 0.05);
    r.done();
    samples.push(ops / secs);
    total += ops;
    progress(`  ${label} sample ${s + 1}/${budget.samples}: ${Math.round(ops / secs).toLocaleString('en-US')} ops/s`);
  }
  return { opsPerSec: median(samples), samples, ops: total };
}

export async function measure(peer: Peer, budget: Budget, progress: Progress): Promise<ImplResult> {
  const t0 = now();
  await peer.setup();

  // Establishment: each chunk prepares its bundles untimed, then times only the protocol work.
  const establish = await measureCase(
    'establish',
    budget,
    progress,
    async () => ({
      async run(k) {
        const go = await peer.prepareEstablish(k);
        const t = now();
        await go();
        return now() - t;
      },
      done() {},
    }),
    10,
    200,
  );

  // Messages: a fresh pair per sample (untimed), then chunks of k messages.
  const messages = (kind: 'oneDirection' | 'pingPong') => async () => {
    const pair = await peer.makePair();
    return {
      async run(k: number) {
        const t = now();
        await pair[kind](k);
        return now() - t;
      },
      done() {
        pair.free();
      },
    };
  };
  const oneDirection = await measureCase('one-direction', budget, progress, messages('oneDirection'), 50, 5000);
  const pingPong = await measureCase('ping-pong', budget, progress, messages('pingPong'), 50, 5000);

  // Sizes: after one round trip, and after 20 more alternating messages.
  const pair = await peer.makePair();
  const sessionBytes = pair.sessionSize();
  await pair.pingPong(20);
  const sessionBytesAfterPingPong = pair.sessionSize();
  pair.free();

  // Idle memory: n copies of a round-trip session, rebuilt from its serialised form.
  const idlePair = await peer.makePair();
  gc();
  const before = process.memoryUsage();
  const held = await idlePair.loadIdle(budget.idleSessions);
  gc();
  const after = process.memoryUsage();
  held.release();
  idlePair.free();
  const idle: IdleMemory = {
    sessions: budget.idleSessions,
    jsBytes: after.heapUsed + after.external - (before.heapUsed + before.external),
    rssBytes: after.rss - before.rss,
  };
  progress(
    `  sizes: ${sessionBytes} B / ${sessionBytesAfterPingPong} B; idle ×${budget.idleSessions}: ` +
      `js ${(idle.jsBytes / 2 ** 20).toFixed(1)} MB, rss ${(idle.rssBytes / 2 ** 20).toFixed(1)} MB ` +
      `(${(now() - t0).toFixed(1)} s)`,
  );

  return {
    name: peer.name,
    notes: peer.notes,
    establish,
    oneDirection,
    pingPong,
    sessionBytes,
    sessionBytesAfterPingPong,
    idle,
  };
}
