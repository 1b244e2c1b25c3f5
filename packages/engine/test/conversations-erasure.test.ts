/**
 * Erasure in the ConversationBook (THREATS P4): the owner's signed `erase` frame deletes the
 * conversation on every member that gets it (no byte of its plaintext left in the store), each
 * answers a signed deletion receipt, and the owner's tombstone lists the receipts and the members
 * whose receipt is missing. Forged or misdirected statements are refused and change nothing.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { IdentityKeyPair, isParleyError } from '@parley/protocol';
import { ConversationBook, MemoryStore, type ConversationEvent, type Member } from '../src/index.js';
import { unsafeTestingRaw } from '../src/testing.js';
import { AGENT_A, BOT, CUSTOMER, deliverAll, mid, type Party } from './helpers/conversations.js';
import { setupCrypto } from './helpers/engines.js';

before(setupCrypto);

const CANARY = 'canary-erasure-7f3a';

async function parties(): Promise<Party[]> {
  const keys = new Map<string, IdentityKeyPair>();
  const out: Party[] = [];
  for (const [id, role, name] of [[CUSTOMER, 'customer', 'Ann'], [BOT, 'bot', 'Helper'], [AGENT_A, 'agent', 'Alice']] as const) {
    const kp = IdentityKeyPair.generate();
    keys.set(id, kp);
    const store = new MemoryStore();
    const clock = { now: 1_000_000 };
    const book = await ConversationBook.open({
      store, deviceId: id, now: () => clock.now,
      erasure: { sign: (p) => kp.sign('erasure', p), signingKey: (peer) => keys.get(peer)?.publicIdentity.signingKey },
    });
    out.push({ book, store, id, member: { deviceId: id, role, name } as Member, clock });
  }
  return out;
}

function hits(store: MemoryStore, needle: string): number {
  let n = 0;
  for (const [k, v] of unsafeTestingRaw(store)) if (k.includes(needle) || Buffer.from(v).toString('latin1').includes(needle)) n++;
  return n;
}

test('erase: every member deletes and answers; the owner keeps only a tombstone with receipts and the missing ones', async () => {
  const [customer, bot, agent] = (await parties()) as [Party, Party, Party];
  // A conversation with the bot, then an agent admitted directly (the owner's own list change).
  const conv = await customer.book.create([bot.member], customer.member);
  await deliverAll(customer, await customer.book.prepareAnnounce(conv.id), [bot]);
  for (let i = 0; i < 3; i++) await deliverAll(customer, await customer.book.prepareMessage(conv.id, `${CANARY} ${i}`, `c${i}`), [bot], `c${i}`);
  await deliverAll(bot, await bot.book.prepareMessage(conv.id, `${CANARY} reply`, 'r1'), [customer], 'r1');
  assert.ok(hits(customer.store, CANARY) > 0 && hits(bot.store, CANARY) > 0, 'the canary is stored before erasure (the scan can see it)');

  // Only the owner may erase.
  await assert.rejects(bot.book.prepareErase(conv.id), (e) => isParleyError(e, 'FORBIDDEN') && e.details?.reason === 'notOwner');

  const erase = await customer.book.prepareErase(conv.id);
  assert.deepEqual(erase.recipients, [BOT]);
  assert.equal(hits(customer.store, CANARY), 0, 'no canary byte left on the owner');
  assert.equal(customer.book.get(conv.id), undefined);
  assert.deepEqual(customer.book.history(conv.id), []);
  assert.deepEqual(customer.book.erasure(conv.id)?.missing, [BOT]);

  // A forged erase (signature of another conversation's request) is refused, nothing deleted.
  const forged = JSON.parse(new TextDecoder().decode(erase.frame)) as Record<string, unknown>;
  forged.at = (forged.at as number) + 1;
  await assert.rejects(bot.book.receive(CUSTOMER, new TextEncoder().encode(JSON.stringify(forged)), { messageId: mid(), sentAt: 1 }), (e) => isParleyError(e, 'INVALID_SIGNATURE'));
  assert.ok(hits(bot.store, CANARY) > 0, 'a refused erase deletes nothing');
  // From another member than the owner: refused.
  await assert.rejects(bot.book.receive(AGENT_A, erase.frame, { messageId: mid(), sentAt: 1 }), (e) => isParleyError(e, 'FORBIDDEN'));

  const ev = (await deliverAll(customer, erase, [bot])).get(BOT) as Extract<ConversationEvent, { kind: 'erased' }>;
  assert.equal(ev.kind, 'erased');
  assert.equal(hits(bot.store, CANARY), 0, 'no canary byte left on the member');
  assert.equal(bot.book.get(conv.id), undefined);
  assert.deepEqual(ev.reply.recipients, [CUSTOMER]);

  // A tampered receipt is refused; the genuine one is recorded.
  const bad = JSON.parse(new TextDecoder().decode(ev.reply.frame)) as Record<string, unknown>;
  bad.at = (bad.at as number) + 5;
  await assert.rejects(customer.book.receive(BOT, new TextEncoder().encode(JSON.stringify(bad)), { messageId: mid(), sentAt: 1 }), (e) => isParleyError(e, 'INVALID_SIGNATURE'));
  // A receipt from a device that was not asked: refused.
  await assert.rejects(customer.book.receive(AGENT_A, ev.reply.frame, { messageId: mid(), sentAt: 1 }), (e) => isParleyError(e, 'FORBIDDEN'));
  const got = (await deliverAll(bot, ev.reply, [customer])).get(CUSTOMER)!;
  assert.ok(got.kind === 'deletionReceipt');
  assert.deepEqual(got.status.missing, []);
  assert.deepEqual(got.status.receipts.map((r) => r.member), [BOT]);

  // The tombstone survives a restart; the conversation does not come back.
  const again = await ConversationBook.open({ store: customer.store, deviceId: CUSTOMER });
  assert.equal(again.get(conv.id), undefined);
  assert.deepEqual(again.erasure(conv.id)?.receipts.map((r) => r.member), [BOT]);
  void agent;
});

test('a member that withholds its receipt stays listed as missing', async () => {
  const [customer, bot, agent] = (await parties()) as [Party, Party, Party];
  const conv = await customer.book.create([bot.member, agent.member], customer.member);
  await deliverAll(customer, { recipients: [BOT], frame: (await customer.book.prepareAnnounce(conv.id)).frame }, [bot]);
  const erase = await customer.book.prepareErase(conv.id);
  assert.deepEqual([...erase.recipients].sort(), [AGENT_A, BOT].sort());
  const ev = (await deliverAll(customer, { recipients: [BOT], frame: erase.frame }, [bot])).get(BOT)!;
  assert.ok(ev.kind === 'erased');
  await deliverAll(bot, ev.reply, [customer]);
  assert.deepEqual(customer.book.erasure(conv.id)?.missing, [AGENT_A]);
});
