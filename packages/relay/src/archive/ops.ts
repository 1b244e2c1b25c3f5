/**
 * The archive's running operations on one relay node (relay README "Compliance archive"):
 * - **opening notices**: each opening `parley-compliance open|export` records (store
 *   `archiveRecordOpening`) is pushed as `archiveOpened { ref, at, reason }` to every device that
 *   appended to the ref, when it logs in and, while it is connected, within
 *   `archiveNoticeIntervalMs` of the opening (this node polls the store for new openings: the CLI
 *   writes them beside the running relay). The device acknowledges each; an unacknowledged
 *   notice is pushed again on its next login, an acknowledged one never again.
 * - **retention sweep** (`archiveRetentionDays`): every `queuePurgeIntervalMs`, the refs whose
 *   newest entry is older than the retention are purged whole (store `archiveSweep`), except
 *   refs under a legal hold. Whole refs, so a kept chain is never cut and still verifies.
 */
import type { ArchiveOpenedNotice } from '@parley/protocol/wire';
import type { RelayContext, RelaySocket } from '../context.js';

/** Openings read per poll. */
const PAGE = 100;
/** Refs purged per sweep step. */
const SWEEP_BATCH = 100;
const DAY_MS = 86_400_000;

/**
 * Notices pushed on a socket and not acknowledged yet: not pushed twice on one socket (no timer:
 * one the device never acknowledges is pushed again at its next login).
 */
const awaiting = new WeakMap<RelaySocket, Set<number>>();

/** Pushes every opening `socket`'s device has not acknowledged yet. */
export async function deliverArchiveNotices(ctx: RelayContext, socket: RelaySocket): Promise<void> {
  const deviceId = socket.data.deviceId;
  if (!deviceId || !socket.connected) return;
  let sent = awaiting.get(socket);
  if (!sent) awaiting.set(socket, (sent = new Set()));
  for (const o of await ctx.store.archivePendingOpenings(deviceId)) {
    if (sent.has(o.id) || !socket.connected) continue;
    sent.add(o.id);
    const notice: ArchiveOpenedNotice = { ref: o.ref, at: o.at, reason: o.reason };
    socket.emit('archiveOpened', notice, () => {
      sent.delete(o.id);
      ctx.store.archiveOpeningNoticed(o.id, deviceId).then(
        () => ctx.log.info({ event: 'archiveOpened', deviceId, opening: o.id }),
        (e: unknown) => ctx.log.error({ event: 'archiveOpened', deviceId, errorName: e instanceof Error ? e.name : typeof e }),
      );
    });
  }
}

/**
 * Starts this node's notice poll and (with `retentionDays`) the retention sweep; returns the
 * stop function (which waits for a running step).
 */
export function startArchiveOps(ctx: RelayContext, o: { noticeIntervalMs: number; retentionDays?: number; sweepIntervalMs: number }): () => Promise<void> {
  let stopped = false;
  let lastOpening = 0;
  let polling: Promise<void> | undefined;
  let sweeping: Promise<void> | undefined;
  const fail = (event: string) => (e: unknown) => ctx.log.error({ event, errorName: e instanceof Error ? e.name : typeof e });

  const poll = async (): Promise<void> => {
    for (let n = PAGE; n === PAGE && !stopped;) {
      const page = await ctx.store.archiveOpeningsAfter(lastOpening, PAGE);
      n = page.length;
      for (const opening of page) {
        lastOpening = Math.max(lastOpening, opening.id);
        for (const device of await ctx.store.archiveAppenders(opening.ref)) {
          for (const socket of ctx.deviceSockets.get(device) ?? []) await deliverArchiveNotices(ctx, socket);
        }
      }
    }
  };
  const sweep = async (): Promise<void> => {
    if (o.retentionDays === undefined) return;
    const before = ctx.now() - o.retentionDays * DAY_MS;
    for (let n = SWEEP_BATCH; n === SWEEP_BATCH && !stopped;) {
      const r = await ctx.store.archiveSweep(before, SWEEP_BATCH);
      n = r.refs;
      if (r.refs > 0) {
        ctx.log.info({ event: 'archiveSweep', refs: r.refs, entries: r.entries });
        await ctx.store.compact?.();
      }
    }
  };
  const noticeTimer = setInterval(() => {
    polling ??= poll().catch(fail('archiveNotices')).finally(() => (polling = undefined));
  }, o.noticeIntervalMs);
  noticeTimer.unref();
  const sweepTimer = o.retentionDays === undefined ? undefined : setInterval(() => {
    sweeping ??= sweep().catch(fail('archiveSweep')).finally(() => (sweeping = undefined));
  }, Math.min(o.sweepIntervalMs, 2 ** 31 - 1));
  sweepTimer?.unref();
  return async () => {
    stopped = true;
    clearInterval(noticeTimer);
    if (sweepTimer) clearInterval(sweepTimer);
    await Promise.allSettled([polling, sweeping]);
  };
}
