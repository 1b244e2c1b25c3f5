/**
 * The conversation bench (issue 13): what a conversation with several members and a handoff
 * cost, in one run on one machine.
 *
 *   node --import tsx bench/conversations.ts [--quick] [--json out.json] [--only cpu,latency,handoff]
 *
 * 1. `cpu`: the sender's CPU time to seal one conversation message for every other member of a
 *    conversation of 2, 3, 5 and 10 members (`ConversationBook` + `ConversationEngine`, in this
 *    process, sessions established; `conversations-cpu.ts`).
 * 2. `latency`: from `Conversation.send()` to the last member's `conversationMessage`, for the
 *    same sizes, real `ParleyClient`s over the relay in its own process (`conversations-e2e.ts`).
 * 3. `handoff`: from the customer's `requestHuman()` to the agent's `historyShared` event, the
 *    claim and the consent automated (`conversations-e2e.ts`).
 *
 * Every case runs {@link RUNS} times, the sizes in rotating order within each run, so load
 * drifting on the shared machine hits every size alike; the report gives the median and p95 of
 * all samples and the spread (min / median / max) of the runs' medians. Every phase is bounded in
 * count and time. Progress goes to stderr (`[bench:conversations] …`); the report (markdown) to
 * stdout.
 */
import { parseBenchArgs, scriptArgs } from './lib/args.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { initCrypto } from '@parley/protocol';
import { Child, median, quantile, table } from './relay/common.js';
import { fanoutGroup, measureFanoutCpu, type FanoutGroup } from './conversations-cpu.js';
import {
  BEFORE,
  SHARED,
  benchBot,
  benchClient,
  botProblems,
  benchConversation,
  benchOrg,
  clientErrors,
  closeClients,
  measureFanoutLatency,
  oneHandoff,
  type HandoffTiming,
} from './conversations-e2e.js';
import type { ConversationServerRequest } from './conversations-server.js';
import type { Bot } from '@parley/bot';

const CASES = ['cpu', 'latency', 'handoff'] as const;
type CaseId = (typeof CASES)[number];

/** Conversation sizes (members, the sender included). */
const SIZES = [2, 3, 5, 10] as const;
/** Runs of every case; the spread of their medians is reported. */
const RUNS = 3;

interface Budget {
  /** cpu: untimed messages before the first run, and timed messages per run and size. */
  readonly cpuWarmup: number;
  readonly cpuCount: number;
  /** latency: untimed messages before the first run, and timed messages per run and size. */
  readonly latencyWarmup: number;
  readonly latencyCount: number;
  /** handoff: handoffs per run (RUNS × this ≥ 10). */
  readonly handoffs: number;
  /** Longest wait for any one message or handoff step. */
  readonly timeoutMs: number;
}

const BUDGETS = {
  full: { cpuWarmup: 50, cpuCount: 300, latencyWarmup: 10, latencyCount: 60, handoffs: 5, timeoutMs: 15_000 },
  quick: { cpuWarmup: 20, cpuCount: 100, latencyWarmup: 5, latencyCount: 20, handoffs: 4, timeoutMs: 15_000 },
} as const satisfies Record<string, Budget>;

const log = (line: string): void => void process.stderr.write(`[bench:conversations] ${line}\n`);

/** Samples of one quantity: all of them, and each run's. */
class Series {
  readonly runs: number[][] = [];
  add(run: number, xs: readonly number[]): void {
    (this.runs[run] ??= []).push(...xs);
  }
  get all(): number[] {
    return this.runs.flat().sort((a, b) => a - b);
  }
  get median(): number {
    return quantile(this.all, 0.5);
  }
  get p95(): number {
    return quantile(this.all, 0.95);
  }
  /** min / median / max of the runs' medians. */
  spread(fmt: (x: number) => string): string {
    const meds = this.runs.filter((r) => r.length > 0).map((r) => median(r));
    if (meds.length === 0) return '—';
    return `${fmt(Math.min(...meds))} / ${fmt(median(meds))} / ${fmt(Math.max(...meds))}`;
  }
  get count(): number {
    return this.runs.reduce((a, r) => a + r.length, 0);
  }
}

/** Milliseconds with three significant digits below 10. */
const ms = (x: number): string => (Number.isFinite(x) ? (x < 1 ? x.toFixed(3) : x < 10 ? x.toFixed(2) : x.toFixed(1)) : '—');

interface Results {
  /** Sender CPU, one way (no DH step), and with every member answering each message (a DH step per member). */
  cpu?: Record<number, Series>;
  cpuReplies?: Record<number, Series>;
  latency?: Record<number, { last: Series; first: Series }>;
  handoff?: Record<keyof HandoffTiming, Series>;
  failed: string[];
}

/** Sizes in the order of run `r`: rotated by one each run. */
const order = (r: number): number[] => SIZES.map((_, i) => SIZES[(i + r) % SIZES.length]!);

async function runCpu(budget: Budget, results: Results): Promise<void> {
  const groups = new Map<number, FanoutGroup>();
  try {
    for (const size of SIZES) groups.set(size, await fanoutGroup(size));
    const oneWay: Record<number, Series> = Object.fromEntries(SIZES.map((s) => [s, new Series()]));
    const replies: Record<number, Series> = Object.fromEntries(SIZES.map((s) => [s, new Series()]));
    for (let run = 0; run < RUNS; run++) {
      for (const size of order(run)) {
        // Both patterns on the same sessions, alternating which goes first.
        for (const withReplies of run % 2 ? [true, false] : [false, true]) {
          const cpuMs = await measureFanoutCpu(groups.get(size)!, {
            warmup: run === 0 ? budget.cpuWarmup : 0, count: budget.cpuCount, prefix: `r${run}${withReplies ? 'p' : 'o'}`, replies: withReplies,
          });
          (withReplies ? replies : oneWay)[size]!.add(run, cpuMs);
          log(`cpu run ${run + 1}/${RUNS}, ${size} members${withReplies ? ', after replies' : ', one way'}: median ${ms(median(cpuMs))} ms per message`);
        }
      }
    }
    results.cpu = oneWay;
    results.cpuReplies = replies;
  } finally {
    await Promise.all([...groups.values()].map((g) => g.close()));
  }
}

async function runOverRelay(cases: readonly CaseId[], budget: Budget, results: Results): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'parley-bench-conv-'));
  const server = new Child<ConversationServerRequest>('../conversations-server.ts', 'relay');
  const bots: Bot[] = [];
  try {
    const org = benchOrg();
    const { url } = (await server.request({ op: 'start', sqlitePath: join(dir, 'relay.db'), orgKey: org.publicKeyHex })) as { url: string };
    log(`relay (SQLite, org key) at ${url}`);

    if (cases.includes('latency')) {
      const customer = await benchClient(url, org);
      const members = [];
      for (let i = 1; i < Math.max(...SIZES); i++) members.push(await benchClient(url, org));
      const convs = new Map<number, { conv: Awaited<ReturnType<typeof benchConversation>>; others: typeof members }>();
      for (const size of SIZES) {
        const others = members.slice(0, size - 1);
        convs.set(size, { conv: await benchConversation(customer, others, budget.timeoutMs), others });
      }
      const series: Record<number, { last: Series; first: Series }> = Object.fromEntries(SIZES.map((s) => [s, { last: new Series(), first: new Series() }]));
      for (let run = 0; run < RUNS; run++) {
        for (const size of order(run)) {
          const { conv, others } = convs.get(size)!;
          const r = await measureFanoutLatency(conv, others, { warmup: run === 0 ? budget.latencyWarmup : 0, count: budget.latencyCount, timeoutMs: budget.timeoutMs });
          series[size]!.last.add(run, r.last);
          series[size]!.first.add(run, r.first);
          log(`latency run ${run + 1}/${RUNS}, ${size} members: median ${ms(median(r.last))} ms to the last member`);
        }
      }
      results.latency = series;
    }

    if (cases.includes('handoff')) {
      const apiKey = (await server.request({ op: 'apiKey', label: 'bench bot' })) as string;
      const { bot, measurement } = await benchBot(url, apiKey, org, dir);
      bots.push(bot);
      const firstLine = { deviceId: bot.deviceId, measurement };
      const agent = await benchClient(url, org, { staff: { name: 'Ada', roles: ['agent'] } });
      const keys = ['ticketAtAgent', 'claimed', 'offerAtCustomer', 'accepted', 'joinedAtAgent', 'historyAtAgent'] as const;
      const series = Object.fromEntries(keys.map((k) => [k, new Series()])) as Record<keyof HandoffTiming, Series>;
      // One untimed handoff first (JIT, the relay's statements, the agent's first session).
      await oneHandoff(url, org, firstLine, agent, 'bench', budget.timeoutMs);
      for (let run = 0; run < RUNS; run++) {
        for (let i = 0; i < budget.handoffs; i++) {
          const t = await oneHandoff(url, org, firstLine, agent, 'bench', budget.timeoutMs);
          for (const k of keys) series[k].add(run, [t[k]]);
        }
        log(`handoff run ${run + 1}/${RUNS}: median ${ms(median(series.historyAtAgent.runs[run]!))} ms to the shared history`);
      }
      results.handoff = series;
    }
  } finally {
    await closeClients();
    await Promise.allSettled(bots.map((b) => b.close()));
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

function report(results: Results, budget: Budget, meta: Record<string, string>): string {
  const out: string[] = ['## Conversations: fan-out and handoff', '', Object.entries(meta).map(([k, v]) => `${k}: ${v}`).join('  \n'), ''];
  const n = (s: Series | undefined): string => (s ? String(s.count) : '0');
  if (results.cpu) {
    const rows: string[][] = [[
      'members',
      'sender CPU per message, one way (ms): median / p95',
      'per other member',
      `${RUNS} runs' medians: min / median / max`,
      'sender CPU per message, after every member answered (ms): median / p95',
      'per other member',
      `${RUNS} runs' medians: min / median / max`,
    ]];
    for (const size of SIZES) {
      const c = results.cpu[size]!;
      const r = results.cpuReplies?.[size];
      rows.push([
        String(size),
        `${ms(c.median)} / ${ms(c.p95)}`, ms(c.median / (size - 1)), c.spread(ms),
        r ? `${ms(r.median)} / ${ms(r.p95)}` : '—', r ? ms(r.median / (size - 1)) : '—', r ? r.spread(ms) : '—',
      ]);
    }
    out.push(table(rows), '');
    out.push(
      `${n(results.cpu[2])} messages per size and pattern (${RUNS} runs × ${budget.cpuCount}). One op: \`prepareMessage\` + one \`encrypt\` (kind \`conversation\`) per other member, ` +
        'MemoryStore, sessions established. One way: nobody answers, no DH step. After answers: every member decrypted the previous message and answered it (untimed), ' +
        'so each encryption also takes a DH ratchet step, as in a live conversation with receipts.',
      '',
    );
  }
  if (results.latency) {
    const rows: string[][] = [[
      'members',
      'send → last member\'s `conversationMessage` (ms): median / p95',
      `${RUNS} runs' medians: min / median / max`,
      'send → first member (ms): median',
    ]];
    for (const size of SIZES) {
      const l = results.latency[size]!;
      rows.push([String(size), `${ms(l.last.median)} / ${ms(l.last.p95)}`, l.last.spread(ms), ms(l.first.median)]);
    }
    out.push(table(rows), '');
    out.push(
      `${n(results.latency[2]?.last)} messages per size (${RUNS} runs × ${budget.latencyCount}), one at a time from the customer (the owner), 100 B, over the SQLite relay in its own process; ` +
        'every client in the runner process, so the members decrypt one after another on one core (an upper bound for real devices, each with its own).',
      '',
    );
  }
  if (results.handoff) {
    const h = results.handoff;
    const rows: string[][] = [['from `requestHuman()` to', 'median (ms)', 'p95 (ms)', `${RUNS} runs' medians: min / median / max`]];
    const label: Record<keyof HandoffTiming, string> = {
      ticketAtAgent: 'the ticket at the agent (`ticket` event)',
      claimed: 'the agent\'s claim resolved (relay claim + join frame)',
      offerAtCustomer: 'the offer at the customer (`handoffOffer`, claim checked at the relay)',
      accepted: 'the customer\'s `acceptAgent` resolved (claim checked again, member list and history sent)',
      joinedAtAgent: 'the agent has the member list (`conversationJoined`)',
      historyAtAgent: `**the agent reads the shared history** (\`historyShared\`, the last ${SHARED} of ${2 * BEFORE})`,
    };
    for (const k of Object.keys(label) as (keyof HandoffTiming)[]) rows.push([label[k], ms(h[k].median), ms(h[k].p95), h[k].spread(ms)]);
    out.push(table(rows), '');
    out.push(
      `${h.historyAtAgent.count} handoffs (${RUNS} runs × ${budget.handoffs}, after one untimed). Each: a new customer (a device the agent has no session with) ` +
        `in a conversation with the bot (\`createBot\`, enclave worker, echo handler), ${BEFORE} messages and the bot's ${BEFORE} answers, then \`requestHuman\`; ` +
        'the agent claims the moment its `ticket` event arrives, the customer accepts (last 5, bot stays) the moment its `handoffOffer` arrives.',
      '',
    );
  }
  const errors = Object.entries(clientErrors);
  if (errors.length) out.push(`Client \`error\` events: ${errors.map(([k, v]) => `${k} × ${v}`).join(', ')}`, '');
  if (botProblems.length) out.push(`Bot warnings and errors: ${[...new Set(botProblems)].slice(0, 5).join('; ')}`, '');
  if (results.failed.length) out.push('Failed / not measured:', ...results.failed.map((f) => `- ${f}`), '');
  return out.join('\n');
}

async function main(): Promise<void> {
  const args = parseBenchArgs(scriptArgs(), CASES, 'bench/conversations.ts [--quick] [--json out.json] [--only cpu,latency,handoff]');
  const budget: Budget = args.quick ? BUDGETS.quick : BUDGETS.full;
  const t0 = performance.now();
  const load0 = loadavg()[0]!.toFixed(2);
  await initCrypto('node');
  const results: Results = { failed: [] };
  if (args.only.includes('cpu')) {
    log('cpu: sender-side fan-out, in process');
    await runCpu(budget, results).catch((e: unknown) => void results.failed.push(`cpu: ${e instanceof Error ? e.message : String(e)}`));
  }
  const relayCases = args.only.filter((c) => c !== 'cpu');
  if (relayCases.length) {
    await runOverRelay(relayCases, budget, results).catch((e: unknown) => void results.failed.push(`${relayCases.join(', ')}: ${e instanceof Error ? e.message : String(e)}`));
  }
  const secs = ((performance.now() - t0) / 1000).toFixed(0);
  const meta: Record<string, string> = {
    machine: `${cpus()[0]?.model ?? '?'} × ${cpus().length}, Node ${process.version}, load avg ${load0} → ${loadavg()[0]!.toFixed(2)}`,
    run: `${args.quick ? '--quick' : 'full'}: ${secs} s total; ${new Date().toISOString().slice(0, 16)}Z`,
  };
  if (Math.max(Number(load0), loadavg()[0]!) > cpus().length) {
    meta.warning = `the machine was busy (load above ${cpus().length}): latencies include waiting for a core; rerun when it is quiet`;
  }
  process.stdout.write(report(results, budget, meta) + '\n');
  if (args.json) {
    const dump = (s: Series) => s.runs;
    writeFileSync(args.json, JSON.stringify({
      meta, budget,
      cpu: results.cpu && Object.fromEntries(Object.entries(results.cpu).map(([k, s]) => [k, dump(s)])),
      cpuReplies: results.cpuReplies && Object.fromEntries(Object.entries(results.cpuReplies).map(([k, s]) => [k, dump(s)])),
      latency: results.latency && Object.fromEntries(Object.entries(results.latency).map(([k, s]) => [k, { last: dump(s.last), first: dump(s.first) }])),
      handoff: results.handoff && Object.fromEntries(Object.entries(results.handoff).map(([k, s]) => [k, dump(s)])),
      failed: results.failed,
    }, null, 2) + '\n');
    log(`wrote ${args.json}`);
  }
  if (results.failed.length) process.exitCode = 1;
}

main().catch((e: unknown) => {
  log(e instanceof Error ? e.message : String(e));
  process.exitCode = 2;
});
