/**
 * A transparent TCP proxy in front of the relay that keeps a copy of every byte in both
 * directions, and decodes the WebSocket frames in them (RFC 6455: client frames are masked, so
 * a scan of raw client bytes would miss what they carry). Clients dial the proxy; the relay is
 * started with `origin` = the proxy's origin, so the login signatures match.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

/** One decoded WebSocket frame. */
export interface WsFrame {
  readonly direction: 'toRelay' | 'fromRelay';
  readonly opcode: number;
  /** RSV1 set means a compressed (permessage-deflate) frame: the scan would be blind to it. */
  readonly compressed: boolean;
  readonly payload: Buffer;
}

/** Splits one direction of a WebSocket connection (after the HTTP upgrade) into frames. */
class FrameReader {
  #buf = Buffer.alloc(0);
  #upgraded = false;
  constructor(readonly direction: WsFrame['direction'], readonly out: WsFrame[], readonly handshakes: string[]) {}

  push(chunk: Buffer): void {
    this.#buf = Buffer.concat([this.#buf, chunk]);
    if (!this.#upgraded) {
      const end = this.#buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      this.handshakes.push(this.#buf.subarray(0, end).toString('latin1'));
      this.#buf = this.#buf.subarray(end + 4);
      this.#upgraded = true;
    }
    for (;;) {
      const b = this.#buf;
      if (b.length < 2) return;
      const masked = (b[1]! & 0x80) !== 0;
      let len = b[1]! & 0x7f;
      let off = 2;
      if (len === 126) {
        if (b.length < 4) return;
        len = b.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (b.length < 10) return;
        len = Number(b.readBigUInt64BE(2));
        off = 10;
      }
      const maskAt = off;
      if (masked) off += 4;
      if (b.length < off + len) return;
      const payload = Buffer.from(b.subarray(off, off + len));
      if (masked) for (let i = 0; i < payload.length; i++) payload[i]! ^= b[maskAt + (i & 3)]!;
      this.out.push({ direction: this.direction, opcode: b[0]! & 0x0f, compressed: (b[0]! & 0x40) !== 0, payload });
      this.#buf = b.subarray(off + len);
    }
  }
}

/** The proxy and everything it saw. */
export interface WsTap {
  readonly url: string;
  readonly origin: string;
  /** Where to forward (set once the relay listens). */
  target: number;
  readonly frames: WsFrame[];
  /** Raw bytes per direction, as they crossed the proxy. */
  readonly raw: { toRelay: Buffer[]; fromRelay: Buffer[] };
  /** HTTP upgrade requests and responses seen. */
  readonly handshakes: string[];
  close(): Promise<void>;
}

export async function startWsTap(): Promise<WsTap> {
  const frames: WsFrame[] = [];
  const raw = { toRelay: [] as Buffer[], fromRelay: [] as Buffer[] };
  const handshakes: string[] = [];
  const sockets = new Set<Socket>();
  const tap = { target: 0 } as { target: number };
  const server: Server = createServer((client) => {
    const upstream = connect(tap.target, '127.0.0.1');
    sockets.add(client).add(upstream);
    const up = new FrameReader('toRelay', frames, handshakes);
    const down = new FrameReader('fromRelay', frames, handshakes);
    client.on('data', (d: Buffer) => {
      raw.toRelay.push(Buffer.from(d));
      up.push(d);
      upstream.write(d);
    });
    upstream.on('data', (d: Buffer) => {
      raw.fromRelay.push(Buffer.from(d));
      down.push(d);
      client.write(d);
    });
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}`;
  return Object.assign(tap, {
    url,
    origin: new URL(url).origin,
    frames,
    raw,
    handshakes,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  });
}
