/**
 * Relay scale bench (issue 5; docs/threats.md (c) "Relay load"), in one run on one machine:
 *
 *   node --import tsx bench/relay-scale.ts [--quick] [--sockets N] [--rate R] [--sustain S] [--json out.json]
 *                                          [--only sockets,throughput,sustained] [--fsync always|everysec]
 *                                          [--runs N] [--redis-nodes 1,2,3] [--node-prof DIR] [--compare DIR]
 *
 * 1. Sockets: authenticated websocket sockets held by one node (embedded SQLite store, the
 *    default deployment), target 10,000; RSS per idle socket.
 * 2. Throughput and latency: the embedded-store single node, then 1, 2 and 3 nodes on one Redis
 *    (AOF, `appendfsync always`). Pairs of devices, each partner on another node when there are
 *    several, so every message crosses nodes through the Redis adapter. A closed loop (a window
 *    of sends in flight per device) gives the saturated msg/s; an open loop at a fixed rate
 *    gives p50/p99 of send → recipient, end to end through the relay (same clock: sender and
 *    recipient live in the same load process). Every configuration of a run is started first,
 *    then the saturated loop runs in two halves in the order A B … B A, so a load on the machine
 *    that drifts during the run hits them alike. `--runs N` repeats the whole phase N times and prints
 *    the min / median / max of each configuration's saturated msg/s and of the ratio
 *    Redis 1 node ÷ embedded store per run (target ≥ 0.7×, PASS only when the worst run meets it).
 *    `--redis-nodes 1` keeps only the listed Redis configurations. `--node-prof DIR` writes a
 *    V8 CPU profile of each relay node into DIR (`--cpu-prof`, on the node's exit). `--compare DIR`
 *    (a checkout of another commit with its dependencies installed or linked) also runs that
 *    checkout's relay nodes in each run, interleaved, labelled "(compare)": before / after in
 *    the same conditions.
 * 3. Sustained: two Redis nodes at a fixed rate for several minutes (`--quick`: 20 s); RSS of
 *    each node sampled, growth reported after warm-up; 0 loss checked.
 *
 * Relay nodes (packages/relay/test/fixtures/cluster-node.ts) and load generators (this file
 * with `--worker`) are separate processes; each is started with its soft `ulimit -n` raised to
 * the hard limit. The machine's cores are shared by nodes, load generators and Redis: the
 * report gives the CPU each used, so a figure limited by the load generator shows as such.
 * Progress goes to stderr, the report (markdown) to stdout. Every phase is bounded in time.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { scriptArgs } from './lib/args.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const NODE_FIXTURE = join(root, 'packages/relay/test/fixtures/cluster-node.ts');
const ORIGIN = 'https://relay.bench.parley.test';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface NodeRef {
  readonly url: string;
  readonly origin: string;
}

// ───────────────────────────── load generator (child process) ─────────────────────────────

type ToWorker =
  | { type: 'connect'; nodes: NodeRef[]; count: number; pairs: boolean; concurrency: number; timeoutMs: number }
  | { type: 'run'; durationMs: number; window?: number; rate?: number }
  | { type: 'close' };

interface RunResult {
  sent: number;
  acked: number;
  rejected: number;
  delivered: number;
  duplicates: number;
  lost: number;
  unsettled: number;
  skipped: number;
  seconds: number;
  latencies: number[];
  /** Seconds since the run started at which each latency's message was sent (same order). */
  sentAt: number[];
}

type FromWorker =
  | { type: 'progress'; connected: number; failed: number }
  | { type: 'connected'; connected: number; failed: number; firstError?: string; ms: number }
  | { type: 'result'; result: RunResult };

async function worker(): Promise<void> {
  const { io } = await import('socket.io-client');
  const { IdentityKeyPair, initCrypto } = await import('@parley/protocol');
  const { relayAuthPayload } = await import('@parley/protocol/wire');
  try {
    await initCrypto('node');
  } catch {
    await initCrypto('sodium');
  }
  type Sock = ReturnType<typeof io>;
  interface Dev {
    id: ReturnType<typeof IdentityKeyPair.generate>;
    socket?: Sock;
    partner?: Dev;
    inFlight: number;
    acks: number[];
    ackTimer?: NodeJS.Timeout;
  }
  const devs: Dev[] = [];
  const send = (m: FromWorker) => process.send!(m);
  // The orchestrator is gone (killed): do not linger.
  process.on('disconnect', () => process.exit(0));
  // key `${from}\n${id}` → 1 acked, 2 delivered; deleted once both.
  let pending = new Map<string, number>();
  let stats = { sent: 0, acked: 0, rejected: 0, delivered: 0, duplicates: 0, skipped: 0 };
  let latencies: number[] = [];
  let sentAts: number[] = [];
  let runStart = 0;
  let recording = false;
  const delivered = new Set<string>();

  const onMessage = (d: Dev, m: { seq: number; from: string; id: string; envelope: Uint8Array }) => {
    const key = `${m.from}\n${m.id}`;
    if (delivered.has(key)) stats.duplicates++;
    else {
      delivered.add(key);
      stats.delivered++;
      if (recording && m.envelope.length >= 8) {
        const sentAt = Buffer.from(m.envelope.buffer, m.envelope.byteOffset, 8).readDoubleLE(0);
        latencies.push(performance.now() - sentAt);
        sentAts.push((sentAt - runStart) / 1000);
      }
      const s = pending.get(key);
      if (s === 1) pending.delete(key);
      else pending.set(key, 2);
    }
    d.acks.push(m.seq);
    d.ackTimer ??= setTimeout(() => {
      d.ackTimer = undefined;
      const seqs = d.acks.splice(0);
      for (let i = 0; i < seqs.length; i += 256) d.socket?.emit('ack', { seqs: seqs.slice(i, i + 256) }, () => undefined);
    }, 5);
  };

  const login = (d: Dev, node: NodeRef, timeoutMs: number) =>
    new Promise<void>((resolve, reject) => {
      const socket = io(node.url, { transports: ['websocket'], reconnection: false, forceNew: true, autoConnect: false, timeout: timeoutMs });
      const timer = setTimeout(() => {
        socket.disconnect();
        reject(new Error('login timed out'));
      }, timeoutMs);
      socket.on('message', (m: { seq: number; from: string; id: string; envelope: Uint8Array }) => onMessage(d, m));
      socket.once('connect_error', (e: Error) => {
        clearTimeout(timer);
        reject(e);
      });
      socket.once('hello', (hello: { serverNonce: Uint8Array }) => {
        const clientNonce = new Uint8Array(randomBytes(32));
        const timestamp = Date.now();
        const payload = relayAuthPayload({ serverNonce: new Uint8Array(hello.serverNonce), clientNonce, origin: node.origin, timestamp, deviceId: d.id.deviceId });
        const signature = d.id.sign('relayAuth', payload);
        socket.timeout(timeoutMs).emit('auth', { identity: d.id.publicIdentity, clientNonce, timestamp, signature }, (err: Error | null, r: { ok: boolean; error?: { code: string } }) => {
          clearTimeout(timer);
          if (err || !r.ok) {
            socket.disconnect();
            reject(new Error(err ? err.message : `auth refused: ${r.error?.code}`));
            return;
          }
          d.socket = socket;
          resolve();
        });
      });
      socket.connect();
    });

  const envelope = (): Uint8Array => {
    const b = Buffer.alloc(256);
    randomBytes(248).copy(b, 8);
    b.writeDoubleLE(performance.now(), 0);
    return b;
  };

  const sendOne = (d: Dev): Promise<void> => {
    const to = d.partner!;
    const id = randomBytes(16).toString('hex');
    stats.sent++;
    d.inFlight++;
    return new Promise((resolve) => {
      d.socket!.timeout(30_000).emit('send', { to: to.id.deviceId, id, envelope: envelope() }, (err: Error | null, r: { ok: boolean }) => {
        d.inFlight--;
        if (err || !r.ok) stats.rejected++;
        else {
          stats.acked++;
          const key = `${d.id.deviceId}\n${id}`;
          const s = pending.get(key);
          if (s === 2) pending.delete(key);
          else pending.set(key, 1);
        }
        resolve();
      });
    });
  };

  process.on('message', async (msg: ToWorker) => {
    if (msg.type === 'connect') {
      const t0 = performance.now();
      for (let i = 0; i < msg.count; i++) devs.push({ id: IdentityKeyPair.generate(), inFlight: 0, acks: [] });
      if (msg.pairs) for (let i = 0; i + 1 < devs.length; i += 2) [devs[i]!.partner, devs[i + 1]!.partner] = [devs[i + 1]!, devs[i]!];
      let connected = 0;
      let failed = 0;
      let firstError: string | undefined;
      let next = 0;
      let lastReport = 0;
      const lane = async () => {
        while (next < devs.length) {
          const i = next++;
          // Pairs: partner on the next node, so with several nodes every message crosses nodes.
          const node = msg.nodes[(msg.pairs ? (i % 2) + Math.floor(i / 2) : i) % msg.nodes.length]!;
          try {
            await login(devs[i]!, node, msg.timeoutMs);
            connected++;
          } catch (e) {
            failed++;
            firstError ??= e instanceof Error ? e.message : String(e);
          }
          if (connected + failed - lastReport >= 500) {
            lastReport = connected + failed;
            send({ type: 'progress', connected, failed });
          }
        }
      };
      await Promise.all(Array.from({ length: msg.concurrency }, lane));
      send({ type: 'connected', connected, failed, ms: performance.now() - t0, ...(firstError ? { firstError } : {}) });
    } else if (msg.type === 'run') {
      pending = new Map();
      stats = { sent: 0, acked: 0, rejected: 0, delivered: 0, duplicates: 0, skipped: 0 };
      latencies = [];
      sentAts = [];
      recording = true;
      const active = devs.filter((d) => d.socket?.connected && d.partner?.socket?.connected);
      const t0 = performance.now();
      runStart = t0;
      const stopAt = t0 + msg.durationMs;
      const loops: Promise<void>[] = [];
      if (msg.window) {
        // Closed loop: `window` sends in flight per device.
        for (const d of active) {
          for (let w = 0; w < msg.window; w++) {
            loops.push((async () => {
              while (performance.now() < stopAt) await sendOne(d);
            })());
          }
        }
      } else if (msg.rate) {
        // Open loop at `rate` msg/s in total, round-robin over devices, 10 ms ticks.
        loops.push((async () => {
          let due = 0;
          let k = 0;
          let last = performance.now();
          while (performance.now() < stopAt) {
            await sleep(10);
            const now = performance.now();
            due += ((now - last) / 1000) * msg.rate!;
            last = now;
            while (due >= 1) {
              due--;
              const d = active[k++ % active.length]!;
              if (d.inFlight >= 100) {
                stats.skipped++;
                continue;
              }
              void sendOne(d);
            }
          }
        })());
      }
      await Promise.all(loops);
      const seconds = (performance.now() - t0) / 1000;
      // Let sends in flight finish and deliveries arrive (bounded).
      const end = performance.now() + 15_000;
      while (performance.now() < end && (active.some((d) => d.inFlight > 0) || [...pending.values()].some((s) => s === 1))) await sleep(20);
      recording = false;
      let lost = 0;
      let unsettled = 0;
      for (const s of pending.values()) {
        if (s === 1) lost++; // acked to the sender, never delivered
        else unsettled++; // delivered, ack to the sender lost (timeout)
      }
      send({ type: 'result', result: { ...stats, lost, unsettled, seconds, latencies, sentAt: sentAts } });
    } else if (msg.type === 'close') {
      for (const d of devs) d.socket?.disconnect();
      setTimeout(() => process.exit(0), 200);
    }
  });
}

// ───────────────────────────── orchestrator ─────────────────────────────

const t0 = Date.now();
function progress(text: string): void {
  process.stderr.write(`[relay-scale ${((Date.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${text}\n`);
}

/** Spawns `node --import tsx <args>` with the soft fd limit raised to the hard one. */
function spawnNode(args: string[], ipc: boolean, env: Record<string, string> = {}, nodeFlags: string[] = []): ChildProcess {
  return spawn('/bin/sh', ['-c', 'ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$0" "$@"', process.execPath, ...nodeFlags, '--import', 'tsx', ...args], {
    cwd: root,
    stdio: ipc ? ['pipe', 'inherit', 'inherit', 'ipc'] : ['pipe', 'pipe', 'inherit'],
    env: { ...process.env, ...env },
  });
}

interface RelayProc extends NodeRef {
  readonly child: ChildProcess;
  /** Later stdout lines of the node (answers to SIGUSR2). */
  readonly lines: AsyncIterator<string>;
}

/** Forces a GC in the node (started with --expose-gc) and returns its live heap and RSS, MiB. */
async function gcStats(n: RelayProc): Promise<{ heap: number; rss: number }> {
  n.child.kill('SIGUSR2');
  const timeout = new Promise<undefined>((r) => setTimeout(() => r(undefined), 5000));
  for (;;) {
    const next = await Promise.race([n.lines.next(), timeout]);
    if (!next || next.done) return { heap: NaN, rss: NaN };
    try {
      const m = JSON.parse(next.value) as { gc?: boolean; heapUsed: number; rss: number };
      if (m.gc) return { heap: m.heapUsed / 2 ** 20, rss: m.rss / 2 ** 20 };
    } catch {
      /* not ours */
    }
  }
}

/** `--fsync everysec` (diagnosis only: not durable) lets the nodes start on a weaker Redis. */
let nodeEnv: Record<string, string> = {};
/** Extra Node flags of the relay nodes (`--node-prof`). */
let nodeFlags: string[] = [];

async function startRelayNode(store: { redis: string; prefix: string } | { sqlite: string }, fixture = NODE_FIXTURE): Promise<RelayProc> {
  const args = 'redis' in store ? [fixture, store.redis, store.prefix, ORIGIN] : [fixture, '-', 'x', ORIGIN, store.sqlite];
  const child = spawnNode(args, false, nodeEnv, ['--expose-gc', ...nodeFlags]);
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const first = await Promise.race([
    lines.next(),
    new Promise<never>((_, reject) => {
      setTimeout(() => reject(new Error('relay node did not start within 60 s')), 60_000).unref();
      child.once('exit', (code) => reject(new Error(`relay node exited (${code})`)));
    }),
  ]);
  if (first.done) throw new Error('relay node closed stdout');
  const { url, origin } = JSON.parse(first.value) as NodeRef;
  return { child, url, origin, lines };
}

function stopProc(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => c.kill('SIGKILL'), 5000);
    c.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    c.kill('SIGTERM');
  });
}

/** RSS in MiB from /proc (Linux). */
function rssMiB(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** CPU seconds (user + system) from /proc (Linux). */
function cpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return NaN;
  }
}

class Worker {
  readonly child: ChildProcess;
  #waiters: Array<(m: FromWorker) => boolean> = [];
  onProgress: ((m: Extract<FromWorker, { type: 'progress' }>) => void) | undefined;
  constructor() {
    this.child = spawnNode([fileURLToPath(import.meta.url), '--worker'], true);
    this.child.on('message', (m: FromWorker) => {
      if (m.type === 'progress') this.onProgress?.(m);
      this.#waiters = this.#waiters.filter((w) => !w(m));
    });
  }
  #expect<T extends FromWorker['type']>(type: T, ms: number): Promise<Extract<FromWorker, { type: T }>> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`worker: no ${type} within ${ms} ms`)), ms);
      this.#waiters.push((m) => {
        if (m.type !== type) return false;
        clearTimeout(t);
        resolve(m as Extract<FromWorker, { type: T }>);
        return true;
      });
      this.child.once('exit', () => reject(new Error('worker exited')));
    });
  }
  connect(nodes: NodeRef[], count: number, pairs: boolean, ms: number) {
    const p = this.#expect('connected', ms);
    this.child.send({ type: 'connect', nodes, count, pairs, concurrency: 100, timeoutMs: 30_000 } satisfies ToWorker);
    return p;
  }
  run(durationMs: number, o: { window?: number; rate?: number }) {
    const p = this.#expect('result', durationMs + 60_000);
    this.child.send({ type: 'run', durationMs, ...o } satisfies ToWorker);
    return p.then((m) => m.result);
  }
  async close(): Promise<void> {
    if (this.child.connected) this.child.send({ type: 'close' } satisfies ToWorker);
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        this.child.kill('SIGKILL');
        resolve();
      }, 5000);
      this.child.once('exit', () => {
        clearTimeout(t);
        resolve();
      });
    });
  }
}

/** `INFO persistence` of a redis-server as a record (one RESP bulk reply over a raw socket). */
async function redisInfo(port: number): Promise<Record<string, string>> {
  const { createConnection } = await import('node:net');
  return new Promise((resolve) => {
    const sock = createConnection({ host: '127.0.0.1', port });
    let buf = '';
    const t = setTimeout(() => done(), 2000);
    const done = () => {
      clearTimeout(t);
      sock.destroy();
      const out: Record<string, string> = {};
      for (const line of buf.split('\r\n')) {
        const i = line.indexOf(':');
        if (i > 0) out[line.slice(0, i)] = line.slice(i + 1);
      }
      resolve(out);
    };
    sock.on('data', (d) => {
      buf += d.toString('utf8');
      const m = /^\$(\d+)\r\n/.exec(buf);
      if (m && Buffer.byteLength(buf) >= m[0].length + Number(m[1])) done();
    });
    sock.on('error', () => done());
    sock.on('connect', () => sock.write('INFO persistence\r\n'));
  });
}

/** Two closed-loop halves of one configuration as one result (counts and seconds added). */
function mergeRuns(rs: RunResult[]): RunResult {
  const m: RunResult = { sent: 0, acked: 0, rejected: 0, delivered: 0, duplicates: 0, lost: 0, unsettled: 0, skipped: 0, seconds: 0, latencies: [], sentAt: [] };
  for (const r of rs) {
    for (const k of ['sent', 'acked', 'rejected', 'delivered', 'duplicates', 'lost', 'unsettled', 'skipped', 'seconds'] as const) m[k] += r[k];
    m.latencies.push(...r.latencies);
    m.sentAt.push(...r.sentAt);
  }
  return m;
}

/** min / median / max of a list. */
function spread(xs: number[]): { min: number; median: number; max: number } {
  const s = [...xs].sort((x, y) => x - y);
  return { min: s[0] ?? NaN, median: s.length ? (s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2) : NaN, max: s.at(-1) ?? NaN };
}

/** Target of issue 15: a Redis node reaches this share of the embedded store's throughput. */
const REDIS_RATIO_TARGET = 0.7;

/**
 * The spread of each configuration's saturated msg/s over the runs, and of the ratio Redis 1 node
 * ÷ embedded store (paired per run), with the verdict on the worst run.
 */
function spreadReport(rates: Map<string, number[]>, cpuPerMsg: Map<string, number[]>, runs: number, json: Record<string, unknown>): string[] {
  const lines = [`Saturated msg/s over ${runs} run${runs > 1 ? 's' : ''} (min / median / max), and the relay's CPU per message (nodes + redis-server, ms; less sensitive to other load on the machine):`, '',
    '| configuration | msg/s min | median | max | CPU ms/msg min | median | max |', '|---|---|---|---|---|---|---|'];
  const spreads: Record<string, unknown> = {};
  for (const [label, xs] of rates) {
    const s = spread(xs);
    const c = spread(cpuPerMsg.get(label) ?? []);
    spreads[label] = { runs: xs, ...s, cpuMsPerMsg: { runs: cpuPerMsg.get(label), ...c } };
    lines.push(`| ${label} | ${f0(s.min)} | ${f0(s.median)} | ${f0(s.max)} | ${c.min.toFixed(3)} | ${c.median.toFixed(3)} | ${c.max.toFixed(3)} |`);
  }
  json['throughputSpread'] = spreads;
  for (const tag of ['', ' (compare)']) lines.push(...ratioLines(rates, tag, json));
  return lines;
}

/** The ratio Redis 1 node ÷ embedded SQLite 1 node, paired per run, with its verdict. */
function ratioLines(rates: Map<string, number[]>, tag: string, json: Record<string, unknown>): string[] {
  const lines: string[] = [];
  const sqlite = rates.get(`embedded SQLite, 1 node${tag}`) ?? [];
  const redis1 = rates.get(`Redis, 1 node${tag}`) ?? [];
  const ratios = redis1.map((r, i) => r / (sqlite[i] ?? NaN)).filter((x) => Number.isFinite(x));
  if (ratios.length) {
    const s = spread(ratios);
    const pass = s.min >= REDIS_RATIO_TARGET;
    json[tag ? 'redisRatioCompare' : 'redisRatio'] = { runs: ratios, ...s, target: REDIS_RATIO_TARGET, pass };
    lines.push('', `Redis 1 node ÷ embedded SQLite 1 node${tag}, per run: ${ratios.map((x) => `${x.toFixed(2)}×`).join(', ')}; ` +
      `min / median / max **${s.min.toFixed(2)}× / ${s.median.toFixed(2)}× / ${s.max.toFixed(2)}×**, target ≥ ${REDIS_RATIO_TARGET}×: **${pass ? 'PASS' : 'FAIL'}** (worst run).`);
    progress(`throughput: Redis 1 node ÷ SQLite${tag}: ${ratios.map((x) => x.toFixed(2)).join(', ')} → ${pass ? 'PASS' : 'FAIL'}`);
  }
  return lines;
}

const pct = (sorted: number[], q: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]! : NaN);
const f0 = (x: number) => (Number.isFinite(x) ? x.toFixed(0) : '–');
const f1 = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : '–');

interface Budget {
  sockets: number;
  pairs: number;
  saturateS: number;
  window: number;
  rate: number;
  fixedS: number;
  sustainS: number;
  sustainRate: number;
}

async function main(): Promise<void> {
  const argv = scriptArgs();
  const quick = argv.includes('--quick');
  const opt = (name: string): string | undefined => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const b: Budget = quick
    ? { sockets: 2000, pairs: 100, saturateS: 3, window: 4, rate: 500, fixedS: 4, sustainS: 20, sustainRate: 500 }
    : { sockets: 10_000, pairs: 200, saturateS: 8, window: 4, rate: 1000, fixedS: 10, sustainS: 180, sustainRate: 1000 };
  if (opt('--sockets')) b.sockets = Number(opt('--sockets'));
  if (opt('--rate')) b.rate = b.sustainRate = Number(opt('--rate'));
  if (opt('--sustain')) b.sustainS = Number(opt('--sustain'));
  const runs = Math.max(1, Math.floor(Number(opt('--runs') ?? '1')));
  const redisNodes = (opt('--redis-nodes') ?? '1,2,3').split(',').map(Number).filter((n) => n >= 1);
  const jsonOut = opt('--json');
  const fsync = opt('--fsync') ?? 'always';
  if (fsync !== 'always') nodeEnv = { PARLEY_NODE_ALLOW_NON_DURABLE: '1' };
  const profDir = opt('--node-prof');
  if (profDir) nodeFlags = ['--cpu-prof', '--cpu-prof-dir', profDir];
  const phases = new Set((opt('--only') ?? 'sockets,throughput,sustained').split(','));

  const load0 = loadavg()[0]!;
  const hardFd = Number(spawnSync('/bin/sh', ['-c', 'ulimit -Hn'], { encoding: 'utf8' }).stdout.trim());
  const dir = mkdtempSync(join(tmpdir(), 'parley-relay-scale-'));
  const report: string[] = [];
  const json: Record<string, unknown> = { quick, budget: b, cpus: cpus().length, cpuModel: cpus()[0]?.model, memGiB: totalmem() / 2 ** 30, node: process.version, fdHardLimit: hardFd };
  const procs: ChildProcess[] = [];
  const cleanup = async () => {
    await Promise.all(procs.map((p) => stopProc(p)));
  };
  process.once('SIGINT', () => void cleanup().then(() => process.exit(130)));

  const { RedisServer, redisAvailable } = await import('../packages/relay/test/redis-server.js');
  const redis = redisAvailable() && (phases.has('throughput') || phases.has('sustained'))
    ? await RedisServer.start({ extraArgs: ['--appendfsync', fsync] })
    : undefined;
  if (!redis) progress('redis-server not installed: Redis phases skipped');

  report.push('## Relay scale', '', `Machine: ${cpus().length} × ${cpus()[0]?.model ?? '?'}, ${f0(totalmem() / 2 ** 30)} GiB, Node ${process.version}, fd hard limit ${hardFd}. ` +
    `Relay nodes, load generators and Redis share these cores. Redis: private redis-server, \`appendonly yes\`, \`appendfsync ${fsync}\`${fsync === 'always' ? '' : ' (**not durable: diagnosis only**)'}. ` +
    `Embedded store: SQLite WAL, \`synchronous = FULL\`.${quick ? ' **--quick** budgets.' : ''}`, '');

  try {
    // ── 1. sockets held by one node ──
    if (phases.has('sockets')) {
      progress(`sockets: one embedded-store node, ${b.sockets} authenticated websocket sockets (2 load processes)`);
      const node = await startRelayNode({ sqlite: join(dir, 'sockets.db') });
      procs.push(node.child);
      await sleep(1500);
      const before = rssMiB(node.child.pid);
      const workers = [new Worker(), new Worker()];
      procs.push(...workers.map((w) => w.child));
      const counts = [Math.ceil(b.sockets / 2), Math.floor(b.sockets / 2)];
      const seen = [0, 0];
      workers.forEach((w, i) => {
        w.onProgress = (m) => {
          seen[i] = m.connected + m.failed;
          progress(`sockets: ${seen[0]! + seen[1]!} / ${b.sockets} attempted, node RSS ${f0(rssMiB(node.child.pid))} MiB`);
        };
      });
      const cpu0 = cpuSeconds(node.child.pid);
      const results = await Promise.all(workers.map((w, i) => w.connect([node], counts[i]!, false, 600_000)));
      const connected = results.reduce((n, r) => n + r.connected, 0);
      const failed = results.reduce((n, r) => n + r.failed, 0);
      const loginS = Math.max(...results.map((r) => r.ms)) / 1000;
      const loginCpu = cpuSeconds(node.child.pid) - cpu0;
      progress(`sockets: ${connected} authenticated, ${failed} failed${failed ? ` (first: ${results.find((r) => r.firstError)?.firstError})` : ''}; idling 5 s`);
      await sleep(5000);
      const after = rssMiB(node.child.pid);
      const perSocketKiB = ((after - before) * 1024) / Math.max(1, connected);
      json['sockets'] = { target: b.sockets, connected, failed, loginSeconds: loginS, nodeCpuSeconds: loginCpu, rssBeforeMiB: before, rssAfterMiB: after, rssPerSocketKiB: perSocketKiB };
      report.push('### Concurrent authenticated sockets, one node', '',
        '| target | authenticated | failed | login time | node CPU for logins | node RSS idle → held | RSS per idle socket |', '|---|---|---|---|---|---|---|',
        `| ${b.sockets} | **${connected}** | ${failed} | ${f1(loginS)} s (${f0(connected / loginS)}/s) | ${f1(loginCpu)} s | ${f0(before)} → ${f0(after)} MiB | **${f1(perSocketKiB)} KiB** |`, '');
      if (failed) report.push(`First failure: \`${results.find((r) => r.firstError)?.firstError}\`.`, '');
      progress(`sockets: RSS ${f0(before)} → ${f0(after)} MiB, ${f1(perSocketKiB)} KiB per socket`);
      await Promise.all(workers.map((w) => w.close()));
      await stopProc(node.child);
    }

    // ── 2. throughput and latency ──
    if (phases.has('throughput')) {
      const compare = opt('--compare');
      const compareFixture = compare ? join(compare, 'packages/relay/test/fixtures/cluster-node.ts') : undefined;
      const base: Array<{ label: string; nodes: number; redis: boolean; fixture?: string }> = [
        { label: 'embedded SQLite, 1 node', nodes: 1, redis: false },
        ...(redis ? redisNodes.map((n) => ({ label: `Redis, ${n} node${n > 1 ? 's' : ''}`, nodes: n, redis: true })) : []),
      ];
      const configs = compareFixture ? base.flatMap((c) => [c, { ...c, label: `${c.label} (compare)`, fixture: compareFixture }]) : base;
      const rows: string[] = [];
      const out: unknown[] = [];
      /** Saturated msg/s per configuration label, one entry per run. */
      const rates = new Map<string, number[]>();
      /** Relay CPU (nodes + redis-server) per saturated message, ms: less sensitive to other load. */
      const cpuPerMsg = new Map<string, number[]>();
      type Cpu = { nodes: number; load: number; redis: number };
      for (let run = 1; run <= runs; run++) {
        const tag = runs > 1 ? ` (run ${run}/${runs})` : '';
        // Every configuration of the run up at once, then the saturated phase of each in two
        // halves, in the order A B … B A: the load on a shared machine moves within minutes, and
        // the mirrored order gives each configuration the same mean time (a linear drift cancels).
        const setups: Array<{ cfg: (typeof configs)[number]; nodes: RelayProc[]; w: Worker; cpuOf: () => Cpu; sats: Array<{ r: RunResult; cpu: Cpu }> }> = [];
        for (const cfg of configs) {
          progress(`throughput: ${cfg.label}${tag}: starting`);
          const prefix = `b${randomBytes(4).toString('hex')}:`;
          const nodes = await Promise.all(Array.from({ length: cfg.nodes }, () =>
            startRelayNode(cfg.redis ? { redis: redis!.url, prefix } : { sqlite: join(dir, `tp-${randomBytes(4).toString('hex')}.db`) }, cfg.fixture)));
          procs.push(...nodes.map((n) => n.child));
          const w = new Worker();
          procs.push(w.child);
          const c = await w.connect(nodes, b.pairs * 2, true, 120_000);
          if (c.failed) progress(`throughput: ${c.failed} logins failed (${c.firstError})`);
          const cpuOf = (): Cpu => ({ nodes: nodes.reduce((s, n) => s + cpuSeconds(n.child.pid), 0), load: cpuSeconds(w.child.pid), redis: cpuSeconds(redis?.pid) });
          // Warm-up (JIT, Redis script cache).
          await w.run(1000, { window: 1 });
          setups.push({ cfg, nodes, w, cpuOf, sats: [] });
        }
        const halfMs = Math.max(500, Math.round(b.saturateS * 500));
        for (const su of [...setups, ...[...setups].reverse()]) {
          progress(`throughput: ${su.cfg.label}${tag}: closed loop, ${b.pairs * 2} devices × window ${b.window}, ${halfMs / 1000} s (half ${su.sats.length + 1} of 2)`);
          const cpu0 = su.cpuOf();
          const r = await su.w.run(halfMs, { window: b.window });
          const cpu1 = su.cpuOf();
          su.sats.push({ r, cpu: { nodes: cpu1.nodes - cpu0.nodes, load: cpu1.load - cpu0.load, redis: cpu1.redis - cpu0.redis } });
          progress(`throughput: ${su.cfg.label}${tag}: ${f0(r.acked / r.seconds)} msg/s saturated`);
        }
        for (const { cfg, nodes, w, cpuOf, sats } of setups) {
          const sat = mergeRuns(sats.map((x) => x.r));
          const satCpu: Cpu = { nodes: 0, load: 0, redis: 0 };
          for (const x of sats) for (const k of ['nodes', 'load', 'redis'] as const) satCpu[k] += x.cpu[k];
          const satLat = sat.latencies.sort((x, y) => x - y);
          progress(`throughput: ${cfg.label}${tag}: ${f0(sat.acked / sat.seconds)} msg/s saturated; open loop at ${b.rate} msg/s, ${b.fixedS} s`);
          const cpu = cpuOf();
          const fixed = await w.run(b.fixedS * 1000, { rate: b.rate });
          const fixedCpu = { nodes: cpuOf().nodes - cpu.nodes, load: cpuOf().load - cpu.load, redis: cpuOf().redis - cpu.redis };
          const lat = fixed.latencies.sort((x, y) => x - y);
          const lost = sat.lost + fixed.lost;
          progress(`throughput: ${cfg.label}${tag}: at ${f0(fixed.acked / fixed.seconds)} msg/s p50 ${f1(pct(lat, 0.5))} ms p99 ${f1(pct(lat, 0.99))} ms, lost ${lost}`);
          const share = (x: number, s: number) => `${f0((100 * x) / s)}%`;
          rates.set(cfg.label, [...(rates.get(cfg.label) ?? []), sat.acked / sat.seconds]);
          cpuPerMsg.set(cfg.label, [...(cpuPerMsg.get(cfg.label) ?? []), (1000 * (satCpu.nodes + (cfg.redis ? satCpu.redis : 0))) / Math.max(1, sat.acked)]);
          rows.push(`| ${cfg.label}${tag} | **${f0(sat.acked / sat.seconds)}** | ${f1(pct(satLat, 0.5))} / ${f1(pct(satLat, 0.99))} | ${f0(fixed.acked / fixed.seconds)} | **${f1(pct(lat, 0.5))} / ${f1(pct(lat, 0.99))}** | ${lost} | ${sat.duplicates + fixed.duplicates} | ` +
            `${share(satCpu.nodes, sat.seconds)} / ${share(satCpu.load, sat.seconds)} / ${cfg.redis ? share(satCpu.redis, sat.seconds) : '–'} | ${share(fixedCpu.nodes, fixed.seconds)} / ${share(fixedCpu.load, fixed.seconds)} / ${cfg.redis ? share(fixedCpu.redis, fixed.seconds) : '–'} |`);
          out.push({ run, config: cfg, saturated: { ...sat, latencies: undefined, sentAt: undefined, msgPerSec: sat.acked / sat.seconds, p50: pct(satLat, 0.5), p99: pct(satLat, 0.99), cpu: satCpu },
            fixed: { ...fixed, latencies: undefined, sentAt: undefined, msgPerSec: fixed.acked / fixed.seconds, p50: pct(lat, 0.5), p99: pct(lat, 0.99), cpu: fixedCpu } });
          await w.close();
          await Promise.all(nodes.map((n) => stopProc(n.child)));
        }
      }
      json['throughput'] = out;
      report.push('### Throughput and latency (send → recipient, end to end)', '',
        `${b.pairs * 2} devices in pairs, partners on different nodes when there are several (every message crosses nodes). 256-byte envelopes; the recipient acks; the sender waits for the relay's durable-store ack. ` +
        `Saturated: a closed loop of ${b.window} sends in flight per device for ${b.saturateS} s, in two halves (configurations in the order A B … B A, all started first). Fixed: an open loop at ${b.rate} msg/s for ${b.fixedS} s. ` +
        'CPU: share of one core used by relay nodes (all) / load generator / redis-server.', '',
        '| configuration | saturated msg/s | saturated p50 / p99 ms | fixed-rate msg/s | fixed-rate p50 / p99 ms | lost | redelivered | CPU saturated | CPU fixed |',
        '|---|---|---|---|---|---|---|---|---|', ...rows, '');
      if (runs > 1 || rates.has('Redis, 1 node')) report.push(...spreadReport(rates, cpuPerMsg, runs, json), '');
    }

    // ── 3. sustained ──
    if (redis && phases.has('sustained')) {
      progress(`sustained: 2 Redis nodes at ${b.sustainRate} msg/s for ${b.sustainS} s`);
      const prefix = `s${randomBytes(4).toString('hex')}:`;
      const nodes = await Promise.all([0, 1].map(() => startRelayNode({ redis: redis.url, prefix })));
      procs.push(...nodes.map((n) => n.child));
      const w = new Worker();
      procs.push(w.child);
      await w.connect(nodes, b.pairs * 2, true, 120_000);
      await w.run(2000, { rate: b.sustainRate }); // warm-up (JIT, Redis script cache), not measured
      const samples: Array<{ s: number; rss: number[]; heapAfterGc: number[]; rssAfterGc: number[] }> = [];
      const start = Date.now();
      let sampling = Promise.resolve();
      const sampler = setInterval(() => {
        sampling = (async () => {
          const s = (Date.now() - start) / 1000;
          const rss = nodes.map((n) => rssMiB(n.child.pid));
          const gcs = await Promise.all(nodes.map((n) => gcStats(n)));
          samples.push({ s, rss, heapAfterGc: gcs.map((g) => g.heap), rssAfterGc: gcs.map((g) => g.rss) });
          progress(`sustained: ${f0(s)} / ${b.sustainS} s, node RSS ${rss.map(f0).join(' + ')} MiB, live heap after GC ${gcs.map((g) => f1(g.heap)).join(' + ')} MiB, redis RSS ${f0(rssMiB(redis.pid))} MiB`);
        })();
      }, quick ? 2000 : 10_000);
      const r = await w.run(b.sustainS * 1000, { rate: b.sustainRate });
      clearInterval(sampler);
      await sampling;
      // p99 per window of the run, to tell a steady tail from a few stalls.
      const windowS = quick ? 5 : 15;
      const windows: Array<{ from: number; n: number; p50: number; p99: number; max: number }> = [];
      for (let from = 0; from < r.seconds; from += windowS) {
        const l = r.latencies.filter((_, i) => r.sentAt[i]! >= from && r.sentAt[i]! < from + windowS).sort((x, y) => x - y);
        windows.push({ from, n: l.length, p50: pct(l, 0.5), p99: pct(l, 0.99), max: l.at(-1) ?? NaN });
      }
      const persistence = await redisInfo(redis.port);
      const lat = r.latencies.sort((x, y) => x - y);
      // Warm-up: the first 20% of the run (at least one sample); growth from there to the end.
      const warm = samples.find((x) => x.s >= b.sustainS * 0.2) ?? samples[0];
      const last = samples.at(-1);
      const sum = (a: number[]) => a.reduce((x, y) => x + y, 0);
      const growth = warm && last ? (sum(last.rss) / sum(warm.rss) - 1) * 100 : NaN;
      const heapGrowth = warm && last ? (sum(last.heapAfterGc) / sum(warm.heapAfterGc) - 1) * 100 : NaN;
      json['sustained'] = { rate: b.sustainRate, ...r, latencies: undefined, sentAt: undefined, windows, redisPersistence: persistence, msgPerSec: r.acked / r.seconds, p50: pct(lat, 0.5), p99: pct(lat, 0.99), samples, rssGrowthPct: growth, heapAfterGcGrowthPct: heapGrowth };
      report.push('### Sustained load, 2 nodes on Redis', '',
        '| duration | msg/s | messages | p50 / p99 ms | lost | node RSS after warm-up → end | RSS growth | live heap after GC, warm-up → end | heap growth |', '|---|---|---|---|---|---|---|---|---|',
        `| ${f0(r.seconds)} s | ${f0(r.acked / r.seconds)} | ${r.acked} | ${f1(pct(lat, 0.5))} / ${f1(pct(lat, 0.99))} | ${r.lost} | ${warm ? f0(sum(warm.rss)) : '–'} → ${last ? f0(sum(last.rss)) : '–'} MiB | **${f1(growth)}%** | ` +
          `${warm ? f1(sum(warm.heapAfterGc)) : '–'} → ${last ? f1(sum(last.heapAfterGc)) : '–'} MiB | **${f1(heapGrowth)}%** |`, '',
        `Warm-up: the first 20% of the run. RSS and heap are the sum over both nodes; the heap figure is read right after a forced GC in each node (SIGUSR2, every sample), so it shows retained memory, while RSS also moves with V8's own sizing of its heap.`, '');
      const stalls = windows.filter((x) => x.p99 > 200);
      report.push(`p99 by ${windowS}-s window (ms): ${windows.map((x) => f0(x.p99)).join(', ')}; ${stalls.length} of ${windows.length} windows above 200 ms. ` +
        `redis-server during the run: ${persistence['aof_rewrites'] ?? '?'} AOF rewrites, aof_delayed_fsync ${persistence['aof_delayed_fsync'] ?? '?'}.`, '');
      progress(`sustained: ${f0(r.acked / r.seconds)} msg/s, p99 ${f1(pct(lat, 0.99))} ms, lost ${r.lost}, RSS growth ${f1(growth)}%, heap-after-GC growth ${f1(heapGrowth)}%`);
      await w.close();
      await Promise.all(nodes.map((n) => stopProc(n.child)));
    }
  } finally {
    await cleanup();
    await redis?.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
  json['loadavg'] = { start: load0, end: loadavg()[0] };
  report.push(`Load average (1 min) at start ${load0.toFixed(1)}, at end ${loadavg()[0]!.toFixed(1)}, on ${cpus().length} cores: other work on the machine shows up as noise.`, '');
  report.push(`Command: \`node --import tsx bench/relay-scale.ts ${argv.filter((a) => a !== '--json' && a !== jsonOut).join(' ')}\` (${f0((Date.now() - t0) / 1000)} s).`);
  process.stdout.write(`${report.join('\n')}\n`);
  if (jsonOut) writeFileSync(jsonOut, JSON.stringify(json, null, 2));
}

if (process.argv.includes('--worker')) await worker();
else await main();
