/**
 * `npm run bench` — our protocol beside libsignal-client (native) and olm (WASM libolm), in one
 * run on one machine.
 *
 *   node --import tsx bench/run.ts [--quick] [--json out.json] [--only parley-node,olm,...]
 *
 * Each implementation is measured in its own child process, one after another (never in
 * parallel: the machine has few cores), so no implementation inherits another's JIT state,
 * garbage or WASM memory, backends never switch under a live process, and the idle-memory
 * figure is taken in a clean heap with `--expose-gc`. Progress goes to stderr; the report
 * (markdown) goes to stdout.
 */
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { IMPLEMENTATIONS, type Budget, type ImplId, type ImplResult, type Timing } from './protocol/measure.js';

const here = dirname(fileURLToPath(import.meta.url));

const BUDGETS = {
  full: { warmup: 1, samples: 5, sampleSeconds: 0.6, idleSessions: 10_000 },
  quick: { warmup: 0.2, samples: 3, sampleSeconds: 0.2, idleSessions: 10_000 },
} as const satisfies Record<string, Budget>;

type CaseKey = 'establish' | 'oneDirection' | 'pingPong';

/** The targets for the default backend. */
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

interface Outcome {
  readonly id: ImplId;
  readonly result?: ImplResult;
  readonly error?: string;
}

function parseArgs(argv: string[]): { quick: boolean; json?: string; only: ImplId[] } {
  let quick = false;
  let json: string | undefined;
  let only: ImplId[] = [...IMPLEMENTATIONS];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--quick') quick = true;
    else if (a === '--json') {
      json = argv[++i];
      if (!json) throw new Error('--json needs a file name');
    } else if (a === '--only') {
      const list = (argv[++i] ?? '').split(',').filter(Boolean);
      const bad = list.filter((x) => !(IMPLEMENTATIONS as readonly string[]).includes(x));
      if (bad.length || !list.length) throw new Error(`--only takes a comma list of ${IMPLEMENTATIONS.join(', ')}`);
      only = list as ImplId[];
    } else throw new Error(`unknown argument ${a}; usage: bench/run.ts [--quick] [--json out.json] [--only ids]`);
  }
  return { quick, json, only };
}

function runWorker(id: ImplId, budget: Budget): Promise<Outcome> {
  return new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      ['--expose-gc', '--import', 'tsx', join(here, 'protocol', 'worker.ts'), id, JSON.stringify(budget)],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      process.stderr.write(d);
      err += d;
    });
    child.on('close', (code) => {
      if (code === 0) {
        try {
          resolve({ id, result: JSON.parse(out) as ImplResult });
          return;
        } catch {
          err += '\n[bench] failed: worker printed no result';
        }
      }
      // The first line of the failure (the error message), not the stack under it.
      const failure = /\[bench\] failed: (.*)/.exec(err)?.[1];
      resolve({ id, error: (failure ?? `exit code ${code}`).slice(0, 300) });
    });
  });
}

// ---- formatting ---------------------------------------------------------------------------

const fmtOps = (t: Timing | undefined): string => {
  if (!t) return '—';
  const lo = Math.min(...t.samples);
  const hi = Math.max(...t.samples);
  const spread = ((hi - lo) / 2 / t.opsPerSec) * 100;
  return `${t.opsPerSec.toLocaleString('en-US', { maximumSignificantDigits: 3 })} ±${spread.toFixed(0)}%`;
};
const fmtRatio = (a: number | undefined, b: number | undefined): string =>
  a && b ? `${(a / b).toFixed(2)}×` : '—';
const mb = (bytes: number): string => (bytes / 2 ** 20).toFixed(1);

function table(rows: string[][]): string {
  const [head, ...body] = rows;
  return [`| ${head!.join(' | ')} |`, `|${head!.map(() => '---').join('|')}|`, ...body.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

function report(outcomes: Outcome[], budget: Budget, meta: Record<string, string>): string {
  const byId = new Map(outcomes.map((o) => [o.id, o.result]));
  const def = byId.get('parley-node');
  const pure = byId.get('parley-noble');
  const sig = byId.get('libsignal');
  const olm = byId.get('olm');
  const present = outcomes.filter((o) => o.result);

  const speed: string[][] = [
    [
      'case (ops/s, median ±half-range)',
      ...present.map((o) => o.result!.name),
      'default ÷ libsignal',
      'default ÷ olm',
      'pure-JS ÷ libsignal',
      'pure-JS ÷ olm',
      'target (default)',
      'result',
    ],
  ];
  for (const key of Object.keys(CASES) as CaseKey[]) {
    const t = TARGETS[key];
    const ours = def?.[key].opsPerSec;
    const peerOps =
      t.against === 'faster'
        ? sig && olm
          ? Math.max(sig[key].opsPerSec, olm[key].opsPerSec)
          : undefined
        : (t.against === 'olm' ? olm : sig)?.[key].opsPerSec;
    const verdict = ours && peerOps ? (ours / peerOps >= t.factor ? `PASS (${(ours / peerOps).toFixed(2)}×)` : `MISS (${(ours / peerOps).toFixed(2)}×)`) : 'n/a';
    speed.push([
      CASES[key],
      ...present.map((o) => fmtOps(o.result![key])),
      fmtRatio(ours, sig?.[key].opsPerSec),
      fmtRatio(ours, olm?.[key].opsPerSec),
      fmtRatio(pure?.[key].opsPerSec, sig?.[key].opsPerSec),
      fmtRatio(pure?.[key].opsPerSec, olm?.[key].opsPerSec),
      t.label,
      verdict,
    ]);
  }

  const size: string[][] = [
    [
      'implementation',
      'session, after 1 round trip (B)',
      'session, after +20 ping-pong (B)',
      `JS heap + external per ${budget.idleSessions.toLocaleString('en-US')} idle (MB)`,
      `RSS per ${budget.idleSessions.toLocaleString('en-US')} idle (MB)`,
    ],
  ];
  for (const o of present) {
    const r = o.result!;
    size.push([r.name, String(r.sessionBytes), String(r.sessionBytesAfterPingPong), mb(r.idle.jsBytes), mb(r.idle.rssBytes)]);
  }

  const notes = present.flatMap((o) => o.result!.notes.map((n) => `- **${o.result!.name}**: ${n}`));
  const failed = outcomes.filter((o) => o.error).map((o) => `- **${o.id}** did not run: ${o.error}`);

  return [
    `## Protocol benchmark`,
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
    ...(failed.length ? ['Not measured:', ...failed, ''] : []),
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

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const budget: Budget = args.quick ? BUDGETS.quick : BUDGETS.full;
  const t0 = performance.now();
  const load0 = loadavg()[0]!.toFixed(2);
  process.stderr.write(
    `[bench] ${args.only.length} implementations, ${args.quick ? 'quick' : 'full'} run: warm-up ${budget.warmup} s, ` +
      `${budget.samples} × ${budget.sampleSeconds} s per case\n`,
  );
  const outcomes: Outcome[] = [];
  for (const [i, id] of args.only.entries()) {
    process.stderr.write(`[bench] (${i + 1}/${args.only.length}) ${id} …\n`);
    outcomes.push(await runWorker(id, budget));
  }
  const secs = ((performance.now() - t0) / 1000).toFixed(0);
  const meta = {
    machine: `${cpus()[0]?.model ?? '?'} × ${cpus().length}, Node ${process.version}, load avg ${load0} → ${loadavg()[0]!.toFixed(2)}`,
    peers: `@signalapp/libsignal-client ${version('@signalapp/libsignal-client')}, @matrix-org/olm ${version('@matrix-org/olm')}`,
    run: `${args.quick ? '--quick' : 'full'}, warm-up ${budget.warmup} s + ${budget.samples} samples × ${budget.sampleSeconds} s per case, ${secs} s total, ${new Date().toISOString().slice(0, 16)}Z`,
  };
  process.stdout.write(report(outcomes, budget, meta) + '\n');
  if (args.json) {
    writeFileSync(args.json, JSON.stringify({ meta, budget, targets: TARGETS, outcomes }, null, 2) + '\n');
    process.stderr.write(`[bench] wrote ${args.json}\n`);
  }
  if (outcomes.every((o) => o.error)) process.exitCode = 1;
}

main().catch((e: unknown) => {
  process.stderr.write(`[bench] ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 2;
});
