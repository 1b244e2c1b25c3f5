/**
 * Case 2, end-to-end latency: real `ParleyClient` pairs over the relay, driven open-loop at a
 * fixed total rate (see `load-worker.ts`).
 *
 * Latency of one message = from the sender's `send()` call (encrypt, outbox write, relay send,
 * durable commit at the relay, push) to the receiver's `message` event (decrypt, session and
 * inbox write). The receiver then acks the relay (batched) and sends its encrypted receipt, as
 * a client does by default: that traffic loads the relay but is not part of the latency.
 *
 * The pairs are spread over {@link LOAD_PROCESSES} load processes, a pair's two clients in the
 * same one (one clock for both ends). Twenty clients in one process would need most of a core
 * at 1,000 msgs/s and turn the bench's own queue into the latency it reports; real devices each
 * have their own CPU.
 */
import type { ServerProcess } from './common.js';
import { Child, log, quantile, sleep } from './common.js';
import type { LatencyRun, LoadRequest } from './load-worker.js';

/** Load processes for the latency pairs: one per core of the bench machine. */
export const LOAD_PROCESSES = 2;

export interface LatencyResult {
  /** Messages sent in the measured window and how many of them arrived. */
  readonly sent: number;
  readonly received: number;
  readonly seconds: number;
  /** Sends per second actually issued (the pacers can fall behind on a busy machine). */
  readonly achievedRate: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
  /** CPU seconds of all load processes together, and of the relay, during the window. */
  readonly clientCpuSecs: number;
  readonly serverCpuSecs: number;
  readonly errors: Record<string, number>;
}

export async function measureLatency(
  server: ServerProcess,
  o: { pairs: number; rate: number; warmupSeconds: number; seconds: number },
): Promise<LatencyResult> {
  const workers: Child<LoadRequest>[] = [];
  try {
    const n = Math.min(LOAD_PROCESSES, o.pairs);
    for (let i = 0; i < n; i++) workers.push(new Child<LoadRequest>('load-worker.ts', `latency load process ${i + 1}`));
    // Pairs split as evenly as they go; each process paces its share of the rate.
    const share = workers.map((_, i) => Math.floor(o.pairs / n) + (i < o.pairs % n ? 1 : 0));
    await Promise.all(workers.map((w, i) => w.request({ op: 'latencySetup', url: server.url, pairs: share[i]! })));
    const run = async (seconds: number) => {
      const server0 = await server.cpuSeconds();
      const done = Promise.all(workers.map((w, i) => w.request({ op: 'latencyRun', rate: (o.rate * share[i]!) / o.pairs, seconds })));
      done.catch(() => undefined); // awaited below; not an unhandled rejection meanwhile
      // The relay's CPU over the sending window only (the workers then drain what is in flight).
      await sleep(seconds * 1000);
      const serverCpuSecs = (await server.cpuSeconds()) - server0;
      return { runs: (await done) as LatencyRun[], serverCpuSecs };
    };
    if (o.warmupSeconds > 0) {
      const w = await run(o.warmupSeconds);
      log(`latency: warm-up done (${w.runs.reduce((a, r) => a + r.latencies.length, 0)} messages)`);
    }
    const { runs, serverCpuSecs } = await run(o.seconds);
    const sorted = runs.flatMap((r) => r.latencies).sort((a, b) => a - b);
    const sent = runs.reduce((a, r) => a + r.sent, 0);
    // The processes run side by side: the window is the longest of theirs.
    const seconds = Math.max(...runs.map((r) => r.seconds));
    const errors: Record<string, number> = {};
    for (const r of runs) for (const [k, v] of Object.entries(r.errors)) errors[k] = (errors[k] ?? 0) + v;
    return {
      sent,
      received: sorted.length,
      seconds,
      achievedRate: sent / seconds,
      p50: quantile(sorted, 0.5),
      p90: quantile(sorted, 0.9),
      p99: quantile(sorted, 0.99),
      max: sorted.at(-1) ?? NaN,
      clientCpuSecs: runs.reduce((a, r) => a + r.cpuSecs, 0),
      serverCpuSecs,
      errors,
    };
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
  }
}
