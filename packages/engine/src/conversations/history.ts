/**
 * The history store of conversations: the last {@link MAX_HISTORY_ITEMS} messages per
 * conversation (own, received, and imported history marked shared), kept as a ring of numbered
 * slots so adding one is one more entry in the caller's atomic batch.
 */
import { MAX_HISTORY_ITEMS, fromMessageContent, toMessageContent } from './frame.js';
import { CK, type ConversationRecord, type HistoryEntry, recordBytes } from './state.js';
import type { ConversationMessage, HistoryItem } from './types.js';

/** What a new entry holds (its number is given on append). */
export type NewEntry = Omit<HistoryEntry, 'n'>;

/**
 * Appends entries (on copies): returns the new entry list (trimmed to the newest
 * {@link MAX_HISTORY_ITEMS}) and the store entries to write with `rec` (whose `histNext` it
 * advances). Entries already present (same sender and message id) are skipped.
 */
export function appendHistory(
  rec: ConversationRecord,
  current: readonly HistoryEntry[],
  added: readonly NewEntry[],
): { list: HistoryEntry[]; writes: [string, Uint8Array][]; appended: HistoryEntry[] } {
  const seen = new Set(current.map((e) => `${e.from}/${e.id}`));
  const list = [...current];
  const writes: [string, Uint8Array][] = [];
  const appended: HistoryEntry[] = [];
  rec.firstMessageAt ??= earliestSentAt(current);
  // Only the newest MAX_HISTORY_ITEMS of a batch can survive; older ones would share slots.
  for (const entry of added.slice(-MAX_HISTORY_ITEMS)) {
    const tag = `${entry.from}/${entry.id}`;
    if (seen.has(tag)) continue;
    seen.add(tag);
    const full: HistoryEntry = { ...entry, n: rec.histNext++ };
    if (rec.firstMessageAt === undefined || full.sentAt < rec.firstMessageAt) rec.firstMessageAt = full.sentAt;
    list.push(full);
    appended.push(full);
    writes.push([CK.history(rec.id, full.n), recordBytes(full)]);
  }
  if (list.length > MAX_HISTORY_ITEMS) list.splice(0, list.length - MAX_HISTORY_ITEMS);
  return { list, writes, appended };
}

/** The earliest `sentAt` of `entries`, or `undefined` for none. */
export function earliestSentAt(entries: readonly { readonly sentAt: number }[]): number | undefined {
  let t: number | undefined;
  for (const e of entries) if (t === undefined || e.sentAt < t) t = e.sentAt;
  return t;
}

/** The app-facing message of an entry. */
export function entryToMessage(conversation: string, e: HistoryEntry): ConversationMessage {
  return {
    conversation,
    from: e.from,
    id: e.id,
    seq: e.seq,
    sentAt: e.sentAt,
    content: toMessageContent(e.m),
    shared: e.shared,
    sender: { ...e.sender },
  };
}

/** A history bundle item of a message. */
export function messageToItem(m: ConversationMessage): HistoryItem {
  return { from: m.from, name: m.sender.name, role: m.sender.role, id: m.id, sentAt: m.sentAt, m: fromMessageContent(m.content) };
}

/** Messages oldest first (by send time, then by arrival), the last `limit`. */
export function orderedMessages(conversation: string, entries: readonly HistoryEntry[], limit?: number): ConversationMessage[] {
  const sorted = [...entries].sort((a, b) => a.sentAt - b.sentAt || a.n - b.n);
  const take = limit === undefined ? sorted : limit <= 0 ? [] : sorted.slice(-limit);
  return take.map((e) => entryToMessage(conversation, e));
}
