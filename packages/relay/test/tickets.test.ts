/**
 * Handoff tickets at the relay (README "Handoff tickets"), over one real relay (org key, memory
 * store, `ticketUnclaimedMs` 300 ms) and real sockets: open is idempotent; list and claim are for
 * agents and supervisors; get for the parties and staff; release and close for the customer or
 * the claimant; every change is pushed to staff, the customer and the notify bot; a ticket
 * waiting unclaimed is reported once per waiting period; the metrics count it; the logs carry
 * ids, never the ref. The relay link's ticket calls and pushes run against the same relay.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { relayAuthPayload, type Ticket, type TicketUnclaimed, type TicketUpdate } from '@parley/protocol/wire';
import { isParleyError } from '@parley/protocol/verify';
import { RelayLink } from '../../relay-link/src/index.js';
import type { IdentityKeyPair } from '../../protocol/src/identity.js';
import { createApiKey } from '../src/index.js';
import { parseTicketUnclaimedMs } from '../src/cli-options.js';
import { call, newDevice, setupCrypto, startRelay, until, type ClientSocket } from './helpers.js';
import { HOUR, loginWith, newOrg } from './staff-helpers.js';

await setupCrypto();
type R = Awaited<ReturnType<typeof startRelay>>;
const UNCLAIMED_MS = 300;
const org = newOrg({ roles: ['agent', 'supervisor', 'compliance'], maxLifetimeMs: 12 * HOUR });
let relay: R;
let botKey: string;

before(async () => {
  relay = await startRelay({ orgKey: org.orgKey, ticketUnclaimedMs: UNCLAIMED_MS });
  botKey = (await createApiKey(relay.store, 'bot')).key;
});
after(async () => relay?.close());

/** A logged-in socket recording its ticket pushes. */
interface Peer {
  socket: ClientSocket;
  id: string;
  updates: TicketUpdate[];
  unclaimed: TicketUnclaimed[];
}
const peers: Peer[] = [];
after(() => {
  for (const p of peers) p.socket.disconnect();
});

async function join(kind: 'customer' | 'bot' | 'agent' | 'supervisor' | 'compliance'): Promise<Peer> {
  const device = newDevice();
  const credential = kind === 'customer' || kind === 'bot' ? undefined : org.credential(device, { roles: [kind] });
  const { socket, r } = await loginWith(relay, device, credential, kind === 'bot' ? botKey : undefined);
  assert.equal(r.ok, true, JSON.stringify(r.error));
  const peer: Peer = { socket, id: device.deviceId, updates: [], unclaimed: [] };
  socket.on('ticket', (u) => peer.updates.push(u));
  socket.on('ticketUnclaimed', (u) => peer.unclaimed.push(u));
  peers.push(peer);
  // The device room is joined once the (empty) backlog is drained: a moment after the login.
  await new Promise((resolve) => setTimeout(resolve, 50));
  return peer;
}

type Kind = Parameters<typeof join>[0];
/** One peer per kind, in order. */
const joinAll = <K extends readonly Kind[]>(...kinds: K) => Promise.all(kinds.map(join)) as Promise<{ [I in keyof K]: Peer }>;

const ok = async (p: Peer, event: string, req: object) => {
  const r = await call(p.socket, event, req);
  assert.equal(r.ok, true, `${event}: ${JSON.stringify(r.error)}`);
  return r;
};
const refused = async (p: Peer, event: string, req: object, code: string, reason?: string) => {
  const r = await call(p.socket, event, req);
  assert.equal(r.ok, false, `${event} should be refused`);
  assert.equal(r.error.code, code, JSON.stringify(r.error));
  if (reason !== undefined) assert.equal(r.error.details?.reason, reason, JSON.stringify(r.error));
  return r.error;
};
const changes = (p: Peer, id: string) => p.updates.filter((u) => u.ticket.id === id).map((u) => u.change);

async function metric(name: string, labels = ''): Promise<number> {
  const text = await relay.metrics.metrics();
  const m = new RegExp(`^${name}${labels.replace(/[{}]/g, (c) => `\\${c}`)} (\\d+)$`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

test('open is idempotent per ref; list for agents and supervisors only; get for parties and staff; pushes to staff, customer and bot', async () => {
  const [customer, other, bot, agent, supervisor, compliance] = await joinAll('customer', 'customer', 'bot', 'agent', 'supervisor', 'compliance');
  const ref = `ref-${randomBytes(6).toString('hex')}`;
  const { ticket } = await ok(customer, 'ticketOpen', { queue: 'billing', ref, notify: bot.id }) as { ticket: Ticket };
  assert.equal(ticket.customer, customer.id, 'the customer is the socket\'s own device');
  assert.match(ticket.id, /^[A-Za-z0-9_-]{22}$/);
  assert.deepEqual([ticket.state, ticket.queue, ticket.ref, ticket.notify, ticket.waitingSince], ['waiting', 'billing', ref, bot.id, ticket.openedAt]);
  const again = await ok(customer, 'ticketOpen', { queue: 'sales', ref });
  assert.deepEqual(again.ticket, ticket, 'the same ref while open: the open ticket, unchanged');

  await until(() => [agent, supervisor, customer, bot].every((p) => changes(p, ticket.id).length > 0));
  await new Promise((resolve) => setTimeout(resolve, 50));
  for (const p of [agent, supervisor, customer, bot]) assert.deepEqual(changes(p, ticket.id), ['opened'], 'one push, not one per open call');
  for (const p of [other, compliance]) assert.deepEqual(changes(p, ticket.id), [], 'no push to non-parties or non-queue staff');

  for (const p of [agent, supervisor]) {
    const list = (await ok(p, 'ticketList', {})).tickets as Ticket[];
    assert.ok(list.some((t) => t.id === ticket.id));
    assert.deepEqual(((await ok(p, 'ticketList', { queue: 'billing' })).tickets as Ticket[]).map((t) => t.queue).filter((q) => q !== 'billing'), []);
    assert.deepEqual((await ok(p, 'ticketList', { queue: 'nobody' })).tickets, []);
  }
  for (const p of [customer, bot, compliance]) await refused(p, 'ticketList', {}, 'FORBIDDEN', 'role');
  assert.equal(await metric('parley_relay_forbidden_total', '{role="compliance",operation="ticketList"}'), 1);

  for (const p of [customer, bot, agent, supervisor]) assert.deepEqual((await ok(p, 'ticketGet', { ticketId: ticket.id })).ticket, ticket);
  await refused(other, 'ticketGet', { ticketId: ticket.id }, 'FORBIDDEN', 'notParty');
  await refused(agent, 'ticketGet', { ticketId: randomBytes(16).toString('base64url') }, 'USAGE', 'noSuchTicket');

  await refused(other, 'ticketOpen', { queue: 'billing', ref: 'r1', notify: agent.id }, 'USAGE', 'notifyNotBot');
  const junk = await join('customer'); // refusals count as violations: a socket of their own (fewer than maxViolations)
  for (const bad of [{ queue: 'bad queue', ref: 'r' }, { queue: 'q', ref: 'r'.repeat(65) }, { queue: 'q', ref: 'r', extra: 1 }, { queue: 'q' }]) {
    await refused(junk, 'ticketOpen', bad, 'MALFORMED_MESSAGE');
  }
  await refused(agent, 'ticketClaim', { ticketId: 'short' }, 'MALFORMED_MESSAGE');

  await ok(customer, 'ticketClose', { ticketId: ticket.id });
  const logs = relay.logs();
  assert.match(logs, new RegExp(`"event":"ticketOpen"[^\\n]*"ticketId":"${ticket.id}"`));
  assert.equal(logs.includes(ref), false, 'the ref chosen by the customer\'s client is never logged');
});

test('claim is exclusive (CONFLICT); release and close by the customer or the claimant only; pushes and claim metrics', async () => {
  const [customer, a, b, sup] = await joinAll('customer', 'agent', 'agent', 'supervisor');
  const [won0, conflict0] = [await metric('parley_relay_ticket_claims_total', '{result="won"}'), await metric('parley_relay_ticket_claims_total', '{result="conflict"}')];
  const { ticket } = await ok(customer, 'ticketOpen', { queue: 'billing', ref: 'r' }) as { ticket: Ticket };
  await refused(customer, 'ticketClaim', { ticketId: ticket.id }, 'FORBIDDEN', 'role');

  const claimed = (await ok(a, 'ticketClaim', { ticketId: ticket.id })).ticket as Ticket;
  assert.deepEqual([claimed.state, claimed.claimedBy], ['claimed', a.id]);
  const conflict = await refused(b, 'ticketClaim', { ticketId: ticket.id }, 'CONFLICT', 'claimed');
  assert.equal(conflict.details.ticketId, ticket.id);
  assert.deepEqual((await ok(a, 'ticketClaim', { ticketId: ticket.id })).ticket, claimed, 'the claimant again: ok');
  assert.deepEqual((await ok(b, 'ticketGet', { ticketId: ticket.id })).ticket.claimedBy, a.id);

  await refused(b, 'ticketRelease', { ticketId: ticket.id }, 'FORBIDDEN', 'notParty');
  await refused(b, 'ticketClose', { ticketId: ticket.id }, 'FORBIDDEN', 'notParty');
  // The customer declines: back to waiting, a new waiting period.
  const declined = (await ok(customer, 'ticketRelease', { ticketId: ticket.id })).ticket as Ticket;
  assert.equal(declined.state, 'waiting');
  assert.equal(declined.claimedBy, undefined);
  assert.ok(declined.waitingSince >= claimed.claimedAt!);
  await ok(b, 'ticketClaim', { ticketId: ticket.id });
  await refused(a, 'ticketRelease', { ticketId: ticket.id }, 'FORBIDDEN', 'notParty');
  // B escalates to the supervisors' queue; the supervisor claims.
  const moved = (await ok(b, 'ticketRelease', { ticketId: ticket.id, queue: 'supervisors' })).ticket as Ticket;
  assert.deepEqual([moved.queue, moved.state], ['supervisors', 'waiting']);
  await ok(sup, 'ticketClaim', { ticketId: ticket.id });
  await ok(sup, 'ticketClose', { ticketId: ticket.id });
  await refused(customer, 'ticketGet', { ticketId: ticket.id }, 'USAGE', 'noSuchTicket');
  await refused(a, 'ticketClaim', { ticketId: ticket.id }, 'USAGE', 'noSuchTicket');
  assert.equal(customer.socket.connected, true, 'noSuchTicket is no protocol violation');

  const expected = ['opened', 'claimed', 'released', 'claimed', 'released', 'claimed', 'closed'];
  await until(() => [customer, a, b, sup].every((p) => changes(p, ticket.id).length === expected.length));
  for (const p of [customer, a, b, sup]) assert.deepEqual(changes(p, ticket.id), expected);
  const last = customer.updates.at(-1)!;
  assert.deepEqual([last.change, last.ticket.claimedBy], ['closed', sup.id], 'the closed push names the ticket as it was');
  assert.equal(await metric('parley_relay_ticket_claims_total', '{result="won"}') - won0, 3);
  assert.equal(await metric('parley_relay_ticket_claims_total', '{result="conflict"}') - conflict0, 1);
});

test('a ticket waiting longer than ticketUnclaimedMs is reported once per waiting period to the customer and the bot', async () => {
  const [customer, bot, agent] = await joinAll('customer', 'bot', 'agent');
  const unclaimed0 = await metric('parley_relay_tickets_unclaimed_total');
  const { ticket } = await ok(customer, 'ticketOpen', { queue: 'billing', ref: 'slow', notify: bot.id }) as { ticket: Ticket };
  assert.ok(await metric('parley_relay_tickets_waiting') >= 1);
  await until(() => customer.unclaimed.length > 0 && bot.unclaimed.length > 0, 3000);
  const first = customer.unclaimed[0]!;
  assert.equal(first.ticket.id, ticket.id);
  assert.ok(first.waitingMs >= UNCLAIMED_MS && first.waitingMs < UNCLAIMED_MS + 2000, String(first.waitingMs));
  await new Promise((resolve) => setTimeout(resolve, 3 * UNCLAIMED_MS));
  assert.equal(customer.unclaimed.length, 1, 'once per waiting period');
  assert.equal(bot.unclaimed.length, 1);
  assert.equal(agent.unclaimed.length, 0, 'not to staff');
  assert.equal(await metric('parley_relay_tickets_unclaimed_total') - unclaimed0, 1);

  // Claimed, then released: a new waiting period, reported again once.
  await ok(agent, 'ticketClaim', { ticketId: ticket.id });
  await ok(agent, 'ticketRelease', { ticketId: ticket.id });
  await until(() => customer.unclaimed.length === 2, 3000);
  await new Promise((resolve) => setTimeout(resolve, 3 * UNCLAIMED_MS));
  assert.equal(customer.unclaimed.length, 2);
  assert.equal(bot.unclaimed.length, 2);
  assert.equal(await metric('parley_relay_tickets_unclaimed_total') - unclaimed0, 2);
  // Claimed for longer than the limit: nothing.
  await ok(agent, 'ticketClaim', { ticketId: ticket.id });
  await new Promise((resolve) => setTimeout(resolve, 3 * UNCLAIMED_MS));
  assert.equal(customer.unclaimed.length, 2);
  await ok(customer, 'ticketClose', { ticketId: ticket.id });
});

/** A relay link logged in as `device` (with a staff credential when given). */
function linkFor(device: IdentityKeyPair, credential?: Uint8Array): RelayLink {
  return new RelayLink({
    url: relay.url,
    connectTimeoutMs: 5000,
    credentials: {
      answer: (c) => {
        const clientNonce = new Uint8Array(randomBytes(32));
        const timestamp = Date.now();
        const payload = relayAuthPayload({ serverNonce: c.serverNonce, clientNonce, origin: c.origin, timestamp, deviceId: device.deviceId });
        const a = { identity: device.publicIdentity, clientNonce, timestamp, signature: device.sign('relayAuth', payload) };
        return credential ? { ...a, credential } : a;
      },
    },
  });
}

test('RelayLink: openTicket, listTickets, getTicket, claimTicket, releaseTicket, closeTicket and the onTicket push', async () => {
  const [c, g, h] = [newDevice(), newDevice(), newDevice()];
  const customer = linkFor(c);
  const agent = linkFor(g, org.credential(g));
  const agent2 = linkFor(h, org.credential(h));
  const seen: TicketUpdate[] = [];
  agent2.setHandlers({ onTicket: (u) => seen.push(u) });
  try {
    await Promise.all([customer.connect(), agent.connect(), agent2.connect()]);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const t = await customer.openTicket('billing', 'link-ref');
    assert.equal(t.customer, c.deviceId);
    assert.ok((await agent.listTickets('billing')).some((x) => x.id === t.id));
    const mine = await agent.claimTicket(t.id);
    assert.equal(mine.claimedBy, g.deviceId);
    await assert.rejects(agent2.claimTicket(t.id), (e: unknown) => isParleyError(e, 'CONFLICT') && e.details?.reason === 'claimed' && e.details.ticketId === t.id);
    await assert.rejects(customer.listTickets(), (e: unknown) => isParleyError(e, 'FORBIDDEN') && e.details?.reason === 'role');
    assert.equal((await customer.getTicket(t.id)).claimedBy, g.deviceId);
    assert.equal((await agent.releaseTicket(t.id, 'other')).queue, 'other');
    await customer.closeTicket(t.id);
    await assert.rejects(customer.getTicket(t.id), (e: unknown) => isParleyError(e, 'USAGE') && e.details?.reason === 'noSuchTicket');
    await until(() => seen.filter((u) => u.ticket.id === t.id).length === 4);
    assert.deepEqual(seen.filter((u) => u.ticket.id === t.id).map((u) => u.change), ['opened', 'claimed', 'released', 'closed']);
  } finally {
    await Promise.all([customer.close(), agent.close(), agent2.close()]);
  }
});

test('--ticket-unclaimed-ms takes a whole number of ms ≥ 1 and names itself otherwise', () => {
  assert.equal(parseTicketUnclaimedMs(' 300 '), 300);
  for (const bad of ['', 'abc', '0', '-5', '1.5']) assert.throws(() => parseTicketUnclaimedMs(bad), /--ticket-unclaimed-ms/);
});
