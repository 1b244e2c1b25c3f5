/**
 * Shared pieces of the relay bench: progress logging, statistics, formatting, and the child
 * processes (`server.ts`, `load-worker.ts`), which answer one request at a time over IPC.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ServerKind, ServerRequest, ServerUsage } from './server.js';

const here = dirname(fileURLToPath(import.meta.url));

/** A child that does not answer within this long (by default) is killed and its case fails. */
const REQUEST_TIMEOUT_MS = 60_000;

export const log = (line: string): void => void process.stderr.write(`[bench:relay] ${line}\n`);

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** CPU seconds (user + system, all threads) of this process since `from` (`process.cpuUsage()`). */
export function cpuSecondsSince(from: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(from);
  return (d.user + d.system) / 1e6;
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** The `q`-quantile (0…1) of `sorted` (ascending), nearest rank. */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank]!;
}

export const fmtNum = (x: number): string =>
  Number.isFinite(x) ? x.toLocaleString('en-US', { maximumSignificantDigits: 3 }) : '—';
export const fmtMs = (x: number): string => (Number.isFinite(x) ? `${x < 10 ? x.toFixed(2) : x.toFixed(1)} ms` : '—');
export const fmtPct = (x: number): string => (Number.isFinite(x) ? `${Math.round(x * 100)} %` : '—');

export function table(rows: readonly (readonly string[])[]): string {
  const [head, ...body] = rows;
  return [`| ${head!.join(' | ')} |`, `|${head!.map(() => '---').join('|')}|`, ...body.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

/** Requests to a child process carry an `op`; every child understands `{ op: 'stop' }`. */
export interface ChildRequest {
  readonly op: string;
}

export type ChildReply = { ok: true; value: unknown } | { ok: false; error: string };

/**
 * A child process of the bench (`server.ts`, `load-worker.ts`), forked with tsx, answering
 * requests one at a time over IPC, in order.
 */
export class Child<Req extends ChildRequest> {
  readonly #child: ChildProcess;
  readonly #pending: ((r: ChildReply) => void)[] = [];
  #exited = false;

  constructor(file: string, readonly label: string) {
    this.#child = fork(join(here, file), [], {
      execArgv: ['--import', 'tsx'],
      // The child's stdout goes to our stderr: stdout carries only the report.
      stdio: ['ignore', 2, 'inherit', 'ipc'],
    });
    this.#child.on('message', (r: ChildReply) => this.#pending.shift()?.(r));
    this.#child.on('exit', (code) => {
      this.#exited = true;
      for (const p of this.#pending.splice(0)) p({ ok: false, error: `process exited (code ${code})` });
    });
  }

  /** Sends one request; rejects on an error answer, an exit or a timeout. */
  async request(req: Req | { op: 'stop' }, timeoutMs = REQUEST_TIMEOUT_MS): Promise<unknown> {
    if (this.#exited) throw new Error(`${this.label} has exited`);
    const reply = await new Promise<ChildReply>((resolve) => {
      const timer = setTimeout(() => {
        this.#child.kill();
        resolve({ ok: false, error: `no answer to ${req.op} within ${timeoutMs / 1000} s` });
      }, timeoutMs);
      this.#pending.push((r) => {
        clearTimeout(timer);
        resolve(r);
      });
      this.#child.send(req);
    });
    if (!reply.ok) throw new Error(`${this.label}: ${reply.error}`);
    return reply.value;
  }

  /** Asks the child to close what it holds and exit; kills it if it hangs. */
  async stop(): Promise<void> {
    if (this.#exited) return;
    const exited = new Promise<void>((resolve) => this.#child.once('exit', () => resolve()));
    await this.request({ op: 'stop' }, 10_000).catch(() => undefined);
    const timer = setTimeout(() => this.#child.kill(), 5_000);
    await exited;
    clearTimeout(timer);
  }
}

/**
 * The child's side of {@link Child}: answers requests in order with `handle`; on `stop` (or
 * when the parent goes away) runs `close` and exits.
 */
export function serveRequests<Req extends ChildRequest>(handle: (req: Req) => Promise<unknown>, close: () => Promise<void>): void {
  let chain: Promise<void> = Promise.resolve();
  let closing: Promise<void> | undefined;
  const shutdown = (): Promise<void> => (closing ??= close().catch(() => undefined).then(() => process.exit(0)));
  process.on('message', (req: Req) => {
    chain = chain.then(async () => {
      if (req.op === 'stop') {
        await close().catch(() => undefined);
        closing ??= Promise.resolve();
        process.send?.({ ok: true, value: null } satisfies ChildReply, () => process.exit(0));
        return;
      }
      let reply: ChildReply;
      try {
        reply = { ok: true, value: await handle(req) };
      } catch (e) {
        reply = { ok: false, error: e instanceof Error ? e.message : String(e) };
      }
      process.send?.(reply);
    });
  });
  process.on('disconnect', () => void shutdown());
}

/** CPU seconds (user + system, all threads) this process has used so far. */
export function processCpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

/** One server (relay or bare forwarder) in its own process (`server.ts`). */
export class ServerProcess {
  readonly #child: Child<ServerRequest>;
  url = '';
  origin = '';

  private constructor(readonly kind: ServerKind) {
    this.#child = new Child<ServerRequest>('server.ts', `${kind} server`);
  }

  /** Forks `server.ts` and starts a server of `kind` in it (127.0.0.1, port 0). */
  static async start(kind: ServerKind, sqlitePath?: string): Promise<ServerProcess> {
    const s = new ServerProcess(kind);
    let v: { url: string; origin: string };
    try {
      v = (await s.request({ op: 'start', kind, ...(sqlitePath ? { sqlitePath } : {}) })) as typeof v;
    } catch (e) {
      await s.stop();
      throw e;
    }
    s.url = v.url;
    s.origin = v.origin;
    return s;
  }

  request(req: ServerRequest): Promise<unknown> {
    return this.#child.request(req);
  }

  /** What the server process has used so far: CPU seconds and event-loop busy seconds. */
  async usage(): Promise<ServerUsage> {
    return (await this.request({ op: 'usage' })) as ServerUsage;
  }

  /** CPU seconds the server process has used so far (user + system, all threads). */
  async cpuSeconds(): Promise<number> {
    return (await this.usage()).cpuSecs;
  }

  stop(): Promise<void> {
    return this.#child.stop();
  }
}
