/**
 * The process lock of a `FileStore` directory (docs/threats.md ST5; issue 10, Medium 9): one
 * process at a time, decided by the operating system's exclusive file creation, never by a
 * check-then-act on a file's contents.
 *
 * ```
 *  <dir>/lock/<g>   one file per lock generation g (1, 2, 3, …); the highest one rules:
 *                   {"v":1,"pid":…,"host":…,"start":…,"state":"held"|"released"}
 * ```
 * Acquiring: read the highest generation g. If its holder is alive and has not released it, the
 * store is in use (`USAGE`). Otherwise create generation g+1 with `link(2)` from a fully written
 * temp file: the kernel lets exactly one process create a name, and the file is never seen half
 * written. A process that loses that race looks again (and finds the winner alive).
 *
 * Why this is safe where "remove the stale file, then create it" was not (two processes both
 * judged one lock stale, the second removed the first one's fresh lock): nothing is ever removed
 * or replaced that another process could be judging. The highest generation only grows; a
 * release rewrites the holder's own file as `released` (an atomic rename over it), so a
 * generation is created once, held by one process, and freed once. Generations below the
 * highest are removed by the new holder; a slow process that re-creates one of them afterwards
 * sees a higher generation when it checks right after creating, and backs off.
 *
 * Liveness: a holder is gone when its pid is not running on this host. On Linux the lock also
 * records the boot id and the process start time, so a pid reused after a crash or a reboot
 * (a container's pid 1 restarting) is not mistaken for the holder. A lock taken on another
 * host (a directory shared over the network) cannot be checked from here: it is refused, and
 * the error names the file to delete once that host no longer uses the store.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { link, mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ParleyError } from '@parley/protocol';

/** The lock directory inside a store directory. */
export const LOCK_DIR = 'lock';
const GENERATION = /^[1-9][0-9]{0,14}$/;
const MAX_ATTEMPTS = 50;

interface Holder {
  readonly v: 1;
  readonly pid: number;
  readonly host: string;
  /** Linux: `<boot id>/<start time in clock ticks>` of the holding process. */
  readonly start?: string;
  readonly state: 'held' | 'released';
}

function isHolder(v: unknown): v is Holder {
  const h = v as Holder;
  return (
    typeof h === 'object' &&
    h !== null &&
    h.v === 1 &&
    Number.isSafeInteger(h.pid) &&
    h.pid > 0 &&
    typeof h.host === 'string' &&
    (h.start === undefined || typeof h.start === 'string') &&
    (h.state === 'held' || h.state === 'released')
  );
}

/**
 * Linux: the boot id and start time of `pid` (together they name one process run), and whether
 * it has exited (a zombie waiting for its parent holds no files). Undefined elsewhere, or when
 * there is no such process.
 */
async function processRun(pid: number): Promise<{ start: string; exited: boolean } | undefined> {
  if (process.platform !== 'linux') return undefined;
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // Fields after "(comm)": state is field 3, starttime field 22.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const boot = (await readFile('/proc/sys/kernel/random/boot_id', 'utf8')).trim();
    if (!fields[19]) return undefined;
    return { start: `${boot}/${fields[19]}`, exited: fields[0] === 'Z' || fields[0] === 'X' };
  } catch {
    return undefined;
  }
}

function pidRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function generations(lockDir: string): Promise<number[]> {
  return (await readdir(lockDir)).filter((n) => GENERATION.test(n)).map(Number);
}

/** Writes `data` to a new temp file in `lockDir` and flushes it; returns its path. */
async function tempFile(lockDir: string, data: string): Promise<string> {
  const tmp = join(lockDir, `.tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
  const fh = await open(tmp, 'wx', 0o600);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  return tmp;
}

/** Creates `path` with `data` only if it does not exist (false when it does). */
async function createExclusive(lockDir: string, path: string, data: string): Promise<boolean> {
  const tmp = await tempFile(lockDir, data);
  try {
    await link(tmp, path);
    return true;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'ENOSYS' && code !== 'EOPNOTSUPP') throw e;
    // No hard links on this file system: exclusive create. A reader may then see the file
    // before its contents; it treats an unreadable lock as held (never as stale).
    try {
      const fh = await open(path, 'wx', 0o600);
      try {
        await fh.writeFile(data);
        await fh.sync();
      } finally {
        await fh.close();
      }
      return true;
    } catch (e2) {
      if ((e2 as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw e2;
    }
  } finally {
    await rm(tmp, { force: true });
  }
}

function inUse(path: string, holder: Holder | undefined, why: string): ParleyError {
  const who = holder ? `process ${holder.pid} on ${holder.host === hostname() ? 'this host' : `host ${holder.host}`}` : 'another process';
  return new ParleyError(
    'USAGE',
    `store directory is in use by ${who} (${why}); close it there first. If no process uses this store any more, delete the lock file ${path}`,
    { details: holder ? { pid: holder.pid, host: holder.host } : {} },
  );
}

/** A held directory lock; {@link DirLock.release} frees it. */
export class DirLock {
  readonly #path: string;
  readonly #holder: Holder;
  #released = false;

  private constructor(path: string, holder: Holder) {
    this.#path = path;
    this.#holder = holder;
  }

  /**
   * Takes the lock of store directory `dir`.
   * @throws ParleyError `USAGE` when another live process holds it (the message names it and the
   *   lock file), or when the lock stays contended.
   */
  static async acquire(dir: string): Promise<DirLock> {
    const lockDir = join(dir, LOCK_DIR);
    await mkdir(lockDir, { recursive: true, mode: 0o700 });
    const me: Holder = { v: 1, pid: process.pid, host: hostname(), ...(await optionalStart()), state: 'held' };
    let unreadable = 0;
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const gens = await generations(lockDir);
      const top = gens.length === 0 ? 0 : Math.max(...gens);
      if (top > 0) {
        const path = join(lockDir, String(top));
        let holder: Holder | undefined;
        try {
          const parsed: unknown = JSON.parse(await readFile(path, 'utf8'));
          if (isHolder(parsed)) holder = parsed;
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue; // freed under us: look again
        }
        if (!holder) {
          // Being written (file systems without hard links) or damaged: never taken over.
          if (++unreadable > 20) throw inUse(path, undefined, 'its lock file cannot be read');
          await new Promise((r) => setTimeout(r, 10));
          continue;
        }
        if (holder.state === 'held' && (await DirLock.#alive(holder))) throw inUse(path, holder, 'it holds the lock');
      }
      const mine = top + 1;
      const path = join(lockDir, String(mine));
      if (!(await createExclusive(lockDir, path, JSON.stringify(me)))) continue; // another process took it: look again
      const after = await generations(lockDir);
      if (after.some((g) => g > mine)) {
        // We re-created a generation a newer holder had already removed: theirs rules.
        await rm(path, { force: true });
        continue;
      }
      for (const g of after) if (g < mine) await rm(join(lockDir, String(g)), { force: true });
      return new DirLock(path, me);
    }
    throw new ParleyError('USAGE', `could not lock the store directory ${dir}: other processes keep taking and releasing it`);
  }

  static async #alive(holder: Holder): Promise<boolean> {
    if (holder.host !== hostname()) return true; // cannot be checked from here
    const run = holder.start === undefined ? undefined : await processRun(holder.pid);
    // Same pid, another process run (reused after a crash or a reboot), or exited: the holder is gone.
    if (run) return run.start === holder.start && !run.exited && pidRunning(holder.pid);
    if (holder.pid === process.pid) return true; // this process (another thread) as far as we can tell
    return pidRunning(holder.pid);
  }

  /** Frees the lock: its generation file says `released` (atomically). Idempotent. */
  async release(): Promise<void> {
    if (this.#released) return;
    this.#released = true;
    const lockDir = join(this.#path, '..');
    const tmp = await tempFile(lockDir, JSON.stringify({ ...this.#holder, state: 'released' }));
    try {
      await rename(tmp, this.#path);
    } catch (e) {
      await rm(tmp, { force: true });
      throw e;
    }
  }
}

async function optionalStart(): Promise<{ start?: string }> {
  const run = await processRun(process.pid);
  return run === undefined ? {} : { start: run.start };
}
