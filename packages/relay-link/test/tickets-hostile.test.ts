/**
 * Ticket pushes and answers from an untrusted relay (docs/threats.md I1): a hostile relay (a
 * real socket.io server on 127.0.0.1) pushes malformed `ticket`/`ticketUnclaimed` payloads and
 * answers a ticket call with garbage. The link drops and reports the bad pushes (the app's
 * handlers never see them, the link keeps working), hands well-formed ones over with only known
 * fields, and turns the garbage answer into `MALFORMED_MESSAGE`.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Server } from 'socket.io';
import { isParleyError, type ParleyError } from '@parley/protocol/verify';
import { RELAY_PROTOCOL_VERSION, type TicketUnclaimed, type TicketUpdate } from '@parley/protocol/wire';
import { RelayLink } from '../src/index.js';

const DEVICE = 'a'.repeat(32);
const TICKET = { id: 'T'.repeat(22), queue: 'billing', customer: DEVICE, ref: 'r1', openedAt: 1, waitingSince: 1, state: 'waiting' };

const http = createServer();
const io = new Server(http);
io.on('connection', (socket) => {
  socket.emit('hello', { protocol: RELAY_PROTOCOL_VERSION, serverNonce: new Uint8Array(32), authTimeoutMs: 5000 });
  socket.on('auth', (_answer: unknown, ack: (r: unknown) => void) => {
    ack({ ok: true, deviceId: DEVICE, role: 'device', serverTime: Date.now() });
    socket.emit('ticket', { ticket: { ...TICKET, customer: 'not a device' }, change: 'opened' });
    socket.emit('ticket', { ticket: TICKET, change: 'stolen' });
    socket.emit('ticket', null);
    socket.emit('ticketUnclaimed', { ticket: TICKET, waitingMs: -5 });
    socket.emit('ticket', { ticket: { ...TICKET, extra: 'dropped' }, change: 'opened' });
    socket.emit('ticketUnclaimed', { ticket: TICKET, waitingMs: 130_000 });
  });
  socket.on('ticketGet', (_req: unknown, ack: (r: unknown) => void) => ack({ ok: true, ticket: { ...TICKET, state: 'lost' } }));
  socket.on('ticketList', (_req: unknown, ack: (r: unknown) => void) => ack({ ok: true, tickets: [TICKET] }));
});
await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
after(async () => {
  await io.close();
});

const identity = { signingKey: new Uint8Array(32), dhKey: new Uint8Array(32), binding: new Uint8Array(64) };

test('malformed ticket pushes are dropped and reported; good ones arrive with known fields only; garbage answers are MALFORMED_MESSAGE', async () => {
  const errors: ParleyError[] = [];
  const updates: TicketUpdate[] = [];
  const unclaimed: TicketUnclaimed[] = [];
  const link = new RelayLink({
    url: `http://127.0.0.1:${(http.address() as AddressInfo).port}`,
    credentials: { answer: () => ({ identity, clientNonce: new Uint8Array(32), timestamp: Date.now(), signature: new Uint8Array(64) }) },
  });
  link.setHandlers({
    onTicket: (u) => updates.push(u),
    onTicketUnclaimed: (i) => unclaimed.push(i),
    onError: (e) => errors.push(e),
  });
  try {
    await link.connect();
    for (let i = 0; i < 100 && unclaimed.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(updates, [{ ticket: TICKET, change: 'opened' }], 'only the well-formed update, without the unknown field');
    assert.deepEqual(unclaimed, [{ ticket: TICKET, waitingMs: 130_000 }]);
    assert.equal(errors.length, 4, 'each malformed push reported once');
    assert.ok(errors.every((e) => isParleyError(e, 'MALFORMED_MESSAGE')));
    await assert.rejects(link.getTicket(TICKET.id), (e: unknown) => isParleyError(e, 'MALFORMED_MESSAGE') && e.details?.field === 'ticket.state');
    assert.deepEqual(await link.listTickets(), [TICKET], 'the link still works after the garbage');
    await assert.rejects(link.claimTicket('short'), (e: unknown) => isParleyError(e, 'USAGE'));
    await assert.rejects(link.openTicket('bad queue', 'r'), (e: unknown) => isParleyError(e, 'USAGE'));
  } finally {
    await link.close();
  }
});
