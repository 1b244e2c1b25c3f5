/**
 * The refusal of an append to an erased archive ref: a member's erasure purge left a tombstone
 * for the ref (store `archivePurge` with `erasedAt`), so a submission still queued at a member
 * (a bot's sealed outbox, a slow client) cannot start a new chain of erased content under it.
 */
import { ParleyError } from '@parley/protocol/verify';

/** `FORBIDDEN` with `details.reason: 'archiveErased'` (docs/errors.md). */
export function archiveErasedError(): ParleyError {
  return new ParleyError('FORBIDDEN', 'that archive ref was erased by a member of the conversation', { details: { reason: 'archiveErased' } });
}
