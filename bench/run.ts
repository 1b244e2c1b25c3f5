/**
 * `npm run bench:protocol` — our protocol beside libsignal-client (native) and olm (WASM
 * libolm), on one machine, in `--runs N` (default 3) complete runs.
 *
 *   node --import tsx bench/run.ts [--quick] [--runs N] [--json out.json] [--only parley-node,olm,...]
 *
 * Each run starts every implementation afresh and measures every case; the report gives each
 * figure as the spread of the per-run medians (min / median / max), each target ratio per run,
 * and PASS only when the worst run meets the target (figures that hold up when rerun, issue 15).
 *
 * Each implementation lives in its own child process (`protocol/worker.ts`), so none inherits
 * another's JIT state, garbage or WASM memory, a process never switches crypto backend, and the
 * idle-memory figure is taken in its own heap with `--expose-gc`. Only one process works at a
 * time (never in parallel: the machine has few cores); the runner asks them for short samples
 * round-robin, rotating the order each round, so a burst of load from elsewhere on the machine
 * lands on every implementation alike instead of on whichever happened to run then.
 * Progress goes to stderr; the report (markdown) goes to stdout.
 */
import { parseBenchArgs, scriptArgs } from './lib/args.js';
import { DEFAULT_RUNS, fmtNum, fmtRatio, fmtSpread, median, parseRuns, spreadOf, table, type Spread } from './lib/spread.js';
import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CASE_KEYS, IMPLEMENTATIONS, type CaseKey, type Footprint, type ImplId, type Sample } from './protocol/measure.js';
import type { Reply, Request } from './protocol/worker.js';

const here = dirname(fileURLToPath(import.meta.url));

interface Budget {
  /** Warm-up per case and implementation, seconds (JIT, WASM tier-up, caches). */
  readonly warmup: number;
  /** Timed samples per case and implementation; the median is reported. */
  readonly samples: number;
  /** Timed seconds per sample. */
  readonly sampleSeconds: number;
  /** Idle sessions held for the memory figure. */
  readonly idleSessions: number;
}

const BUDGETS = {
  full: { warmup: 1, samples: 9, sampleSeconds: 0.25, idleSessions: 10_000 },
  quick: { warmup: 0.2, samples: 3, sampleSeconds: 0.2, idleSessions: 10_000 },
} as const satisfies Record<string, Budget>;

/** A worker that does not answer within this long is killed and reported as failed. */
const REQUEST_TIMEOUT_MS = 60_000;

/** The issue's targets for the default backend. */
const TARGETS: Record<CaseKey, { label: string; factor: number; against: 'faster' | 'libsignal' | 'olm' }> = {
  establish: { label: '≥ 1.3× faster peer', factor: 1.3, against: 'faster' },
  oneDirection: { label: '≥ 1.25× olm', factor: 1.25, against: 'olm' },
  pingPong: { label: '≥ 1.2× libsignal', factor: 1.2, against: 'libsignal' },
};

const CASES: Record<CaseKey, string> = {
  establish: 'session establishment',
  oneDirection: 'encrypt+decrypt, one direction (100 B)',
  pingPong: 'encrypt+decrypt, ping-pong (DH step each)',
};

interface Timing {
  /** Median of the samples' ops per CPU-second: the reported figure. */
  readonly opsPerSec: number;
  /** Median of the samples' ops per wall-clock second (lower when the machine is busy). */
  readonly wallOpsPerSec: number;
  readonly samples: readonly Sample[];
}

interface Outcome {
  readonly id: ImplId;
  name: string;
  notes: readonly string[];
  readonly timings: Partial<Record<CaseKey, Timing>>;
  footprint?: Footprint;
  error?: string;
}

const USAGE = 'bench/run.ts [--quick] [--runs N] [--json out.json] [--only ids]';

function parseArgs(argv: string[]): { quick: boolean; runs: number; json?: string; only: ImplId[] } {
  const { quick, json, only, extra } = parseBenchArgs(argv, IMPLEMENTATIONS, USAGE, ['runs']);
  const runs = parseRuns(extra.runs, USAGE);
  return json === undefined ? { quick, runs, only } : { quick, runs, json, only };
}

/** One child process per implementation, answering one request at a time. */
class Worker {
  readonly #child: ChildProcess;
  #pending: ((r: Reply) => void) | undefined;
  #exited = false;

  constructor(readonly id: ImplId) {
    this.#child = fork(join(here, 'protocol', 'worker.ts'), [id], {
      execArgv: ['--expose-gc', '--import', 'tsx'],
      // The child's stdout goes to our stderr: stdout carries only the report.
      stdio: ['ignore', 2, 'inherit', 'ipc'],
    });
    this.#child.on('message', (r: Reply) => this.#settle(r));
    this.#child.on('exit', (code) => {
      this.#exited = true;
      this.#settle({ ok: false, error: `worker exited (code ${code})` });
    });
  }

  #settle(r: Reply): void {
    const p = this.#pending;
    this.#pending = undefined;
    p?.(r);
  }

  /** The first message: the adapter's name and notes, or why it could not load. */
  ready(): Promise<Reply> {
    return this.#next();
  }

  request(req: Request): Promise<Reply> {
    if (this.#exited) return Promise.resolve({ ok: false, error: 'worker has exited' });
    const p = this.#next();
    this.#child.send(req);
    return p;
  }

  #next(): Promise<Reply> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#child.kill();
        resolve({ ok: false, error: `no answer within ${REQUEST_TIMEOUT_MS / 1000} s` });
      }, REQUEST_TIMEOUT_MS);
      this.#pending = (r) => {
        clearTimeout(timer);
        resolve(r);
      };
    });
  }

  close(): void {
    if (!this.#exited) this.#child.send({ op: 'exit' } satisfies Request);
  }
}

// ---- aggregation over runs ----------------------------------------------------------------

/** Ops per CPU-second of the measuring process (see `Sample`). */
const rate = (s: Sample): number => s.ops / s.cpuSecs;
const wallRate = (s: Sample): number => s.ops / s.wallSecs;

/** One complete run: every implementation in fresh processes, every case, its own medians. */
interface RunResult {
  readonly outcomes: Outcome[];
  readonly loadBefore: number;
  readonly loadAfter: number;
  readonly seconds: number;
}

/** An implementation's figures over all runs. */
interface Combined {
  readonly id: ImplId;
  readonly name: string;
  readonly notes: readonly string[];
  /** Per case: the spread of the per-run medians (ops per CPU-second). */
  readonly speed: Partial<Record<CaseKey, Spread>>;
  /** Per case: the best single sample of all runs. */
  readonly best: Partial<Record<CaseKey, number>>;
  readonly footprint: Footprint | undefined;
  readonly errors: readonly string[];
}

/** The target case's ratio in each run (ours ÷ peer of the same run); NaN where a side failed. */
function runRatios(runs: readonly RunResult[], ours: ImplId, key: CaseKey): number[] {
  const t = TARGETS[key];
  return runs.map((run) => {
    const ops = (id: ImplId): number => run.outcomes.find((o) => o.id === id)?.timings[key]?.opsPerSec ?? NaN;
    const peer = t.against === 'faster' ? Math.max(ops('libsignal'), ops('olm')) : ops(t.against);
    return ops(ours) / peer;
  });
}

/** Same-run ratio of two implementations in one case, per run. */
function pairRatios(runs: readonly RunResult[], a: ImplId, b: ImplId, key: CaseKey): number[] {
  return runs.map((run) => {
    const ops = (id: ImplId): number => run.outcomes.find((o) => o.id === id)?.timings[key]?.opsPerSec ?? NaN;
    return ops(a) / ops(b);
  });
}

function combine(runs: readonly RunResult[], ids: readonly ImplId[]): Combined[] {
  return ids.map((id) => {
    const mine = runs.map((r) => r.outcomes.find((o) => o.id === id));
    const named = mine.find((o) => o && o.name !== id) ?? mine[0];
    const speed: Partial<Record<CaseKey, Spread>> = {};
    const best: Partial<Record<CaseKey, number>> = {};
    for (const key of CASE_KEYS) {
      const s = spreadOf(mine.map((o) => o?.timings[key]?.opsPerSec ?? NaN));
      if (s) speed[key] = s;
      const samples = mine.flatMap((o) => o?.timings[key]?.samples ?? []);
      if (samples.length) best[key] = Math.max(...samples.map(rate));
    }
    const footprint = mine.map((o) => o?.footprint).find((f) => f !== undefined);
    const errors = mine.flatMap((o, i) => (o?.error ? [`run ${i + 1}: ${o.error}`] : []));
    return { id, name: named?.name ?? id, notes: named?.notes ?? [], speed, best, footprint, errors };
  });
}

// ---- formatting ---------------------------------------------------------------------------

const mb = (bytes: number): string => (bytes / 2 ** 20).toFixed(1);
const list = (xs: readonly number[]): string => xs.map((x) => fmtRatio(x)).join(', ');

/** PASS only when every run's ratio meets the target (the worst of them decides). */
function verdict(ratios: readonly number[], factor: number): string {
  if (ratios.length === 0 || ratios.every((r) => !Number.isFinite(r))) return 'n/a (not measured)';
  if (ratios.some((r) => !Number.isFinite(r))) return 'n/a (a run failed)';
  const worst = Math.min(...ratios);
  const word = worst >= factor ? 'PASS' : 'MISS';
  return ratios.length < DEFAULT_RUNS ? `${word} (worst ${fmtRatio(worst)}; only ${ratios.length} run${ratios.length > 1 ? 's' : ''})` : `${word} (worst ${fmtRatio(worst)})`;
}

function report(runs: readonly RunResult[], combined: readonly Combined[], budget: Budget, meta: Record<string, string>): string {
  const by = (id: ImplId): Combined | undefined => combined.find((c) => c.id === id && Object.keys(c.speed).length > 0);
  const present = combined.filter((c) => Object.keys(c.speed).length || c.footprint);
  const ours = by('parley-node');
  const n = runs.length;

  const targets: string[][] = [
    [
      'case (ops per CPU-second)',
      'target',
      `${ours?.name ?? 'parley (node, default)'}: median of ${n} run medians (min–max)`,
      'peer: median (min–max)',
      'ratio per run',
      'ratio min / median / max',
      'result',
    ],
  ];
  for (const key of CASE_KEYS) {
    const t = TARGETS[key];
    const ratios = runRatios(runs, 'parley-node', key);
    const finite = ratios.filter(Number.isFinite);
    const peers: ImplId[] = t.against === 'faster' ? ['libsignal', 'olm'] : [t.against];
    const peerCell = peers
      .map((id) => by(id))
      .filter((c): c is Combined => c !== undefined)
      .map((c) => `${c.name.replace(/ \(.*$/, '')} ${fmtSpread(c.speed[key])}`)
      .join('; ');
    const r = spreadOf(ratios);
    targets.push([
      CASES[key],
      t.label,
      fmtSpread(ours?.speed[key]),
      peerCell || '—',
      finite.length ? list(ratios) : '—',
      r ? `${fmtRatio(r.min)} / ${fmtRatio(r.median)} / ${fmtRatio(r.max)}` : '—',
      verdict(ratios, t.factor),
    ]);
  }

  const ratioCell = (a: ImplId, b: ImplId, key: CaseKey): string => {
    const s = spreadOf(pairRatios(runs, a, b, key));
    return s ? fmtSpread(s, fmtRatio) : '—';
  };
  const speed: string[][] = [
    [
      `ops per CPU-second: median of ${n} run medians (min–max)`,
      ...present.map((c) => c.name),
      'default ÷ libsignal',
      'default ÷ olm',
      'pure-JS ÷ libsignal',
      'pure-JS ÷ olm',
    ],
  ];
  for (const key of CASE_KEYS) {
    speed.push([
      CASES[key],
      ...present.map((c) => `${fmtSpread(c.speed[key])}${c.best[key] ? `, best ${fmtNum(c.best[key])}` : ''}`),
      ratioCell('parley-node', 'libsignal', key),
      ratioCell('parley-node', 'olm', key),
      ratioCell('parley-noble', 'libsignal', key),
      ratioCell('parley-noble', 'olm', key),
    ]);
  }

  const idle = budget.idleSessions.toLocaleString('en-US');
  const size: string[][] = [
    [
      'implementation',
      'session after 1 round trip (B)',
      'after +20 ping-pong (B)',
      `JS heap + external, ${idle} idle sessions (MB)`,
      `RSS, ${idle} idle sessions (MB)`,
    ],
  ];
  for (const c of present) {
    const f = c.footprint;
    size.push(
      f ? [c.name, String(f.sessionBytes), String(f.sessionBytesAfterPingPong), mb(f.idleJsBytes), mb(f.idleRssBytes)] : [c.name, '—', '—', '—', '—'],
    );
  }

  const notes = present.flatMap((c) => c.notes.map((line) => `- **${c.name}**: ${line}`));
  const failed = combined.flatMap((c) => c.errors.map((e) => `- **${c.id}** ${e}`));

  return [
    '## Protocol benchmark',
    '',
    Object.entries(meta)
      .map(([k, v]) => `${k}: ${v}`)
      .join('  \n'),
    '',
    `### Targets (default backend; PASS only when the worst of the ${n} runs meets the target)`,
    '',
    table(targets),
    '',
    '### All implementations',
    '',
    table(speed),
    '',
    table(size),
    '',
    ...(notes.length ? ['Notes:', ...notes, ''] : []),
    ...(failed.length ? ['Failed / not measured:', ...failed, ''] : []),
  ].join('\n');
}

function version(pkg: string): string {
  try {
    const p = JSON.parse(readFileSync(join(here, 'node_modules', pkg, 'package.json'), 'utf8')) as { version: string };
    return p.version;
  } catch {
    return '?';
  }
}

const log = (line: string): void => void process.stderr.write(`[bench] ${line}\n`);

/**
 * One complete run: starts every implementation in a fresh process, warms each case up and
 * takes its samples round-robin, and (when asked) the footprint; closes the processes.
 */
async function oneRun(label: string, ids: readonly ImplId[], budget: Budget, withFootprint: boolean): Promise<RunResult> {
  const t0 = performance.now();
  const loadBefore = loadavg()[0]!;
  // Start the workers one at a time (start-up compiles TypeScript; don't compete with it).
  const outcomes: Outcome[] = [];
  const live: { worker: Worker; outcome: Outcome }[] = [];
  for (const id of ids) {
    const worker = new Worker(id);
    const outcome: Outcome = { id, name: id, notes: [], timings: {} };
    outcomes.push(outcome);
    const r = await worker.ready();
    if (r.ok) {
      const v = r.value as { name: string; notes: string[] };
      outcome.name = v.name;
      outcome.notes = v.notes;
      live.push({ worker, outcome });
    } else {
      outcome.error = `could not start: ${r.error}`;
      worker.close();
      log(`${label}: ${id} could not start: ${r.error}`);
    }
  }

  const fail = (entry: { worker: Worker; outcome: Outcome }, what: string, error: string): void => {
    entry.outcome.error = `${what}: ${error}`;
    entry.worker.close();
    live.splice(live.indexOf(entry), 1);
    log(`${label}: ${entry.outcome.name} failed in ${what}: ${error}`);
  };

  for (const key of CASE_KEYS) {
    for (const entry of [...live]) {
      const r = await entry.worker.request({ op: 'sample', kind: key, seconds: budget.warmup });
      if (!r.ok) fail(entry, CASES[key], r.error);
    }
    const samples = new Map<ImplId, Sample[]>(live.map((e) => [e.outcome.id, []]));
    for (let round = 0; round < budget.samples; round++) {
      // Rotate the order every round, so slow drift in machine load hits everyone alike.
      const order = live.map((_, i) => live[(i + round) % live.length]!);
      for (const entry of order) {
        const r = await entry.worker.request({ op: 'sample', kind: key, seconds: budget.sampleSeconds });
        if (!r.ok) {
          fail(entry, CASES[key], r.error);
          continue;
        }
        samples.get(entry.outcome.id)!.push(r.value as Sample);
      }
    }
    const line: string[] = [];
    for (const entry of live) {
      const s = samples.get(entry.outcome.id)!;
      if (!s.length) continue;
      const t: Timing = { opsPerSec: median(s.map(rate)), wallOpsPerSec: median(s.map(wallRate)), samples: s };
      entry.outcome.timings[key] = t;
      line.push(`${entry.outcome.name} ${fmtNum(t.opsPerSec)}${t.wallOpsPerSec < t.opsPerSec / 1.2 ? ` (wall ${fmtNum(t.wallOpsPerSec)})` : ''}`);
    }
    log(`${label}: ${CASES[key]}: ${line.join(' · ')}`);
  }

  if (withFootprint) {
    for (const entry of [...live]) {
      const r = await entry.worker.request({ op: 'footprint', idleSessions: budget.idleSessions });
      if (r.ok) entry.outcome.footprint = r.value as Footprint;
      else fail(entry, 'footprint', r.error);
    }
  }
  for (const entry of live) entry.worker.close();
  return { outcomes, loadBefore, loadAfter: loadavg()[0]!, seconds: (performance.now() - t0) / 1000 };
}

async function main(): Promise<void> {
  const args = parseArgs(scriptArgs());
  const budget: Budget = args.quick ? BUDGETS.quick : BUDGETS.full;
  const t0 = performance.now();
  log(
    `${args.quick ? 'quick' : 'full'}: ${args.runs} complete run${args.runs > 1 ? 's' : ''} of ${args.only.length} implementations; ` +
      `per run and case each gets ${budget.warmup} s warm-up, then ${budget.samples} rounds × ${budget.sampleSeconds} s, round-robin`,
  );

  const runs: RunResult[] = [];
  for (let i = 0; i < args.runs; i++) {
    const label = `run ${i + 1}/${args.runs}`;
    // The footprint is deterministic enough to take once, in the last run.
    const run = await oneRun(label, args.only, budget, i === args.runs - 1);
    runs.push(run);
    log(`${label} done in ${run.seconds.toFixed(0)} s (load avg ${run.loadBefore.toFixed(2)} → ${run.loadAfter.toFixed(2)})`);
  }
  const combined = combine(runs, args.only);

  const secs = ((performance.now() - t0) / 1000).toFixed(0);
  const loads = runs.flatMap((r) => [r.loadBefore, r.loadAfter]);
  const busy = Math.max(...loads) > cpus().length;
  const meta: Record<string, string> = {
    machine: `${cpus()[0]?.model ?? '?'} × ${cpus().length}, Node ${process.version}, 1-min load avg per run ${runs.map((r) => `${r.loadBefore.toFixed(2)} → ${r.loadAfter.toFixed(2)}`).join(', ')}`,
    peers: `@signalapp/libsignal-client ${version('@signalapp/libsignal-client')}, @matrix-org/olm ${version('@matrix-org/olm')}`,
    run: `${args.quick ? '--quick' : 'full'}, ${runs.length} complete run${runs.length > 1 ? 's' : ''} (fresh processes each): per run, case and implementation ${budget.warmup} s warm-up + ${budget.samples} round-robin samples × ${budget.sampleSeconds} s, the run's figure is the median sample; ${secs} s total; ${new Date().toISOString().slice(0, 16)}Z`,
  };
  if (busy) {
    meta.warning = `the machine was busy (load above ${cpus().length}): rates are per CPU-second and hold up better than wall-clock ones, but cache and frequency effects remain; rerun when it is quiet`;
  }
  process.stdout.write(report(runs, combined, budget, meta) + '\n');
  if (args.json) {
    writeFileSync(args.json, JSON.stringify({ meta, budget, targets: TARGETS, runs, combined }, null, 2) + '\n');
    log(`wrote ${args.json}`);
  }
  if (combined.every((c) => Object.keys(c.speed).length === 0)) process.exitCode = 1;
}

main().catch((e: unknown) => {
  log(e instanceof Error ? e.message : String(e));
  process.exitCode = 2;
});
