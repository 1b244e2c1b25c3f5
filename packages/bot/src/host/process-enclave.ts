/**
 * The enclave in its own Node process under Node's permission model (process mode, README
 * "Enclave modes: worker and process"). Runs in the host: it starts the process and gives the
 * supervisor the same channel a worker gives (`postMessage`, `message`/`error`/`exit` events,
 * `terminate`), over an IPC channel with `advanced` serialization (structured clone), so the RPC
 * is the very same (`rpc/messages.ts`, validated on both ends).
 *
 * The process runs with `--experimental-permission` and:
 * - `--allow-fs-read` only for the code it loads (the SDK's packages and their dependencies, the
 *   handler's measured files and their package folders; from the sources also TypeScript), the
 *   sealing secret file and the rollback anchor;
 * - `--allow-fs-write` only for the rollback anchor (and its temporary file) and the sealing
 *   secret file when the enclave creates it; the sealed state is written by the host;
 * - `--allow-worker`, because the enclave runs the handler in a worker of its own (the handler
 *   cannot reach `node:worker_threads`: `enclave/handler-sandbox.ts`);
 * - no `--allow-child-process`, no `--allow-addons`, no `--allow-wasi`;
 * - an empty environment and no arguments but these.
 * Node 20's permission model does not restrict the network: egress is held to the measured
 * policy by `ctx.fetch` and the handler sandbox (JavaScript-level), in this mode as in the other.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { lstatSync, readFileSync, readlinkSync, realpathSync, statSync } from 'node:fs';
import { dirname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { MessagePort } from 'node:worker_threads';
import { ParleyError } from '@parley/protocol/errors';
import { enclaveCodeFiles, handlerCodeFiles } from '../measurement.js';

/** The enclave's entry in process mode: plain node runs it (from the sources, with process-bootstrap.mjs first). */
const FROM_SOURCES = import.meta.url.endsWith('.ts');
export const PROCESS_ENTRY_URL = new URL(FROM_SOURCES ? '../enclave/entry.ts' : '../enclave/entry.js', import.meta.url);
const DEV_BOOTSTRAP_URL = new URL('../enclave/process-bootstrap.mjs', import.meta.url);

/** What the supervisor needs of a running enclave: a `Worker` has it, and so has {@link ProcessEnclave}. */
export interface EnclaveChannel {
  postMessage(message: unknown, transfer?: readonly (ArrayBuffer | MessagePort)[]): void;
  on(event: 'message', listener: (value: unknown) => void): unknown;
  on(event: 'error', listener: (err: Error) => void): unknown;
  on(event: 'exit', listener: (code: number | string) => void): unknown;
  terminate(): Promise<unknown>;
}

/** What the process may read and write (see the file comment). */
export interface ProcessGrants {
  readonly read: readonly string[];
  readonly write: readonly string[];
}

export interface ProcessEnclaveOptions {
  /** The handler module (`file:` URL): its measured files and package folders are readable. */
  handlerUrl: string;
  /** The sealing secret file, if the enclave reads one; `create`: it may write it. */
  sealingFile?: { path: string; create: boolean };
  /** The rollback anchor file (read and written by the enclave). */
  rollbackAnchor?: string;
  /** The enclave's entry (tests swap in a fake enclave). */
  entryUrl?: URL;
  /** Old-generation heap limit of the process, MB (`--max-old-space-size`). */
  maxOldGenerationSizeMb?: number;
  /** Extra node options. */
  execArgv?: readonly string[];
}

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

function real(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
}

/** The folder of the nearest package.json above `file` (or the file's folder when there is none). */
function packageRoot(file: string): string {
  for (let dir = dirname(file), i = 0; i < 12; i++, dir = dirname(dir)) {
    try {
      if (statSync(join(dir, 'package.json')).isFile()) return dir;
    } catch {
      // keep walking up
    }
    if (dirname(dir) === dir) break;
  }
  return dirname(file);
}

/**
 * Resolves `p` as `realpath` does, component by component, adding to `links` every symlink it
 * crosses, at the path where it is met: Node reads each of them (lstat) when it resolves a
 * module, so each needs a read grant (pnpm's layouts chain them).
 */
function crossLinks(p: string, links: Set<string>, depth = 0): string {
  const parts = p.split(sep).filter((x) => x !== '');
  let at: string = sep;
  for (let i = 0; i < parts.length; i++) {
    const next = join(at, parts[i]!);
    let link = false;
    try {
      link = lstatSync(next).isSymbolicLink();
    } catch {
      return join(next, ...parts.slice(i + 1));
    }
    if (link && depth < 40) {
      links.add(next);
      at = crossLinks(resolve(dirname(next), readlinkSync(next)), links, depth + 1);
    } else {
      at = next;
    }
  }
  return at;
}

/**
 * Where `name` is installed as seen from `fromDir` (Node's node_modules lookup): its real path,
 * and the symlinks Node crosses to get there.
 */
function installed(name: string, fromDir: string): { links: string[]; path: string } | undefined {
  for (let d = fromDir; ; d = dirname(d)) {
    const candidate = join(d, 'node_modules', name);
    if (isDir(candidate)) {
      const links = new Set<string>();
      crossLinks(candidate, links);
      return { links: [...links], path: real(candidate) };
    }
    if (dirname(d) === d) return undefined;
  }
}

/** `roots` and every package their `dependencies` (and optional ones) reach: real paths and the links to them. */
function withDependencies(roots: readonly string[]): Set<string> {
  const seen = new Set<string>();
  const links = new Set<string>(roots);
  const queue = roots.map(real);
  while (queue.length > 0 && seen.size < 500) {
    const dir = queue.shift()!;
    if (seen.has(dir)) continue;
    seen.add(dir);
    let pkg: { dependencies?: Record<string, string>; optionalDependencies?: Record<string, string> };
    try {
      pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as typeof pkg;
    } catch {
      continue;
    }
    for (const name of Object.keys({ ...pkg.dependencies, ...pkg.optionalDependencies })) {
      const at = installed(name, dir);
      if (!at) continue;
      for (const l of at.links) links.add(l);
      if (!seen.has(at.path)) queue.push(at.path);
    }
  }
  for (const l of links) seen.add(l);
  return seen;
}

/**
 * What the enclave process may read and write, from what it will load: computed in the host
 * (which reads the same files to measure them).
 */
export function processGrants(opts: Pick<ProcessEnclaveOptions, 'handlerUrl' | 'sealingFile' | 'rollbackAnchor' | 'entryUrl'>): ProcessGrants {
  const entry = fileURLToPath(opts.entryUrl ?? PROCESS_ENTRY_URL);
  const code = [entry, ...enclaveCodeFiles().map(([, path]) => path)].map((p) => packageRoot(real(p)));
  if (FROM_SOURCES) {
    const ts = installed('typescript', dirname(fileURLToPath(DEV_BOOTSTRAP_URL)));
    if (ts) code.push(...ts.links, ts.path);
  }
  const read = withDependencies(code);
  for (const f of handlerCodeFiles(opts.handlerUrl)) {
    read.add(dirname(f.path));
    read.add(packageRoot(f.path));
  }
  const write: string[] = [];
  if (opts.sealingFile) {
    read.add(opts.sealingFile.path);
    if (opts.sealingFile.create) write.push(opts.sealingFile.path);
  }
  if (opts.rollbackAnchor) {
    // The anchor is written whole through a temporary file, then its folder is synced.
    read.add(opts.rollbackAnchor);
    read.add(`${opts.rollbackAnchor}.tmp`);
    read.add(dirname(opts.rollbackAnchor));
    write.push(opts.rollbackAnchor, `${opts.rollbackAnchor}.tmp`);
  }
  // A granted folder covers what is under it: keep the list short.
  const sorted = [...read].sort();
  const minimal = sorted.filter((p) => !sorted.some((q) => q !== p && p.startsWith(q.endsWith('/') ? q : `${q}/`)));
  return { read: minimal, write };
}

/** The node options of the enclave process. */
export function processArgs(grants: ProcessGrants, opts: Pick<ProcessEnclaveOptions, 'maxOldGenerationSizeMb' | 'execArgv'>): string[] {
  return [
    '--experimental-permission',
    ...grants.read.map((p) => `--allow-fs-read=${p}`),
    ...grants.write.map((p) => `--allow-fs-write=${p}`),
    '--allow-worker',
    // The permission model's warnings would print at every (re)start; README states what they say.
    '--disable-warning=ExperimentalWarning',
    '--disable-warning=SecurityWarning',
    ...(opts.maxOldGenerationSizeMb ? [`--max-old-space-size=${opts.maxOldGenerationSizeMb}`] : []),
    ...(FROM_SOURCES ? ['--import', DEV_BOOTSTRAP_URL.href] : []),
    ...(opts.execArgv ?? []),
  ];
}

type Listener = (arg: never) => void;

/** The enclave process, seen from the supervisor. */
export class ProcessEnclave implements EnclaveChannel {
  readonly #child: ChildProcess;
  readonly #listeners = { message: [] as Listener[], error: [] as Listener[], exit: [] as Listener[] };
  #exited: Promise<void>;
  #alive = true;

  private constructor(child: ChildProcess) {
    this.#child = child;
    this.#exited = new Promise<void>((resolve) => {
      child.once('exit', (code, signal) => {
        this.#alive = false;
        this.#emit('exit', code ?? signal ?? 'unknown');
        resolve();
      });
    });
    child.on('message', (m: unknown) => this.#emit('message', m));
    child.on('error', (e: Error) => {
      // A failed spawn or send: report it like a worker error; the exit (if any) follows.
      this.#emit('error', e);
      if (child.exitCode === null && child.signalCode === null && child.pid === undefined) {
        this.#alive = false;
        this.#emit('exit', 'spawn');
      }
    });
  }

  /** Starts the enclave process. @throws ParleyError `USAGE` when the handler cannot be read. */
  static start(opts: ProcessEnclaveOptions): ProcessEnclave {
    const grants = processGrants(opts);
    const args = processArgs(grants, opts);
    const child = spawn(process.execPath, [...args, fileURLToPath(opts.entryUrl ?? PROCESS_ENTRY_URL)], {
      // Nothing secret in env or argv (docs/threats.md B1/B5); the enclave writes its logs to the inherited descriptors.
      env: {},
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      serialization: 'advanced',
    });
    return new ProcessEnclave(child);
  }

  /** The process id (undefined if it never started). */
  get pid(): number | undefined {
    return this.#child.pid;
  }

  #emit(event: 'message' | 'error' | 'exit', arg: unknown): void {
    for (const l of this.#listeners[event]) (l as (a: unknown) => void)(arg);
  }

  on(event: 'message', listener: (value: unknown) => void): this;
  on(event: 'error', listener: (err: Error) => void): this;
  on(event: 'exit', listener: (code: number | string) => void): this;
  on(event: 'message' | 'error' | 'exit', listener: Listener): this {
    this.#listeners[event].push(listener);
    return this;
  }

  /**
   * Sends a message. The IPC channel copies, it cannot transfer: an `ArrayBuffer` in `transfer`
   * (the sealing secret) is zeroed and detached here once the message is serialized, so the host
   * keeps no usable copy (the serialized bytes live in Node's write queue until written).
   * @throws ParleyError `USAGE` for a `MessagePort` (the key-exposing test hook is worker mode only).
   */
  postMessage(message: unknown, transfer: readonly (ArrayBuffer | MessagePort)[] = []): void {
    if (transfer.some((t) => !(t instanceof ArrayBuffer))) throw new ParleyError('USAGE', "a MessagePort cannot cross to the enclave process: unsafeTestingExposeKeys works in enclave: 'worker' only");
    if (!this.#alive || !this.#child.connected) return;
    try {
      this.#child.send(message as Parameters<ChildProcess['send']>[0]);
    } finally {
      for (const t of transfer) {
        if (!(t instanceof ArrayBuffer) || t.byteLength === 0) continue;
        new Uint8Array(t).fill(0);
        structuredClone(t, { transfer: [t] });
      }
    }
  }

  /** Kills the process (SIGKILL) and resolves once it is gone. */
  async terminate(): Promise<void> {
    if (this.#alive) this.#child.kill('SIGKILL');
    await this.#exited;
  }
}
