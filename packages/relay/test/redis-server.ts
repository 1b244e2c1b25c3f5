/**
 * A private `redis-server` for tests: 127.0.0.1, a free port, a temporary data directory, AOF
 * with `appendfsync always` and no RDB snapshots. It can be stopped, killed with SIGKILL and
 * restarted on the same directory and port (the AOF brings the data back).
 *
 * Tests that need it call {@link redisAvailable} and skip with a clear reason only when the
 * binary is absent. CI (`.ci/run`) installs Debian's `redis-server`, so there they always run.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Where Debian puts it; `REDIS_SERVER` overrides. */
export const REDIS_SERVER_BIN = process.env['REDIS_SERVER'] ?? '/usr/bin/redis-server';

/** True when the redis-server binary exists. */
export function redisAvailable(): boolean {
  return existsSync(REDIS_SERVER_BIN);
}

/** The reason tests give when they skip. */
export const REDIS_SKIP = `redis-server not installed (${REDIS_SERVER_BIN})`;

/** A free TCP port on 127.0.0.1 (bound, read, released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** Sends one inline command and resolves with the first reply line (or rejects). */
function inline(port: number, command: string, ms = 1000): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = createConnection({ host: '127.0.0.1', port });
    const t = setTimeout(() => {
      sock.destroy();
      reject(new Error('timeout'));
    }, ms);
    let buf = '';
    sock.on('data', (d) => {
      buf += d.toString('utf8');
      const nl = buf.indexOf('\r\n');
      if (nl >= 0) {
        clearTimeout(t);
        sock.destroy();
        resolve(buf.slice(0, nl));
      }
    });
    sock.on('error', (e) => {
      clearTimeout(t);
      reject(e);
    });
    sock.on('connect', () => sock.write(`${command}\r\n`));
  });
}

export interface RedisServerOptions {
  /** Extra `redis-server` arguments, e.g. `['--appendonly', 'no']` for the durability check test. */
  extraArgs?: string[];
}

/** Servers still running: SIGKILLed when this process exits, so a failed test leaves none behind. */
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const p of live) p.kill('SIGKILL');
});

/** A running private redis-server. */
export class RedisServer {
  readonly dir: string;
  readonly port: number;
  #proc: ChildProcess | undefined;
  #stderr = '';
  readonly #args: string[];

  private constructor(dir: string, port: number, args: string[]) {
    this.dir = dir;
    this.port = port;
    this.#args = args;
  }

  /** `redis://127.0.0.1:<port>` */
  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.#proc?.pid;
  }

  /** Starts a server on a fresh temp dir and a free port; resolves once it answers PING. */
  static async start(o: RedisServerOptions = {}): Promise<RedisServer> {
    const dir = mkdtempSync(join(tmpdir(), 'parley-redis-'));
    const port = await freePort();
    const args = [
      '--bind', '127.0.0.1', '--port', String(port), '--dir', dir,
      '--appendonly', 'yes', '--appendfsync', 'always', '--save', '',
      '--protected-mode', 'yes', '--daemonize', 'no', '--loglevel', 'warning',
      '--databases', '1',
      ...(o.extraArgs ?? []),
    ];
    const server = new RedisServer(dir, port, args);
    await server.restart();
    return server;
  }

  /** Starts (again) on the same dir and port; resolves once PING answers PONG (AOF loaded). */
  async restart(timeoutMs = 10_000): Promise<void> {
    if (this.#proc && this.#proc.exitCode === null && this.#proc.signalCode === null) throw new Error('redis-server is running');
    const proc = spawn(REDIS_SERVER_BIN, this.#args, { stdio: ['ignore', 'ignore', 'pipe'] });
    this.#proc = proc;
    live.add(proc);
    proc.once('exit', () => live.delete(proc));
    proc.stderr?.on('data', (d: Buffer) => {
      this.#stderr = (this.#stderr + d.toString('utf8')).slice(-4000);
    });
    const end = Date.now() + timeoutMs;
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`redis-server exited (${proc.exitCode}): ${this.#stderr}`);
      try {
        // -LOADING while the AOF is replayed; PONG when ready.
        if ((await inline(this.port, 'PING', 500)) === '+PONG') return;
      } catch {
        /* not listening yet */
      }
      if (Date.now() > end) {
        proc.kill('SIGKILL');
        throw new Error(`redis-server did not answer PING within ${timeoutMs} ms: ${this.#stderr}`);
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  /** SIGKILL: no shutdown save, no AOF rewrite. What is on disk is what `appendfsync` wrote. */
  async kill(): Promise<void> {
    await this.#signal('SIGKILL');
  }

  /** Graceful stop (SIGTERM). */
  async stop(): Promise<void> {
    await this.#signal('SIGTERM');
  }

  async #signal(sig: NodeJS.Signals): Promise<void> {
    const proc = this.#proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    proc.kill(sig);
    const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(t);
  }

  /** Runs one inline command (e.g. `FLUSHALL`) and returns the first reply line. */
  command(line: string): Promise<string> {
    return inline(this.port, line);
  }

  /** Kills the server and deletes its directory. */
  async destroy(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
