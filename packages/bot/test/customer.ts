/**
 * A minimal customer device for the bot's end-to-end tests: the conversation engine on a memory
 * store over the one relay client (`@parley/relay-link`). Counts duplicates and decrypt errors,
 * which `ParleyClient` would hide from a test.
 *
 * It heals sessions the way `ParleyClient` does (`#onDelivery`, `#requestReset`,
 * `#resendAfterReset`): a delivery that fails for a session reason makes it ask the sender for a
 * session reset; a reset the bot asked for makes it fetch the bot's bundle and resend what the
 * bot has not receipted. Test-only extras: start on a given store (a restored backup, a store
 * whose sessions were wiped), `hold()` (a device that dies with deliveries in hand: they stay
 * unacked on the relay), and delivery receipts to the bot on demand.
 */
import { ConversationEngine, MemoryStore, decodeReceiptBody, resetReasonOf, type OutgoingEnvelope } from '@parley/engine';
import { unsafeTestingRaw } from '@parley/engine/testing';
import { RelayLink } from '@parley/relay-link';
import type { SessionResetReason } from '@parley/protocol';
import type { RelayMessage } from '@parley/protocol/wire';

export interface Reply {
  readonly id: string;
  readonly text?: string;
  readonly json?: unknown;
}

export interface CustomerOptions {
  /** Start on this store (default: a fresh one). */
  readonly store?: MemoryStore;
  /** Send the bot a delivery receipt for each reply, like a `ParleyClient` (default false). */
  readonly receipts?: boolean;
}

/** A session reset this customer took part in. */
export interface CustomerReset {
  readonly peer: string;
  readonly initiatedBy: 'self' | 'peer';
  readonly reason: SessionResetReason;
}

/** A byte copy of a memory store, optionally edited first (a restored backup, a partial loss). */
export async function copyStore(store: MemoryStore, edit?: (raw: Map<string, Uint8Array>) => void): Promise<MemoryStore> {
  const raw = new Map([...unsafeTestingRaw(store)].map(([k, v]) => [k, v.slice()] as [string, Uint8Array]));
  edit?.(raw);
  const copy = new MemoryStore();
  await copy.setMany([...raw]);
  return copy;
}

/** Removes every session record and every peer's session list: the device lost its session state. */
export function wipeSessions(raw: Map<string, Uint8Array>): void {
  for (const key of [...raw.keys()]) {
    if (key.startsWith('session/')) raw.delete(key);
    if (key.startsWith('peer/')) {
      const rec = JSON.parse(new TextDecoder().decode(raw.get(key)!)) as Record<string, unknown>;
      raw.set(key, new TextEncoder().encode(JSON.stringify({ ...rec, sessions: [] })));
    }
  }
}

export class Customer {
  readonly engine: ConversationEngine;
  readonly store: MemoryStore;
  readonly #link: RelayLink;
  readonly #receipts: boolean;
  readonly replies: Reply[] = [];
  /** Message ids the bot acknowledged with a delivery receipt. */
  readonly delivered: string[] = [];
  /** Session resets: asked for by this customer (`self`) or applied at the bot's request (`peer`). */
  readonly resets: CustomerReset[] = [];
  /** Message ids given up on after repeated resets. */
  readonly givenUp: string[] = [];
  duplicates = 0;
  errors = 0;
  /** Deliveries taken (and never acked) since {@link hold}; the link hands over no more after the first. */
  held = 0;
  #held = false;
  /** Sends, resends and receipts one at a time (like the client's send lock). */
  #lock: Promise<unknown> = Promise.resolve();

  private constructor(engine: ConversationEngine, store: MemoryStore, link: RelayLink, receipts: boolean) {
    this.engine = engine;
    this.store = store;
    this.#link = link;
    this.#receipts = receipts;
  }

  static async connect(relayUrl: string, options: CustomerOptions = {}): Promise<Customer> {
    const store = options.store ?? new MemoryStore();
    const engine = await ConversationEngine.open({ store });
    const link = new RelayLink({ url: relayUrl, credentials: { answer: (c) => engine.relayLoginAnswer(c) } });
    const customer = new Customer(engine, store, link, options.receipts ?? false);
    link.setHandlers({ onMessage: (m) => customer.#onMessage(m) });
    await link.connect();
    await link.uploadPrekeys(await engine.prekeyUpload(2));
    return customer;
  }

  /** From now on deliveries are taken and never acked, as by a device that died holding them. */
  hold(): void {
    this.#held = true;
  }

  async #onMessage(m: RelayMessage): Promise<'ack'> {
    if (this.#held) {
      this.held++;
      return new Promise<never>(() => undefined);
    }
    let r;
    try {
      r = await this.engine.receive({ from: m.from, id: m.id, envelope: new Uint8Array(m.envelope) }, { receipt: this.#receipts });
    } catch (e) {
      this.errors++;
      const reason = resetReasonOf(e);
      if (reason) void this.#serial(() => this.#requestReset(m.from, m.id, reason));
      return 'ack';
    }
    if (r.kind === 'duplicate') this.duplicates++;
    else if (r.kind === 'sessionReset') {
      if (r.applied) void this.#serial(() => this.#resendAfterReset(r.from, r.reason));
    } else if (r.type === 'receipt') {
      this.delivered.push(...decodeReceiptBody(r.payload));
      await this.engine.consume(r.from, r.id);
    } else {
      const body = new TextDecoder().decode(r.payload);
      await this.engine.consume(r.from, r.id);
      // Queued before the reply is visible: a test acting on the reply acts after the receipt.
      if (this.#receipts) void this.#serial(() => this.#sendReceipts(r.from));
      this.replies.push(r.type === 'json' ? { id: r.id, json: JSON.parse(body) } : { id: r.id, text: body });
    }
    // Unacked on a disconnect: the relay pushes it again, and the engine dedupes.
    return 'ack';
  }

  /** Runs `job` after the customer's earlier sends; failures count as errors. */
  #serial(job: () => Promise<unknown>): Promise<void> {
    const run = this.#lock.then(job);
    this.#lock = run.catch(() => undefined);
    return run.then(
      () => undefined,
      () => void this.errors++,
    );
  }

  /** Stores one envelope on the relay, then drops it from the engine's outbox. */
  async #deliverOut(out: OutgoingEnvelope): Promise<void> {
    await this.#link.send({ to: out.to, id: out.id, envelope: out.envelope });
    await this.engine.markDelivered(out.to, out.id);
  }

  /** Asks `peer` for a fresh session (also what a failed delivery does). */
  async requestReset(peer: string, reason: SessionResetReason = 'AUTH_FAILED', failedId = ''): Promise<boolean> {
    let sent = false;
    await this.#serial(async () => {
      sent = await this.#requestReset(peer, failedId, reason);
    });
    return sent;
  }

  async #requestReset(peer: string, failedId: string, reason: SessionResetReason): Promise<boolean> {
    const out = await this.engine.requestSessionReset(peer, { failedId, reason });
    if (!out) return false;
    this.resets.push({ peer, initiatedBy: 'self', reason });
    await this.#deliverOut(out);
    return true;
  }

  /** The bot asked for a fresh session: start one from its bundle and resend what it has not receipted. */
  async #resendAfterReset(peer: string, reason: SessionResetReason): Promise<void> {
    this.resets.push({ peer, initiatedBy: 'peer', reason });
    const bundle = this.engine.unconfirmedCount(peer) > 0 && this.engine.needsBundle(peer) ? await this.#link.fetchBundle(peer) : undefined;
    const { resent, failed } = await this.engine.resendUnconfirmed(peer, bundle);
    this.givenUp.push(...failed);
    for (const out of resent) await this.#deliverOut(out);
  }

  async #sendReceipts(peer: string): Promise<void> {
    const out = await this.engine.encryptReceipts(peer);
    if (out) await this.#deliverOut(out);
  }

  /** Sends text (or JSON) to `peer`; fetches its bundle first when there is no session. */
  async send(peer: string, content: string | object, id = ConversationEngine.newMessageId()): Promise<string> {
    const run = this.#lock.then(async () => {
      const bundle = this.engine.needsBundle(peer) ? await this.#link.fetchBundle(peer) : undefined;
      const isText = typeof content === 'string';
      const body = new TextEncoder().encode(isText ? content : JSON.stringify(content));
      const out = await this.engine.encrypt(peer, body, { messageId: id, type: isText ? 'text' : 'json', ...(bundle ? { bundle } : {}) });
      await this.#deliverOut(out);
    });
    this.#lock = run.catch(() => undefined);
    await run;
    return id;
  }

  close(): void {
    void this.#link.close();
  }
}
