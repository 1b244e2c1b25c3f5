/** The mailbox quota rule, shared by the memory and SQLite stores (the Redis store has it in Lua). */
import { ParleyError } from '@parley/protocol/verify';
import type { MailboxQuota, QuotaScope } from './types.js';

/** Pending counts a new message from `from` to `to` would join. */
export interface QuotaCounts {
  readonly pair: number;
  readonly recipient: number;
  readonly sender: number;
  readonly total: number;
}

/**
 * The quota a new message would exceed, most global first, or `undefined` when it fits.
 * Keep in step with the ENQUEUE script of `redis.ts`.
 */
export function exceededQuota(c: QuotaCounts, q: MailboxQuota): { quota: QuotaScope; have: number; max: number; reserved?: true } | undefined {
  if (c.total >= q.total) return { quota: 'total', have: c.total, max: q.total };
  if (c.sender >= q.perSender) return { quota: 'sender', have: c.sender, max: q.perSender };
  if (c.pair >= q.perPair) return { quota: 'pair', have: c.pair, max: q.perPair };
  if (c.recipient >= q.perRecipient) return { quota: 'recipient', have: c.recipient, max: q.perRecipient };
  const shared = q.perRecipient - q.reserve;
  if (c.recipient >= shared && c.pair >= q.reservePerSender) return { quota: 'recipient', have: c.recipient, max: shared, reserved: true };
  return undefined;
}

/** The typed refusal. Details hold counts and the quota's name only. */
export function quotaError(e: { quota: QuotaScope; have: number; max: number; reserved?: true }): ParleyError {
  const what: Record<QuotaScope, string> = {
    pair: 'this sender has too many messages pending for this recipient',
    recipient: e.reserved ? "the recipient's queue is full except for senders with few messages pending" : "the recipient's queue is full",
    sender: 'this sender has too many messages pending',
    total: 'the relay is full',
  };
  return new ParleyError('STORAGE_QUOTA', what[e.quota], { details: { quota: e.quota, have: e.have, max: e.max, ...(e.reserved ? { reserved: true } : {}) } });
}
