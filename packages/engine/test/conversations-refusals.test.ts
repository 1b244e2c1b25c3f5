/**
 * ConversationBook refusals (docs/threats.md H1–H3, C18, C19): member-list changes from anyone
 * but the owner, messages from non-members, history bundles from the wrong source, joins from
 * non-staff, malformed frames. Each is a typed error and leaves the store and the book exactly
 * as they were (compared record by record).
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { isParleyError } from '@parley/protocol';
import { MAX_FRAME_BYTES, membersHash } from '../src/index.js';
import {
  AGENT_A,
  AGENT_B,
  AGENT_FACTS,
  BOT,
  CUSTOMER,
  STRANGER,
  TICKET_1,
  TICKET_2,
  deliverAll,
  handedOff,
  mid,
  rawFrame,
  refusedUnchanged,
} from './helpers/conversations.js';
import { setupCrypto } from './helpers/engines.js';

before(setupCrypto);

test('H1/C18: only the owner changes members (an agent adding an agent, a relay-injected list)', async () => {
  const { customer, bot, agentA, agentB, id } = await handedOff();
  const conv = customer.book.get(id)!;
  const members = [...conv.members, { deviceId: AGENT_B, role: 'agent' as const, name: 'Bob' }];
  // Agent A forges a list that names the customer as owner, at the next epoch, with a correct hash.
  const forged = rawFrame({ v: 1, c: id, e: 3, h: membersHash(id, CUSTOMER, 3, members), s: 50, k: 'members', members });
  await refusedUnchanged(customer, AGENT_A, forged, 'FORBIDDEN', 'notOwner');
  await refusedUnchanged(bot, AGENT_A, forged, 'FORBIDDEN', 'notOwner');
  await refusedUnchanged(agentB, AGENT_A, forged, 'FORBIDDEN', 'notOwner');
  // Agent A claims ownership in its own list: still not the owner.
  const own = members.map((m) => (m.deviceId === AGENT_A ? { ...m, role: 'customer' as const } : m.deviceId === CUSTOMER ? { ...m, role: 'bot' as const } : m));
  const selfOwned = rawFrame({ v: 1, c: id, e: 3, h: membersHash(id, AGENT_A, 3, own), s: 50, k: 'members', members: own });
  await refusedUnchanged(bot, AGENT_A, selfOwned, 'FORBIDDEN', 'notOwner');
  await refusedUnchanged(agentB, AGENT_A, selfOwned, 'FORBIDDEN', 'notOwner');
  // A stranger's list naming agent B at epoch 1 (B is staff: a bot-style first list does not admit it).
  const start = [{ deviceId: STRANGER, role: 'customer' as const, name: 'X' }, { deviceId: AGENT_B, role: 'agent' as const, name: 'Bob' }];
  const cid = 'Q'.repeat(22);
  await refusedUnchanged(agentB, STRANGER, rawFrame({ v: 1, c: cid, e: 1, h: membersHash(cid, STRANGER, 1, start), s: 1, k: 'members', members: start }), 'FORBIDDEN', 'notOwner');
  // A list for a conversation this device is not in.
  const other = [{ deviceId: STRANGER, role: 'customer' as const, name: 'X' }, { deviceId: AGENT_A, role: 'agent' as const, name: 'A' }];
  await refusedUnchanged(bot, STRANGER, rawFrame({ v: 1, c: cid, e: 1, h: membersHash(cid, STRANGER, 1, other), s: 1, k: 'members', members: other }), 'FORBIDDEN', 'notOwner');
  // The owner's own list is accepted (the control), and an old epoch is a duplicate.
  await customer.book.noteTicket(id, { id: TICKET_2, ref: 'ref2' });
  await agentB.book.prepareJoin({ id: TICKET_2, customer: CUSTOMER, ref: 'ref2' });
  const real = await customer.book.prepareMembers(id, members.slice(1), TICKET_2);
  const ev = await deliverAll(customer, real, [bot, agentA, agentB]);
  for (const d of [BOT, AGENT_A, AGENT_B]) assert.equal(ev.get(d)?.kind, 'members', 'the owner may add B (through its claim)');
  assert.deepEqual(await bot.book.receive(CUSTOMER, real.frame, { messageId: mid(), sentAt: 1 }), { kind: 'duplicate' });
});

test('a staff device accepts a new conversation only through its own claim on that ticket', async () => {
  const { customer, agentA, agentB, id } = await handedOff();
  // Agent B claimed nothing: the owner's list naming it for TICKET_1 is refused.
  const conv = customer.book.get(id)!;
  const withB = [...conv.members, { deviceId: AGENT_B, role: 'agent' as const, name: 'Bob' }];
  const frame = rawFrame({ v: 1, c: id, e: 9, h: membersHash(id, CUSTOMER, 9, withB), s: 99, k: 'members', members: withB, ticket: TICKET_1 });
  await refusedUnchanged(agentB, CUSTOMER, frame, 'FORBIDDEN', 'notOwner');
  // B's claim is for another customer's ticket: still refused.
  await agentB.book.prepareJoin({ id: TICKET_1, customer: STRANGER, ref: 'ref1' });
  await refusedUnchanged(agentB, CUSTOMER, frame, 'FORBIDDEN', 'notOwner');
  void agentA;
});

test('H1: messages, handoffs and leaves only from current members, to a current member', async () => {
  const { customer, bot, agentA, agentB, all, id } = await handedOff();
  const conv = customer.book.get(id)!;
  const msg = (s: number) => rawFrame({ v: 1, c: id, e: conv.epoch, h: conv.hash, s, k: 'message', m: { type: 'text', text: 'x' } });
  // Agent B (no claim) writes into the conversation.
  await refusedUnchanged(customer, AGENT_B, msg(1), 'FORBIDDEN', 'notMember');
  await refusedUnchanged(bot, AGENT_B, msg(1), 'FORBIDDEN', 'notMember');
  await refusedUnchanged(customer, AGENT_B, rawFrame({ v: 1, c: id, e: conv.epoch, h: conv.hash, s: 0, k: 'handoff', queue: 'q', reason: '' }), 'FORBIDDEN', 'notMember');
  await refusedUnchanged(customer, AGENT_B, rawFrame({ v: 1, c: id, e: conv.epoch, h: conv.hash, s: 2, k: 'leave' }), 'FORBIDDEN', 'notMember');
  // An unknown conversation.
  await refusedUnchanged(agentB, AGENT_A, msg(1), 'FORBIDDEN', 'notMember');
  // A removed member: the bot's message prepared before its removal arrives after it.
  const stale = await bot.book.prepareMessage(id, 'late', mid());
  await deliverAll(customer, await customer.book.prepareMembers(id, [agentA.member]), all);
  await refusedUnchanged(customer, BOT, stale.frame, 'FORBIDDEN', 'notMember');
  await refusedUnchanged(agentA, BOT, stale.frame, 'FORBIDDEN', 'notMember');
  await assert.rejects(bot.book.prepareMessage(id, 'again', mid()), (e: unknown) => isParleyError(e, 'FORBIDDEN') && e.details?.reason === 'notMember');
  // The removed bot's own leave, sent under the list before its removal (a transfer crossing
  // the owner's change): dropped quietly, nothing changes; under the current list it is refused.
  const before = customer.book.get(id)!;
  const crossed = await customer.book.receive(BOT, rawFrame({ v: 1, c: id, e: conv.epoch, h: conv.hash, s: 70, k: 'leave' }), { messageId: mid(), sentAt: 1 });
  assert.equal(crossed.kind, 'duplicate');
  assert.deepEqual(customer.book.get(id), before);
  const now = customer.book.get(id)!;
  await refusedUnchanged(customer, BOT, rawFrame({ v: 1, c: id, e: now.epoch, h: now.hash, s: 71, k: 'leave' }), 'FORBIDDEN', 'notMember');
  // And a frame to the removed bot is refused by the bot.
  await refusedUnchanged(bot, CUSTOMER, (await customer.book.prepareMessage(id, 'after', mid())).frame, 'FORBIDDEN', 'notMember');
});

test('a member whose hash differs at the same epoch: delivered, flagged membersMismatch', async () => {
  const { customer, id } = await handedOff();
  const conv = customer.book.get(id)!;
  const ev = await customer.book.receive(BOT, rawFrame({ v: 1, c: id, e: conv.epoch, h: '0'.repeat(64), s: 40, k: 'message', m: { type: 'text', text: 'x' } }), { messageId: mid(), sentAt: 1 });
  assert.ok(ev.kind === 'message' && ev.membersMismatch === true);
});

test('C19/H2: history only from the owner, for the ticket this device claimed, once', async () => {
  const { customer, bot, agentA, agentB, all, id } = await handedOff();
  const conv = customer.book.get(id)!;
  const items = [{ from: CUSTOMER, name: 'Ann', role: 'customer', id: 'fake', sentAt: 1, m: { type: 'text', text: 'forged' } }];
  // From the bot (a member, not the owner).
  await refusedUnchanged(agentA, BOT, rawFrame({ v: 1, c: id, e: conv.epoch, h: conv.hash, s: 0, k: 'history', items, ticket: TICKET_1 }), 'UNTRUSTED_SOURCE', 'notOwner');
  // From the owner, to a member that never claimed (the bot): unsolicited.
  await refusedUnchanged(bot, CUSTOMER, rawFrame({ v: 1, c: id, e: conv.epoch, h: conv.hash, s: 0, k: 'history', items, ticket: TICKET_1 }), 'UNTRUSTED_SOURCE', 'unsolicited');
  // For another ticket than the one agent A was admitted through.
  await refusedUnchanged(agentA, CUSTOMER, rawFrame({ v: 1, c: id, e: conv.epoch, h: conv.hash, s: 0, k: 'history', items, ticket: TICKET_2 }), 'UNTRUSTED_SOURCE', 'unsolicited');
  // For another conversation, naming A's ticket.
  const otherId = 'Z'.repeat(22);
  await refusedUnchanged(agentA, CUSTOMER, rawFrame({ v: 1, c: otherId, e: 1, h: conv.hash, s: 0, k: 'history', items, ticket: TICKET_1 }), 'UNTRUSTED_SOURCE', 'wrongConversation');
  // A second conversation A joined through TICKET_2, with a bundle naming TICKET_1: wrong conversation.
  const second = await customer.book.create([], customer.member);
  await customer.book.noteTicket(second.id, { id: TICKET_2, ref: 'ref2' });
  await agentA.book.prepareJoin({ id: TICKET_2, customer: CUSTOMER, ref: 'ref2' });
  await deliverAll(customer, await customer.book.prepareMembers(second.id, [agentA.member], TICKET_2), all);
  const s2 = customer.book.get(second.id)!;
  await refusedUnchanged(agentA, CUSTOMER, rawFrame({ v: 1, c: second.id, e: s2.epoch, h: s2.hash, s: 0, k: 'history', items, ticket: TICKET_1 }), 'UNTRUSTED_SOURCE', 'wrongConversation');
  // Agent B, with no claim at all: unsolicited.
  await refusedUnchanged(agentB, CUSTOMER, rawFrame({ v: 1, c: id, e: conv.epoch, h: conv.hash, s: 0, k: 'history', items, ticket: TICKET_1 }), 'UNTRUSTED_SOURCE', 'unsolicited');
  // The real one is accepted once; the same (or another) bundle for that ticket again is unsolicited.
  const real = await customer.book.prepareHistory(id, AGENT_A, TICKET_1, 2);
  const ev = await agentA.book.receive(CUSTOMER, real.frame, { messageId: mid(), sentAt: 1 });
  assert.ok(ev.kind === 'history' && ev.items.length === 2 && ev.items.every((i) => i.shared));
  await refusedUnchanged(agentA, CUSTOMER, real.frame, 'UNTRUSTED_SOURCE', 'unsolicited');
  // Transferred away and back on the same ticket: the new claim asks for a history again (once).
  await deliverAll(agentA, await agentA.book.prepareLeave(id), all);
  await deliverAll(customer, await customer.book.prepareMembers(id, [bot.member]), all);
  await agentA.book.prepareJoin({ id: TICKET_1, customer: CUSTOMER, ref: 'ref1' });
  await deliverAll(customer, await customer.book.prepareMembers(id, [bot.member, agentA.member], TICKET_1), all);
  const back = await customer.book.prepareHistory(id, AGENT_A, TICKET_1, 1);
  assert.equal((await agentA.book.receive(CUSTOMER, back.frame, { messageId: mid(), sentAt: 1 })).kind, 'history');
  await refusedUnchanged(agentA, CUSTOMER, back.frame, 'UNTRUSTED_SOURCE', 'unsolicited');
  // Owner side: history only for a current member.
  await assert.rejects(customer.book.prepareHistory(id, AGENT_B, TICKET_1), (e: unknown) => isParleyError(e, 'FORBIDDEN') && e.details?.reason === 'notMember');
});

test('joins only from verified staff naming a ticket this device opened; declines only from the claimed customer', async () => {
  const { customer, agentA, agentB, id } = await handedOff();
  await customer.book.noteTicket(id, { id: TICKET_2, ref: 'ref2' });
  const join = await agentB.book.prepareJoin({ id: TICKET_2, customer: CUSTOMER, ref: 'ref2' });
  await refusedUnchanged(customer, AGENT_B, join.frame, 'FORBIDDEN', 'notClaimant');
  await refusedUnchanged(customer, AGENT_B, join.frame, 'FORBIDDEN', 'notClaimant', { senderStaff: { roles: ['compliance'], displayName: 'C' } });
  const wrongRef = await agentB.book.prepareJoin({ id: TICKET_2, customer: CUSTOMER, ref: 'other' });
  await refusedUnchanged(customer, AGENT_B, wrongRef.frame, 'FORBIDDEN', 'notClaimant', { senderStaff: AGENT_FACTS });
  assert.equal((await customer.book.receive(AGENT_B, join.frame, { messageId: mid(), sentAt: 1, senderStaff: AGENT_FACTS })).kind, 'join', 'the control');
  // A decline from someone else than the claimed ticket's customer.
  const decline = rawFrame({ v: 1, e: 0, h: '', s: 0, k: 'decline', ticket: TICKET_2 });
  await refusedUnchanged(agentB, STRANGER, decline, 'FORBIDDEN', 'notOwner');
  await refusedUnchanged(agentA, CUSTOMER, decline, 'FORBIDDEN', 'notOwner');
});

test('malformed frames are MALFORMED_MESSAGE and change nothing', async () => {
  const { customer, bot, id } = await handedOff();
  const conv = customer.book.get(id)!;
  const base = { v: 1, c: id, e: conv.epoch, h: conv.hash, s: 77, k: 'message', m: { type: 'text', text: 'x' } };
  const many = Array.from({ length: 21 }, (_, i) => ({ deviceId: i.toString(16).padStart(32, '0'), role: 'agent', name: 'n' }));
  const bad: Record<string, Uint8Array> = {
    notJson: new TextEncoder().encode('{'),
    version: rawFrame({ ...base, v: 2 }),
    unknownField: rawFrame({ ...base, extra: 1 }),
    fieldOfOtherKind: rawFrame({ ...base, queue: 'q' }),
    badId: rawFrame({ ...base, c: 'short' }),
    badHash: rawFrame({ ...base, h: 'zz' }),
    seqZero: rawFrame({ ...base, s: 0 }),
    badContent: rawFrame({ ...base, m: { type: 'text', text: 1 } }),
    tooManyMembers: rawFrame({ ...base, k: 'members', m: undefined, members: many }),
    longName: rawFrame({ ...base, k: 'members', m: undefined, members: [{ deviceId: CUSTOMER, role: 'customer', name: 'x'.repeat(101) }] }),
    badRole: rawFrame({ ...base, k: 'members', m: undefined, members: [{ deviceId: CUSTOMER, role: 'admin', name: 'x' }] }),
    twice: rawFrame({ ...base, k: 'members', m: undefined, members: [{ deviceId: BOT, role: 'bot', name: 'x' }, { deviceId: BOT, role: 'bot', name: 'y' }] }),
    longReason: rawFrame({ ...base, k: 'handoff', s: 0, m: undefined, queue: 'q', reason: 'r'.repeat(501) }),
    badQueue: rawFrame({ ...base, k: 'handoff', s: 0, m: undefined, queue: 'a b', reason: '' }),
    tooManyItems: rawFrame({ ...base, k: 'history', s: 0, m: undefined, ticket: TICKET_1, items: Array.from({ length: 501 }, () => ({ from: CUSTOMER, name: 'a', role: 'customer', id: 'i', sentAt: 1, m: { type: 'text', text: '' } })) }),
    joinInConversation: rawFrame({ v: 1, c: id, e: 0, h: '', s: 0, k: 'join', ticket: TICKET_1, ref: 'r' }),
    tooLarge: rawFrame({ ...base, m: { type: 'text', text: 'x'.repeat(MAX_FRAME_BYTES) } }),
    wrongHash: rawFrame({ ...base, k: 'members', e: 5, m: undefined, members: conv.members, h: conv.hash }),
  };
  for (const [name, frame] of Object.entries(bad)) {
    await refusedUnchanged(bot, CUSTOMER, frame, 'MALFORMED_MESSAGE').catch((e: unknown) => assert.fail(`${name}: ${String(e)}`));
  }
  // Sending side: sizes are checked before anything is stored.
  await assert.rejects(customer.book.prepareMessage(id, 'x'.repeat(MAX_FRAME_BYTES), mid()), (e: unknown) => isParleyError(e, 'PAYLOAD_TOO_LARGE'));
  await assert.rejects(customer.book.prepareHandoff(id, 'q', 'r'.repeat(501)), (e: unknown) => isParleyError(e, 'USAGE'));
  await assert.rejects(customer.book.prepareMembers(id, many as never), (e: unknown) => isParleyError(e, 'USAGE'));
  await assert.rejects(bot.book.prepareMembers(id, []), (e: unknown) => isParleyError(e, 'FORBIDDEN') && e.details?.reason === 'notOwner');
});
