/**
 * The engine's mailbox: the outbox (envelopes persisted before they are sent, until the relay
 * acks them), the inbox (decrypted messages until the app consumed them), the ids seen per peer
 * (dedupe, in buckets) and the receipt ids owed per peer. It holds the in-memory view of those
 * records; every change is planned as writes, written by the engine in the same atomic batch as
 * the session that goes with it, and only then applied here.
 */
import type { KeyValueStore } from './store.js';
import {
  K,
  counterOf,
  decodeInbox,
  decodeOutbox,
  decodeSeen,
  encodeInbox,
  encodeOutbox,
  encodeSeen,
  type OutgoingEnvelope,
  type PeerRecord,
  type ReceivedMessage,
} from './records.js';

/** Message ids remembered per seen bucket. */
export const SEEN_BUCKET_SIZE = 128;
/**
 * Seen buckets kept per peer: the last 1,024 ids of each peer are refused as duplicates without
 * touching the ratchet. Older replays still fail in the ratchet (the keys are gone).
 */
export const SEEN_BUCKETS_KEPT = 8;

/** Writes to make, and what to do in memory once they are durable. */
export interface MailboxPlan {
  readonly writes: readonly [string, Uint8Array][];
  apply(): void;
}

/** A plan that writes and changes nothing. */
export const NO_PLAN: MailboxPlan = Object.freeze({ writes: [], apply: () => undefined });

interface SeenState {
  buckets: Map<number, string[]>;
  all: Set<string>;
}

export class Mailbox {
  readonly #store: KeyValueStore;
  readonly #outbox = new Map<string, OutgoingEnvelope>();
  /** `to` + "\n" + relay id → its outbox keys (one, or more after a resend): O(1) acks and checks. */
  readonly #outboxById = new Map<string, string[]>();
  readonly #inbox = new Map<string, ReceivedMessage>();
  /** Peer → received ids whose receipt is not in the outbox yet (persisted as `receipts/<peer>`). */
  readonly #receipts = new Map<string, string[]>();
  readonly #seen = new Map<string, SeenState>();
  #outboxNext = 1;
  #inboxNext = 1;

  private constructor(store: KeyValueStore) {
    this.#store = store;
  }

  /** Loads the outbox, the inbox and the owed receipts (seen ids load per peer, when needed). */
  static async load(store: KeyValueStore): Promise<Mailbox> {
    const box = new Mailbox(store);
    const outboxKeys = (await store.keys('outbox/')).sort();
    const inboxKeys = (await store.keys('inbox/')).sort();
    box.#outboxNext = outboxKeys.length ? counterOf(outboxKeys.at(-1)!) + 1 : 1;
    box.#inboxNext = inboxKeys.length ? counterOf(inboxKeys.at(-1)!) + 1 : 1;
    for (const key of outboxKeys) {
      const bytes = await store.get(key);
      if (bytes) {
        const { to, id, envelope } = decodeOutbox(bytes);
        box.#addOutgoing(key, { to, id, envelope });
      }
    }
    for (const key of inboxKeys) {
      const bytes = await store.get(key);
      if (bytes) box.#inbox.set(key, decodeInbox(bytes));
    }
    for (const key of await store.keys('receipts/')) {
      const bytes = await store.get(key);
      const ids = bytes ? decodeSeen(bytes) : [];
      if (ids.length > 0) box.#receipts.set(key.slice('receipts/'.length), ids);
    }
    return box;
  }

  // ---------------------------------------------------------------- outbox

  /** Envelopes persisted but not yet acked by the relay, oldest first. */
  pendingOutbox(): OutgoingEnvelope[] {
    return [...this.#outbox.values()];
  }

  hasOutgoing(to: string, id: string): boolean {
    return this.#outboxById.has(`${to}\n${id}`);
  }

  #addOutgoing(key: string, e: OutgoingEnvelope): void {
    this.#outbox.set(key, e);
    const ref = `${e.to}\n${e.id}`;
    const keys = this.#outboxById.get(ref);
    if (keys) keys.push(key);
    else this.#outboxById.set(ref, [key]);
  }

  /** Plans an envelope into the outbox. */
  planOutgoing(out: OutgoingEnvelope, now: number): MailboxPlan {
    const key = K.outbox(this.#outboxNext);
    return {
      writes: [[key, encodeOutbox(out, now)]],
      apply: () => {
        this.#outboxNext += 1;
        this.#addOutgoing(key, out);
      },
    };
  }

  /** The relay acked `id` to `to`: removes it from the outbox (store and memory). */
  async markDelivered(to: string, id: string): Promise<void> {
    const ref = `${to}\n${id}`;
    const keys = this.#outboxById.get(ref);
    if (!keys) return;
    const taken = [...keys];
    await this.#store.delMany(taken);
    for (const k of taken) this.#outbox.delete(k);
    const left = (this.#outboxById.get(ref) ?? []).filter((k) => !taken.includes(k));
    if (left.length > 0) this.#outboxById.set(ref, left);
    else this.#outboxById.delete(ref);
  }

  // ---------------------------------------------------------------- inbox and seen ids

  /** Decrypted messages not yet consumed, oldest first. */
  inbox(): ReceivedMessage[] {
    return [...this.#inbox.values()];
  }

  /** The app handled `(from, id)`: removes it from the inbox (the seen id stays, for dedupe). */
  async consume(from: string, id: string): Promise<void> {
    const keys: string[] = [];
    for (const [k, m] of this.#inbox) if (m.from === from && m.id === id) keys.push(k);
    if (keys.length === 0) return;
    await this.#store.delMany(keys);
    for (const k of keys) this.#inbox.delete(k);
  }

  /** True when `id` from `peer` was received already (within the dedupe window). */
  async seen(peer: string, id: string): Promise<boolean> {
    return (await this.#loadSeen(peer)).all.has(id);
  }

  /**
   * Plans a received message: its inbox entry, its id in the peer's current seen bucket (a new
   * bucket when full, in `rec.seenBucket`), and, with `owesReceipt`, its id in the receipts owed.
   * `apply` returns the bucket that fell out of the window, if any: delete it with
   * {@link dropSeenBucket} after the commit.
   */
  async planIncoming(message: ReceivedMessage, rec: PeerRecord, owesReceipt: boolean): Promise<{ writes: [string, Uint8Array][]; apply(): number | undefined }> {
    const seen = await this.planSeen(message.from, message.id, rec);
    const inboxKey = K.inbox(this.#inboxNext);
    const writes: [string, Uint8Array][] = [...seen.writes, [inboxKey, encodeInbox(message)]];
    const owed = owesReceipt ? [...(this.#receipts.get(message.from) ?? []), message.id] : undefined;
    if (owed) writes.push([K.receipts(message.from), encodeSeen(owed)]);
    return {
      writes,
      apply: () => {
        this.#inboxNext += 1;
        this.#inbox.set(inboxKey, message);
        if (owed) this.#receipts.set(message.from, owed);
        return seen.apply();
      },
    };
  }

  /**
   * Plans `id` into the peer's current seen bucket only (a new bucket when full, in
   * `rec.seenBucket`). `apply` returns the bucket that fell out of the window, if any.
   */
  async planSeen(peer: string, id: string, rec: PeerRecord): Promise<{ writes: [string, Uint8Array][]; apply(): number | undefined }> {
    const seen = await this.#loadSeen(peer);
    let bucket = seen.buckets.get(rec.seenBucket) ?? [];
    let dropBucket: number | undefined;
    if (bucket.length >= SEEN_BUCKET_SIZE) {
      rec.seenBucket += 1;
      bucket = [];
      const oldest = rec.seenBucket - SEEN_BUCKETS_KEPT;
      if (seen.buckets.has(oldest)) dropBucket = oldest;
    }
    const nextBucket = [...bucket, id];
    const bucketNumber = rec.seenBucket;
    return {
      writes: [[K.seen(peer, bucketNumber), encodeSeen(nextBucket)]],
      apply: () => {
        seen.buckets.set(bucketNumber, nextBucket);
        seen.all.add(id);
        return dropBucket;
      },
    };
  }

  /** Forgets a seen bucket that fell out of the dedupe window (after the commit that replaced it). */
  async dropSeenBucket(peer: string, bucket: number): Promise<void> {
    const seen = await this.#loadSeen(peer);
    for (const old of seen.buckets.get(bucket) ?? []) seen.all.delete(old);
    seen.buckets.delete(bucket);
    await this.#store.delMany([K.seen(peer, bucket)]);
  }

  async #loadSeen(peer: string): Promise<SeenState> {
    let s = this.#seen.get(peer);
    if (s) return s;
    s = { buckets: new Map(), all: new Set() };
    for (const key of await this.#store.keys(`seen/${peer}/`)) {
      const n = counterOf(key);
      const bytes = await this.#store.get(key);
      if (!bytes) continue;
      const ids = decodeSeen(bytes);
      s.buckets.set(n, ids);
      for (const id of ids) s.all.add(id);
    }
    this.#seen.set(peer, s);
    return s;
  }

  // ---------------------------------------------------------------- receipts owed

  /** Every peer with receipt ids owed, oldest id first. */
  pendingReceipts(): { peer: string; ids: readonly string[] }[] {
    return [...this.#receipts].map(([peer, ids]) => ({ peer, ids: [...ids] }));
  }

  owedReceipts(peer: string): readonly string[] {
    return this.#receipts.get(peer) ?? [];
  }

  /** Plans the receipt ids owed to `peer` becoming `ids`. */
  planReceipts(peer: string, ids: string[]): MailboxPlan {
    return {
      writes: [[K.receipts(peer), encodeSeen(ids)]],
      apply: () => {
        if (ids.length === 0) this.#receipts.delete(peer);
        else this.#receipts.set(peer, ids);
      },
    };
  }
}
