/**
 * The `purge` event (docs/threats.md P4, erasure): a device takes back what the relay still
 * holds of an erased conversation: the envelopes it sent that are still queued (per recipient,
 * by message id; only its own, `from` being the authenticated socket's device) and the tickets it
 * opened as the customer, and the compliance archive of the conversation (`archiveRefs`: every
 * member's entries of the ref), unless the ref is under a legal hold (answered in `archiveHeld`,
 * nothing of it deleted). Only a device that appended to a ref may purge it: it is a member of
 * the conversation (the relay knows no membership beyond who appended); a ref with entries this
 * device never appended to refuses the whole request (`FORBIDDEN` `notArchiveMember`) before
 * anything is deleted. A ref without entries purges nothing and is no error (a retried purge).
 * A member's purge of a ref that is not held also leaves a tombstone for it (store
 * `archivePurge` with `erasedAt`): the relay refuses later appends to the ref (`FORBIDDEN`
 * `archiveErased`), so a member's submission still queued (a bot's sealed outbox, a slow
 * client) cannot put erased content back. The retention sweep leaves none (a resumed
 * conversation stays archivable). Only an appender's purge leaves one: a device naming a ref
 * without entries that it never appended to erases nothing and blocks nobody's archive.
 * Works on every store through `listPending`/`deleteMessages`/`closeTicket`/`archivePurge`; a
 * store with files then compacts (`RelayStore.compact`), so no deleted byte stays.
 */
import * as v from 'valibot';
import { ARCHIVE_REF_PATTERN, ParleyError } from '@parley/protocol/verify';
import { DEVICE_ID_PATTERN, MESSAGE_ID_PATTERN, TICKET_ID_PATTERN } from '@parley/protocol/wire';
import type { RelayContext, RelaySocket } from './context.js';
import type { HandlerResult } from './handlers.js';
import { parse } from './schemas.js';

/** Most recipients, message ids per recipient, and tickets of one `purge`. */
export const PURGE_LIMITS = { targets: 20, ids: 500, tickets: 50, archiveRefs: 20 } as const;

const purgeSchema = v.strictObject({
  targets: v.pipe(
    v.array(v.strictObject({
      to: v.pipe(v.string(), v.regex(DEVICE_ID_PATTERN)),
      ids: v.pipe(v.array(v.pipe(v.string(), v.regex(MESSAGE_ID_PATTERN))), v.maxLength(PURGE_LIMITS.ids)),
    })),
    v.maxLength(PURGE_LIMITS.targets),
  ),
  tickets: v.optional(v.pipe(v.array(v.pipe(v.string(), v.regex(TICKET_ID_PATTERN))), v.maxLength(PURGE_LIMITS.tickets))),
  archiveRefs: v.optional(v.pipe(v.array(v.pipe(v.string(), v.regex(ARCHIVE_REF_PATTERN))), v.maxLength(PURGE_LIMITS.archiveRefs))),
});

/** Page size when scanning a recipient's queue. */
const PAGE = 500;

/**
 * Deletes the pending envelopes `from` sent to `to` whose message id is in `ids`.
 * @returns how many were deleted.
 */
export async function purgeSent(store: RelayContext['store'], from: string, to: string, ids: readonly string[]): Promise<number> {
  const wanted = new Set(ids);
  if (wanted.size === 0) return 0;
  const seqs: number[] = [];
  for (let after = 0; ;) {
    const page = await store.listPending(to, after, PAGE);
    for (const m of page) if (m.from === from && wanted.has(m.id)) seqs.push(m.seq); // ct-ok: public ids
    if (page.length < PAGE) break;
    after = page[page.length - 1]!.seq;
  }
  return seqs.length === 0 ? 0 : store.deleteMessages(to, seqs);
}

const purge = async (ctx: RelayContext, socket: RelaySocket, payload: unknown): Promise<HandlerResult> => {
  const deviceId = socket.data.deviceId;
  if (!deviceId) throw new ParleyError('UNAUTHENTICATED', 'authenticate first');
  const req = parse(purgeSchema, payload);
  if (!req) throw new ParleyError('MALFORMED_MESSAGE', 'malformed purge payload');
  const refs = [...new Set(req.archiveRefs ?? [])];
  // Authority first, so a refused request deletes nothing.
  const members = new Set<string>();
  for (const ref of refs) {
    if ((await ctx.store.archiveAppenders(ref)).includes(deviceId)) {
      members.add(ref);
      continue;
    }
    if ((await ctx.store.archiveEntries(ref)).length === 0) continue;
    throw new ParleyError('FORBIDDEN', 'this device never appended to that archive ref', { details: { reason: 'notArchiveMember' } });
  }
  let envelopes = 0;
  for (const t of req.targets) envelopes += await purgeSent(ctx.store, deviceId, t.to, t.ids);
  let tickets = 0;
  for (const id of req.tickets ?? []) {
    const ticket = await ctx.store.getTicket(id);
    if (ticket?.customer !== deviceId) continue; // ct-ok: public ids; only the customer's own tickets
    if ((await ctx.store.closeTicket(id, deviceId)).ok) tickets++;
  }
  let archiveEntries = 0;
  const archiveHeld: string[] = [];
  for (const ref of refs) {
    const r = await ctx.store.archivePurge(ref, members.has(ref) ? ctx.now() : undefined);
    archiveEntries += r.deleted;
    if (r.held) archiveHeld.push(ref);
  }
  if (envelopes + tickets + archiveEntries > 0) await ctx.store.compact?.();
  ctx.log.info({ event: 'purge', deviceId, envelopes, tickets, archiveEntries, archiveHeld: archiveHeld.length });
  return { result: { envelopes, tickets, archiveEntries, archiveHeld } };
};

/** The purge handler by event name (merged into `HANDLERS`). */
export const PURGE_HANDLERS: readonly (readonly [string, typeof purge])[] = [['purge', purge]];
