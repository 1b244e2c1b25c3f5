/**
 * Shared pieces of the relay bench: progress logging, statistics, formatting, and the handle on
 * a server child process (`server.ts`), which answers one request at a time over IPC.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ServerKind, ServerReply, ServerRequest } from './server.js';

const here = dirname(fileURLToPath(import.meta.url));

/** A server child that does not answer within this long is killed and the run fails. */
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

/**
 * One server (relay or bare forwarder) in its own process, so it has its own event loop and
 * its CPU time can be read apart from the load generator's. Requests are answered in order.
 */
export class ServerProcess {
  readonly #child: ChildProcess;
  readonly #pending: ((r: ServerReply) => void)[] = [];
  #exited = false;
  url = '';
  origin = '';

  private constructor(readonly kind: ServerKind) {
    this.#child = fork(join(here, 'server.ts'), [], {
      execArgv: ['--import', 'tsx'],
      // The child's stdout (relay warnings) goes to our stderr: stdout carries only the report.
      stdio: ['ignore', 2, 'inherit', 'ipc'],
    });
    this.#child.on('message', (r: ServerReply) => this.#pending.shift()?.(r));
    this.#child.on('exit', (code) => {
      this.#exited = true;
      for (const p of this.#pending.splice(0)) p({ ok: false, error: `server process exited (code ${code})` });
    });
  }

  /** Forks `server.ts` and starts a server of `kind` in it (127.0.0.1, port 0). */
  static async start(kind: ServerKind, sqlitePath?: string): Promise<ServerProcess> {
    const s = new ServerProcess(kind);
    const r = await s.request({ op: 'start', kind, ...(sqlitePath ? { sqlitePath } : {}) });
    const v = r as { url: string; origin: string };
    s.url = v.url;
    s.origin = v.origin;
    return s;
  }

  /** Sends one request; rejects on an error answer, an exit or a timeout. */
  async request(req: ServerRequest): Promise<unknown> {
    if (this.#exited) throw new Error(`${this.kind} server has exited`);
    const reply = await new Promise<ServerReply>((resolve) => {
      const timer = setTimeout(() => {
        this.#child.kill();
        resolve({ ok: false, error: `no answer to ${req.op} within ${REQUEST_TIMEOUT_MS / 1000} s` });
      }, REQUEST_TIMEOUT_MS);
      this.#pending.push((r) => {
        clearTimeout(timer);
        resolve(r);
      });
      this.#child.send(req);
    });
    if (!reply.ok) throw new Error(`${this.kind} server: ${reply.error}`);
    return reply.value;
  }

  /** CPU seconds the server process has used so far (user + system, all threads). */
  async cpuSeconds(): Promise<number> {
    return (await this.request({ op: 'cpu' })) as number;
  }

  /** Closes the server and lets the process exit (killed if it hangs). */
  async stop(): Promise<void> {
    if (this.#exited) return;
    const exited = new Promise<void>((resolve) => this.#child.once('exit', () => resolve()));
    await this.request({ op: 'stop' }).catch(() => undefined);
    const timer = setTimeout(() => this.#child.kill(), 5_000);
    await exited;
    clearTimeout(timer);
  }
}
