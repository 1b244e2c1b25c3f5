/**
 * One writer per database across tabs (docs/threats.md ST5), with the Web Locks API.
 *
 * Two tabs of the same widget share one IndexedDB database. If both ran a conversation engine,
 * both would advance the same ratchet from the same stored state and the session would fork
 * (two messages with one counter, key reuse). So only the tab that holds the exclusive lock
 * `parley:<dbName>` opens the engine; another tab waits (the widget shows "open in another
 * tab") and takes over when the holder closes or releases. The browser releases a lock when its
 * tab closes or crashes, so a dead tab never blocks the others.
 *
 * Without Web Locks (very old browsers) there is no safe fallback that is not itself a race, so
 * {@link acquireWriterLock} refuses with `USAGE` rather than risk a fork.
 */
import { ParleyError } from '@parley/protocol/errors';

/** The lock name guarding one database. */
export function writerLockName(dbName: string): string {
  return `parley:${dbName}`;
}

/** A held writer lock. */
export interface WriterLock {
  readonly name: string;
  /** Releases the lock (idempotent). The next waiting tab gets it. */
  release(): void;
}

/** Options of {@link acquireWriterLock}. */
export interface AcquireOptions {
  /** Called once when another tab holds the lock and this one starts waiting. */
  onWaiting?: () => void;
  /** Stops waiting; the promise then rejects with `USAGE` ("aborted"). */
  signal?: AbortSignal;
}

function lockManager(): LockManager {
  const locks = (globalThis as { navigator?: { locks?: LockManager } }).navigator?.locks;
  if (!locks) throw new ParleyError('USAGE', 'the Web Locks API is unavailable (needs a browser and a secure context)');
  return locks;
}

/**
 * Takes the exclusive lock `name`, waiting for it if another tab holds it.
 * @throws ParleyError `USAGE` without Web Locks, or when `signal` aborts the wait.
 * @example
 * const lock = await acquireWriterLock(writerLockName('parley'), { onWaiting: () => showBanner('Open in another tab') });
 * try { ...drive the engine... } finally { lock.release(); }
 */
export async function acquireWriterLock(name: string, options: AcquireOptions = {}): Promise<WriterLock> {
  const locks = lockManager();
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  const handle: WriterLock = { name, release: () => release() };

  // First try without waiting, so the caller learns that it has to wait.
  const immediate = await new Promise<boolean>((resolve, reject) => {
    locks
      .request(name, { mode: 'exclusive', ifAvailable: true }, async (lock) => {
        resolve(lock !== null);
        if (lock) await held;
      })
      .catch(reject);
  });
  if (immediate) return handle;

  options.onWaiting?.();
  await new Promise<void>((resolve, reject) => {
    locks
      .request(name, { mode: 'exclusive', ...(options.signal ? { signal: options.signal } : {}) }, async () => {
        resolve();
        await held;
      })
      .catch((e: unknown) =>
        reject((e as { name?: string })?.name === 'AbortError' ? new ParleyError('USAGE', 'waiting for the writer lock was aborted', { cause: e }) : e),
      );
  });
  return handle;
}

/**
 * Runs `fn` while holding the exclusive lock `name`; releases it when `fn` settles.
 * @example
 * await withWriterLock(writerLockName(store.dbName), async () => runWidget(store));
 */
export async function withWriterLock<T>(name: string, fn: () => Promise<T>, options: AcquireOptions = {}): Promise<T> {
  const lock = await acquireWriterLock(name, options);
  try {
    return await fn();
  } finally {
    lock.release();
  }
}

/** True when some tab currently holds `name` (a hint; it can change right after). */
export async function isWriterLockHeld(name: string): Promise<boolean> {
  const state = await lockManager().query();
  return (state.held ?? []).some((l) => l.name === name);
}
