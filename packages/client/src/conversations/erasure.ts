/**
 * Erasure on the client (docs/threats.md P4): the owner's `conversation.erase()` and what a
 * member's client does with the owner's `erase` frame and with deletion receipts. The engine's
 * {@link ConversationBook} signs, checks and deletes; this module carries the frames, drops the
 * engine state an erased conversation leaves behind (unconfirmed payloads), asks the relay to
 * purge, and emits `erasureStatus`. The pairwise sessions with the members are kept: a Double
 * Ratchet session holds no key that opens a past message (forward secrecy: message keys are
 * deleted once used), and dropping it would race the member's receipts still in flight, which
 * then fail as `SESSION_NOT_FOUND` and start a session reset.
 *
 * The compliance archive: when this device appended the conversation's messages to the relay's
 * archive (it was on and this device sent), the purge also names the conversation's archive ref
 * (`archiveRef(id)`): the relay deletes every member's entries of it, unless the ref is under a
 * legal hold. The outcome (`archive: 'purged' | 'held' | 'none'`) is kept in the device's store
 * ({@link ArchiveErasureLog}), so `erasure()` shows it after a restart too.
 */
import { ParleyError, archiveRef, utf8 } from '@parley/protocol';
import type { ConversationBook, ConversationEvent, ErasureStatus, KeyValueStore } from '@parley/engine';
import type { ConversationPort } from './port.js';

/** What became of a conversation's compliance archive at its erasure. */
export type ErasureArchiveOutcome = 'purged' | 'held' | 'none';

const LOG_PREFIX = 'client/archive-erasure/';

/** The archive outcome of each erasure this device asked for, in the device's store. */
export class ArchiveErasureLog {
  readonly #store: KeyValueStore;
  readonly #outcomes = new Map<string, ErasureArchiveOutcome>();

  private constructor(store: KeyValueStore) {
    this.#store = store;
  }

  /** Loads the recorded outcomes. */
  static async open(store: KeyValueStore): Promise<ArchiveErasureLog> {
    const log = new ArchiveErasureLog(store);
    for (const key of await store.keys(LOG_PREFIX)) {
      const v = new TextDecoder().decode((await store.get(key)) ?? new Uint8Array(0));
      if (v === 'purged' || v === 'held') log.#outcomes.set(key.slice(LOG_PREFIX.length), v);
    }
    return log;
  }

  get(conversation: string): ErasureArchiveOutcome {
    return this.#outcomes.get(conversation) ?? 'none';
  }

  async set(conversation: string, outcome: Exclude<ErasureArchiveOutcome, 'none'>): Promise<void> {
    await this.#store.setMany([[LOG_PREFIX + conversation, utf8(outcome)]]);
    this.#outcomes.set(conversation, outcome);
  }
}

/** What erasure needs from the client beyond the {@link ConversationPort}: engine and relay calls. */
export interface ErasureHooks {
  /** `engine.forgetUnconfirmed(peer, ids)` (all of `peer` when `ids` is undefined). */
  forgetUnconfirmed(peer: string, ids?: readonly string[]): Promise<void>;
  /**
   * The relay's `purge`: deletes envelopes this device sent that are still queued (by message id)
   * and its tickets (by id). Resolves to what the relay deleted.
   */
  purge?(o: { targets: { to: string; ids: string[] }[]; tickets: string[]; archiveRefs?: string[] }): Promise<{
    envelopes: number;
    tickets: number;
    archiveEntries?: number;
    archiveHeld?: readonly string[];
  }>;
  /** Where the archive outcomes are kept (absent: every erasure reads `archive: 'none'`). */
  readonly archiveLog?: ArchiveErasureLog;
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
  /**
   * The conversation's compliance archive at the relay: `'purged'` (every member's entries
   * deleted), `'held'` (kept: the ref is under a legal hold; the operator's retention or the
   * hold's release ends it), `'none'` (no archive purge: this device appended nothing, or the
   * relay could not be asked; entries then stay until the relay's retention sweep).
   */
  readonly archive: ErasureArchiveOutcome;
}

/** The app-facing view of an engine status. */
export function toErasure(s: ErasureStatus, archive: ErasureArchiveOutcome = 'none'): ConversationErasure {
  return {
    conversation: s.conversation,
    requestedAt: s.requestedAt,
    members: s.members.map((m) => ({ deviceId: m.deviceId, role: m.role, name: m.name })),
    receipts: s.receipts.map((r) => ({ member: r.member, at: r.at })),
    missing: [...s.missing],
    archive,
  };
}

/** Peers that are a member of another conversation this device still holds. */
function stillShared(book: ConversationBook, peer: string): boolean {
  return book.list().some((c) => c.members.some((m) => m.deviceId === peer)); // ct-ok: public device ids
}

/**
 * Owner side: erases conversation `id`: the signed `erase` frame to every other member, this
 * device's records deleted (a tombstone stays), unconfirmed payloads of its messages dropped,
 * the relay asked to purge this device's still-queued envelopes of it and its tickets, and (with
 * `archived`: the archive was on for it) the conversation's archive ref.
 * @throws ParleyError `FORBIDDEN` `notOwner`, `USAGE` (unknown conversation).
 */
export async function eraseConversation(book: ConversationBook, port: ConversationPort, hooks: ErasureHooks | undefined, id: string, archived = false): Promise<ConversationErasure> {
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
        // Only a device that appended may purge the ref (relay README "Compliance archive").
        let refs = archived && sent.length > 0 ? [archiveRef(id)] : [];
        const req = { targets: ids.length > 0 ? out.recipients.slice(0, 20).map((to) => ({ to, ids })) : [], tickets: tickets.slice(-50) };
        if (ids.length > 0 || tickets.length > 0 || refs.length > 0) {
          const r = await hooks.purge(refs.length > 0 ? { ...req, archiveRefs: refs } : req).catch(async (e: unknown) => {
            // Not an appender after all (its appends failed): purge the rest.
            if (refs.length === 0 || !(e instanceof ParleyError && e.code === 'FORBIDDEN' && e.details?.['reason'] === 'notArchiveMember')) throw e; // ct-ok: public error reason
            refs = [];
            return hooks.purge!(req);
          });
          if (refs.length > 0 && r.archiveHeld !== undefined) await hooks.archiveLog?.set(id, r.archiveHeld.includes(refs[0]!) ? 'held' : 'purged');
        }
      } catch (e) {
        // Not connected: the envelopes stay queued until they expire (reported, not fatal).
        port.report(e);
      }
    }
  }
  const status = toErasure(out.status, hooks?.archiveLog?.get(id));
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
  port.emit('erasureStatus', toErasure(event.status, port.erasureHooks?.archiveLog?.get(event.conversation)));
}
