/**
 * The baseline of the relay throughput case: the least a socket.io server can do to carry the
 * relay's traffic. Same socket.io version and transport (WebSocket) as the relay, same event
 * names and payload shapes, so the bench's clients run the same code against both; but no
 * authentication, no validation, no rate limits, no store: `send` is forwarded to the
 * recipient's room at once and acked, `ack` is acked.
 *
 * A client names its room (its device id) in the handshake: `io(url, { auth: { room } })`.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Server } from 'socket.io';

export interface BareForwarder {
  readonly url: string;
  close(): Promise<void>;
}

interface SendPayload {
  to: string;
  id: string;
  envelope: Uint8Array;
}

/** Starts the forwarder on 127.0.0.1, on a free port. */
export async function startBareForwarder(): Promise<BareForwarder> {
  const http = createServer();
  const io = new Server(http, { serveClient: false });
  let seq = 0;

  io.on('connection', (socket) => {
    const room = (socket.handshake.auth as { room?: unknown }).room;
    if (typeof room === 'string') void socket.join(room);
    socket.on('send', (m: SendPayload, ack?: (r: unknown) => void) => {
      const s = ++seq;
      io.to(m.to).emit('message', { seq: s, from: socket.id, id: m.id, envelope: m.envelope, receivedAt: Date.now() });
      ack?.({ ok: true, seq: s, duplicate: false });
    });
    socket.on('ack', (m: { seqs: number[] }, ack?: (r: unknown) => void) => {
      ack?.({ ok: true, deleted: m.seqs.length });
    });
  });

  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(0, '127.0.0.1', () => {
      http.off('error', reject);
      resolve();
    });
  });
  const { port } = http.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        io.close(() => resolve());
        http.closeAllConnections();
      }),
  };
}
