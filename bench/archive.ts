/**
 * The compliance archive bench (issue 14): what the archive adds per sent message.
 *
 *   node --import tsx bench/archive.ts [--quick] [--runs N] [--messages N] [--max-seconds S] [--json out.json]
 *
 * One customer `ParleyClient` (in this process) sends 100-byte text messages, one at a time and
 * each awaited, in two conversations: one with a bot-like member that published no archive
 * disclosure (archive off) and one with a member that published an org-signed disclosure before
 * the first message (archive on: the client seals each message to the compliance key, signs it
 * and appends it with one `archiveAppend` round trip). The members stay offline, so this process
 * does only the customer's work and the relay only queues envelopes (and chains the archive
 * entries). The relay (`createRelay` on a SQLite file) runs in its own process
 * (`relay/server.ts`) and reports its CPU time.
 *
 * Measured per chunk of {@link CHUNK} messages, the two modes alternating chunk by chunk so load
 * drifting on the shared machine hits both alike: the customer's CPU time (`process.cpuUsage`,
 * user + system, all threads) and the relay process's, each divided by the chunk's messages.
 * Per run: the median chunk of each mode and their difference (the added cost). Each of the
 * `--runs` (default 3) complete runs starts a fresh relay process, a fresh client and fresh
 * members; the report gives min / median / max of the runs' medians. Bounded: `--messages` per
 * mode per run (default 600; 200 with `--quick`) and `--max-seconds` per run (default 90; a run
 * that hits it reports the chunks it has). Progress on stderr (`[bench:archive] …`), the markdown
 * table on stdout.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { intFlag, scriptArgs } from './lib/args.js';
import { generateOrgKey, getCrypto, initCrypto, signArchiveDisclosure, signOrgCertificate } from '@parley/protocol';
import { ConversationEngine, MemoryStore } from '@parley/engine';
import { RelayLink } from '@parley/relay-link';
import { ParleyClient, type Conversation } from '@parley/client';
import { ServerProcess } from './relay/common.js';
import { cpuSecondsSince, median, table } from './relay/common.js';

/** Messages per measured chunk (one mode). */
const CHUNK = 50;
/** Untimed messages per conversation first (session set-up, JIT warm-up). */
const WARMUP = 30;
const TEXT = 'x'.repeat(100);
const log = (line: string): void => void process.stderr.write(`[bench:archive] ${line}\n`);

type Mode = 'off' | 'on';

interface RunResult {
  /** µs of customer CPU per sent message, median chunk, per mode. */
  readonly client: Record<Mode, number>;
  /** µs of relay process CPU per sent message, median chunk, per mode. */
  readonly relay: Record<Mode, number>;
  readonly messages: Record<Mode, number>;
  readonly archiveEntries: number;
  readonly seconds: number;
}

function usage(): never {
  process.stderr.write('usage: node --import tsx bench/archive.ts [--quick] [--runs 1-20] [--messages 50-10000] [--max-seconds 10-1800] [--json file]\n');
  process.exit(2);
}

function parse(): { runs: number; messages: number; maxSeconds: number; json?: string } {
  let v;
  try {
    v = parseArgs({ args: scriptArgs(), strict: true, options: { quick: { type: 'boolean', default: false }, runs: { type: 'string' }, messages: { type: 'string' }, 'max-seconds': { type: 'string' }, json: { type: 'string' } } }).values;
  } catch {
    usage();
  }
  const int = (s: string | undefined, dflt: number, lo: number, hi: number): number => intFlag(s, dflt, lo, hi, usage);
  return {
    runs: int(v.runs, 3, 1, 20),
    messages: int(v.messages, v.quick ? 200 : 600, CHUNK, 10_000),
    maxSeconds: int(v['max-seconds'], v.quick ? 30 : 90, 10, 1800),
    ...(v.json ? { json: v.json } : {}),
  };
}

/** A member certified by the org as a bot, with prekeys (and, for `on`, the archive disclosure) published; then offline. */
async function offlineMember(url: string, org: ReturnType<typeof generateOrgKey>, disclosure: Uint8Array | undefined): Promise<string> {
  const engine = await ConversationEngine.open({ store: new MemoryStore() });
  const link = new RelayLink({ url, credentials: { answer: (c) => engine.relayLoginAnswer(c) } });
  await link.connect({ timeoutMs: 10_000 });
  const certificate = signOrgCertificate(org.seed, { role: 'bot', label: 'support', ...engine.publicIdentity, expiresAt: Date.now() + 3600_000 });
  await link.uploadPrekeys({ ...(await engine.prekeyUpload(5)), certificate, ...(disclosure ? { disclosure } : {}) });
  const id = engine.deviceId;
  await link.close();
  await engine.close();
  return id;
}

async function oneRun(run: number, o: { messages: number; maxSeconds: number }): Promise<RunResult> {
  const dir = mkdtempSync(join(tmpdir(), 'parley-bench-archive-'));
  const server = await ServerProcess.start('relay-sqlite', join(dir, 'relay.db'));
  const started = performance.now();
  let client: ParleyClient | undefined;
  try {
    const org = generateOrgKey();
    const disclosure = signArchiveDisclosure(org.seed, { label: 'support', archiveKey: getCrypto().x25519Generate().publicKey, retentionDays: 30, openers: ['compliance'], issuedAt: Date.now() - 60_000 });
    const members: Record<Mode, string> = { off: await offlineMember(server.url, org, undefined), on: await offlineMember(server.url, org, disclosure) };
    client = await ParleyClient.create({ relayUrl: server.url, store: new MemoryStore(), trust: { orgKey: org.publicKey, requireCertificate: 'none' } });
    // A failed seal or append is reported here, never thrown by send(): the run must have none.
    let errors = 0;
    client.on('error', () => void errors++);
    await client.connect();
    const conv: Record<Mode, Conversation> = { off: await client.startConversation(members.off), on: await client.startConversation(members.on) };
    if (conv.off.archive().disclosed || !conv.on.archive().disclosed) throw new Error('the archive is not off/on as intended');
    let n = 0;
    for (const mode of ['off', 'on'] as const) for (let i = 0; i < WARMUP; i++) await conv[mode].send(`${TEXT}${n++}`);

    const per: Record<'client' | 'relay', Record<Mode, number[]>> = { client: { off: [], on: [] }, relay: { off: [], on: [] } };
    const sent: Record<Mode, number> = { off: 0, on: 0 };
    const deadline = started + o.maxSeconds * 1000;
    let round = 0;
    while ((sent.off < o.messages || sent.on < o.messages) && performance.now() < deadline) {
      // Alternate which mode goes first each round.
      const order: Mode[] = round++ % 2 === 0 ? ['off', 'on'] : ['on', 'off'];
      for (const mode of order) {
        if (sent[mode] >= o.messages || performance.now() >= deadline) continue;
        const relay0 = (await server.usage()).cpuSecs;
        const cpu0 = process.cpuUsage();
        for (let i = 0; i < CHUNK; i++) await conv[mode].send(`${TEXT}${n++}`);
        const clientSecs = cpuSecondsSince(cpu0);
        const relaySecs = (await server.usage()).cpuSecs - relay0;
        per.client[mode].push((clientSecs / CHUNK) * 1e6);
        per.relay[mode].push((relaySecs / CHUNK) * 1e6);
        sent[mode] += CHUNK;
      }
      log(`run ${run}: ${sent.off} off / ${sent.on} on sent`);
    }
    if (per.client.off.length === 0 || per.client.on.length === 0) throw new Error('no chunk finished within --max-seconds');
    if (errors > 0) throw new Error(`${errors} client errors (a failed archive append?)`);
    const archiveEntries = WARMUP + sent.on;
    return {
      client: { off: median(per.client.off), on: median(per.client.on) },
      relay: { off: median(per.relay.off), on: median(per.relay.on) },
      messages: sent,
      archiveEntries,
      seconds: (performance.now() - started) / 1000,
    };
  } finally {
    await client?.close().catch(() => undefined);
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

const us = (x: number): string => (Number.isFinite(x) ? `${Math.round(x)} µs` : '—');
function spread(xs: readonly number[], fmt = us): string {
  if (xs.length === 1) return fmt(xs[0]!);
  return `${fmt(median(xs))} (${fmt(Math.min(...xs))}–${fmt(Math.max(...xs))})`;
}

async function main(): Promise<void> {
  const o = parse();
  await initCrypto('node');
  const results: RunResult[] = [];
  for (let r = 1; r <= o.runs; r++) {
    log(`run ${r}/${o.runs}: ${o.messages} messages per mode, at most ${o.maxSeconds} s`);
    results.push(await oneRun(r, o));
  }
  const col = (f: (r: RunResult) => number): string => spread(results.map(f));
  const rows: string[][] = [
    ['per sent message', 'archive off', 'archive on', 'added by the archive'],
    ['customer client CPU', col((r) => r.client.off), col((r) => r.client.on), col((r) => r.client.on - r.client.off)],
    ['relay process CPU', col((r) => r.relay.off), col((r) => r.relay.on), col((r) => r.relay.on - r.relay.off)],
  ];
  const load = loadavg()[0]!;
  process.stdout.write(
    [
      '## Compliance archive: added cost per message',
      '',
      `${o.runs} complete runs (fresh relay process, client and members each), median chunk of ${CHUNK} messages per run; figures are median (min–max) of the runs' medians.`,
      `Messages per mode per run: ${results.map((r) => Math.min(r.messages.off, r.messages.on)).join(', ')}; node ${process.version}, ${cpus().length} cores, load average ${load.toFixed(2)}${load > cpus().length ? ' (above the core count: figures are upper bounds)' : ''}.`,
      '',
      table(rows),
      '',
    ].join('\n'),
  );
  if (o.json) writeFileSync(o.json, JSON.stringify({ chunk: CHUNK, results }, null, 2));
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    log(`failed: ${e instanceof Error ? e.stack ?? e.message : String(e)}`);
    process.exit(1);
  },
);
