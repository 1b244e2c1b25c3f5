/**
 * "What the relay sees", taken from the one place every envelope passes through: the relay's
 * store. {@link ObservedStore} wraps any {@link RelayStore} (the demo uses the embedded SQLite
 * store) and reports each operation as a {@link RelayEvent}: exactly the data the relay holds,
 * which is routing metadata and opaque ciphertext. It needs no change to the relay: `createRelay`
 * accepts any object implementing the store contract.
 *
 * - `stored`: `enqueue` (the relay made the envelope durable before acking the sender);
 * - `forwarded`: `listPending` (the relay reads queued envelopes to push a backlog to a
 *   recipient that comes online; envelopes for an online recipient are pushed straight from
 *   `send` and show up as `stored` then `acked`);
 * - `acked`: `deleteMessages` (the recipient received and persisted it, the relay forgets it);
 * - `prekeys` / `bundle`: a device published its public prekeys / a bundle was handed out.
 */
import { EventEmitter } from 'node:events';
import type { PrekeyUpload } from '@parley/protocol/verify';
import type { ApiKeyRecord, RelayStore, StoredMessage, StoredRevocationList } from '@parley/relay';

/** Bytes of ciphertext shown per envelope in the panel. */
export const PREVIEW_BYTES = 16;
/** Events kept for late subscribers (a page opened after the conversation started). */
export const HISTORY_LIMIT = 500;

/** One observation. Never more than the relay itself holds. */
export interface RelayEvent {
  readonly n: number;
  readonly at: number;
  readonly kind: 'stored' | 'forwarded' | 'acked' | 'prekeys' | 'bundle';
  readonly from?: string;
  readonly to?: string;
  readonly id?: string;
  readonly seq?: number;
  /** Envelope length in bytes. */
  readonly size?: number;
  /** First {@link PREVIEW_BYTES} bytes of the stored envelope, hex. */
  readonly head?: string;
  /** The whole envelope, base64 (for the leak test; the panel shows `head`). */
  readonly envelope?: string;
  readonly duplicate?: boolean;
  /** `acked`: how many; `prekeys`: OPKs now available; `bundle`: OPKs left. */
  readonly count?: number;
}

const hex = (b: Uint8Array): string => Buffer.from(b.subarray(0, PREVIEW_BYTES)).toString('hex');
const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64');

/** A {@link RelayStore} that reports what passes through it. */
export class ObservedStore implements RelayStore {
  readonly #inner: RelayStore;
  readonly #events = new EventEmitter();
  readonly #history: RelayEvent[] = [];
  /** `to/seq` → sender and id of stored envelopes, to name them when they are acked. */
  readonly #pending = new Map<string, { from: string; id: string; size: number }>();
  #n = 0;

  constructor(inner: RelayStore) {
    this.#inner = inner;
    this.#events.setMaxListeners(100);
  }

  /** Events so far (the last {@link HISTORY_LIMIT}). */
  history(): readonly RelayEvent[] {
    return this.#history;
  }

  /** Subscribes; returns the unsubscribe function. */
  subscribe(listener: (e: RelayEvent) => void): () => void {
    this.#events.on('event', listener);
    return () => this.#events.off('event', listener);
  }

  #emit(e: Omit<RelayEvent, 'n' | 'at'>): void {
    const event: RelayEvent = { n: ++this.#n, at: Date.now(), ...e };
    this.#history.push(event);
    if (this.#history.length > HISTORY_LIMIT) this.#history.shift();
    this.#events.emit('event', event);
  }

  async putPrekeys(deviceId: string, upload: PrekeyUpload): Promise<number> {
    const count = await this.#inner.putPrekeys(deviceId, upload);
    this.#emit({ kind: 'prekeys', from: deviceId, count });
    return count;
  }
  // Every optional argument is passed on: the relay's quotas, expiry and prekey rate live in them.
  async takeBundle(...args: Parameters<RelayStore['takeBundle']>): ReturnType<RelayStore['takeBundle']> {
    const [deviceId] = args;
    const r = await this.#inner.takeBundle(...args);
    if (r) this.#emit({ kind: 'bundle', to: deviceId, count: r.remaining });
    return r;
  }
  /** Identity and opaque statements (certificate, attestation); consumes nothing. */
  getIdentity(deviceId: string): ReturnType<RelayStore['getIdentity']> {
    return this.#inner.getIdentity(deviceId);
  }
  countOneTimePrekeys(deviceId: string): Promise<number> {
    return this.#inner.countOneTimePrekeys(deviceId);
  }
  async enqueue(...args: Parameters<RelayStore['enqueue']>): Promise<{ seq: number; duplicate: boolean }> {
    const [message] = args;
    const r = await this.#inner.enqueue(...args);
    this.#pending.set(`${message.to}/${r.seq}`, { from: message.from, id: message.id, size: message.envelope.length });
    if (this.#pending.size > 10_000) this.#pending.delete(this.#pending.keys().next().value!);
    this.#emit({
      kind: 'stored',
      from: message.from,
      to: message.to,
      id: message.id,
      seq: r.seq,
      size: message.envelope.length,
      head: hex(message.envelope),
      envelope: b64(message.envelope),
      duplicate: r.duplicate,
    });
    return r;
  }
  async listPending(...args: Parameters<RelayStore['listPending']>): Promise<StoredMessage[]> {
    const page = await this.#inner.listPending(...args);
    for (const m of page) {
      this.#emit({ kind: 'forwarded', from: m.from, to: m.to, id: m.id, seq: m.seq, size: m.envelope.length, head: hex(m.envelope) });
    }
    return page;
  }
  async deleteMessages(to: string, seqs: readonly number[]): Promise<number> {
    const n = await this.#inner.deleteMessages(to, seqs);
    for (const seq of seqs) {
      const known = this.#pending.get(`${to}/${seq}`);
      if (!known) continue;
      this.#pending.delete(`${to}/${seq}`);
      this.#emit({ kind: 'acked', from: known.from, to, id: known.id, seq, size: known.size, count: 1 });
    }
    return n;
  }
  countPending(to: string): Promise<number> {
    return this.#inner.countPending(to);
  }
  queueDepth(): Promise<number> {
    return this.#inner.queueDepth();
  }
  purgeExpired(before: number, limit: number): Promise<number> {
    return this.#inner.purgeExpired?.(before, limit) ?? Promise.resolve(0);
  }
  putApiKey(record: ApiKeyRecord): Promise<void> {
    return this.#inner.putApiKey(record);
  }
  findApiKey(hash: string): Promise<ApiKeyRecord | undefined> {
    return this.#inner.findApiKey(hash);
  }
  revokeApiKey(id: string, at: number): Promise<boolean> {
    return this.#inner.revokeApiKey(id, at);
  }
  listApiKeys(): Promise<ApiKeyRecord[]> {
    return this.#inner.listApiKeys();
  }
  putRevocationList(issuer: string, sequence: number, list: Uint8Array): Promise<boolean> {
    return this.#inner.putRevocationList(issuer, sequence, list);
  }
  listRevocationLists(): Promise<StoredRevocationList[]> {
    return this.#inner.listRevocationLists();
  }
  setDeviceRoles(deviceId: string, roles: readonly string[]): Promise<void> {
    return this.#inner.setDeviceRoles(deviceId, roles);
  }
  getDeviceRoles(deviceId: string): Promise<string[] | undefined> {
    return this.#inner.getDeviceRoles(deviceId);
  }
  // Handoff tickets: metadata only (queue, device ids, an opaque ref), passed through.
  openTicket(...a: Parameters<RelayStore['openTicket']>): ReturnType<RelayStore['openTicket']> {
    return this.#inner.openTicket(...a);
  }
  getTicket(...a: Parameters<RelayStore['getTicket']>): ReturnType<RelayStore['getTicket']> {
    return this.#inner.getTicket(...a);
  }
  listTickets(...a: Parameters<RelayStore['listTickets']>): ReturnType<RelayStore['listTickets']> {
    return this.#inner.listTickets(...a);
  }
  claimTicket(...a: Parameters<RelayStore['claimTicket']>): ReturnType<RelayStore['claimTicket']> {
    return this.#inner.claimTicket(...a);
  }
  releaseTicket(...a: Parameters<RelayStore['releaseTicket']>): ReturnType<RelayStore['releaseTicket']> {
    return this.#inner.releaseTicket(...a);
  }
  closeTicket(...a: Parameters<RelayStore['closeTicket']>): ReturnType<RelayStore['closeTicket']> {
    return this.#inner.closeTicket(...a);
  }
  dueUnclaimed(...a: Parameters<RelayStore['dueUnclaimed']>): ReturnType<RelayStore['dueUnclaimed']> {
    return this.#inner.dueUnclaimed(...a);
  }
  markUnclaimedNotified(...a: Parameters<RelayStore['markUnclaimedNotified']>): ReturnType<RelayStore['markUnclaimedNotified']> {
    return this.#inner.markUnclaimedNotified(...a);
  }
  countWaitingTickets(): Promise<number> {
    return this.#inner.countWaitingTickets();
  }
  // The compliance archive: entries sealed to the org's compliance key, passed through.
  archiveAppend(...a: Parameters<RelayStore['archiveAppend']>): ReturnType<RelayStore['archiveAppend']> {
    return this.#inner.archiveAppend(...a);
  }
  archiveEntries(ref: string): Promise<Uint8Array[]> {
    return this.#inner.archiveEntries(ref);
  }
  // Purge, legal hold, retention sweep and opening notices: passed through.
  archiveAppenders(ref: string): Promise<string[]> {
    return this.#inner.archiveAppenders(ref);
  }
  archivePurge(...a: Parameters<RelayStore['archivePurge']>): ReturnType<RelayStore['archivePurge']> {
    return this.#inner.archivePurge(...a);
  }
  archiveHold(...a: Parameters<RelayStore['archiveHold']>): Promise<void> {
    return this.#inner.archiveHold(...a);
  }
  archiveRelease(ref: string): Promise<boolean> {
    return this.#inner.archiveRelease(ref);
  }
  archiveHolds(): ReturnType<RelayStore['archiveHolds']> {
    return this.#inner.archiveHolds();
  }
  archiveSweep(before: number, limit: number): ReturnType<RelayStore['archiveSweep']> {
    return this.#inner.archiveSweep(before, limit);
  }
  archiveRecordOpening(...a: Parameters<RelayStore['archiveRecordOpening']>): Promise<number> {
    return this.#inner.archiveRecordOpening(...a);
  }
  archiveOpeningsAfter(afterId: number, limit: number): ReturnType<RelayStore['archiveOpeningsAfter']> {
    return this.#inner.archiveOpeningsAfter(afterId, limit);
  }
  archivePendingOpenings(deviceId: string): ReturnType<RelayStore['archivePendingOpenings']> {
    return this.#inner.archivePendingOpenings(deviceId);
  }
  archiveOpeningNoticed(id: number, deviceId: string): Promise<void> {
    return this.#inner.archiveOpeningNoticed(id, deviceId);
  }
  close(): Promise<void> {
    this.#events.removeAllListeners();
    return this.#inner.close();
  }
}
