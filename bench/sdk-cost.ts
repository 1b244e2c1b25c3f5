/**
 * `npm run bench:sdk-cost` — the SDK's CPU per message beside the protocol's own (issue 15,
 * "The SDK's cost per message"). Measurement only.
 *
 *   node --import tsx bench/sdk-cost.ts [--quick] [--runs N] [--json out.json]
 *
 * Each run (default 3, each complete: fresh relay, bot and customers):
 * - **SDK, both sides**: the relay bench's enclave case (`relay/enclave.ts`, reused as is): an
 *   echo bot (`createBot`: host + enclave worker, sealed file state) and, as the in-process
 *   baseline, a `ParleyClient` answering with the same handler; customers (`ParleyClient`s on
 *   memory stores, receipts on) in a load process of their own each queue M messages; the
 *   relay on SQLite in another. Per message: the customers' process CPU (send, the reply's
 *   receive, its receipt, the relay acks) and the bot's process CPU (host and enclave thread:
 *   receive, handler, reply, sealed state) — CPU-seconds of each process ÷ messages.
 * - **Protocol**: in this process, between the rounds' processes' work, the protocol bench's
 *   `parley (node, default)` adapter times one-direction ops (`Session.encrypt` of 100 bytes +
 *   `Session.decrypt`) on an established pair: what the cryptography of one message costs.
 * Each side of a message exchange does one encrypt and one decrypt of the conversation's
 * messages, so "SDK ÷ protocol" compares a side's CPU per message with one such op. The issue's
 * target is at most 3× on both sides. Figures are the spread of the per-run medians.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseBenchArgs, scriptArgs } from './lib/args.js';
import { fmtNum, fmtRatio, fmtSpread, median, parseRuns, spreadOf, table, type Spread } from './lib/spread.js';
import { createParleyPeer } from './protocol/parley.js';
import { Measurer } from './protocol/measure.js';
import { ServerProcess, log } from './relay/common.js';
import { measureEnclave, type EnclaveRound, type EnclaveTarget } from './relay/enclave.js';

const USAGE = 'bench/sdk-cost.ts [--quick] [--runs N] [--json out.json]';
const IDS = ['sdk'] as const;
/** Issue 15: the SDK layer costs at most this many times the protocol per message. */
const TARGET = 3;

const BUDGETS = {
  full: { customers: 20, messagesPerCustomer: 25, rounds: 3, roundTimeoutMs: 30_000, protocolSeconds: 1, protocolSamples: 5 },
  quick: { customers: 10, messagesPerCustomer: 20, rounds: 1, roundTimeoutMs: 15_000, protocolSeconds: 0.3, protocolSamples: 3 },
} as const;
type Budget = (typeof BUDGETS)[keyof typeof BUDGETS];

/** One complete run's medians, in milliseconds of CPU per message. */
interface RunFigures {
  /** The customers' process, per message sent (target: enclave bot). */
  readonly customerMs: number;
  /** The bot's process (host + enclave thread), per message answered. */
  readonly botMs: number;
  /** The in-process baseline client answering with the same handler, per message. */
  readonly baselineMs: number;
  /** The relay's process, per message (enclave rounds). */
  readonly relayMs: number;
  /** One protocol op: encrypt + decrypt of a 100-byte message. */
  readonly protocolMs: number;
  readonly rounds: readonly EnclaveRound[];
  readonly errors: Record<string, number>;
  readonly load: readonly [number, number];
}

async function protocolMs(budget: Budget): Promise<number> {
  const peer = createParleyPeer('node');
  await peer.setup();
  const m = new Measurer(peer);
  await m.sample('oneDirection', budget.protocolSeconds / 2); // warm-up
  const perOp: number[] = [];
  for (let i = 0; i < budget.protocolSamples; i++) {
    const s = await m.sample('oneDirection', budget.protocolSeconds / budget.protocolSamples);
    perOp.push((s.cpuSecs / s.ops) * 1000);
  }
  return median(perOp);
}

async function oneRun(label: string, budget: Budget): Promise<RunFigures> {
  const load0 = loadavg()[0]!;
  const dir = mkdtempSync(join(tmpdir(), 'parley-bench-sdk-'));
  const relay = await ServerProcess.start('relay-sqlite', join(dir, 'relay.db'));
  try {
    const before = await protocolMs(budget);
    const { rounds, errors } = await measureEnclave(relay, { ...budget, dir });
    const after = await protocolMs(budget);
    const of = (t: EnclaveTarget): EnclaveRound[] => rounds.filter((r) => r.target === t && r.replies > 0);
    const perMessage = (t: EnclaveTarget, cpu: (r: EnclaveRound) => number): number => median(of(t).map((r) => (cpu(r) / r.replies) * 1000));
    const f: RunFigures = {
      customerMs: perMessage('enclave', (r) => r.customersCpuSecs),
      botMs: perMessage('enclave', (r) => r.botCpuSecs),
      baselineMs: perMessage('baseline', (r) => r.botCpuSecs),
      relayMs: perMessage('enclave', (r) => r.serverCpuSecs),
      protocolMs: median([before, after]),
      rounds,
      errors,
      load: [load0, loadavg()[0]!],
    };
    log(
      `${label}: per message: customer ${f.customerMs.toFixed(3)} ms, bot ${f.botMs.toFixed(3)} ms, baseline ${f.baselineMs.toFixed(3)} ms, ` +
        `relay ${f.relayMs.toFixed(3)} ms CPU; protocol encrypt+decrypt ${(f.protocolMs * 1000).toFixed(1)} µs`,
    );
    return f;
  } finally {
    await relay.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

const ms = (x: number): string => (Number.isFinite(x) ? `${x < 0.1 ? x.toFixed(3) : x.toFixed(2)} ms` : '—');

function report(runs: readonly RunFigures[], budget: Budget, meta: Record<string, string>): string {
  const s = (f: (r: RunFigures) => number): Spread | undefined => spreadOf(runs.map(f));
  const ratio = (f: (r: RunFigures) => number): number[] => runs.map((r) => f(r) / r.protocolMs);
  const verdict = (xs: number[]): string => {
    const worst = Math.max(...xs);
    return Number.isFinite(worst) ? `${worst <= TARGET ? 'PASS' : 'MISS'} (worst ${fmtRatio(worst)})` : 'n/a';
  };
  const rows: string[][] = [
    ['CPU per message', `median of ${runs.length} run medians (min–max)`, '÷ protocol per run', `target ≤ ${TARGET}×`],
    ['protocol: encrypt + decrypt, 100 B (this process)', fmtSpread(s((r) => r.protocolMs), ms), '1×', '—'],
  ];
  const side = (name: string, f: (r: RunFigures) => number, target: boolean): void => {
    const xs = ratio(f);
    rows.push([name, fmtSpread(s(f), ms), xs.map(fmtRatio).join(', '), target ? verdict(xs) : '—']);
  };
  side("customer client (customers' process: send, relay ack, the reply's receive, its receipt)", (r) => r.customerMs, true);
  side("bot (createBot: host + enclave thread: receive, echo handler, reply, sealed state)", (r) => r.botMs, true);
  side('same handler on a ParleyClient in-process (no enclave), for comparison', (r) => r.baselineMs, false);
  side('relay (SQLite), for comparison', (r) => r.relayMs, false);
  const errors = runs.flatMap((r, i) => Object.entries(r.errors).map(([k, v]) => `- run ${i + 1}: ${k} × ${v}`));
  return [
    '## SDK cost per message',
    '',
    Object.entries(meta)
      .map(([k, v]) => `${k}: ${v}`)
      .join('  \n'),
    '',
    table(rows),
    '',
    `Per run: ${budget.customers} customers × ${budget.messagesPerCustomer} messages to the echo bot, ${budget.rounds} timed round(s) per target after two untimed ones (sessions, warm-up); a round's figure is its process's CPU-seconds ÷ replies, the run's is the median round.`,
    ...(errors.length ? ['', 'Errors:', ...errors] : []),
    '',
  ].join('\n');
}

async function main(): Promise<void> {
  const { quick, json, extra } = parseBenchArgs(scriptArgs(), IDS, USAGE, ['runs']);
  const runsWanted = parseRuns(extra.runs, USAGE);
  const budget: Budget = quick ? BUDGETS.quick : BUDGETS.full;
  const t0 = performance.now();
  const runs: RunFigures[] = [];
  for (let i = 0; i < runsWanted; i++) runs.push(await oneRun(`run ${i + 1}/${runsWanted}`, budget));
  const meta = {
    machine: `${cpus()[0]?.model ?? '?'} × ${cpus().length}, Node ${process.version}, 1-min load avg per run ${runs.map((r) => `${r.load[0].toFixed(2)} → ${r.load[1].toFixed(2)}`).join(', ')}`,
    run: `${quick ? '--quick' : 'full'}, ${runs.length} complete run${runs.length > 1 ? 's' : ''}; ${((performance.now() - t0) / 1000).toFixed(0)} s total; ${new Date().toISOString().slice(0, 16)}Z`,
  };
  process.stdout.write(report(runs, budget, meta) + '\n');
  if (json) writeFileSync(json, JSON.stringify({ meta, budget, runs }, null, 2) + '\n');
  log(`protocol µs per op by run: ${runs.map((r) => fmtNum(r.protocolMs * 1000)).join(', ')}`);
}

main().catch((e: unknown) => {
  log(e instanceof Error ? (e.stack ?? e.message) : String(e));
  process.exitCode = 2;
});
