/** A relay in a child process (fixtures/relay-mem.ts) whose memory tests read between steps. */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface, type Interface } from 'node:readline';
import type { Relay } from '../src/index.js';
import { TEST_LIMITS } from './helpers.js';

const root = join(import.meta.dirname, '..', '..', '..');
const fixture = join(import.meta.dirname, 'fixtures', 'relay-mem.ts');

/** Bytes, after two forced garbage collections in the relay process. */
export interface RelayMemory {
  rss: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
}

export interface MemRelay {
  /** Enough of a {@link Relay} for `login` and `open`. */
  readonly relay: Relay;
  readonly child: ChildProcess;
  mem(): Promise<RelayMemory>;
  /** GET /metrics of the child. */
  metrics(): Promise<string>;
  close(): Promise<void>;
}

export const MiB = 1024 * 1024;
export const mib = (n: number): string => (n / MiB).toFixed(1);

export async function spawnMemRelay(limits: Record<string, number> = {}): Promise<MemRelay> {
  const child = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', fixture, JSON.stringify({ ...TEST_LIMITS, ...limits })], {
    cwd: root,
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const rl: Interface = createInterface({ input: child.stdout! });
  const lines: string[] = [];
  const waiters: ((line: string) => void)[] = [];
  rl.on('line', (line) => {
    const w = waiters.shift();
    if (w) w(line);
    else lines.push(line);
  });
  const next = (ms = 30_000) =>
    new Promise<string>((resolve, reject) => {
      const queued = lines.shift();
      if (queued !== undefined) return resolve(queued);
      const t = setTimeout(() => reject(new Error('relay child did not answer')), ms);
      waiters.push((l) => {
        clearTimeout(t);
        resolve(l);
      });
    });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const { url, origin } = JSON.parse(await next()) as { url: string; origin: string };
  return {
    relay: { url, origin } as Relay,
    child,
    async mem() {
      child.stdin!.write('mem\n');
      return JSON.parse(await next()) as RelayMemory;
    },
    async metrics() {
      return (await fetch(`${url}/metrics`)).text();
    },
    async close() {
      child.stdin!.end();
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    },
  };
}
