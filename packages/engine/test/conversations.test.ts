/**
 * ConversationBook (docs/architecture.md "Conversations with several members"): creation and
 * fan-out recipients, epoch and members-hash agreement, the handoff steps (handoff, join,
 * members change through a claim, shared history), exactly-once delivery and gaps (C25),
 * restart from the same store, the 500-message history, and one frame through real engines.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { ParleyError } from '@parley/protocol';
import { ConversationBook, ConversationEngine, MAX_HISTORY_ITEMS, MemoryStore, membersHash, type ConversationInfo, type KeyValueStore } from '../src/index.js';
import { AGENT_A, AGENT_B, AGENT_FACTS, BOT, CUSTOMER, STRANGER, TICKET_1, TICKET_2, deliverAll, digest, handedOff, mid, party, rawFrame, restart, view } from './helpers/conversations.js';
import { deliver, device, setupCrypto, takeBundle } from './helpers/engines.js';

before(setupCrypto);

test('create, announce to a bot, fan out: recipients, epoch and hash agree', async () => {
  const customer = await party(CUSTOMER, 'customer', 'Ann');
  const bot = await party(BOT, 'bot', 'Helper');
  const conv = await customer.book.create([bot.member], { ...customer.member, role: 'agent' });
  assert.match(conv.id, /^[A-Za-z0-9_-]{22}$/);
  assert.equal(conv.owner, CUSTOMER);
  assert.equal(conv.epoch, 1);
  assert.deepEqual(conv.members.find((m) => m.deviceId === CUSTOMER)?.role, 'customer', 'the creator is listed as customer');
  assert.equal(conv.hash, membersHash(conv.id, CUSTOMER, 1, conv.members));

  const announce = await customer.book.prepareAnnounce(conv.id);
  assert.deepEqual(announce.recipients, [BOT]);
  const ev = (await deliverAll(customer, announce, [bot])).get(BOT)!;
  assert.equal(ev.kind, 'members');
  assert.ok(ev.kind === 'members' && ev.created);
  assert.deepEqual(bot.book.get(conv.id), customer.book.get(conv.id), 'both sides hold the same id, owner, epoch, hash, members');

  const hello = await customer.book.prepareMessage(conv.id, 'hello', 'm-hello');
  assert.deepEqual(hello.recipients, [BOT]);
  const got = (await deliverAll(customer, hello, [bot], 'm-hello')).get(BOT)!;
  assert.ok(got.kind === 'message');
  assert.deepEqual(got.message.content, { type: 'text', text: 'hello' });
  assert.equal(got.message.sender.role, 'customer');
  assert.equal(got.membersMismatch, undefined);

  const reply = await bot.book.prepareMessage(conv.id, { answer: 42 }, 'm-reply');
  assert.deepEqual(reply.recipients, [CUSTOMER]);
  const back = (await deliverAll(bot, reply, [customer], 'm-reply')).get(CUSTOMER)!;
  assert.ok(back.kind === 'message');
  assert.deepEqual(back.message.content, { type: 'json', json: { answer: 42 } });

  const bin = await customer.book.prepareMessage(conv.id, new Uint8Array([0, 1, 255]), 'm-bin');
  const binEv = (await deliverAll(customer, bin, [bot], 'm-bin')).get(BOT)!;
  assert.ok(binEv.kind === 'message' && binEv.message.content.type === 'binary');
  assert.deepEqual([...binEv.message.content.binary!], [0, 1, 255]);

  // Both keep the history, own and received, oldest first.
  assert.deepEqual(customer.book.history(conv.id).map((m) => m.id), ['m-hello', 'm-reply', 'm-bin']);
  assert.deepEqual(bot.book.history(conv.id).map((m) => m.id), ['m-hello', 'm-reply', 'm-bin']);
  assert.deepEqual(bot.book.history(conv.id, 1).map((m) => m.id), ['m-bin']);
});

test('handoff: handoff frame to the owner, join, members change through the claim, shared history, three-way fan-out', async () => {
  const customer = await party(CUSTOMER, 'customer', 'Ann');
  const bot = await party(BOT, 'bot', 'Helper');
  const agent = await party(AGENT_A, 'agent', 'Alice');
  const all = [customer, bot, agent];
  const conv = await customer.book.create([bot.member], customer.member);
  await deliverAll(customer, await customer.book.prepareAnnounce(conv.id), all);
  for (let i = 1; i <= 7; i++) await deliverAll(customer, await customer.book.prepareMessage(conv.id, `c${i}`, `c${i}`), all, `c${i}`);

  const handoff = await bot.book.prepareHandoff(conv.id, 'support', 'wants a person');
  assert.deepEqual(handoff.recipients, [CUSTOMER], 'a handoff goes to the owner only');
  const hev = (await deliverAll(bot, handoff, all)).get(CUSTOMER)!;
  assert.ok(hev.kind === 'handoff');
  assert.deepEqual([hev.from, hev.queue, hev.reason], [BOT, 'support', 'wants a person']);

  await customer.book.noteTicket(conv.id, { id: TICKET_1, ref: 'ref1' });
  assert.deepEqual(customer.book.get(conv.id)?.tickets, [{ id: TICKET_1, ref: 'ref1' }]);
  const join = await agent.book.prepareJoin({ id: TICKET_1, customer: CUSTOMER, ref: 'ref1' });
  assert.deepEqual(join.recipients, [CUSTOMER]);
  const jev = (await deliverAll(agent, join, all, mid(), AGENT_FACTS)).get(CUSTOMER)!;
  assert.ok(jev.kind === 'join');
  assert.deepEqual([jev.agent, jev.ticket, jev.ref, jev.conversation.id], [AGENT_A, TICKET_1, 'ref1', conv.id]);
  assert.equal(customer.book.get(conv.id)?.members.length, 2, 'a join does not make the agent a member');

  assert.deepEqual(customer.book.pendingOffers(), [{ ticket: TICKET_1, agent: AGENT_A, conversation: conv.id, ref: 'ref1' }]);
  assert.deepEqual((await restart(customer)).book.pendingOffers(), customer.book.pendingOffers(), 'offers survive a restart');
  assert.deepEqual(agent.book.pendingClaims().map((c) => [c.ticket, c.customer]), [[TICKET_1, CUSTOMER]]);
  const change = await customer.book.prepareMembers(conv.id, [bot.member, agent.member], TICKET_1);
  assert.deepEqual(customer.book.pendingOffers(), [], 'admitting the claimant answers the offer');
  assert.deepEqual(change.recipients.sort(), [AGENT_A, BOT].sort());
  assert.deepEqual(change.joined.map((m) => m.deviceId), [AGENT_A]);
  assert.deepEqual(change.left, []);
  const events = await deliverAll(customer, change, all);
  const agentEv = events.get(AGENT_A)!;
  const botEv = events.get(BOT)!;
  assert.ok(agentEv.kind === 'members' && agentEv.created);
  assert.deepEqual(agent.book.pendingClaims(), [], 'the claim is used up');
  assert.ok(botEv.kind === 'members' && !botEv.created);
  assert.deepEqual(botEv.joined.map((m) => m.deviceId), [AGENT_A]);
  for (const p of all) {
    assert.equal(p.book.get(conv.id)?.epoch, 2);
    assert.equal(p.book.get(conv.id)?.hash, customer.book.get(conv.id)?.hash, 'every member computes the same members hash');
  }

  const shared = await customer.book.prepareHistory(conv.id, AGENT_A, TICKET_1, 5);
  assert.deepEqual(shared.recipients, [AGENT_A]);
  assert.deepEqual(shared.items.map((i) => i.id), ['c3', 'c4', 'c5', 'c6', 'c7']);
  const hist = (await deliverAll(customer, shared, all)).get(AGENT_A)!;
  assert.ok(hist.kind === 'history');
  assert.deepEqual(hist.items.map((i) => [i.id, i.shared, i.sender.role]), ['c3', 'c4', 'c5', 'c6', 'c7'].map((id) => [id, true, 'customer']));
  assert.deepEqual(agent.book.history(conv.id).map((m) => m.id), ['c3', 'c4', 'c5', 'c6', 'c7'], 'exactly the shared messages');

  // Three-way: the agent's message reaches the customer and the bot.
  const hi = await agent.book.prepareMessage(conv.id, 'Alice here', 'a1');
  assert.deepEqual(hi.recipients.sort(), [BOT, CUSTOMER].sort());
  for (const ev of (await deliverAll(agent, hi, all, 'a1')).values()) assert.ok(ev.kind === 'message' && ev.message.sender.name === 'Alice');

  // Decline path: a second claim declined.
  const decline = await customer.book.prepareDecline(AGENT_A, TICKET_1);
  assert.deepEqual(decline.recipients, [AGENT_A]);
  await agent.book.prepareJoin({ id: TICKET_1, customer: CUSTOMER, ref: 'ref1' });
  const dev = (await deliverAll(customer, decline, all)).get(AGENT_A)!;
  assert.deepEqual(dev, { kind: 'decline', ticket: TICKET_1 });
  assert.deepEqual(agent.book.pendingClaims(), [], 'a decline ends the claim');

  // Leave: the bot leaves; the owner is told and removes it; the bot then sends nothing.
  const leave = await bot.book.prepareLeave(conv.id);
  const lev = (await deliverAll(bot, leave, all)).get(CUSTOMER)!;
  assert.ok(lev.kind === 'leave' && lev.member === BOT);
  await assert.rejects(bot.book.prepareMessage(conv.id, 'x', mid()), (e: unknown) => e instanceof ParleyError && e.code === 'FORBIDDEN' && e.details?.reason === 'notMember');
  const removal = await customer.book.prepareMembers(conv.id, [agent.member]);
  assert.deepEqual(removal.left.map((m) => m.deviceId), [BOT]);
  assert.ok(removal.recipients.includes(BOT), 'a removed member is told');
  await deliverAll(customer, removal, all);
  assert.equal(bot.book.isMember(conv.id), false);
  assert.deepEqual((await customer.book.prepareMessage(conv.id, 'bye', mid())).recipients, [AGENT_A]);
});

test('exactly once and gaps (C25): duplicates ignored, a skipped seq is due after the timeout, its late arrival closes it', async () => {
  const { customer, agentA, all, id } = await handedOff();
  const frames: { p: { recipients: string[]; frame: Uint8Array }; id: string }[] = [];
  for (let i = 0; i < 4; i++) frames.push({ p: await customer.book.prepareMessage(id, `g${i}`, `g${i}`), id: `g${i}` });
  const to = (i: number) => agentA.book.receive(CUSTOMER, frames[i]!.p.frame, { messageId: frames[i]!.id, sentAt: 1 });

  assert.equal((await to(0)).kind, 'message');
  assert.deepEqual(await to(0), { kind: 'duplicate' }, 'the same seq again is a duplicate');
  assert.equal((await to(2)).kind, 'message');
  assert.equal((await to(3)).kind, 'message');
  assert.deepEqual(agentA.book.dueGaps(30_000), [], 'nothing due before the timeout');
  agentA.clock.now += 30_000;
  assert.deepEqual(agentA.book.dueGaps(30_000), [{ conversation: id, member: CUSTOMER, seqs: [seqOf(frames[1]!.p.frame)] }]);
  await agentA.book.markGapsReported(id, CUSTOMER, [seqOf(frames[1]!.p.frame)]);
  assert.deepEqual(agentA.book.dueGaps(30_000), [], 'reported once');

  // A restart keeps the gap state.
  const again = await restart(agentA);
  const late = await again.book.receive(CUSTOMER, frames[1]!.p.frame, { messageId: 'g1', sentAt: 1 });
  assert.ok(late.kind === 'message' && late.gapClosed === true, 'the late message is delivered and closes the reported gap');
  assert.deepEqual(await again.book.receive(CUSTOMER, frames[1]!.p.frame, { messageId: 'g1', sentAt: 1 }), { kind: 'duplicate' });
  assert.deepEqual(await again.book.receive(CUSTOMER, frames[3]!.p.frame, { messageId: 'g3', sentAt: 1 }), { kind: 'duplicate' }, 'still a duplicate after the restart');
  assert.deepEqual(again.book.history(id).filter((m) => m.id.startsWith('g')).map((m) => m.id).sort(), ['g0', 'g1', 'g2', 'g3']);
  void all;
});

test('a member list overtaken by a newer one is a duplicate when it arrives, and closes its gap', async () => {
  const { customer, bot, id } = await handedOff();
  const older = await customer.book.prepareMembers(id, [bot.member]);
  const newer = await customer.book.prepareMembers(id, [bot.member, { deviceId: STRANGER, role: 'bot', name: 'Other bot' }]);
  const ev = await bot.book.receive(CUSTOMER, newer.frame, { messageId: mid(), sentAt: 1 });
  assert.ok(ev.kind === 'members' && ev.conversation.epoch === customer.book.get(id)?.epoch);
  bot.clock.now += 60_000;
  assert.equal(bot.book.dueGaps(30_000).length, 1, 'the older list is missing');
  assert.deepEqual(await bot.book.receive(CUSTOMER, older.frame, { messageId: mid(), sentAt: 1 }), { kind: 'duplicate' });
  assert.deepEqual(bot.book.dueGaps(30_000), [], 'its arrival closed the gap');
  const pick = (c: ConversationInfo | undefined) => c && [c.epoch, c.hash, c.members];
  assert.deepEqual(pick(bot.book.get(id)), pick(customer.book.get(id)), 'the newer list stays');
});

test('a message from a newly admitted member that overtakes the owner\'s member list is held, then released by it', async () => {
  const { customer, bot, agentA, agentB, id } = await handedOff();
  await customer.book.noteTicket(id, { id: TICKET_2, ref: 'ref2' });
  await agentB.book.prepareJoin({ id: TICKET_2, customer: CUSTOMER, ref: 'ref2' });
  const change = await customer.book.prepareMembers(id, [bot.member, agentA.member, agentB.member], TICKET_2);
  // B and A get the new list at once; the bot's copy is late (another sender's queue).
  await deliverAll(customer, { recipients: [AGENT_B, AGENT_A], frame: change.frame }, [agentA, agentB]);
  const hello = await agentB.book.prepareMessage(id, 'Bob here', 'b-hello');
  assert.deepEqual((await agentA.book.receive(AGENT_B, hello.frame, { messageId: 'b-hello', sentAt: 5 })).kind, 'message');
  assert.deepEqual(await bot.book.receive(AGENT_B, hello.frame, { messageId: 'b-hello', sentAt: 5 }), { kind: 'held' });
  assert.deepEqual(await bot.book.receive(AGENT_B, hello.frame, { messageId: 'b-hello', sentAt: 5 }), { kind: 'duplicate' }, 'held once');
  assert.equal(bot.book.history(id).some((m) => m.id === 'b-hello'), false, 'not delivered while held');
  // A forged message naming a newer epoch from a device the list will not admit.
  const conv = customer.book.get(id)!;
  const forged = rawFrame({ v: 1, c: id, e: conv.epoch, h: conv.hash, s: 1, k: 'message', m: { type: 'text', text: 'spoof' } });
  assert.deepEqual(await bot.book.receive(STRANGER, forged, { messageId: 'spoof', sentAt: 5 }), { kind: 'held' });

  const again = await restart(bot);
  const ev = await again.book.receive(CUSTOMER, change.frame, { messageId: mid(), sentAt: 6 });
  assert.ok(ev.kind === 'members');
  assert.deepEqual(ev.released?.map((m) => [m.id, m.from, m.sender.name]), [['b-hello', AGENT_B, 'Bob']], 'released after the restart; the stranger\'s is dropped');
  assert.deepEqual(again.book.history(id).filter((m) => m.id === 'b-hello' || m.id === 'spoof').map((m) => m.id), ['b-hello']);
  assert.deepEqual(await again.book.receive(AGENT_B, hello.frame, { messageId: 'b-hello', sentAt: 5 }), { kind: 'duplicate' });
  assert.deepEqual(await again.book.receive(STRANGER, forged, { messageId: 'spoof', sentAt: 5 }).catch((e: unknown) => (e as ParleyError).details?.reason), 'notMember');
});

test('a staff device waiting for its claim\'s member list holds a member\'s message for the unknown conversation; at most 50 held', async () => {
  const customer = await party(CUSTOMER, 'customer', 'Ann');
  const bot = await party(BOT, 'bot', 'Helper');
  const agent = await party(AGENT_A, 'agent', 'Alice');
  const conv = await customer.book.create([bot.member], customer.member);
  await deliverAll(customer, await customer.book.prepareAnnounce(conv.id), [bot]);
  await customer.book.noteTicket(conv.id, { id: TICKET_1, ref: 'ref1' });
  await agent.book.prepareJoin({ id: TICKET_1, customer: CUSTOMER, ref: 'ref1' });
  const change = await customer.book.prepareMembers(conv.id, [bot.member, agent.member], TICKET_1);
  await bot.book.receive(CUSTOMER, change.frame, { messageId: mid(), sentAt: 1 });
  const fromBot = await bot.book.prepareMessage(conv.id, 'welcome', 'w1');
  assert.deepEqual(await agent.book.receive(BOT, fromBot.frame, { messageId: 'w1', sentAt: 2 }), { kind: 'held' });
  const ev = await agent.book.receive(CUSTOMER, change.frame, { messageId: mid(), sentAt: 3 });
  assert.ok(ev.kind === 'members' && ev.created);
  assert.deepEqual(ev.released?.map((m) => [m.id, m.sender.role]), [['w1', 'bot']]);
  assert.deepEqual(agent.book.history(conv.id).map((m) => m.id), ['w1']);
  assert.equal((await agent.book.receive(BOT, (await bot.book.prepareMessage(conv.id, 'next', 'w2')).frame, { messageId: 'w2', sentAt: 4 })).kind, 'message', 'the next one is in sequence');
  assert.deepEqual(agent.book.dueGaps(0), [], 'and no gap');
  // Flooding while a claim is pending: only the newest 50 are kept.
  await agent.book.prepareJoin({ id: TICKET_2, customer: CUSTOMER, ref: 'ref2' });
  for (let i = 0; i < 60; i++) {
    await agent.book.receive(STRANGER, rawFrame({ v: 1, c: 'F'.repeat(22), e: 1, h: conv.hash, s: i + 1, k: 'message', m: { type: 'text', text: 'x' } }), { messageId: `f${i}`, sentAt: 1 });
  }
  const heldRecord = JSON.parse(new TextDecoder().decode((await agent.store.get('conv/held'))!)) as { messageId: string }[];
  assert.deepEqual(heldRecord.map((x) => x.messageId), Array.from({ length: 50 }, (_, i) => `f${i + 10}`));
});

test('restart: re-opening from the same store keeps conversations, seqs, tickets, claims and history', async () => {
  const { customer, bot, agentA, all, id } = await handedOff();
  const before = all.map((p) => view(p.book));
  const reopened = await Promise.all(all.map(restart));
  assert.deepEqual(reopened.map((p) => view(p.book)), before);
  const [c2, b2, a2] = reopened as [typeof customer, typeof bot, typeof agentA];
  // Sequence numbers continue: the next message is accepted, not a duplicate.
  const next = await c2.book.prepareMessage(id, 'after restart', 'r1');
  const evs = await deliverAll(c2, next, reopened, 'r1');
  assert.equal(evs.get(BOT)?.kind, 'message');
  assert.equal(evs.get(AGENT_A)?.kind, 'message');
  // The claim-admitted agent still accepts its history (once).
  const h = await c2.book.prepareHistory(id, AGENT_A, TICKET_1);
  assert.equal((await a2.book.receive(CUSTOMER, h.frame, { messageId: mid(), sentAt: 1 })).kind, 'history');
  void b2;
});

test(`history keeps the last ${MAX_HISTORY_ITEMS} messages per conversation, also after a restart`, async () => {
  const customer = await party(CUSTOMER, 'customer', 'Ann');
  const conv = await customer.book.create([{ deviceId: BOT, role: 'bot', name: 'Helper' }], customer.member);
  const firstAt = customer.clock.now + 1;
  const ownIndexes: (number | undefined)[] = [];
  for (let i = 0; i < MAX_HISTORY_ITEMS + 7; i++) {
    customer.clock.now += 1;
    ownIndexes.push((await customer.book.prepareMessage(conv.id, `n${i}`, `n${i}`)).ownIndex);
  }
  // The archive's sender sequence and the gate's first-message time outlive the history's cap.
  assert.deepEqual(ownIndexes, Array.from({ length: MAX_HISTORY_ITEMS + 7 }, (_, i) => i));
  assert.equal(customer.book.firstMessageAt(conv.id), firstAt);
  const ids = customer.book.history(conv.id).map((m) => m.id);
  assert.equal(ids.length, MAX_HISTORY_ITEMS);
  assert.equal(ids[0], 'n7', 'the oldest were dropped');
  assert.equal(ids.at(-1), `n${MAX_HISTORY_ITEMS + 6}`);
  const again = await restart(customer);
  assert.deepEqual(again.book.history(conv.id).map((m) => m.id), ids);
  assert.equal(again.book.firstMessageAt(conv.id), firstAt);
  assert.equal((await again.book.prepareMessage(conv.id, 'after restart', 'after-restart')).ownIndex, MAX_HISTORY_ITEMS + 7);
  assert.equal((await again.book.prepareMessage(conv.id, 'same id again', 'after-restart')).ownIndex, undefined, 'a message id prepared before counts once');
  assert.ok((await customer.store.keys(`conv/${conv.id}/h/`)).length <= MAX_HISTORY_ITEMS, 'slots are reused, not piled up');
});

test('a failed write changes nothing (one atomic batch per frame)', async () => {
  const inner = new MemoryStore();
  let fail = false;
  const store: KeyValueStore = {
    get: (k) => inner.get(k),
    keys: (p) => inner.keys(p),
    delMany: (k) => inner.delMany(k),
    setMany: async (e) => {
      if (fail) throw new Error('disk full');
      return inner.setMany(e);
    },
  };
  const customer = await party(CUSTOMER, 'customer', 'Ann');
  const bot = { ...(await party(BOT, 'bot', 'Helper')), store: inner };
  bot.book = await ConversationBook.open({ store, deviceId: BOT, now: () => 1 });
  const conv = await customer.book.create([bot.member], customer.member);
  await deliverAll(customer, await customer.book.prepareAnnounce(conv.id), [bot]);
  const msg = await customer.book.prepareMessage(conv.id, 'x', 'x1');
  const before = [digest(inner), view(bot.book)];
  fail = true;
  await assert.rejects(bot.book.receive(CUSTOMER, msg.frame, { messageId: 'x1', sentAt: 1 }), /disk full/);
  assert.deepEqual([digest(inner), view(bot.book)], before);
  fail = false;
  assert.equal((await bot.book.receive(CUSTOMER, msg.frame, { messageId: 'x1', sentAt: 1 })).kind, 'message', 'delivered once the store works again');
});

test("a frame travels as an engine payload of type 'conversation'", async () => {
  const alice = await device();
  const bob = await device();
  const frame = new TextEncoder().encode('{"v":1}');
  const out = await alice.engine.encrypt(bob.engine.deviceId, frame, { messageId: 'conv-1', type: 'conversation', bundle: takeBundle(bob.upload) });
  const r = await deliver(bob.engine, alice.engine, out);
  assert.ok(r.kind === 'message');
  assert.equal(r.type, 'conversation');
  assert.deepEqual(r.payload, frame);
  // It is kept in the inbox with its type across a restart.
  const again = await ConversationEngine.open({ store: bob.store });
  assert.deepEqual(again.inbox().map((m) => m.type), ['conversation']);
});

function seqOf(frame: Uint8Array): number {
  return (JSON.parse(new TextDecoder().decode(frame)) as { s: number }).s;
}
