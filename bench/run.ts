/**
 * `npm run bench` — our protocol beside libsignal-client (native) and olm (WASM libolm), in one
 * run on one machine.
 *
 *   node --import tsx bench/run.ts [--quick] [--json out.json] [--only parley-node,olm,...]
 *
 * Each implementation lives in its own child process (`protocol/worker.ts`), so none inherits
 * another's JIT state, garbage or WASM memory, a process never switches crypto backend, and the
 * idle-memory figure is taken in its own heap with `--expose-gc`. Only one process works at a
 * time (never in parallel: the machine has few cores); the runner asks them for short samples
 * round-robin, rotating the order each round, so a burst of load from elsewhere on the machine
 * lands on every implementation alike instead of on whichever happened to run then.
 * Progress goes to stderr; the report (markdown) goes to stdout.
 */
import { parseBenchArgs } from './lib/args.js';
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

function parseArgs(argv: string[]): { quick: boolean; json?: string; only: ImplId[] } {
  const { quick, json, only } = parseBenchArgs(argv, IMPLEMENTATIONS, 'bench/run.ts [--quick] [--json out.json] [--only ids]');
  return json === undefined ? { quick, only } : { quick, json, only };
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

// ---- formatting ---------------------------------------------------------------------------

/** Ops per CPU-second of the measuring process (see `Sample`). */
const rate = (s: Sample): number => s.ops / s.cpuSecs;
const wallRate = (s: Sample): number => s.ops / s.wallSecs;

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const fmtNum = (x: number): string => x.toLocaleString('en-US', { maximumSignificantDigits: 3 });

/** Median, and the best sample: load from other processes only ever slows a sample down, so
 * the best one is the closest to the uncontended speed; a wide gap means a noisy machine. */
const fmtOps = (t: Timing | undefined): string =>
  t ? `${fmtNum(t.opsPerSec)} (best ${fmtNum(Math.max(...t.samples.map(rate)))})` : '—';
const fmtRatio = (a: number | undefined, b: number | undefined): string => (a && b ? `${(a / b).toFixed(2)}×` : '—');
const mb = (bytes: number): string => (bytes / 2 ** 20).toFixed(1);

function table(rows: string[][]): string {
  const [head, ...body] = rows;
  return [`| ${head!.join(' | ')} |`, `|${head!.map(() => '---').join('|')}|`, ...body.map((r) => `| ${r.join(' | ')} |`)].join(
    '\n',
  );
}

function report(outcomes: Outcome[], budget: Budget, meta: Record<string, string>): string {
  const ops = (id: ImplId, key: CaseKey): number | undefined => outcomes.find((o) => o.id === id)?.timings[key]?.opsPerSec;
  const present = outcomes.filter((o) => Object.keys(o.timings).length || o.footprint);

  const speed: string[][] = [
    [
      'ops per CPU-second: median (best sample)',
      ...present.map((o) => o.name),
      'default ÷ libsignal',
      'default ÷ olm',
      'pure-JS ÷ libsignal',
      'pure-JS ÷ olm',
      'target (default)',
      'result',
    ],
  ];
  for (const key of CASE_KEYS) {
    const t = TARGETS[key];
    const ours = ops('parley-node', key);
    const pure = ops('parley-noble', key);
    const sig = ops('libsignal', key);
    const olm = ops('olm', key);
    const peer = t.against === 'faster' ? (sig && olm ? Math.max(sig, olm) : undefined) : t.against === 'olm' ? olm : sig;
    const ratio = ours && peer ? ours / peer : undefined;
    speed.push([
      CASES[key],
      ...present.map((o) => fmtOps(o.timings[key])),
      fmtRatio(ours, sig),
      fmtRatio(ours, olm),
      fmtRatio(pure, sig),
      fmtRatio(pure, olm),
      t.label,
      ratio === undefined ? 'n/a' : `${ratio >= t.factor ? 'PASS' : 'MISS'} (${ratio.toFixed(2)}×)`,
    ]);
  }

  const n = budget.idleSessions.toLocaleString('en-US');
  const size: string[][] = [
    [
      'implementation',
      'session after 1 round trip (B)',
      'after +20 ping-pong (B)',
      `JS heap + external, ${n} idle sessions (MB)`,
      `RSS, ${n} idle sessions (MB)`,
    ],
  ];
  for (const o of present) {
    const f = o.footprint;
    size.push(
      f
        ? [o.name, String(f.sessionBytes), String(f.sessionBytesAfterPingPong), mb(f.idleJsBytes), mb(f.idleRssBytes)]
        : [o.name, '—', '—', '—', '—'],
    );
  }

  const notes = present.flatMap((o) => o.notes.map((line) => `- **${o.name}**: ${line}`));
  const failed = outcomes.filter((o) => o.error).map((o) => `- **${o.id}**: ${o.error}`);

  return [
    '## Protocol benchmark',
    '',
    Object.entries(meta)
      .map(([k, v]) => `${k}: ${v}`)
      .join('  \n'),
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

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const budget: Budget = args.quick ? BUDGETS.quick : BUDGETS.full;
  const t0 = performance.now();
  const load0 = loadavg()[0]!.toFixed(2);
  log(
    `${args.quick ? 'quick' : 'full'} run: ${args.only.length} implementations; per case each gets ` +
      `${budget.warmup} s warm-up, then ${budget.samples} rounds × ${budget.sampleSeconds} s, round-robin`,
  );

  // Start the workers one at a time (start-up compiles TypeScript; don't compete with it).
  const outcomes: Outcome[] = [];
  const live: { worker: Worker; outcome: Outcome }[] = [];
  for (const id of args.only) {
    const worker = new Worker(id);
    const outcome: Outcome = { id, name: id, notes: [], timings: {} };
    outcomes.push(outcome);
    const r = await worker.ready();
    if (r.ok) {
      const v = r.value as { name: string; notes: string[] };
      outcome.name = v.name;
      outcome.notes = v.notes;
      live.push({ worker, outcome });
      log(`started ${v.name}`);
    } else {
      outcome.error = `could not start: ${r.error}`;
      worker.close();
      log(`${id} could not start: ${r.error}`);
    }
  }

  const fail = (entry: { worker: Worker; outcome: Outcome }, what: string, error: string): void => {
    entry.outcome.error = `${what}: ${error}`;
    entry.worker.close();
    live.splice(live.indexOf(entry), 1);
    log(`${entry.outcome.name} failed in ${what}: ${error}`);
  };

  for (const key of CASE_KEYS) {
    log(`${CASES[key]}: warm-up`);
    for (const entry of [...live]) {
      const r = await entry.worker.request({ op: 'sample', kind: key, seconds: budget.warmup });
      if (!r.ok) fail(entry, CASES[key], r.error);
    }
    const samples = new Map<ImplId, Sample[]>(live.map((e) => [e.outcome.id, []]));
    for (let round = 0; round < budget.samples; round++) {
      // Rotate the order every round, so slow drift in machine load hits everyone alike.
      const order = live.map((_, i) => live[(i + round) % live.length]!);
      const line: string[] = [];
      for (const entry of order) {
        const r = await entry.worker.request({ op: 'sample', kind: key, seconds: budget.sampleSeconds });
        if (!r.ok) {
          fail(entry, CASES[key], r.error);
          continue;
        }
        samples.get(entry.outcome.id)!.push(r.value as Sample);
        const v = r.value as Sample;
        line.push(`${entry.outcome.name} ${fmtNum(rate(v))}${v.wallSecs > v.cpuSecs * 1.2 ? ` (wall ${fmtNum(wallRate(v))})` : ''}`);
      }
      log(`${CASES[key]} ${round + 1}/${budget.samples}: ${line.join(' · ')}`);
    }
    for (const entry of live) {
      const s = samples.get(entry.outcome.id)!;
      if (s.length) entry.outcome.timings[key] = { opsPerSec: median(s.map(rate)), wallOpsPerSec: median(s.map(wallRate)), samples: s };
    }
  }

  for (const entry of [...live]) {
    log(`${entry.outcome.name}: session size and ${budget.idleSessions.toLocaleString('en-US')} idle sessions`);
    const r = await entry.worker.request({ op: 'footprint', idleSessions: budget.idleSessions });
    if (r.ok) entry.outcome.footprint = r.value as Footprint;
    else fail(entry, 'footprint', r.error);
  }
  for (const entry of live) entry.worker.close();

  const secs = ((performance.now() - t0) / 1000).toFixed(0);
  const busy = Math.max(Number(load0), loadavg()[0]!) > cpus().length;
  const meta: Record<string, string> = {
    machine: `${cpus()[0]?.model ?? '?'} × ${cpus().length}, Node ${process.version}, load avg ${load0} → ${loadavg()[0]!.toFixed(2)}`,
    peers: `@signalapp/libsignal-client ${version('@signalapp/libsignal-client')}, @matrix-org/olm ${version('@matrix-org/olm')}`,
    run: `${args.quick ? '--quick' : 'full'}: ${budget.warmup} s warm-up + ${budget.samples} round-robin samples × ${budget.sampleSeconds} s per case and implementation; ${secs} s total; ${new Date().toISOString().slice(0, 16)}Z`,
  };
  if (busy) {
    meta.warning = `the machine was busy (load above ${cpus().length}): rates are per CPU-second and hold up, but cache and frequency effects remain; rerun when it is quiet`;
  }
  process.stdout.write(report(outcomes, budget, meta) + '\n');
  if (args.json) {
    writeFileSync(args.json, JSON.stringify({ meta, budget, targets: TARGETS, outcomes }, null, 2) + '\n');
    log(`wrote ${args.json}`);
  }
  if (outcomes.every((o) => o.error)) process.exitCode = 1;
}

main().catch((e: unknown) => {
  log(e instanceof Error ? e.message : String(e));
  process.exitCode = 2;
});
