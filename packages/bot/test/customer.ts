/**
 * A minimal customer device for end-to-end tests: the client's `ConversationEngine` on a memory
 * store, over a raw socket.io-client connection to the relay (the relay contract of
 * `@parley/protocol/wire`). Stands in for `ParleyClient` until the client transport lands.
 */
import { io, type Socket } from 'socket.io-client';
import { ConversationEngine, MemoryStore } from '@parley/client/core';
import type { ClientToServerEvents, RelayMessage, ServerToClientEvents } from '@parley/protocol/wire';
import { getCrypto } from '@parley/protocol';

type S = Socket<ServerToClientEvents, ClientToServerEvents>;

export interface Reply {
  readonly id: string;
  readonly text?: string;
  readonly json?: unknown;
}

export class Customer {
  readonly engine: ConversationEngine;
  readonly #socket: S;
  readonly replies: Reply[] = [];
  duplicates = 0;
  errors = 0;
  #chain: Promise<unknown> = Promise.resolve();

  private constructor(engine: ConversationEngine, socket: S) {
    this.engine = engine;
    this.#socket = socket;
  }

  static async connect(relayUrl: string): Promise<Customer> {
    const engine = await ConversationEngine.open({ store: new MemoryStore() });
    const socket: S = io(relayUrl, { autoConnect: false, transports: ['websocket'], reconnection: false, forceNew: true });
    const customer = new Customer(engine, socket);
    socket.on('message', (m) => customer.#onMessage(m));
    const hello = await new Promise<{ serverNonce: Uint8Array }>((resolve, reject) => {
      socket.once('hello', resolve);
      socket.once('connect_error', reject);
      socket.connect();
    });
    const clientNonce = getCrypto().randomBytes(32);
    const timestamp = Date.now();
    const signature = engine.signRelayAuth({ serverNonce: new Uint8Array(hello.serverNonce), clientNonce, origin: new URL(relayUrl).origin, timestamp });
    const r = await customer.#call('auth', { identity: engine.publicIdentity, clientNonce, timestamp, signature });
    if (!r.ok) throw new Error(`customer auth refused: ${r.error.code}`);
    const upload = await engine.prekeyUpload(2);
    await customer.#call('uploadPrekeys', upload);
    return customer;
  }

  async #call(event: string, payload: unknown): Promise<any> {
    return (this.#socket.timeout(10_000) as any).emitWithAck(event, payload);
  }

  #onMessage(m: RelayMessage): void {
    this.#chain = this.#chain.then(async () => {
      try {
        const r = await this.engine.receive({ from: m.from, id: m.id, envelope: new Uint8Array(m.envelope) });
        if (r.kind === 'duplicate') this.duplicates++;
        else {
          const body = new TextDecoder().decode(r.payload);
          this.replies.push(r.type === 'json' ? { id: r.id, json: JSON.parse(body) } : { id: r.id, text: body });
          await this.engine.consume(r.from, r.id);
        }
      } catch {
        this.errors++;
      }
      // Unacked on a disconnect: the relay pushes it again, and the engine dedupes.
      await this.#call('ack', { seqs: [m.seq] }).catch(() => undefined);
    });
  }

  /** Sends text (or JSON) to `peer`; fetches its bundle first when there is no session. */
  async send(peer: string, content: string | object, id = ConversationEngine.newMessageId()): Promise<string> {
    let bundle;
    if (this.engine.needsBundle(peer)) {
      const r = await this.#call('fetchBundle', { deviceId: peer });
      if (!r.ok) throw new Error(`fetchBundle refused: ${r.error.code}`);
      bundle = r.bundle;
    }
    const isText = typeof content === 'string';
    const body = new TextEncoder().encode(isText ? content : JSON.stringify(content));
    const out = await this.engine.encrypt(peer, body, { messageId: id, type: isText ? 'text' : 'json', ...(bundle ? { bundle } : {}) });
    const r = await this.#call('send', { to: out.to, id: out.id, envelope: out.envelope });
    if (!r.ok) throw new Error(`send refused: ${r.error.code}`);
    await this.engine.markDelivered(out.to, out.id);
    return id;
  }

  close(): void {
    this.#socket.disconnect();
  }
}
