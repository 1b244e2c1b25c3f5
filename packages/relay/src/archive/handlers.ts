/**
 * `archiveAppend`: a member appends its signed, sealed archive submission to the append-only
 * compliance archive of a conversation ref (protocol archive.ts). The relay checks the framing,
 * that the submission's sender key is the socket's own identity (nobody appends in another's
 * name), and the signature; the store chains it (index, previous hash) atomically. The relay
 * never sees the plaintext: the payload is sealed to the org's compliance key.
 */
import { ParleyError, constantTimeEqual, decodeArchiveEntry, decodeArchiveSubmission, type ArchiveSubmission } from '@parley/protocol/verify';
import type { RelayContext, RelaySocket } from '../context.js';
import type { HandlerResult } from '../handlers.js';
import { archiveAppendSchema, parse } from '../schemas.js';

type ArchiveHandler = (ctx: RelayContext, socket: RelaySocket, payload: unknown) => Promise<HandlerResult>;

/**
 * A retried submission (`retry: true`) already in the chain: the index of the entry holding
 * these exact bytes, or `undefined`. A sender appends its submissions to a ref in order, so the
 * search stops at its first entry (from the end) with a lower sequence number. Only retries pay
 * for the read: a first append is chained as it comes.
 */
async function alreadyAppended(ctx: RelayContext, s: ArchiveSubmission): Promise<number | undefined> {
  const entries = await ctx.store.archiveEntries(s.ref);
  for (let i = entries.length - 1; i >= 0; i--) {
    let held;
    try {
      held = decodeArchiveEntry(entries[i]!);
    } catch {
      continue;
    }
    if (!constantTimeEqual(held.submission.senderKey, s.senderKey)) continue;
    if (held.submission.senderSeq < s.senderSeq) return undefined; // ct-ok: public counters
    const same = held.submission.senderSeq === s.senderSeq && constantTimeEqual(held.submission.sealed, s.sealed) && constantTimeEqual(held.submission.signature, s.signature); // ct-ok: public counters
    if (same) return held.index;
  }
  return undefined;
}

const archiveAppend: ArchiveHandler = async (ctx, socket, payload) => {
  const deviceId = socket.data.deviceId;
  if (!deviceId) throw new ParleyError('UNAUTHENTICATED', 'authenticate first');
  const req = parse(archiveAppendSchema, payload);
  if (!req) throw new ParleyError('MALFORMED_MESSAGE', 'malformed archiveAppend payload');
  const submission = decodeArchiveSubmission(req.submission);
  if (submission.ref !== req.ref) throw new ParleyError('MALFORMED_MESSAGE', 'submission is for another ref'); // ct-ok: public refs
  const own = await ctx.store.getIdentity(deviceId);
  if (!own || !constantTimeEqual(own.identity.signingKey, submission.senderKey)) {
    throw new ParleyError('FORBIDDEN', 'the submission is not signed by this device', { details: { reason: 'notSender' } });
  }
  // Idempotent retries: the same bytes a second time get the entry they already have.
  const held = req.retry === true ? await alreadyAppended(ctx, submission) : undefined;
  if (held !== undefined) {
    ctx.log.info({ event: 'archiveAppend', deviceId, index: held, retry: 'held' });
    return { result: { index: held } };
  }
  const index = await ctx.store.archiveAppend(submission, ctx.now(), deviceId);
  ctx.log.info({ event: 'archiveAppend', deviceId, index, bytes: req.submission.length });
  return { result: { index } };
};

/** The archive's handlers by event name. */
export const ARCHIVE_HANDLERS: readonly (readonly [string, ArchiveHandler])[] = [['archiveAppend', archiveAppend]];
