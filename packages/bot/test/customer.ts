/**
 * A minimal customer device for the bot's end-to-end tests: the conversation engine on a memory
 * store over the one relay client (`@parley/relay-link`). Counts duplicates and decrypt errors,
 * which `ParleyClient` would hide from a test.
 */
import { ConversationEngine, MemoryStore, decodeReceiptBody } from '@parley/engine';
import { RelayLink } from '@parley/relay-link';
import type { RelayMessage } from '@parley/protocol/wire';

export interface Reply {
  readonly id: string;
  readonly text?: string;
  readonly json?: unknown;
}

export class Customer {
  readonly engine: ConversationEngine;
  readonly #link: RelayLink;
  readonly replies: Reply[] = [];
  /** Message ids the bot acknowledged with a delivery receipt. */
  readonly delivered: string[] = [];
  duplicates = 0;
  errors = 0;

  private constructor(engine: ConversationEngine, link: RelayLink) {
    this.engine = engine;
    this.#link = link;
  }

  static async connect(relayUrl: string): Promise<Customer> {
    const engine = await ConversationEngine.open({ store: new MemoryStore() });
    const link = new RelayLink({ url: relayUrl, credentials: { answer: (c) => engine.relayLoginAnswer(c) } });
    const customer = new Customer(engine, link);
    link.setHandlers({ onMessage: (m) => customer.#onMessage(m) });
    await link.connect();
    await link.uploadPrekeys(await engine.prekeyUpload(2));
    return customer;
  }

  async #onMessage(m: RelayMessage): Promise<'ack'> {
    try {
      const r = await this.engine.receive({ from: m.from, id: m.id, envelope: new Uint8Array(m.envelope) });
      if (r.kind === 'duplicate') this.duplicates++;
      else if (r.kind === 'sessionReset') return 'ack';
      else if (r.type === 'receipt') {
        this.delivered.push(...decodeReceiptBody(r.payload));
        await this.engine.consume(r.from, r.id);
      } else {
        const body = new TextDecoder().decode(r.payload);
        this.replies.push(r.type === 'json' ? { id: r.id, json: JSON.parse(body) } : { id: r.id, text: body });
        await this.engine.consume(r.from, r.id);
      }
    } catch {
      this.errors++;
    }
    // Unacked on a disconnect: the relay pushes it again, and the engine dedupes.
    return 'ack';
  }

  /** Sends text (or JSON) to `peer`; fetches its bundle first when there is no session. */
  async send(peer: string, content: string | object, id = ConversationEngine.newMessageId()): Promise<string> {
    const bundle = this.engine.needsBundle(peer) ? await this.#link.fetchBundle(peer) : undefined;
    const isText = typeof content === 'string';
    const body = new TextEncoder().encode(isText ? content : JSON.stringify(content));
    const out = await this.engine.encrypt(peer, body, { messageId: id, type: isText ? 'text' : 'json', ...(bundle ? { bundle } : {}) });
    await this.#link.send({ to: out.to, id: out.id, envelope: out.envelope });
    await this.engine.markDelivered(out.to, out.id);
    return id;
  }

  close(): void {
    void this.#link.close();
  }
}
