/**
 * In-memory {@link RelayStore} for tests and throwaway relays. Not durable: a restart loses
 * everything. Behaves exactly like the SQLite store (same contract tests).
 */
import type { ArchiveSubmission, OneTimePrekeyPublic, PrekeyBundle, PublicIdentity, SignedPrekeyPublic } from '@parley/protocol/verify';
import type { Ticket } from '@parley/protocol/wire';
import { exceededQuota, quotaError } from './quota.js';
import { MemoryTickets } from '../tickets/memory-tickets.js';
import { MemoryArchive } from '../archive/memory-archive.js';
import type {
  ApiKeyRecord, DeviceStatements, FindApiKeyOptions, MailboxQuota, NewMessage, PrekeyPublication, RelayStore, StoredIdentity, StoredMessage, StoredRevocationList,
  TakeBundleOptions, NewTicket, TicketOpenResult, TicketStep, ArchiveHold, ArchiveOpening,
} from './types.js';

interface DevicePrekeys {
  identity: PublicIdentity;
  signedPrekey: SignedPrekeyPublic;
  /** Available OPKs in upload order. */
  available: OneTimePrekeyPublic[];
  /** Every OPK id ever accepted (so a used one is never re-added). */
  seen: Set<number>;
  /** Opaque statements (org certificate, bot attestation, release manifest list). */
  certificate?: Uint8Array;
  attestation?: Uint8Array;
  manifests?: Uint8Array;
  disclosure?: Uint8Array;
}

const copy = (b: Uint8Array): Uint8Array => Uint8Array.from(b);

function copyIdentity(i: PublicIdentity): PublicIdentity {
  return { signingKey: copy(i.signingKey), dhKey: copy(i.dhKey), binding: copy(i.binding) };
}

/** Copies of the statements present on `entry`. */
function statementsOf(entry: DevicePrekeys): DeviceStatements {
  return {
    ...(entry.certificate ? { certificate: copy(entry.certificate) } : {}),
    ...(entry.attestation ? { attestation: copy(entry.attestation) } : {}),
    ...(entry.manifests ? { manifests: copy(entry.manifests) } : {}),
    ...(entry.disclosure ? { disclosure: copy(entry.disclosure) } : {}),
  };
}

function decrement(map: Map<string, number>, key: string): void {
  const n = (map.get(key) ?? 1) - 1;
  if (n <= 0) map.delete(key);
  else map.set(key, n);
}

/** A store that keeps everything in Maps. */
export class MemoryStore implements RelayStore {
  #prekeys = new Map<string, DevicePrekeys>();
  /** Per recipient, in seq order. */
  #mailbox = new Map<string, StoredMessage[]>();
  /** `${from}\n${id}` → seq, for idempotent enqueue. */
  #sent = new Map<string, number>();
  #seq = 0;
  /** Pending counts for the quotas: `${from}\n${to}` → n, from → n, and the total. */
  #pairCount = new Map<string, number>();
  #senderCount = new Map<string, number>();
  #total = 0;
  #apiKeys = new Map<string, ApiKeyRecord>();
  #revocations = new Map<string, StoredRevocationList>();
  #roles = new Map<string, string[]>();
  readonly #tickets = new MemoryTickets();
  readonly #archive = new MemoryArchive();
  #closed = false;

  #open(): void {
    if (this.#closed) throw new Error('store is closed');
  }

  async putPrekeys(deviceId: string, upload: PrekeyPublication): Promise<number> {
    this.#open();
    const spk = upload.signedPrekey;
    const signedPrekey = { id: spk.id, createdAt: spk.createdAt, publicKey: copy(spk.publicKey), signature: copy(spk.signature) };
    let entry = this.#prekeys.get(deviceId);
    if (!entry) {
      entry = { identity: copyIdentity(upload.identity), signedPrekey, available: [], seen: new Set() };
      this.#prekeys.set(deviceId, entry);
    } else {
      entry.identity = copyIdentity(upload.identity);
      entry.signedPrekey = signedPrekey;
    }
    for (const opk of upload.oneTimePrekeys) {
      if (entry.seen.has(opk.id)) continue;
      entry.seen.add(opk.id);
      entry.available.push({ id: opk.id, publicKey: copy(opk.publicKey) });
    }
    // Absent: keep; empty: remove; otherwise replace.
    if (upload.certificate !== undefined) {
      if (upload.certificate.length === 0) delete entry.certificate;
      else entry.certificate = copy(upload.certificate);
    }
    if (upload.attestation !== undefined) {
      if (upload.attestation.length === 0) delete entry.attestation;
      else entry.attestation = copy(upload.attestation);
    }
    if (upload.manifests !== undefined) {
      if (upload.manifests.length === 0) delete entry.manifests;
      else entry.manifests = copy(upload.manifests);
    }
    if (upload.disclosure !== undefined) {
      if (upload.disclosure.length === 0) delete entry.disclosure;
      else entry.disclosure = copy(upload.disclosure);
    }
    return entry.available.length;
  }

  async takeBundle(deviceId: string, options: TakeBundleOptions = {}): Promise<({ bundle: PrekeyBundle; remaining: number } & DeviceStatements) | undefined> {
    this.#open();
    const entry = this.#prekeys.get(deviceId);
    if (!entry) return undefined;
    const opk = options.oneTimePrekey === false ? undefined : entry.available.shift();
    const base = { identity: copyIdentity(entry.identity), signedPrekey: { ...entry.signedPrekey } };
    const bundle: PrekeyBundle = opk ? { ...base, oneTimePrekey: opk } : base;
    return { bundle, remaining: entry.available.length, ...statementsOf(entry) };
  }

  async getIdentity(deviceId: string): Promise<StoredIdentity | undefined> {
    this.#open();
    const entry = this.#prekeys.get(deviceId);
    if (!entry) return undefined;
    return { identity: copyIdentity(entry.identity), ...statementsOf(entry) };
  }

  async countOneTimePrekeys(deviceId: string): Promise<number> {
    this.#open();
    return this.#prekeys.get(deviceId)?.available.length ?? 0;
  }

  async enqueue(message: NewMessage, quota?: MailboxQuota): Promise<{ seq: number; duplicate: boolean }> {
    this.#open();
    const key = `${message.from}\n${message.to}\n${message.id}`;
    const existing = this.#sent.get(key);
    if (existing !== undefined) return { seq: existing, duplicate: true };
    const pairKey = `${message.from}\n${message.to}`;
    if (quota) {
      const over = exceededQuota({
        pair: this.#pairCount.get(pairKey) ?? 0,
        recipient: this.#mailbox.get(message.to)?.length ?? 0,
        sender: this.#senderCount.get(message.from) ?? 0,
        total: this.#total,
      }, quota);
      if (over) throw quotaError(over);
    }
    const seq = ++this.#seq;
    this.#sent.set(key, seq);
    const queue = this.#mailbox.get(message.to) ?? [];
    queue.push({ ...message, envelope: copy(message.envelope), seq });
    this.#mailbox.set(message.to, queue);
    this.#pairCount.set(pairKey, (this.#pairCount.get(pairKey) ?? 0) + 1);
    this.#senderCount.set(message.from, (this.#senderCount.get(message.from) ?? 0) + 1);
    this.#total++;
    return { seq, duplicate: false };
  }

  async listPending(to: string, afterSeq: number, limit: number, minReceivedAt = 0): Promise<StoredMessage[]> {
    this.#open();
    const queue = this.#mailbox.get(to) ?? [];
    return queue.filter((m) => m.seq > afterSeq && m.receivedAt >= minReceivedAt).slice(0, Math.max(0, limit))
      .map((m) => ({ ...m, envelope: copy(m.envelope) }));
  }

  async deleteMessages(to: string, seqs: readonly number[]): Promise<number> {
    this.#open();
    const drop = new Set(seqs);
    return this.#remove(to, (m) => drop.has(m.seq));
  }

  async purgeExpired(before: number, limit: number): Promise<number> {
    this.#open();
    // Oldest first across recipients, at most `limit`.
    const expired: StoredMessage[] = [];
    for (const queue of this.#mailbox.values()) for (const m of queue) if (m.receivedAt < before) expired.push(m);
    expired.sort((a, b) => a.receivedAt - b.receivedAt || a.seq - b.seq);
    const chosen = expired.slice(0, Math.max(0, limit));
    const byRecipient = new Map<string, Set<number>>();
    for (const m of chosen) byRecipient.set(m.to, (byRecipient.get(m.to) ?? new Set()).add(m.seq));
    let n = 0;
    for (const [to, seqs] of byRecipient) n += this.#remove(to, (m) => seqs.has(m.seq));
    return n;
  }

  /** Removes `to`'s messages matching `drop`, with their dedupe entries and counts. */
  #remove(to: string, drop: (m: StoredMessage) => boolean): number {
    const queue = this.#mailbox.get(to);
    if (!queue) return 0;
    const kept: StoredMessage[] = [];
    let deleted = 0;
    for (const m of queue) {
      if (!drop(m)) {
        kept.push(m);
        continue;
      }
      deleted++;
      // Dedupe covers pending messages only (as in SQLite, where it is a UNIQUE index on the
      // queue) and per recipient: tombstones would grow without bound, and clients dedupe anyway.
      this.#sent.delete(`${m.from}\n${m.to}\n${m.id}`);
      decrement(this.#pairCount, `${m.from}\n${m.to}`);
      decrement(this.#senderCount, m.from);
      this.#total--;
    }
    if (kept.length === 0) this.#mailbox.delete(to);
    else this.#mailbox.set(to, kept);
    return deleted;
  }

  async countPending(to: string): Promise<number> {
    this.#open();
    return this.#mailbox.get(to)?.length ?? 0;
  }

  async queueDepth(): Promise<number> {
    this.#open();
    return this.#total;
  }

  async putApiKey(record: ApiKeyRecord): Promise<void> {
    this.#open();
    for (const r of this.#apiKeys.values()) {
      if (r.id === record.id || r.hash === record.hash) throw new Error('duplicate api key');
    }
    this.#apiKeys.set(record.id, { ...record });
  }

  async findApiKey(hash: string, options: FindApiKeyOptions = {}): Promise<ApiKeyRecord | undefined> {
    this.#open();
    for (const r of this.#apiKeys.values()) if (r.hash === hash && (r.revokedAt === undefined || options.includeRevoked)) return { ...r };
    return undefined;
  }

  async revokeApiKey(id: string, at: number): Promise<boolean> {
    this.#open();
    const r = this.#apiKeys.get(id);
    if (!r || r.revokedAt !== undefined) return false;
    this.#apiKeys.set(id, { ...r, revokedAt: at });
    return true;
  }

  async listApiKeys(): Promise<ApiKeyRecord[]> {
    this.#open();
    return [...this.#apiKeys.values()].map((r) => ({ ...r }));
  }

  async putRevocationList(issuer: string, sequence: number, list: Uint8Array): Promise<boolean> {
    this.#open();
    const stored = this.#revocations.get(issuer);
    if (stored && stored.sequence >= sequence) return false;
    this.#revocations.set(issuer, { issuer, sequence, list: copy(list) });
    return true;
  }

  async listRevocationLists(): Promise<StoredRevocationList[]> {
    this.#open();
    return [...this.#revocations.values()].sort((a, b) => (a.issuer < b.issuer ? -1 : 1)).map((r) => ({ ...r, list: copy(r.list) }));
  }

  async setDeviceRoles(deviceId: string, roles: readonly string[]): Promise<void> {
    this.#open();
    this.#roles.set(deviceId, [...roles]);
  }

  async getDeviceRoles(deviceId: string): Promise<string[] | undefined> {
    this.#open();
    const roles = this.#roles.get(deviceId);
    return roles && [...roles];
  }

  // The compliance archive (archive/memory-archive.ts).
  async archiveAppend(submission: ArchiveSubmission, at: number, deviceId?: string): Promise<number> {
    this.#open();
    return this.#archive.append(submission, at, deviceId);
  }
  async archiveEntries(ref: string): Promise<Uint8Array[]> {
    this.#open();
    return this.#archive.entries(ref);
  }
  async archiveAppenders(ref: string): Promise<string[]> {
    this.#open();
    return this.#archive.appenders(ref);
  }
  async archivePurge(ref: string, erasedAt?: number): Promise<{ deleted: number; held: boolean }> {
    this.#open();
    return this.#archive.purge(ref, erasedAt);
  }
  async archiveHold(hold: ArchiveHold): Promise<void> {
    this.#open();
    this.#archive.hold(hold);
  }
  async archiveRelease(ref: string): Promise<boolean> {
    this.#open();
    return this.#archive.release(ref);
  }
  async archiveHolds(): Promise<ArchiveHold[]> {
    this.#open();
    return this.#archive.holds();
  }
  async archiveSweep(before: number, limit: number): Promise<{ refs: number; entries: number }> {
    this.#open();
    return this.#archive.sweep(before, limit);
  }
  async archiveRecordOpening(opening: Omit<ArchiveOpening, 'id'>): Promise<number> {
    this.#open();
    return this.#archive.recordOpening(opening);
  }
  async archiveOpeningsAfter(afterId: number, limit: number): Promise<ArchiveOpening[]> {
    this.#open();
    return this.#archive.openingsAfter(afterId, limit);
  }
  async archivePendingOpenings(deviceId: string): Promise<ArchiveOpening[]> {
    this.#open();
    return this.#archive.pendingOpenings(deviceId);
  }
  async archiveOpeningNoticed(id: number, deviceId: string): Promise<void> {
    this.#open();
    this.#archive.noticed(id, deviceId);
  }

  // Handoff tickets (tickets/memory-tickets.ts).
  async openTicket(ticket: NewTicket, maxPerCustomer?: number): Promise<TicketOpenResult> {
    this.#open();
    return this.#tickets.openTicket(ticket, maxPerCustomer);
  }
  async getTicket(id: string): Promise<Ticket | undefined> {
    this.#open();
    return this.#tickets.getTicket(id);
  }
  async listTickets(queue?: string, limit?: number): Promise<Ticket[]> {
    this.#open();
    return this.#tickets.listTickets(queue, limit);
  }
  async claimTicket(id: string, agent: string, at: number): Promise<TicketStep> {
    this.#open();
    return this.#tickets.claimTicket(id, agent, at);
  }
  async releaseTicket(id: string, by: string, at: number, queue?: string): Promise<TicketStep> {
    this.#open();
    return this.#tickets.releaseTicket(id, by, at, queue);
  }
  async closeTicket(id: string, by: string): Promise<TicketStep> {
    this.#open();
    return this.#tickets.closeTicket(id, by);
  }
  async dueUnclaimed(before: number, limit: number): Promise<Ticket[]> {
    this.#open();
    return this.#tickets.dueUnclaimed(before, limit);
  }
  async markUnclaimedNotified(id: string, waitingSince: number): Promise<boolean> {
    this.#open();
    return this.#tickets.markUnclaimedNotified(id, waitingSince);
  }
  async countWaitingTickets(): Promise<number> {
    this.#open();
    return this.#tickets.countWaitingTickets();
  }

  async close(): Promise<void> {
    this.#closed = true;
  }
}
