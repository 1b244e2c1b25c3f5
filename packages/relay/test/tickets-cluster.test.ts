/**
 * THREATS H3: handoff tickets on two relay nodes sharing one real Redis. 50 agent connections,
 * split over the two nodes, race `ticketClaim` for one ticket at once: exactly one wins, 49 get
 * `CONFLICT` (reason `claimed`), and the metrics of both nodes together say so. The `ticket`
 * pushes reach staff on the other node (socket.io's Redis adapter), and with both nodes
 * sweeping, a ticket waiting past `ticketUnclaimedMs` is reported exactly once. Skipped only
 * when redis-server is missing (CI has it).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { TicketUnclaimed, TicketUpdate } from '@parley/protocol/wire';
import { call, newDevice, setupCrypto, startRelay, until } from './helpers.js';
import { REDIS_SKIP, RedisServer, redisAvailable } from './redis-server.js';
import { loginWith, newOrg } from './staff-helpers.js';

await setupCrypto();
const ORIGIN = 'https://relay.parley.test';
const AGENTS = 50;
const UNCLAIMED_MS = 300;
type R = Awaited<ReturnType<typeof startRelay>>;

async function metric(relay: R, labels: string): Promise<number> {
  const m = new RegExp(`^parley_relay_ticket_claims_total\\{${labels}\\} (\\d+)$`, 'm').exec(await relay.metrics.metrics());
  return m ? Number(m[1]) : 0;
}

describe('handoff tickets on two relay nodes (Redis)', { skip: redisAvailable() ? false : REDIS_SKIP }, () => {
  const org = newOrg();
  let redis: RedisServer;
  let a: R;
  let b: R;
  before(async () => {
    redis = await RedisServer.start();
    const prefix = `t${randomBytes(5).toString('hex')}:`;
    const options = { redis: { url: redis.url, prefix }, origin: ORIGIN, orgKey: org.orgKey, ticketUnclaimedMs: UNCLAIMED_MS };
    a = await startRelay(options);
    b = await startRelay(options);
  });
  after(async () => {
    await Promise.allSettled([a?.close(), b?.close()]);
    await redis?.destroy();
  });

  test('50 agents on two nodes race for one ticket: exactly one wins; pushes cross nodes; unclaimed reported once', async () => {
    const customerDevice = newDevice();
    const customer = await loginWith(a, customerDevice);
    const unclaimed: TicketUnclaimed[] = [];
    const customerUpdates: TicketUpdate[] = [];
    customer.socket.on('ticketUnclaimed', (u) => unclaimed.push(u));
    customer.socket.on('ticket', (u) => customerUpdates.push(u));
    const agents = await Promise.all(Array.from({ length: AGENTS }, async (_, i) => {
      const device = newDevice();
      const s = await loginWith(i % 2 === 0 ? a : b, device, org.credential(device));
      assert.equal(s.r.ok, true, JSON.stringify(s.r.error));
      const updates: TicketUpdate[] = [];
      s.socket.on('ticket', (u) => updates.push(u));
      return { ...s, id: device.deviceId, node: i % 2 === 0 ? 'a' : 'b', updates };
    }));
    try {
      await new Promise((resolve) => setTimeout(resolve, 100)); // the customer's device room is joined after its backlog drain

      const opened = await call(customer.socket, 'ticketOpen', { queue: 'billing', ref: 'race' });
      assert.equal(opened.ok, true, JSON.stringify(opened.error));
      const ticketId: string = opened.ticket.id;
      await until(() => agents.every((g) => g.updates.some((u) => u.ticket.id === ticketId && u.change === 'opened')));

      // Both nodes sweep; the store lets one of them report the waiting period.
      await until(() => unclaimed.length > 0, 3000);
      await new Promise((resolve) => setTimeout(resolve, 3 * UNCLAIMED_MS));
      assert.equal(unclaimed.length, 1, 'one ticketUnclaimed, not one per node');

      const results = await Promise.all(agents.map((g) => call(g.socket, 'ticketClaim', { ticketId })));
      const winners = agents.filter((_, i) => results[i].ok);
      assert.equal(winners.length, 1, 'exactly one claim wins');
      const losers = results.filter((r) => !r.ok);
      assert.equal(losers.length, AGENTS - 1);
      for (const r of losers) assert.deepEqual([r.error.code, r.error.details], ['CONFLICT', { reason: 'claimed', ticketId }]);
      const winner = winners[0]!;
      const stored = await a.store.getTicket(ticketId);
      assert.deepEqual([stored?.state, stored?.claimedBy], ['claimed', winner.id]);
      assert.equal(await metric(a, 'result="won"') + await metric(b, 'result="won"'), 1);
      assert.equal(await metric(a, 'result="conflict"') + await metric(b, 'result="conflict"'), AGENTS - 1);

      // The claim's push reaches every agent, on the winner's node and on the other, and the customer.
      await until(() => agents.every((g) => g.updates.some((u) => u.ticket.id === ticketId && u.change === 'claimed')));
      await until(() => customerUpdates.some((u) => u.change === 'claimed'));
      const other = agents.filter((g) => g.node !== winner.node);
      assert.ok(other.length > 0 && other.every((g) => g.updates.find((u) => u.change === 'claimed')!.ticket.claimedBy === winner.id));
      assert.equal((await call(winner.socket, 'ticketClose', { ticketId })).ok, true);
    } finally {
      customer.socket.disconnect();
      for (const g of agents) g.socket.disconnect();
    }
  });
});
