/**
 * The relay and enclave bench (issue 3), in one run on one machine:
 *
 *   node --import tsx bench/relay/run.ts [--quick] [--json out.json] [--only throughput,latency,enclave]
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
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fmtMs, fmtNum, fmtPct, log, median, ServerProcess, table } from './common.js';
import { measureEnclave, type EnclaveRound, type EnclaveTarget } from './enclave.js';
import { measureLatency, type LatencyResult } from './latency.js';
import type { ServerKind } from './server.js';
import { ACK_BATCH, ACK_DELAY_MS, ENVELOPE_BYTES, PairLoad, SEND_WINDOW, type ThroughputSample } from './throughput.js';

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
    pairs: 50, warmup: 1, rounds: 5, sampleSeconds: 2, probeSeconds: 1,
    latencyPairs: 10, latencyRate: 1000, latencyWarmup: 1, latencySeconds: 10,
    customers: 20, messagesPerCustomer: 25, enclaveRounds: 3, roundTimeoutMs: 30_000,
  },
  quick: {
    pairs: 50, warmup: 0.5, rounds: 2, sampleSeconds: 1, probeSeconds: 0.5,
    latencyPairs: 10, latencyRate: 1000, latencyWarmup: 0.5, latencySeconds: 3,
    customers: 10, messagesPerCustomer: 10, enclaveRounds: 1, roundTimeoutMs: 15_000,
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
    probe?: { commitsPerSec: number; meanMs: number };
  };
  latency?: LatencyResult;
  enclave?: { rounds: EnclaveRound[]; errors: Record<string, number> };
  failed: Partial<Record<CaseId, string>>;
}

function parseArgs(argv: string[]): { quick: boolean; json?: string; only: CaseId[] } {
  let quick = false;
  let json: string | undefined;
  let only: CaseId[] = [...CASES];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--quick') quick = true;
    else if (a === '--json') {
      json = argv[++i];
      if (!json) throw new Error('--json needs a file name');
    } else if (a === '--only') {
      const list = (argv[++i] ?? '').split(',').filter(Boolean);
      const bad = list.filter((x) => !(CASES as readonly string[]).includes(x));
      if (bad.length || !list.length) throw new Error(`--only takes a comma list of ${CASES.join(', ')}`);
      only = CASES.filter((c) => list.includes(c));
    } else throw new Error(`unknown argument ${a}; usage: bench/relay/run.ts [--quick] [--json out.json] [--only ${CASES.join(',')}]`);
  }
  return { quick, json, only };
}

// ---- the cases ------------------------------------------------------------------------------

const rate = (s: ThroughputSample): number => s.messages / s.wallSecs;

async function runThroughput(sqlite: ServerProcess, budget: Budget): Promise<NonNullable<Results['throughput']>> {
  const servers: ServerProcess[] = [sqlite];
  const loads: PairLoad[] = [];
  try {
    servers.push(await ServerProcess.start('relay-memory'), await ServerProcess.start('bare'));
    for (const s of servers) {
      loads.push(await PairLoad.connect(s, budget.pairs));
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
        line.push(`${l.server.kind} ${fmtNum(rate(s))} (server CPU ${fmtPct(s.serverCpuSecs / s.wallSecs)})`);
      }
      log(`throughput ${round + 1}/${budget.rounds}: ${line.join(' · ')}`);
    }
    const errors = Object.fromEntries(loads.map((l) => [l.server.kind, Object.fromEntries(l.errors)])) as Record<ServerKind, Record<string, number>>;
    for (const l of loads) l.close();
    loads.length = 0;
    log(`throughput: probing the SQLite store alone for ${budget.probeSeconds} s`);
    const probe = (await sqlite.request({ op: 'storeProbe', seconds: budget.probeSeconds, envelopeBytes: ENVELOPE_BYTES })) as { commitsPerSec: number; meanMs: number };
    log(`throughput: SqliteStore.enqueue alone ${fmtNum(probe.commitsPerSec)} commits/s (${fmtMs(probe.meanMs)} each)`);
    return { samples, errors, probe };
  } finally {
    for (const l of loads) l.close();
    // The SQLite relay stays up for the other cases.
    await Promise.all(servers.filter((s) => s !== sqlite).map((s) => s.stop()));
  }
}

// ---- the report -----------------------------------------------------------------------------

const verdict = (ok: boolean, shown: string): string => `${ok ? 'PASS' : 'MISS'} (${shown})`;

function report(r: Results, budget: Budget, meta: Record<string, string>): string {
  const main: string[][] = [['case', 'ours', 'baseline', 'ratio', 'target', 'result']];
  const details: string[] = [];

  const t = r.throughput;
  if (t) {
    const med = (k: ServerKind): number => median(t.samples[k].map(rate));
    const best = (k: ServerKind): number => Math.max(...t.samples[k].map(rate));
    const bare = med('bare');
    const sq = med('relay-sqlite');
    const mem = med('relay-memory');
    main.push([
      `relay throughput, ${budget.pairs} pairs, ${ENVELOPE_BYTES} B, SQLite store (msgs/s)`,
      fmtNum(sq), `${fmtNum(bare)} (bare socket.io)`, `${(sq / bare).toFixed(2)}×`,
      `≥ ${TARGETS.throughputRatio}× bare`, verdict(sq / bare >= TARGETS.throughputRatio, `${(sq / bare).toFixed(2)}×`),
    ]);
    main.push([
      `relay throughput, memory store (what durability costs: SQLite ÷ memory ${(sq / mem).toFixed(2)}×)`,
      fmtNum(mem), `${fmtNum(bare)} (bare socket.io)`, `${(mem / bare).toFixed(2)}×`, '—', 'info',
    ]);
    const rows: string[][] = [[
      'server (one child process)', 'msgs/s: median (best)', 'server CPU, % of one core', 'msgs per server CPU-second', 'load generator CPU, % of one core',
    ]];
    for (const k of ['relay-sqlite', 'relay-memory', 'bare'] as const) {
      const s = t.samples[k];
      const cpu = median(s.map((x) => x.serverCpuSecs / x.wallSecs));
      const perCpu = median(s.map((x) => x.messages / x.serverCpuSecs));
      const client = median(s.map((x) => x.clientCpuSecs / x.wallSecs));
      rows.push([SERVER_NAMES[k], `${fmtNum(med(k))} (best ${fmtNum(best(k))})`, fmtPct(cpu), fmtNum(perCpu), fmtPct(client)]);
    }
    if (t.probe) rows.push([`SqliteStore.enqueue alone, no network (${ENVELOPE_BYTES} B, one commit each)`, `${fmtNum(t.probe.commitsPerSec)} commits/s (${fmtMs(t.probe.meanMs)} each)`, '—', '—', '—']);
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
      ['send() → message event', 'p50', 'p90', 'p99', 'max', 'sent / received', 'achieved rate', 'client process CPU, % of one core', 'relay CPU, % of one core'],
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
    main.push([
      `bot enclave throughput, echo handler (${budget.customers} customers × ${budget.messagesPerCustomer} messages; replies/s)`,
      fmtNum(enc), `${fmtNum(base)} (same handler in-process, ParleyClient)`, `${(enc / base).toFixed(2)}×`,
      `≥ ${TARGETS.enclaveRatio}× in-process`, verdict(enc / base >= TARGETS.enclaveRatio, `${(enc / base).toFixed(2)}×`),
    ]);
    const rows: string[][] = [['target', 'replies/s: median (best)', 'rounds', 'load process CPU ms per reply', 'relay CPU ms per reply']];
    for (const t of ['enclave', 'baseline'] as const) {
      const rs = of(t);
      rows.push([
        t === 'enclave' ? 'createBot (enclave worker)' : 'ParleyClient + same handler, in-process',
        `${fmtNum(med(t))} (best ${fmtNum(Math.max(...rs.map((x) => x.repliesPerSec)))})`,
        String(rs.length),
        fmtNum(median(rs.map((x) => (x.clientCpuSecs * 1000) / x.replies))),
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
  const args = parseArgs(process.argv.slice(2));
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
      log(`throughput: ${budget.pairs} pairs × ${SEND_WINDOW} sends in flight, acks every ${ACK_BATCH} or ${ACK_DELAY_MS} ms; ` +
        `${budget.warmup} s warm-up, then ${budget.rounds} rounds × ${budget.sampleSeconds} s per server`);
      results.throughput = await runThroughput(relay, budget);
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
  const busy = Math.max(Number(load0), loadavg()[0]!) > cpus().length;
  const meta: Record<string, string> = {
    machine: `${cpus()[0]?.model ?? '?'} × ${cpus().length}, Node ${process.version}, load avg ${load0} → ${loadavg()[0]!.toFixed(2)}`,
    run: `${args.quick ? '--quick' : 'full'}: ${secs} s total; ${new Date().toISOString().slice(0, 16)}Z`,
    setup: 'each server in its own child process, all clients (and the bot) in the runner process; relay limits raised for the bench ' +
      '(events/s and burst 1,000,000 per device, connections and bundle fetches per address unthrottled); everything else default',
  };
  if (busy) meta.warning = `the machine was busy (load above ${cpus().length}); wall-clock rates and latencies suffer from it, CPU-second figures less so`;
  process.stdout.write(report(results, budget, meta) + '\n');
  if (args.json) {
    writeFileSync(args.json, JSON.stringify({ meta, budget, targets: TARGETS, results }, null, 2) + '\n');
    log(`wrote ${args.json}`);
  }
  if (Object.keys(results.failed).length) process.exitCode = 1;
}

main().catch((e: unknown) => {
  log(e instanceof Error ? e.message : String(e));
  process.exitCode = 2;
});
