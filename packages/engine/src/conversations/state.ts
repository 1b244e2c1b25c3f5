/**
 * The persisted state of conversations and its key layout in the {@link KeyValueStore}:
 * ```
 *  conv/<id>/state        JSON ConversationRecord (members, epoch, hash, seqs, tickets, claims used)
 *  conv/<id>/h/<slot>     JSON HistoryEntry; slot = entry number mod 500 (a ring: the newest
 *                         entry overwrites the oldest, so trimming needs no delete)
 *  conv/claims            JSON PendingClaim[]: staff side, joins sent and not answered yet
 *  conv/offers            JSON JoinOffer[]: customer side, joins received and not answered yet
 *  conv/held              JSON HeldMessage[]: messages from devices not (yet) in this device's
 *                         member list that name a newer list; released when it arrives
 * ```
 * Every change caused by one call is written in one atomic `setMany`, built from copies; the
 * in-memory view is replaced only after the write resolved.
 */
import { ParleyError } from '@parley/protocol';
import type { KeyValueStore } from '../store.js';
import { isMissingList, type SeqRecord } from '../gaps.js';
import { MAX_HISTORY_ITEMS, checkContent, checkMember, checkMembers } from './frame.js';
import type { FrameContent, Member, MemberRole } from './types.js';

/** Key prefix of every conversation record. */
export const CONV_PREFIX = 'conv/';
/** Most pending claims / join offers remembered (oldest dropped). */
export const MAX_PENDING = 100;
/** Most tickets remembered per conversation (oldest dropped). */
export const MAX_TICKETS = 50;

/** Keys of the conversation records. */
export const CK = {
  state: (id: string) => `conv/${id}/state`,
  history: (id: string, n: number) => `conv/${id}/h/${n % MAX_HISTORY_ITEMS}`,
  claims: 'conv/claims',
  offers: 'conv/offers',
  held: 'conv/held',
} as const;

/** Most held messages (all conversations together; the oldest is dropped). */
export const MAX_HELD = 50;

/** One conversation's state. */
export interface ConversationRecord {
  v: 1;
  id: string;
  owner: string;
  epoch: number;
  hash: string;
  members: Member[];
  tickets: { id: string; ref: string }[];
  /** This device's last sequence number in the conversation. */
  sendSeq: number;
  /** Per member: sequence numbers received (gap tracking). */
  peers: Record<string, SeqRecord>;
  /** Tickets through whose claim this device was admitted (consumed pending claims). */
  joinedTickets: string[];
  /** Tickets whose history bundle arrived (at most once each). */
  historyTickets: string[];
  /** This device sent `leave` (it sends nothing more). */
  left?: boolean;
  /** Number of the next history entry. */
  histNext: number;
  /** Retention in days (set by the owner, carried in its `members` frames). */
  retentionDays?: number;
  /** Owner side: when it was created (retention runs from here). */
  createdAt?: number;
  /**
   * How many messages this device has sent in the conversation: the compliance archive's sender
   * sequence number. Kept here because the history keeps only the newest messages. Absent in
   * records written before it existed (then counted from the history once).
   */
  ownMessages?: number;
  /**
   * When the conversation's earliest message was sent, as this device learnt of it: the archive
   * gate's "before the first message". Kept past the history cap; absent in older records.
   */
  firstMessageAt?: number;
}

/** A stored history entry. */
export interface HistoryEntry {
  n: number;
  from: string;
  id: string;
  seq: number;
  sentAt: number;
  m: FrameContent;
  shared: boolean;
  sender: { deviceId: string; name: string; role: MemberRole };
}

/** Staff side: a join sent to a ticket's customer, not answered yet. */
export interface PendingClaim {
  ticket: string;
  customer: string;
  ref: string;
  at: number;
}

/** Customer side: a join received, not answered yet. */
export interface JoinOffer {
  ticket: string;
  agent: string;
  conversation: string;
  ref: string;
}

/**
 * A message whose sender is not in this device's member list but names a newer epoch: the
 * owner's member list admitting the sender may still be on its way (another sender's queue).
 */
export interface HeldMessage {
  c: string;
  from: string;
  e: number;
  h: string;
  s: number;
  m: FrameContent;
  messageId: string;
  sentAt: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/** JSON bytes of a record. */
export function recordBytes(value: unknown): Uint8Array {
  return encoder.encode(JSON.stringify(value));
}

function integrity(what: string): never {
  throw new ParleyError('STORAGE_INTEGRITY', `stored ${what} is not valid: the store was altered or written by another version`);
}

function parse(bytes: Uint8Array, what: string): unknown {
  try {
    return JSON.parse(decoder.decode(bytes)) as unknown;
  } catch {
    return integrity(what);
  }
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const isInt = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
const isStr = (v: unknown): v is string => typeof v === 'string';

function asConversation(v: unknown): ConversationRecord {
  if (
    !isObj(v) || v.v !== 1 || !isStr(v.id) || !isStr(v.owner) || !isInt(v.epoch) || !isStr(v.hash) ||
    !isInt(v.sendSeq) || !isInt(v.histNext) || !Array.isArray(v.tickets) || !isObj(v.peers) ||
    !Array.isArray(v.joinedTickets) || !Array.isArray(v.historyTickets)
  ) {
    return integrity('conversation');
  }
  try {
    checkMembers(v.members);
  } catch {
    integrity('conversation members');
  }
  for (const p of Object.values(v.peers)) {
    if (!isObj(p) || !isInt(p.recvSeq) || (p.missing !== undefined && !isMissingList(p.missing))) integrity('conversation sequence record');
  }
  return v as unknown as ConversationRecord;
}

function asEntry(v: unknown): HistoryEntry {
  if (!isObj(v) || !isInt(v.n) || !isStr(v.from) || !isStr(v.id) || !isInt(v.seq) || !isInt(v.sentAt) || typeof v.shared !== 'boolean') {
    return integrity('history entry');
  }
  try {
    checkContent(v.m);
    checkMember(v.sender);
  } catch {
    integrity('history entry');
  }
  return v as unknown as HistoryEntry;
}

function asList<T>(v: unknown, what: string, check: (x: Record<string, unknown>) => boolean): T[] {
  if (!Array.isArray(v) || !v.every((x) => isObj(x) && check(x))) return integrity(what);
  return v as T[];
}

/** Everything stored, as loaded by `ConversationBook.open`. */
export interface LoadedState {
  conversations: Map<string, ConversationRecord>;
  /** Per conversation: entries by number, oldest first (at most {@link MAX_HISTORY_ITEMS}). */
  history: Map<string, HistoryEntry[]>;
  claims: PendingClaim[];
  offers: JoinOffer[];
  held: HeldMessage[];
}

/**
 * Loads every conversation record.
 * @throws ParleyError `STORAGE_INTEGRITY` for a record that does not parse.
 */
export async function loadState(store: KeyValueStore): Promise<LoadedState> {
  const out: LoadedState = { conversations: new Map(), history: new Map(), claims: [], offers: [], held: [] };
  const keys = await store.keys(CONV_PREFIX);
  const entries = new Map<string, HistoryEntry[]>();
  for (const key of keys) {
    const bytes = await store.get(key);
    if (!bytes) continue;
    if (key === CK.claims) { // ct-ok: store key names
      out.claims = asList<PendingClaim>(parse(bytes, 'claims'), 'claims', (x) => isStr(x.ticket) && isStr(x.customer) && isStr(x.ref) && isInt(x.at));
    } else if (key === CK.offers) { // ct-ok: store key names
      out.offers = asList<JoinOffer>(parse(bytes, 'offers'), 'offers', (x) => isStr(x.ticket) && isStr(x.agent) && isStr(x.conversation) && isStr(x.ref));
    } else if (key === CK.held) { // ct-ok: store key names
      out.held = asList<HeldMessage>(parse(bytes, 'held messages'), 'held messages', (x) => {
        try {
          checkContent(x.m);
        } catch {
          return false;
        }
        return isStr(x.c) && isStr(x.from) && isInt(x.e) && isStr(x.h) && isInt(x.s) && isStr(x.messageId) && isInt(x.sentAt);
      });
    } else if (key.endsWith('/state')) {
      const rec = asConversation(parse(bytes, 'conversation'));
      out.conversations.set(rec.id, rec);
    } else if (key.includes('/h/')) {
      const id = key.slice(CONV_PREFIX.length, key.indexOf('/h/'));
      const list = entries.get(id) ?? [];
      list.push(asEntry(parse(bytes, 'history entry')));
      entries.set(id, list);
    }
  }
  for (const [id, rec] of out.conversations) {
    // Only the last MAX_HISTORY_ITEMS numbers are live; older slots were overwritten (or are
    // leftovers of a write that a crash cut short, which the record's histNext excludes).
    const live = (entries.get(id) ?? [])
      .filter((e) => e.n < rec.histNext && e.n >= rec.histNext - MAX_HISTORY_ITEMS)
      .sort((a, b) => a.n - b.n);
    out.history.set(id, live);
  }
  return out;
}
