/** Test helpers for conversations: books over memory stores that hand frames to each other directly. */
import assert from 'node:assert/strict';
import { isParleyError, toHex, type ParleyErrorCode } from '@parley/protocol';
import { ConversationBook, MemoryStore, type ConversationEvent, type Member } from '../../src/index.js';
import { unsafeTestingRaw } from '../../src/testing.js';

/** Fixed device ids. */
export const CUSTOMER = 'c'.repeat(32);
export const BOT = 'b'.repeat(32);
export const AGENT_A = 'a'.repeat(32);
export const AGENT_B = 'd'.repeat(32);
export const STRANGER = 'e'.repeat(32);

/** Staff facts of a verified agent. */
export const AGENT_FACTS = { roles: ['agent'] as const, displayName: 'Agent' };

/** Tickets used by the tests (22 chars). */
export const TICKET_1 = 'T'.repeat(21) + '1';
export const TICKET_2 = 'T'.repeat(21) + '2';

export interface Party {
  book: ConversationBook;
  store: MemoryStore;
  id: string;
  member: Member;
  clock: { now: number };
}

/** A device with its book. */
export async function party(id: string, role: Member['role'], name: string, store = new MemoryStore(), clock = { now: 1_000_000 }): Promise<Party> {
  const book = await ConversationBook.open({ store, deviceId: id, now: () => clock.now });
  return { book, store, id, member: { deviceId: id, role, name }, clock };
}

/** Reopens a party's book over the same store (a restart). */
export async function restart(p: Party): Promise<Party> {
  return party(p.id, p.member.role, p.member.name, p.store, p.clock);
}

let n = 0;
/** A fresh message id. */
export const mid = (): string => `cm${++n}`;

/** Delivers a prepared frame to every recipient among `parties`; returns the events by device id. */
export async function deliverAll(
  from: Party,
  prepared: { recipients: readonly string[]; frame: Uint8Array },
  parties: readonly Party[],
  messageId = mid(),
  senderStaff?: { roles: readonly string[]; displayName: string },
): Promise<Map<string, ConversationEvent>> {
  const out = new Map<string, ConversationEvent>();
  for (const to of prepared.recipients) {
    const p = parties.find((x) => x.id === to);
    assert.ok(p, `recipient ${to} is one of the test's parties`);
    out.set(to, await p.book.receive(from.id, prepared.frame, { messageId, sentAt: from.clock.now, ...(senderStaff ? { senderStaff } : {}) }));
  }
  return out;
}

/** Every stored record of a memory store, as one comparable string. */
export function digest(store: MemoryStore): string {
  return [...unsafeTestingRaw(store).entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => `${k}=${toHex(v)}`).join('\n');
}

/** The book's visible state (list and histories), as one comparable string. */
export function view(book: ConversationBook): string {
  return JSON.stringify(book.list().map((c) => ({ c, h: book.history(c.id), due: book.dueGaps(0) })));
}

/**
 * Asserts that `book.receive(from, frame)` is refused with `code` and `reason`, and that neither
 * the store nor the book's view changed.
 */
export async function refusedUnchanged(
  p: Party,
  from: string,
  frame: Uint8Array,
  code: ParleyErrorCode,
  reason?: string,
  facts: { senderStaff?: { roles: readonly string[]; displayName: string } } = {},
): Promise<void> {
  const before = digest(p.store);
  const seen = view(p.book);
  await assert.rejects(p.book.receive(from, frame, { messageId: mid(), sentAt: 1, ...facts }), (e: unknown) => {
    assert.ok(isParleyError(e), `expected a ParleyError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (reason !== undefined) assert.equal(e.details?.reason, reason, e.message);
    return true;
  });
  assert.equal(digest(p.store), before, 'the store is unchanged after a refusal');
  assert.equal(view(p.book), seen, 'the book is unchanged after a refusal');
}

/** Frame bytes from a plain object (for forged and malformed frames). */
export function rawFrame(frame: Record<string, unknown>): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(frame));
}

/**
 * A conversation customer + bot, announced to the bot, with a ticket noted and agent A admitted
 * through it (claim, join, members change), as the handoff does.
 */
export async function handedOff() {
  const customer = await party(CUSTOMER, 'customer', 'Ann');
  const bot = await party(BOT, 'bot', 'Helper');
  const agentA = await party(AGENT_A, 'agent', 'Alice');
  const agentB = await party(AGENT_B, 'agent', 'Bob');
  const all = [customer, bot, agentA, agentB];
  const conv = await customer.book.create([bot.member], customer.member);
  await deliverAll(customer, await customer.book.prepareAnnounce(conv.id), all);
  for (const text of ['hi', 'I need help', 'still there?']) await deliverAll(customer, await customer.book.prepareMessage(conv.id, text, mid()), all);
  await deliverAll(bot, await bot.book.prepareMessage(conv.id, 'a person will help', mid()), all);
  await customer.book.noteTicket(conv.id, { id: TICKET_1, ref: 'ref1' });
  const join = await agentA.book.prepareJoin({ id: TICKET_1, customer: CUSTOMER, ref: 'ref1' });
  await deliverAll(agentA, join, all, mid(), AGENT_FACTS);
  const change = await customer.book.prepareMembers(conv.id, [bot.member, agentA.member], TICKET_1);
  const events = await deliverAll(customer, change, all);
  return { customer, bot, agentA, agentB, all, id: conv.id, change, events };
}
