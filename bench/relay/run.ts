/**
 * The relay and enclave bench (issue 3), in one run on one machine:
 *
 *   node --import tsx bench/relay/run.ts [--quick] [--json out.json] [--only throughput,latency,enclave] [--window N]
 *
 * 1. Relay throughput: 50 sender → receiver pairs of authenticated raw socket.io clients, 100-byte
 *    opaque envelopes, against the relay on its SQLite store, the relay on its memory store, and
 *    a bare socket.io forwarder (`bare-forwarder.ts`), in alternating samples (`throughput.ts`).
 * 2. End-to-end latency: `ParleyClient` pairs at 1,000 msgs/s in total over the SQLite relay
 *    (`latency.ts`).
 * 3. Bot enclave throughput: an echo bot (`createBot`) against the same handler run by a
 *    `ParleyClient` in this process (`enclave.ts`).
 *
 * Every server runs in its own child process (`server.ts`), the clients in this one, so a server
 * has an event loop and a core to itself (the machine has two) and its CPU time is read apart
 * from the load's. Progress goes to stderr; the report (markdown) to stdout.
 */
import { parseBenchArgs, scriptArgs } from '../lib/args.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fmtMs, fmtNum, fmtPct, log, median, ServerProcess, table } from './common.js';
import { measureEnclave, type EnclaveRound, type EnclaveTarget } from './enclave.js';
import { LOAD_PROCESSES, measureLatency, type LatencyResult } from './latency.js';
import type { ServerKind, StoreProbe } from './server.js';
import { ACK_BATCH, ACK_DELAY_MS, DEFAULT_SEND_WINDOW, ENVELOPE_BYTES, PairLoad, type ThroughputSample } from './throughput.js';

const CASES = ['throughput', 'latency', 'enclave'] as const;
type CaseId = (typeof CASES)[number];

interface Budget {
  readonly pairs: number;
  /** Throughput: seconds of load per server before the samples. */
  readonly warmup: number;
  /** Throughput: rounds; each round takes one sample of every server, order rotating. */
  readonly rounds: number;
  readonly sampleSeconds: number;
  /** Seconds of the SQLite store probe. */
  readonly probeSeconds: number;
  readonly latencyPairs: number;
  readonly latencyRate: number;
  readonly latencyWarmup: number;
  readonly latencySeconds: number;
  readonly customers: number;
  readonly messagesPerCustomer: number;
  readonly enclaveRounds: number;
  readonly roundTimeoutMs: number;
}

const BUDGETS = {
  full: {
    pairs: 50, warmup: 1, rounds: 7, sampleSeconds: 2, probeSeconds: 1,
    latencyPairs: 10, latencyRate: 1000, latencyWarmup: 1, latencySeconds: 10,
    customers: 20, messagesPerCustomer: 25, enclaveRounds: 5, roundTimeoutMs: 30_000,
  },
  quick: {
    pairs: 50, warmup: 0.5, rounds: 2, sampleSeconds: 1, probeSeconds: 0.5,
    latencyPairs: 10, latencyRate: 1000, latencyWarmup: 0.5, latencySeconds: 3,
    customers: 10, messagesPerCustomer: 20, enclaveRounds: 1, roundTimeoutMs: 15_000,
  },
} as const satisfies Record<string, Budget>;

/** The targets. */
const TARGETS = {
  throughputRatio: 0.5,
  latencyP99Ms: 5,
  enclaveRatio: 0.8,
} as const;

const SERVER_NAMES: Record<ServerKind, string> = {
  'relay-sqlite': 'relay, SQLite store',
  'relay-memory': 'relay, memory store',
  bare: 'bare socket.io forwarder',
};

interface Results {
  throughput?: {
    samples: Record<ServerKind, ThroughputSample[]>;
    errors: Record<ServerKind, Record<string, number>>;
    probe?: StoreProbe;
  };
  latency?: LatencyResult;
  enclave?: { rounds: EnclaveRound[]; errors: Record<string, number> };
  failed: Partial<Record<CaseId, string>>;
}

const USAGE = `bench/relay/run.ts [--quick] [--json out.json] [--only ${CASES.join(',')}] [--window 1..256]`;

interface Args {
  quick: boolean;
  json?: string;
  only: CaseId[];
  /** Throughput: sends in flight per sender. */
  window: number;
}

function parseArgs(argv: string[]): Args {
  const { quick, json, only, extra } = parseBenchArgs(argv, CASES, USAGE, ['window']);
  const window = extra.window === undefined ? DEFAULT_SEND_WINDOW : Number(extra.window);
  if (!Number.isInteger(window) || window < 1 || window > 256) throw new Error('--window takes 1..256 (sends in flight per sender)');
  return json === undefined ? { quick, only, window } : { quick, json, only, window };
}

// ---- the cases ------------------------------------------------------------------------------

const rate = (s: ThroughputSample): number => s.messages / s.wallSecs;

async function runThroughput(sqlite: ServerProcess, budget: Budget, window: number): Promise<NonNullable<Results['throughput']>> {
  const servers: ServerProcess[] = [sqlite];
  const loads: PairLoad[] = [];
  try {
    servers.push(await ServerProcess.start('relay-memory'));
    servers.push(await ServerProcess.start('bare'));
    for (const s of servers) {
      loads.push(await PairLoad.connect(s, budget.pairs, window));
      log(`throughput: ${budget.pairs} pairs connected to the ${SERVER_NAMES[s.kind]}`);
    }
    for (const l of loads) {
      const w = await l.sample(budget.warmup);
      log(`throughput warm-up, ${SERVER_NAMES[l.server.kind]}: ${fmtNum(rate(w))} msgs/s`);
    }
    const samples = { 'relay-sqlite': [], 'relay-memory': [], bare: [] } as Record<ServerKind, ThroughputSample[]>;
    for (let round = 0; round < budget.rounds; round++) {
      // Rotate the order every round, so drifting machine load hits every server alike.
      const order = loads.map((_, i) => loads[(i + round) % loads.length]!);
      const line: string[] = [];
      for (const l of order) {
        const s = await l.sample(budget.sampleSeconds);
        samples[l.server.kind].push(s);
        line.push(`${l.server.kind} ${fmtNum(rate(s))} (loop busy ${fmtPct(s.serverLoopSecs / s.serverWallSecs)}, CPU ${fmtPct(s.serverCpuSecs / s.serverWallSecs)})`);
      }
      log(`throughput ${round + 1}/${budget.rounds}: ${line.join(' · ')}`);
    }
    const errors = Object.fromEntries(loads.map((l) => [l.server.kind, Object.fromEntries(l.errors)])) as Record<ServerKind, Record<string, number>>;
    for (const l of loads) l.close();
    loads.length = 0;
    log(`throughput: probing the SQLite store alone for ${budget.probeSeconds} s`);
    const probe = (await sqlite.request({ op: 'storeProbe', seconds: budget.probeSeconds, envelopeBytes: ENVELOPE_BYTES })) as StoreProbe;
    log(`throughput: SqliteStore alone: ${fmtNum(probe.singlePerSec)} writes/s one at a time (${fmtMs(1000 / probe.singlePerSec)} per commit), ` +
      `${fmtNum(probe.groupedPerSec)} writes/s ${probe.group} at a time`);
    return { samples, errors, probe };
  } finally {
    for (const l of loads) l.close();
    // The SQLite relay stays up for the other cases.
    await Promise.all(servers.filter((s) => s !== sqlite).map((s) => s.stop()));
  }
}

// ---- the report -----------------------------------------------------------------------------

const verdict = (ok: boolean, shown: string): string => `${ok ? 'PASS' : 'MISS'} (${shown})`;

function report(r: Results, budget: Budget, window: number, meta: Record<string, string>): string {
  const main: string[][] = [['case', 'ours', 'baseline', 'ratio', 'target', 'result']];
  const details: string[] = [];

  const t = r.throughput;
  if (t) {
    const med = (k: ServerKind, f: (s: ThroughputSample) => number): number => median(t.samples[k].map(f));
    // Rates over the server's busy time: what it would carry with its event loop (or one core)
    // fully used, whoever limited it in this sample.
    const capacity = (s: ThroughputSample): number => rate(s) / (s.serverLoopSecs / s.serverWallSecs);
    const perCpu = (s: ThroughputSample): number => rate(s) / (s.serverCpuSecs / s.serverWallSecs);
    const [sq, mem, bare] = (['relay-sqlite', 'relay-memory', 'bare'] as const).map((k) => med(k, rate)) as [number, number, number];
    const [sqCpu, memCpu, bareCpu] = (['relay-sqlite', 'relay-memory', 'bare'] as const).map((k) => med(k, perCpu)) as [number, number, number];
    const x = (a: number, b: number): string => `${(a / b).toFixed(2)}×`;
    main.push([
      `relay throughput, ${budget.pairs} pairs × ${window} in flight, ${ENVELOPE_BYTES} B, SQLite store (msgs/s)`,
      fmtNum(sq), `${fmtNum(bare)} (bare socket.io)`, x(sq, bare),
      `≥ ${TARGETS.throughputRatio}× bare`, verdict(sq / bare >= TARGETS.throughputRatio, x(sq, bare)),
    ]);
    main.push([
      'same, msgs per CPU-second of the server process (holds up under other load; leaves out fsync waits)',
      fmtNum(sqCpu), fmtNum(bareCpu), x(sqCpu, bareCpu),
      `≥ ${TARGETS.throughputRatio}× bare`, verdict(sqCpu / bareCpu >= TARGETS.throughputRatio, x(sqCpu, bareCpu)),
    ]);
    main.push([
      'relay throughput, memory store (msgs/s; per server CPU-second)',
      `${fmtNum(mem)}; ${fmtNum(memCpu)}`, `${fmtNum(bare)}; ${fmtNum(bareCpu)}`, `${x(mem, bare)}; ${x(memCpu, bareCpu)}`, '—',
      `info: SQLite ÷ memory ${x(sq, mem)}; ${x(sqCpu, memCpu)}`,
    ]);
    const rows: string[][] = [[
      'server (own process)', 'msgs/s: median (best)', 'server event loop busy', 'msgs per busy-loop second',
      'server CPU, % of one core', 'msgs per server CPU-second', 'load generator CPU, % of one core',
    ]];
    for (const k of ['relay-sqlite', 'relay-memory', 'bare'] as const) {
      rows.push([
        SERVER_NAMES[k],
        `${fmtNum(med(k, rate))} (best ${fmtNum(Math.max(...t.samples[k].map(rate)))})`,
        fmtPct(med(k, (s) => s.serverLoopSecs / s.serverWallSecs)),
        fmtNum(med(k, capacity)),
        fmtPct(med(k, (s) => s.serverCpuSecs / s.serverWallSecs)),
        fmtNum(med(k, perCpu)),
        fmtPct(med(k, (s) => s.clientCpuSecs / s.wallSecs)),
      ]);
    }
    if (t.probe) {
      const p = t.probe;
      rows.push([`SqliteStore.enqueue alone (no network), one at a time: one commit each`, `${fmtNum(p.singlePerSec)} writes/s (${fmtMs(1000 / p.singlePerSec)} per commit)`, '—', '—', '—', '—', '—']);
      rows.push([`SqliteStore.enqueue alone, ${p.group} at a time: one group commit`, `${fmtNum(p.groupedPerSec)} writes/s`, '—', '—', '—', '—', '—']);
    }
    details.push(table(rows));
    const errs = Object.entries(t.errors).flatMap(([k, e]) => Object.entries(e).map(([code, n]) => `${k}: ${code} × ${n}`));
    if (errs.length) details.push(`Throughput errors: ${errs.join('; ')}`);
  }

  const l = r.latency;
  if (l) {
    const short = l.achievedRate < budget.latencyRate * 0.95 ? ` — pacer fell behind: ${fmtNum(l.achievedRate)} msgs/s` : '';
    main.push([
      `end-to-end latency p99 at ${fmtNum(budget.latencyRate)} msgs/s (${budget.latencyPairs} ParleyClient pairs, SQLite relay)`,
      `${fmtMs(l.p99)} (p50 ${fmtMs(l.p50)})${short}`, '—', '—', `p99 ≤ ${TARGETS.latencyP99Ms} ms`,
      verdict(l.p99 <= TARGETS.latencyP99Ms && !short && l.received === l.sent, fmtMs(l.p99)),
    ]);
    details.push(table([
      ['send() → message event', 'p50', 'p90', 'p99', 'max', 'sent / received', 'achieved rate', `load processes (${LOAD_PROCESSES}) CPU, % of one core`, 'relay CPU, % of one core'],
      [`${l.seconds.toFixed(1)} s at ${fmtNum(budget.latencyRate)} msgs/s`, fmtMs(l.p50), fmtMs(l.p90), fmtMs(l.p99), fmtMs(l.max), `${l.sent} / ${l.received}`,
        `${fmtNum(l.achievedRate)} msgs/s`, fmtPct(l.clientCpuSecs / l.seconds), fmtPct(l.serverCpuSecs / l.seconds)],
    ]));
    const errs = Object.entries(l.errors).map(([code, n]) => `${code} × ${n}`);
    if (errs.length) details.push(`Latency errors: ${errs.join('; ')}`);
  }

  const e = r.enclave;
  if (e) {
    const of = (t: EnclaveTarget): EnclaveRound[] => e.rounds.filter((x) => x.target === t);
    const med = (t: EnclaveTarget): number => median(of(t).map((x) => x.repliesPerSec));
    const enc = med('enclave');
    const base = med('baseline');
    const perCpu = (t: EnclaveTarget): number => median(of(t).map((x) => x.replies / x.botCpuSecs));
    const [encCpu, baseCpu] = [perCpu('enclave'), perCpu('baseline')];
    main.push([
      `bot enclave throughput, echo handler (${budget.customers} customers × ${budget.messagesPerCustomer} messages; replies/s)`,
      fmtNum(enc), `${fmtNum(base)} (same handler in-process, ParleyClient)`, `${(enc / base).toFixed(2)}×`,
      `≥ ${TARGETS.enclaveRatio}× in-process`, verdict(enc / base >= TARGETS.enclaveRatio, `${(enc / base).toFixed(2)}×`),
    ]);
    main.push([
      "same, replies per CPU-second of the bot's process (host + enclave thread, or the client)",
      fmtNum(encCpu), fmtNum(baseCpu), `${(encCpu / baseCpu).toFixed(2)}×`,
      `≥ ${TARGETS.enclaveRatio}× in-process`, verdict(encCpu / baseCpu >= TARGETS.enclaveRatio, `${(encCpu / baseCpu).toFixed(2)}×`),
    ]);
    const rows: string[][] = [['target', 'replies/s: median (best)', 'rounds', 'bot process CPU ms per reply', 'customers CPU ms per reply', 'relay CPU ms per reply']];
    for (const t of ['enclave', 'baseline'] as const) {
      const rs = of(t);
      rows.push([
        t === 'enclave' ? 'createBot (enclave worker)' : 'ParleyClient + same handler, in-process',
        `${fmtNum(med(t))} (best ${fmtNum(Math.max(...rs.map((x) => x.repliesPerSec)))})`,
        String(rs.length),
        fmtNum(median(rs.map((x) => (x.botCpuSecs * 1000) / x.replies))),
        fmtNum(median(rs.map((x) => (x.customersCpuSecs * 1000) / x.replies))),
        fmtNum(median(rs.map((x) => (x.serverCpuSecs * 1000) / x.replies))),
      ]);
    }
    details.push(table(rows));
    const errs = Object.entries(e.errors).map(([code, n]) => `${code} × ${n}`);
    if (errs.length) details.push(`Enclave errors: ${errs.join('; ')}`);
  }

  const failed = Object.entries(r.failed).map(([c, why]) => `- **${c}**: ${why}`);
  return [
    '## Relay and enclave benchmark',
    '',
    Object.entries(meta).map(([k, v]) => `${k}: ${v}`).join('  \n'),
    '',
    table(main),
    '',
    ...details.flatMap((d) => [d, '']),
    ...(failed.length ? ['Failed / not measured:', ...failed, ''] : []),
  ].join('\n');
}

// ---- main -----------------------------------------------------------------------------------

async function main(): Promise<void> {
  const args = parseArgs(scriptArgs());
  const budget: Budget = args.quick ? BUDGETS.quick : BUDGETS.full;
  const t0 = performance.now();
  const load0 = loadavg()[0]!.toFixed(2);
  log(`${args.quick ? 'quick' : 'full'} run: ${args.only.join(', ')}`);
  const dir = mkdtempSync(join(tmpdir(), 'parley-bench-relay-'));
  const results: Results = { failed: {} };
  let sqlite: ServerProcess | undefined;
  try {
    sqlite = await ServerProcess.start('relay-sqlite', join(dir, 'relay.db'));
    log(`relay (SQLite, ${join(dir, 'relay.db')}) at ${sqlite.url}`);
    const attempt = async (id: CaseId, fn: () => Promise<void>): Promise<void> => {
      if (!args.only.includes(id)) return;
      try {
        await fn();
      } catch (e) {
        results.failed[id] = e instanceof Error ? e.message : String(e);
        log(`${id} failed: ${results.failed[id]}`);
      }
    };
    const relay = sqlite;
    await attempt('throughput', async () => {
      log(`throughput: ${budget.pairs} pairs × ${args.window} sends in flight, acks every ${ACK_BATCH} or ${ACK_DELAY_MS} ms; ` +
        `${budget.warmup} s warm-up, then ${budget.rounds} rounds × ${budget.sampleSeconds} s per server`);
      results.throughput = await runThroughput(relay, budget, args.window);
    });
    await attempt('latency', async () => {
      log(`latency: ${budget.latencyPairs} ParleyClient pairs at ${budget.latencyRate} msgs/s, ${budget.latencyWarmup} s warm-up + ${budget.latencySeconds} s`);
      results.latency = await measureLatency(relay, {
        pairs: budget.latencyPairs, rate: budget.latencyRate, warmupSeconds: budget.latencyWarmup, seconds: budget.latencySeconds,
      });
      const l = results.latency;
      log(`latency: p50 ${fmtMs(l.p50)}, p90 ${fmtMs(l.p90)}, p99 ${fmtMs(l.p99)}, max ${fmtMs(l.max)}; ${l.received}/${l.sent} at ${fmtNum(l.achievedRate)} msgs/s`);
    });
    await attempt('enclave', async () => {
      log(`enclave: ${budget.customers} customers × ${budget.messagesPerCustomer} messages, ${budget.enclaveRounds} rounds per target`);
      results.enclave = await measureEnclave(relay, {
        customers: budget.customers, messagesPerCustomer: budget.messagesPerCustomer, rounds: budget.enclaveRounds,
        roundTimeoutMs: budget.roundTimeoutMs, dir,
      });
    });
  } finally {
    await sqlite?.stop();
    rmSync(dir, { recursive: true, force: true });
  }

  const secs = ((performance.now() - t0) / 1000).toFixed(0);
  // The load average at the end counts this bench's own processes; at the start it does not.
  // A server that ran for less of a sample than its event loop was busy was descheduled: some
  // other process wanted the core.
  const samples = results.throughput ? Object.values(results.throughput.samples).flat() : [];
  const descheduled = samples.filter((x) => x.serverCpuSecs < 0.9 * x.serverLoopSecs).length;
  const meta: Record<string, string> = {
    machine: `${cpus()[0]?.model ?? '?'} × ${cpus().length}, Node ${process.version}, load avg ${load0} before the run (${loadavg()[0]!.toFixed(2)} after, the bench's own processes included)`,
    run: `${args.quick ? '--quick' : 'full'}: ${secs} s total; ${new Date().toISOString().slice(0, 16)}Z`,
    setup: `each server in its own child process; raw throughput clients, the bot and the baseline in the runner; latency pairs in ${LOAD_PROCESSES} load processes, customers in one; relay limits raised for the bench ` +
      '(events/s and burst 1,000,000 per device, connections and bundle fetches per address unthrottled); everything else default',
  };
  if (Number(load0) > cpus().length || descheduled > 0) {
    meta.warning = `the machine was busy (load ${load0} before the run; ${descheduled} of ${samples.length} throughput samples had their server descheduled): ` +
      'wall-clock rates, their ratios and latencies suffer from it; the per-CPU-second rows hold up better (see bench/README.md)';
  }
  process.stdout.write(report(results, budget, args.window, meta) + '\n');
  if (args.json) {
    writeFileSync(args.json, JSON.stringify({ meta, budget, window: args.window, targets: TARGETS, results }, null, 2) + '\n');
    log(`wrote ${args.json}`);
  }
  if (Object.keys(results.failed).length) process.exitCode = 1;
}

main().catch((e: unknown) => {
  log(e instanceof Error ? e.message : String(e));
  process.exitCode = 2;
});
