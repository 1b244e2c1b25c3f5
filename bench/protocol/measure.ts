/**
 * Timing and memory primitives for ONE implementation, driven by the runner through
 * `worker.ts` (one child process per implementation; see `bench/README.md` for why).
 */
import type { Peer } from './adapter.js';

/** Everything the bench measures, in report order; each runs in its own child process. */
export const IMPLEMENTATIONS = ['parley-node', 'parley-sodium', 'parley-noble', 'libsignal', 'olm'] as const;
export type ImplId = (typeof IMPLEMENTATIONS)[number];

export const CASE_KEYS = ['establish', 'oneDirection', 'pingPong'] as const;
export type CaseKey = (typeof CASE_KEYS)[number];

/**
 * One timed sample: `ops` operations in `cpuSecs` seconds of this process's CPU time (user +
 * system, all its threads, so V8's helper GC threads count too) and `wallSecs` of wall clock.
 * The report uses CPU time: the machine is shared, and a process waiting for a core accrues
 * wall time but no CPU time. On an idle machine the two agree (the protocol work is
 * single-threaded in every implementation measured).
 */
export interface Sample {
  readonly ops: number;
  readonly cpuSecs: number;
  readonly wallSecs: number;
}

export interface Footprint {
  /** Serialised bytes of Alice's session after one round trip. */
  readonly sessionBytes: number;
  /** The same after 20 more ping-pong messages (old receiving chains kept, etc.). */
  readonly sessionBytesAfterPingPong: number;
  /** Idle sessions held for the memory figures. */
  readonly idleSessions: number;
  /** Growth of V8 heapUsed + external (ArrayBuffers, WASM memory) while they are held, bytes. */
  readonly idleJsBytes: number;
  /** Growth of the resident set, bytes: the only figure that sees native (Rust) allocations. */
  readonly idleRssBytes: number;
}

const now = (): number => performance.now() / 1000;
const cpu = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

/** A sample also ends after this many times its budget in wall-clock time, so a starved
 * process cannot stretch the run. */
const WALL_LIMIT = 3;

/** Full collection (needs `--expose-gc`; a no-op without it). */
export function gc(): void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g) {
    g();
    g();
  }
}

const clamp = (x: number, lo: number, hi: number): number => Math.max(lo, Math.min(hi, Math.round(x)));

/** Chunk sizes adapt so one timed chunk takes about this long: long enough that the clock
 * and loop overhead vanish, short enough that a sample ends close to its budget. */
const CHUNK_SECONDS = 0.05;

export class Measurer {
  /** Last chunk size per case, so later samples start at the right size. */
  readonly #chunk: Record<CaseKey, number> = { establish: 10, oneDirection: 50, pingPong: 50 };
  readonly #maxChunk: Record<CaseKey, number> = { establish: 200, oneDirection: 5000, pingPong: 5000 };

  constructor(readonly peer: Peer) {}

  /**
   * Runs `kind` until `seconds` of timed CPU time have accumulated. Establishment prepares
   * each chunk's bundles untimed, then times only the protocol work; message cases use a fresh
   * pair per sample (made untimed) and time chunks of messages on it.
   */
  async sample(kind: CaseKey, seconds: number): Promise<Sample> {
    gc();
    let run: (k: number) => Promise<void>;
    let prepare = async (_k: number): Promise<void> => {};
    let done = (): void => {};
    if (kind === 'establish') {
      let go: () => Promise<void> = async () => {};
      prepare = async (k) => {
        go = await this.peer.prepareEstablish(k);
      };
      run = () => go();
    } else {
      const pair = await this.peer.makePair();
      run = (k) => pair[kind](k);
      done = () => pair.free();
    }
    let ops = 0;
    let cpuSecs = 0;
    let wallSecs = 0;
    let k = this.#chunk[kind];
    while (cpuSecs < seconds && wallSecs < seconds * WALL_LIMIT) {
      await prepare(k);
      const w = now();
      const c = cpu();
      await run(k);
      const dc = cpu() - c;
      const dw = now() - w;
      ops += k;
      cpuSecs += dc;
      wallSecs += dw;
      k = clamp((k / Math.max(dc, dw * 0.25, 1e-4)) * CHUNK_SECONDS, 1, this.#maxChunk[kind]);
    }
    this.#chunk[kind] = k;
    done();
    return { ops, cpuSecs, wallSecs };
  }

  /** Session sizes, and memory held by `idleSessions` copies of a round-trip session. */
  async footprint(idleSessions: number): Promise<Footprint> {
    const pair = await this.peer.makePair();
    const sessionBytes = pair.sessionSize();
    await pair.pingPong(20);
    const sessionBytesAfterPingPong = pair.sessionSize();
    pair.free();

    const idlePair = await this.peer.makePair();
    gc();
    const before = process.memoryUsage();
    const held = await idlePair.loadIdle(idleSessions);
    gc();
    const after = process.memoryUsage();
    held.release();
    idlePair.free();
    return {
      sessionBytes,
      sessionBytesAfterPingPong,
      idleSessions,
      idleJsBytes: after.heapUsed + after.external - (before.heapUsed + before.external),
      idleRssBytes: after.rss - before.rss,
    };
  }
}
