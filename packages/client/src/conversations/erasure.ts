/**
 * Erasure on the client (docs/threats.md P4): the owner's `conversation.erase()` and what a
 * member's client does with the owner's `erase` frame and with deletion receipts. The engine's
 * {@link ConversationBook} signs, checks and deletes; this module carries the frames, drops the
 * engine state an erased conversation leaves behind (unconfirmed payloads), asks the relay to
 * purge, and emits `erasureStatus`. The pairwise sessions with the members are kept: a Double
 * Ratchet session holds no key that opens a past message (forward secrecy: message keys are
 * deleted once used), and dropping it would race the member's receipts still in flight, which
 * then fail as `SESSION_NOT_FOUND` and start a session reset.
 */
import type { ConversationBook, ConversationEvent, ErasureStatus } from '@parley/engine';
import type { ConversationPort } from './port.js';

/** What erasure needs from the client beyond the {@link ConversationPort}: engine and relay calls. */
export interface ErasureHooks {
  /** `engine.forgetUnconfirmed(peer, ids)` (all of `peer` when `ids` is undefined). */
  forgetUnconfirmed(peer: string, ids?: readonly string[]): Promise<void>;
  /**
   * The relay's `purge`: deletes envelopes this device sent that are still queued (by message id)
   * and its tickets (by id). Resolves to what the relay deleted.
   */
  purge?(o: { targets: { to: string; ids: string[] }[]; tickets: string[] }): Promise<{ envelopes: number; tickets: number }>;
}

/** The app-facing status of an erasure (`conversation.erasure()`, event `erasureStatus`). */
export interface ConversationErasure {
  readonly conversation: string;
  /** When this device asked, ms since the epoch. */
  readonly requestedAt: number;
  /** The members asked, as listed when erasing. */
  readonly members: readonly { readonly deviceId: string; readonly role: string; readonly name: string }[];
  /** Valid signed deletion receipts received: who and when (their clock). */
  readonly receipts: readonly { readonly member: string; readonly at: number }[];
  /** Members whose receipt has not arrived (still hold the conversation, or withhold it). */
  readonly missing: readonly string[];
}

/** The app-facing view of an engine status. */
export function toErasure(s: ErasureStatus): ConversationErasure {
  return {
    conversation: s.conversation,
    requestedAt: s.requestedAt,
    members: s.members.map((m) => ({ deviceId: m.deviceId, role: m.role, name: m.name })),
    receipts: s.receipts.map((r) => ({ member: r.member, at: r.at })),
    missing: [...s.missing],
  };
}

/** Peers that are a member of another conversation this device still holds. */
function stillShared(book: ConversationBook, peer: string): boolean {
  return book.list().some((c) => c.members.some((m) => m.deviceId === peer)); // ct-ok: public device ids
}

/**
 * Owner side: erases conversation `id`: the signed `erase` frame to every other member, this
 * device's records deleted (a tombstone stays), unconfirmed payloads of its messages dropped,
 * the relay asked to purge this device's still-queued envelopes of it and its tickets.
 * @throws ParleyError `FORBIDDEN` `notOwner`, `USAGE` (unknown conversation).
 */
export async function eraseConversation(book: ConversationBook, port: ConversationPort, hooks: ErasureHooks | undefined, id: string): Promise<ConversationErasure> {
  const info = book.get(id);
  const sent = book.history(id).filter((m) => m.from === port.deviceId).map((m) => m.id); // ct-ok: public device ids
  const tickets = (info?.tickets ?? []).map((t) => t.id);
  const out = await book.prepareErase(id);
  const messageId = port.newMessageId();
  for (const f of await port.fanOut(out.recipients, out.frame, messageId)) port.report(f.error, { peer: f.peer, id: messageId });
  if (hooks) {
    // A peer in no other conversation: every kept payload to it (history bundles too) goes.
    for (const peer of out.recipients) await hooks.forgetUnconfirmed(peer, stillShared(book, peer) ? sent : undefined);
    if (hooks.purge) {
      try {
        const ids = sent.slice(-500);
        if (ids.length > 0 || tickets.length > 0) await hooks.purge({ targets: ids.length > 0 ? out.recipients.slice(0, 20).map((to) => ({ to, ids })) : [], tickets: tickets.slice(-50) });
      } catch (e) {
        // Not connected: the envelopes stay queued until they expire (reported, not fatal).
        port.report(e);
      }
    }
  }
  const status = toErasure(out.status);
  port.emit('erasureStatus', status);
  return status;
}

/** Member side: the owner erased a conversation: answer with the signed receipt. */
export async function onErased(port: ConversationPort, event: Extract<ConversationEvent, { kind: 'erased' }>): Promise<void> {
  const messageId = port.newMessageId();
  for (const f of await port.fanOut(event.reply.recipients, event.reply.frame, messageId)) port.report(f.error, { peer: f.peer, id: messageId });
  port.emit('conversationErased', { conversation: event.conversation, owner: event.owner });
}

/** Owner side: a valid deletion receipt: emits `erasureStatus`. */
export function onDeletionReceipt(port: ConversationPort, event: Extract<ConversationEvent, { kind: 'deletionReceipt' }>): void {
  port.emit('erasureStatus', toErasure(event.status));
}
