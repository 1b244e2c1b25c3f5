/**
 * The store contract: every piece of durable relay state goes through this interface, so a
 * relay node keeps nothing in memory that another node (or a restart) would need. All methods
 * are async so a networked store (Redis, later) fits the same shape.
 *
 * One contract test suite (`test/store-contract.ts`) runs against every implementation.
 */
import type { PrekeyBundle, PrekeyUpload, PublicIdentity } from '@parley/protocol/verify';

/**
 * Opaque public statements a device publishes with its prekeys (wire `DeviceStatements`): an org
 * certificate and a bot attestation. Stores keep them byte for byte and never interpret them.
 */
export interface DeviceStatements {
  readonly certificate?: Uint8Array;
  readonly attestation?: Uint8Array;
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

/** Durable relay state: prekey directory, mailbox, API keys. */
export interface RelayStore {
  /**
   * Stores a device's identity and signed prekey (replacing the previous ones) and appends its
   * one-time prekeys. An OPK id the store has seen before for this device (pending or already
   * handed out) is ignored, so a re-upload can never put a used OPK back into circulation.
   * In the same atomic write, sets the device's statements: an absent `certificate` or
   * `attestation` keeps the stored one, an empty one removes it.
   * @returns the number of OPKs now available.
   */
  putPrekeys(deviceId: string, upload: PrekeyPublication): Promise<number>;
  /**
   * Atomically builds a bundle and consumes one OPK (oldest first). Without OPKs the bundle has
   * none. The device's statements come beside the bundle (keys omitted when not stored).
   * `undefined` when the device never uploaded.
   */
  takeBundle(deviceId: string): Promise<({ bundle: PrekeyBundle; remaining: number } & DeviceStatements) | undefined>;
  /** A device's identity and statements; consumes nothing. `undefined` when it never uploaded. */
  getIdentity(deviceId: string): Promise<StoredIdentity | undefined>;
  /** OPKs still available for a device. */
  countOneTimePrekeys(deviceId: string): Promise<number>;

  /**
   * Durably stores a message, idempotent on `(from, to, id)` while that message is pending: a retry returns the first seq with
   * `duplicate: true` and stores nothing. Resolves only once the write is durable.
   * Seqs are positive and increase per recipient.
   */
  enqueue(message: NewMessage): Promise<{ seq: number; duplicate: boolean }>;
  /** Pending messages for `to` with `seq > afterSeq`, in seq order, at most `limit`. */
  listPending(to: string, afterSeq: number, limit: number): Promise<StoredMessage[]>;
  /** Deletes messages addressed to `to` with the given seqs; others' messages are untouched. */
  deleteMessages(to: string, seqs: readonly number[]): Promise<number>;
  /** Pending messages for one recipient. */
  countPending(to: string): Promise<number>;
  /** Pending messages in total (metrics). */
  queueDepth(): Promise<number>;

  /** Stores a new API key record. Rejects a duplicate id or hash. */
  putApiKey(record: ApiKeyRecord): Promise<void>;
  /** The active (not revoked) record with this hash. */
  findApiKey(hash: string): Promise<ApiKeyRecord | undefined>;
  /** Marks a key revoked. @returns false when no active key has this id. */
  revokeApiKey(id: string, at: number): Promise<boolean>;
  /** Every key record, revoked ones included (never the keys themselves). */
  listApiKeys(): Promise<ApiKeyRecord[]>;

  /** Releases resources. Later calls fail. */
  close(): Promise<void>;
}
