/**
 * The store contract: every piece of durable relay state goes through this interface, so a
 * relay node keeps nothing in memory that another node (or a restart) would need. All methods
 * are async so a networked store (Redis, later) fits the same shape.
 *
 * One contract test suite (`test/store-contract.ts`) runs against every implementation.
 */
import type { ArchiveSubmission, PrekeyBundle, PrekeyUpload, PublicIdentity } from '@parley/protocol/verify';
import type { Ticket } from '@parley/protocol/wire';

/**
 * Opaque public statements a device publishes with its prekeys (wire `DeviceStatements`): an org
 * certificate, a bot attestation and a bot's release manifest list. Stores keep them byte for
 * byte and never interpret them.
 */
export interface DeviceStatements {
  readonly certificate?: Uint8Array;
  readonly attestation?: Uint8Array;
  readonly manifests?: Uint8Array;
  /** An org-signed compliance archive disclosure (archive.ts), opaque like the others. */
  readonly disclosure?: Uint8Array;
}

/**
 * What `putPrekeys` receives. For each statement: `undefined` keeps the stored value, an empty
 * array removes it, anything else replaces it.
 */
export type PrekeyPublication = PrekeyUpload & DeviceStatements;

/** A device's identity and statements, as `getIdentity` returns them (absent statements are omitted). */
export type StoredIdentity = { readonly identity: PublicIdentity } & DeviceStatements;

/** A queued envelope as the relay stores it. `from` comes from the sender's authenticated socket. */
export interface StoredMessage {
  readonly seq: number;
  readonly to: string;
  readonly from: string;
  readonly id: string;
  readonly envelope: Uint8Array;
  readonly receivedAt: number;
}

/** What `enqueue` receives (the store assigns `seq`). */
export type NewMessage = Omit<StoredMessage, 'seq'>;

/** Which mailbox quota refused a message (`STORAGE_QUOTA` details `quota`). */
export type QuotaScope = 'pair' | 'recipient' | 'sender' | 'total';

/**
 * Mailbox quotas `enqueue` enforces in the same atomic step as the write (so concurrent sends,
 * through one node or several, cannot overshoot them). Counts are of pending messages.
 */
export interface MailboxQuota {
  /** From one sender to one recipient. */
  readonly perPair: number;
  /** For one recipient, from everyone. */
  readonly perRecipient: number;
  /**
   * Once a recipient has `perRecipient - reserve` pending, only senders with fewer than
   * `reservePerSender` pending for it are admitted (up to `perRecipient`).
   */
  readonly reserve: number;
  readonly reservePerSender: number;
  /** From one sender, to everyone. */
  readonly perSender: number;
  /** In the whole store. */
  readonly total: number;
}

/** Options of {@link RelayStore.enqueue}. */
export interface EnqueueOptions {
  /**
   * A store shared by several relay nodes (Redis): after the write, in order with it, count the
   * nodes subscribed to the broadcast channel `all` other than this one (the one subscribed to
   * `self`; `nodeChannels` of `cluster/redis-adapter.ts`). The result then has `otherNodes`.
   * Stores of one node ignore it.
   */
  readonly countNodes?: { readonly all: string; readonly self: string };
}

/** What {@link RelayStore.enqueue} returns. */
export interface EnqueueResult {
  readonly seq: number;
  readonly duplicate: boolean;
  /**
   * With `countNodes`: how many other relay nodes were subscribed to broadcasts right after the
   * write (a node subscribing later joins its device rooms later, and its drains read this
   * message from the store). Absent when not asked for or not known.
   */
  readonly otherNodes?: number;
}

/** Options of {@link RelayStore.takeBundle}. */
export interface TakeBundleOptions {
  /**
   * `false`: build the bundle without a one-time prekey and consume none (the relay's per-target
   * hand-out rate is spent). Default `true`.
   */
  readonly oneTimePrekey?: boolean;
}

/** Options of {@link RelayStore.findApiKey}. */
export interface FindApiKeyOptions {
  /** Also return a revoked record. Default `false`. */
  readonly includeRevoked?: boolean;
}

/** A stored API key record. Only the hash of the key is kept. */
export interface ApiKeyRecord {
  /** Public id, used to list and revoke. */
  readonly id: string;
  /** SHA-256 of the key, lower-case hex. */
  readonly hash: string;
  readonly label: string;
  readonly createdAt: number;
  readonly revokedAt?: number;
}

/** A staff revocation list as the relay keeps it: the newest one per issuer. */
export interface StoredRevocationList {
  /** The issuer's public key, lower-case hex. */
  readonly issuer: string;
  readonly sequence: number;
  /** The signed list, byte for byte (`signRevocationList`). */
  readonly list: Uint8Array;
}

/** What {@link TicketStore.openTicket} receives: the store sets `state: 'waiting'` and `waitingSince = openedAt`. */
export type NewTicket = Pick<Ticket, 'id' | 'queue' | 'customer' | 'ref' | 'notify' | 'openedAt'>;

/** {@link TicketStore.openTicket}'s answer: the new or already open ticket, or a refusal at the customer's limit. */
export type TicketOpenResult =
  | { readonly ok: true; readonly ticket: Ticket; readonly existing: boolean }
  | { readonly ok: false; readonly open: number };

/**
 * A claim, release or close: `ok: true` with the ticket after the step (for close: the deleted
 * one), or `ok: false` with the ticket as it stands (claimed by another, or `by` is not a party)
 * or without one (no such ticket).
 */
export type TicketStep = { readonly ok: true; readonly ticket: Ticket } | { readonly ok: false; readonly ticket?: Ticket };

/**
 * Handoff tickets (`@parley/protocol/wire` tickets.ts): metadata only. Every step that reads
 * and writes is atomic in the store, so two relay nodes never both win a claim and never both
 * report a ticket unclaimed.
 */
export interface TicketStore {
  /**
   * Opens a waiting ticket, idempotent on `(customer, ref)` while one is open (that one comes
   * back with `existing: true`, unchanged). With `maxPerCustomer`, a new ticket beyond that
   * many open ones of the customer is refused (`ok: false`).
   */
  openTicket(ticket: NewTicket, maxPerCustomer?: number): Promise<TicketOpenResult>;
  getTicket(id: string): Promise<Ticket | undefined>;
  /** Open tickets (of `queue`, or all), oldest `openedAt` first, at most `limit` (default all). */
  listTickets(queue?: string, limit?: number): Promise<Ticket[]>;
  /**
   * Claims a waiting ticket for `agent` at `at`. Claimed by `agent` already: `ok` (unchanged);
   * by another: `ok: false` with the ticket.
   */
  claimTicket(id: string, agent: string, at: number): Promise<TicketStep>;
  /**
   * Back to waiting (claim dropped, `waitingSince = at`, a new waiting period, optionally into
   * `queue`), only when `by` is the customer or the claimant (checked in the same step).
   */
  releaseTicket(id: string, by: string, at: number, queue?: string): Promise<TicketStep>;
  /** Deletes the ticket, only when `by` is the customer or the claimant; `ticket` is the deleted one. */
  closeTicket(id: string, by: string): Promise<TicketStep>;
  /**
   * Waiting tickets with `waitingSince <= before` not yet reported for their current waiting
   * period, oldest first, at most `limit`.
   */
  dueUnclaimed(before: number, limit: number): Promise<Ticket[]>;
  /**
   * Marks the waiting period starting at `waitingSince` reported; true only for the one caller
   * that marks it (false when already marked, claimed, released since, or gone).
   */
  markUnclaimedNotified(id: string, waitingSince: number): Promise<boolean>;
  /** Tickets in state `waiting` (metrics). */
  countWaitingTickets(): Promise<number>;
}

/**
 * The append-only compliance archive (archive/): per conversation ref, the hash-chained entries
 * in order. The store assigns each entry's index and previous hash in the same atomic step as
 * the write (`chainArchiveEntry`), so concurrent appends never fork a chain. Nothing updates or
 * deletes an entry.
 */
export interface ArchiveStore {
  /**
   * Chains a verified-on-append submission to its ref's last entry and stores it.
   * @returns the entry's index.
   * @throws ParleyError `INVALID_SIGNATURE` when the submission's signature does not verify;
   * `FORBIDDEN` `archiveErased` when the ref was erased ({@link archivePurge} with `erasedAt`),
   * checked in the same atomic step, so nothing is stored.
   */
  archiveAppend(submission: ArchiveSubmission, at: number, deviceId?: string): Promise<number>;
  /** The ref's encoded entries, in index order. */
  archiveEntries(ref: string): Promise<Uint8Array[]>;

  // Archive operations (archive/ops.ts): purge, legal hold, retention sweep, opening notices.
  /** The devices that appended to `ref` (`archiveAppend` with a `deviceId`), sorted. */
  archiveAppenders(ref: string): Promise<string[]>;
  /**
   * Erasure: deletes every entry of `ref` with its appenders and its opening notices, in one
   * atomic step, unless the ref is under a legal hold (then nothing changes: `held: true`).
   * With `erasedAt` (a member's erasure purge, not the retention sweep) the same step also
   * records a tombstone for the ref (the ref and that time, nothing else), unless held: from
   * then on {@link archiveAppend} to the ref is refused (`FORBIDDEN` `archiveErased`), so a
   * submission still queued at a member cannot put erased content back. Tombstones are kept.
   */
  archivePurge(ref: string, erasedAt?: number): Promise<{ deleted: number; held: boolean }>;
  /** Puts `ref` under a legal hold (replacing an earlier hold's reason and time). */
  archiveHold(hold: ArchiveHold): Promise<void>;
  /** Lifts the hold on `ref`. @returns false when it was not held. */
  archiveRelease(ref: string): Promise<boolean>;
  /** The holds, by ref. */
  archiveHolds(): Promise<ArchiveHold[]>;
  /**
   * Retention: purges (as {@link archivePurge}) up to `limit` refs whose newest entry was
   * appended before `before`, skipping held refs. @returns the refs and entries deleted.
   */
  archiveSweep(before: number, limit: number): Promise<{ refs: number; entries: number }>;
  /**
   * Records an opening of `ref` (`parley-compliance open|export`) and a pending notice for each
   * device that appended to it. @returns the opening's id (increasing).
   */
  archiveRecordOpening(opening: Omit<ArchiveOpening, 'id'>): Promise<number>;
  /** Openings with an id above `afterId`, in id order, at most `limit` (the live push polls this). */
  archiveOpeningsAfter(afterId: number, limit: number): Promise<ArchiveOpening[]>;
  /** The openings `deviceId` has not acknowledged yet, in id order. */
  archivePendingOpenings(deviceId: string): Promise<ArchiveOpening[]>;
  /** `deviceId` acknowledged opening `id`: its notice is dropped. */
  archiveOpeningNoticed(id: number, deviceId: string): Promise<void>;
}

/** A legal hold on an archive ref: its entries survive erasure and the retention sweep. */
export interface ArchiveHold {
  readonly ref: string;
  /** Why (a case number, a regulator's request): shown to operators, never to customers. */
  readonly reason: string;
  /** ms since the epoch. */
  readonly at: number;
}

/** One opening of an archive ref by the compliance officer (`parley-compliance open|export`). */
export interface ArchiveOpening {
  readonly id: number;
  readonly ref: string;
  /** ms since the epoch. */
  readonly at: number;
  /** The `--reason` given, pushed to the ref's appenders. */
  readonly reason: string;
  /** The hash of the audit log record of this opening (hex). */
  readonly auditHash: string;
}

/** Durable relay state: prekey directory, mailbox, API keys, revocation lists, device roles, handoff tickets, the archive. */
export interface RelayStore extends TicketStore, ArchiveStore {
  /**
   * Stores a device's identity and signed prekey (replacing the previous ones) and appends its
   * one-time prekeys. An OPK id the store has seen before for this device (pending or already
   * handed out) is ignored, so a re-upload can never put a used OPK back into circulation.
   * In the same atomic write, sets the device's statements: an absent `certificate`,
   * `attestation` or `manifests` keeps the stored one, an empty one removes it.
   * @returns the number of OPKs now available.
   */
  putPrekeys(deviceId: string, upload: PrekeyPublication): Promise<number>;
  /**
   * Atomically builds a bundle and consumes one OPK (oldest first). Without OPKs, or with
   * `oneTimePrekey: false`, the bundle has none (and none is consumed). The device's statements
   * come beside the bundle (keys omitted when not stored). `undefined` when the device never uploaded.
   */
  takeBundle(deviceId: string, options?: TakeBundleOptions): Promise<({ bundle: PrekeyBundle; remaining: number } & DeviceStatements) | undefined>;
  /** A device's identity and statements; consumes nothing. `undefined` when it never uploaded. */
  getIdentity(deviceId: string): Promise<StoredIdentity | undefined>;
  /** OPKs still available for a device. */
  countOneTimePrekeys(deviceId: string): Promise<number>;

  /**
   * Durably stores a message, idempotent on `(from, to, id)` while that message is pending: a retry returns the first seq with
   * `duplicate: true` and stores nothing. Resolves only once the write is durable.
   * Seqs are positive and increase per recipient.
   * With `quota`, a new message (never a retry) that would exceed one is refused in the same
   * atomic step: nothing is stored.
   * @throws ParleyError `STORAGE_QUOTA` with details `{ quota: QuotaScope, have, max, reserved? }`.
   */
  enqueue(message: NewMessage, quota?: MailboxQuota, options?: EnqueueOptions): Promise<EnqueueResult>;
  /**
   * Pending messages for `to` with `seq > afterSeq` and `receivedAt >= minReceivedAt` (expired
   * ones are skipped, default none), in seq order, at most `limit`. Fewer than `limit` means no
   * more such messages.
   */
  listPending(to: string, afterSeq: number, limit: number, minReceivedAt?: number): Promise<StoredMessage[]>;
  /** Deletes messages addressed to `to` with the given seqs; others' messages are untouched. */
  deleteMessages(to: string, seqs: readonly number[]): Promise<number>;
  /** Pending messages for one recipient. */
  countPending(to: string): Promise<number>;
  /** Pending messages in total (metrics). */
  queueDepth(): Promise<number>;
  /**
   * Deletes up to `limit` pending messages with `receivedAt < before` (expired), oldest first,
   * with their dedupe entries and quota counts. Optional for stores written before it existed:
   * the relay then only skips expired messages on read.
   * @returns how many were deleted (fewer than `limit`: none older is left).
   */
  purgeExpired?(before: number, limit: number): Promise<number>;

  /** Stores a new API key record. Rejects a duplicate id or hash. */
  putApiKey(record: ApiKeyRecord): Promise<void>;
  /**
   * The active (not revoked) record with this hash; with `includeRevoked`, a revoked one too
   * (with `revokedAt`): revoked keys are kept, so a login can be refused as revoked.
   */
  findApiKey(hash: string, options?: FindApiKeyOptions): Promise<ApiKeyRecord | undefined>;
  /** Marks a key revoked. @returns false when no active key has this id. */
  revokeApiKey(id: string, at: number): Promise<boolean>;
  /** Every key record, revoked ones included (never the keys themselves). */
  listApiKeys(): Promise<ApiKeyRecord[]>;

  /**
   * Keeps `list` as `issuer`'s revocation list when `sequence` is higher than the stored one's
   * (or none is stored), atomically (two nodes storing two lists keep the higher).
   * @returns false when the stored sequence is equal or higher (nothing changes).
   */
  putRevocationList(issuer: string, sequence: number, list: Uint8Array): Promise<boolean>;
  /** The stored lists, one per issuer, in issuer order. */
  listRevocationLists(): Promise<StoredRevocationList[]>;
  /**
   * Remembers a device's roles at its last login (`customer`, `bot`, or staff roles), so any
   * node can judge a message to it. Replaces the stored roles.
   */
  setDeviceRoles(deviceId: string, roles: readonly string[]): Promise<void>;
  /** The roles stored by {@link setDeviceRoles}; `undefined` for a device never seen logging in. */
  getDeviceRoles(deviceId: string): Promise<string[] | undefined>;

  /** Releases resources. Later calls fail. */
  close(): Promise<void>;
  /**
   * Erasure: makes deleted rows unrecoverable from the store's files now (SQLite: checkpoint and
   * truncate the WAL; deleted pages are zeroed by `secure_delete`). Optional: stores without files skip it.
   */
  compact?(): Promise<void>;
}
