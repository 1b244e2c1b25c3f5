/**
 * The conversation engine: a device's account, its sessions with peer devices, trust
 * decisions, dedupe, outbox and inbox, over any {@link KeyValueStore}. It knows nothing of
 * sockets, files or Node: the socket client (`ParleyClient`) and the bot enclave drive the same
 * engine and move its envelopes themselves.
 *
 * Crash safety (docs/threats.md requirement 5, ST3): every operation works on copies, writes all the
 * records it changed in **one** atomic `setMany`, and only then updates its in-memory view and
 * returns. A crash before the write leaves the old state (the caller retries); a crash after it
 * leaves the new state, with the outgoing envelope in the outbox or the incoming message in the
 * inbox. Operations run one at a time (an internal queue).
 */
import {
  Account,
  ParleyError,
  Session,
  getCrypto,
  isParleyError,
  parseMessage,
  safetyNumber as protocolSafetyNumber,
  toHex,
  MESSAGE_TYPE,
  encodeSessionReset,
  isSessionReset,
  openSessionReset,
  type PrekeyBundle,
  type SessionResetReason,
  type PrekeyUpload,
  type PublicIdentity,
  type OrgRole,
  type StaffRole,
  staffSignInPayload,
} from '@parley/protocol';
import {
  DEVICE_ID_PATTERN,
  MESSAGE_ID_PATTERN,
  RELAY_MAX_OPKS_PER_UPLOAD,
  RELAY_NONCE_BYTES,
  relayAuthPayload,
  type RelayAuthInput,
} from '@parley/protocol/wire';
import { MAX_RECEIPT_IDS, assertMessageId, decodePayload, decodeReceiptBody, encodePayload, encodeReceiptBody, type PayloadType } from './payload.js';
import {
  MAX_RESENDS,
  RESET_APPLY_INTERVAL_MS,
  ResetRequestLimiter,
  planArchive,
  planConfirmed,
  planUnconfirmed,
  relayIdNames,
  resendRelayId,
} from './healing.js';
import {
  K,
  STORE_FORMAT,
  STORE_VERSION,
  clonePeer,
  decodePeerRecord,
  identityFromRecord,
  encodePeerRecord,
  jsonBytes,
  newPeerRecord,
  parseJsonRecord,
  type OutgoingEnvelope,
  type PeerRecord,
  type ReceivedMessage,
} from './records.js';
import type { KeyValueStore } from './store.js';
import { consentReceiptPayload, type UnsignedConsentReceipt } from '@parley/protocol';
import { dueGaps, markReported, noteReceived } from './gaps.js';
import { Mailbox, NO_PLAN, type MailboxPlan } from './mailbox.js';
import { PeerTrust } from './peer-trust.js';
import { applyDisclosure, archiveStatus, disclosureOf, type ArchiveStatus, type StoredDisclosure } from './archive-disclosure.js';
import { RevocationSet, type RevocationUpdate } from './revocations.js';
import { resolveTrust, type TrustEvent, type TrustOptions, type TrustPolicy } from './trust.js';

export type { OutgoingEnvelope, ReceivedMessage } from './records.js';

/** Safety numbers kept computed (per peer device); the cache starts over past this. */
const MAX_CACHED_SAFETY_NUMBERS = 1_000;
/** Sessions kept per peer device (the newest or most recently used first); older ones are dropped. */
export const MAX_SESSIONS_PER_PEER = 4;
/** Reset requests remembered for later (one per peer, the latest). */
const MAX_DEFERRED_RESETS = 1_000;
/** Sessions kept live after a failed decrypt (each holds at most a few header stages, docs/threats.md C8). */
const MAX_FAILED_SESSIONS_KEPT = 16;
/**
 * Sessions kept live after their state was persisted (the most recently used): the next message
 * of a steady conversation reuses the live session instead of unpickling its record again.
 */
const MAX_LIVE_SESSIONS_KEPT = 256;
/** Signed prekeys older than this are rotated by {@link ConversationEngine.prekeyUpload}. */
export const SIGNED_PREKEY_MAX_AGE_MS = 7 * 24 * 3600 * 1000;
/** One-time prekeys kept ready (generated, not yet uploaded) by default. */
export const DEFAULT_PREKEY_TARGET = 50;

/** A bundle as fetched from the relay, with the optional extras the relay may carry beside it. */
export type FetchedBundle = PrekeyBundle & {
  /** An org certificate of the bundle's identity (see org-cert.ts). */
  readonly certificate?: Uint8Array;
  /**
   * A bot enclave attestation (encoded, `@parley/protocol/attestation`), checked against
   * `trust.botMeasurement` (or `trust.releaseManifests`) for peers that must be attested.
   */
  readonly attestation?: Uint8Array;
  /** The bot's release manifest list (`encodeReleaseManifestList`), for `trust.releaseManifests`. */
  readonly manifests?: Uint8Array;
  /** An org-signed compliance archive disclosure (archive-disclosure.ts). */
  readonly disclosure?: Uint8Array;
};

/** A peer's published statements (from the relay's `fetchIdentity`, or out of band). */
export interface PeerStatements {
  /** The peer's identity; needed when the engine has not recorded it yet. */
  readonly identity?: PublicIdentity;
  readonly certificate?: Uint8Array;
  readonly attestation?: Uint8Array;
  readonly manifests?: Uint8Array;
  /** An org-signed compliance archive disclosure; absent or empty: none (any recorded one is dropped). */
  readonly disclosure?: Uint8Array;
}

/** What the engine knows about an attested bot peer. */
export interface PeerAttestationInfo {
  /** The attested measurement (pinned, or allowed by a release manifest), hex. */
  readonly measurement: string;
  /** When the bot's enclave signed it, ms since the epoch. */
  readonly issuedAt: number;
  /**
   * The release version of the org-signed release manifest that allows the measurement
   * (trust `releaseManifests`), e.g. `2.4.0`; absent when it was accepted by a pin alone.
   */
  readonly releaseVersion?: string;
}

/** Options of {@link ConversationEngine.open}. */
export interface EngineOptions {
  readonly store: KeyValueStore;
  readonly trust?: TrustOptions;
  /** Clock, ms since the epoch. Default `Date.now`. */
  readonly now?: () => number;
  /** Called (synchronously) for trust events such as a label moving to a new device. */
  readonly onTrustEvent?: (event: TrustEvent) => void;
}

/** Options of {@link ConversationEngine.encrypt}. */
export interface EncryptOptions {
  /** Unique per sender; the relay and the receiver dedupe on it. */
  readonly messageId: string;
  /** The peer's bundle, to start a new session (X3DH). Required when `needsBundle(peer)`. */
  readonly bundle?: FetchedBundle;
  /** Payload kind. Default `'binary'`. */
  readonly type?: PayloadType;
}

/** Options of {@link ConversationEngine.receive}. */
export interface ReceiveOptions {
  /**
   * Owe the sender a receipt for this message (not for receipts themselves): its id is added to
   * the peer's pending receipt ids in the same atomic write as the inbox entry, and stays there
   * until {@link ConversationEngine.encryptReceipts} put a receipt listing it in the outbox.
   * Default false.
   */
  readonly receipt?: boolean;
}

/** The message id of the receipt whose first listed id is `id`: deterministic, never reused (an id is receipted once). */
export function receiptMessageId(id: string): string {
  return `r${id}`.slice(0, 64);
}

/** The result of {@link ConversationEngine.receive}. */
export type ReceiveResult =
  | ({ readonly kind: 'message'; /** It filled a gap the app was told of (`messageGaps`). */ readonly gapClosed: boolean } & ReceivedMessage)
  | { readonly kind: 'duplicate'; readonly from: string; readonly id: string }
  | SessionResetResult;

/**
 * A peer's signed session reset request (docs/threats.md C3; `healing.ts`). When `applied`, this
 * device archived its sessions with the peer: call {@link ConversationEngine.resendUnconfirmed}
 * with a fresh bundle of the peer. Not applied: a repeat within {@link RESET_APPLY_INTERVAL_MS},
 * an older request than one already applied, or a peer whose identity this device never saw.
 */
export interface SessionResetResult {
  readonly kind: 'sessionReset';
  readonly from: string;
  readonly id: string;
  readonly reason: SessionResetReason;
  readonly applied: boolean;
  /** Messages waiting to be resent to the peer. */
  readonly unconfirmed: number;
}

/** The result of {@link ConversationEngine.resendUnconfirmed}. */
export interface ResendResult {
  /** The re-encrypted envelopes, now in the outbox (relay ids `<id>-r<k>`). */
  readonly resent: readonly OutgoingEnvelope[];
  /** Message ids given up on (resent {@link MAX_RESENDS} times already): report them as failed. */
  readonly failed: readonly string[];
}

/** A relay delivery as the engine sees it. */
export interface IncomingEnvelope {
  readonly from: string;
  readonly id: string;
  readonly envelope: Uint8Array;
}

/** What the engine knows about a certified peer. */
export interface PeerCertificateInfo {
  readonly role: OrgRole;
  readonly label: string;
  readonly expiresAt: number;
}

/** What the engine knows about a peer whose certificate statement is a verified staff credential. */
export interface PeerStaffInfo {
  /** The issuer's id of the person (stable across their devices). */
  readonly personId: string;
  /** The name to show, as certified. */
  readonly displayName: string;
  readonly roles: readonly StaffRole[];
  /** ms since the epoch; the peer is refused from then on (until it publishes a renewed credential). */
  readonly expiresAt: number;
  /** The certified name of the issuer that vouched for the person. */
  readonly issuerName: string;
}

/** Every session that may open a message from the peer: active ones first, then archived ones. */
function knownSessions(rec: PeerRecord): string[] {
  return rec.archived?.length ? [...rec.sessions, ...rec.archived] : rec.sessions;
}

/** The ids a receipt lists; a malformed receipt confirms nothing (the app still gets it and reports it). */
function receiptIds(body: Uint8Array): string[] {
  try {
    return decodeReceiptBody(body);
  } catch {
    return [];
  }
}

function assertDeviceId(peer: unknown, name = 'peer'): asserts peer is string {
  if (typeof peer !== 'string' || !DEVICE_ID_PATTERN.test(peer)) {
    throw new ParleyError('USAGE', `${name} must be a device id (32 lower-case hex chars)`);
  }
}

/**
 * One device's conversations.
 * @example
 * await initCrypto();
 * const alice = await ConversationEngine.open({ store: new MemoryStore() });
 * const bob = await ConversationEngine.open({ store: new MemoryStore() });
 * const upload = await bob.prekeyUpload(5);           // what bob would publish on the relay
 * const bundle = { identity: upload.identity, signedPrekey: upload.signedPrekey, oneTimePrekey: upload.oneTimePrekeys[0] };
 * const out = await alice.encrypt(bob.deviceId, new TextEncoder().encode('hi'), { messageId: 'm1', bundle, type: 'text' });
 * const got = await bob.receive({ from: alice.deviceId, id: out.id, envelope: out.envelope });
 */
export class ConversationEngine {
  readonly #store: KeyValueStore;
  readonly #trust: TrustPolicy;
  readonly #now: () => number;
  readonly #onTrustEvent: ((e: TrustEvent) => void) | undefined;
  #account: Account;
  #accountBytes: Uint8Array;
  readonly #peers = new Map<string, PeerRecord>();
  readonly #labels = new Map<string, string>();
  /** Computed safety numbers by peer device ({@link ConversationEngine.safetyNumber}). */
  readonly #safetyNumbers = new Map<string, string>();
  readonly #peerTrust: PeerTrust;
  readonly #revocations: RevocationSet;
  readonly #sessions = new Map<string, Uint8Array>();
  /**
   * Sessions whose last decrypt failed, kept live with the record bytes they were read from:
   * a Session remembers the costly header stages of failed decrypts (docs/threats.md C8,
   * defect 8), which an unpickled copy would not, so a forged body replayed under one genuine
   * header costs one DH step, not one per replay. Valid while the record is unchanged.
   */
  readonly #failedSessions = new Map<string, { readonly bytes: Uint8Array; readonly session: Session }>();
  /**
   * Sessions whose state was just persisted, kept live with the record bytes they were pickled
   * to (the same object as in `#sessions`): valid while the record is unchanged, taken (not
   * shared) by the next operation on the session, which either persists it and gives it back or
   * wipes it. Saves an unpickle (key imports, device id hash) per message.
   */
  readonly #liveSessions = new Map<string, { readonly bytes: Uint8Array; readonly session: Session }>();
  readonly #mailbox: Mailbox;
  readonly #resetLimiter = new ResetRequestLimiter();
  /** Reset requests the bounds held back, by peer: sent later by {@link requestDeferredResets}. */
  readonly #deferredResets = new Map<string, { readonly failedId: string; readonly reason: SessionResetReason }>();
  #tail: Promise<unknown> = Promise.resolve();
  #closed = false;

  /** This device's id. */
  readonly deviceId: string;
  /** This device's public identity. */
  readonly publicIdentity: PublicIdentity;

  private constructor(init: {
    options: EngineOptions;
    trust: TrustPolicy;
    account: Account;
    accountBytes: Uint8Array;
    mailbox: Mailbox;
    revocations: RevocationSet;
  }) {
    this.#store = init.options.store;
    this.#trust = init.trust;
    this.#now = init.options.now ?? Date.now;
    this.#onTrustEvent = init.options.onTrustEvent;
    this.#revocations = init.revocations;
    this.#peerTrust = new PeerTrust({
      revocations: () => this.#revocations.lists,
      selfId: init.account.deviceId,
      policy: this.#trust,
      now: () => this.#now(),
      labels: this.#labels,
      onTrustEvent: (e) => this.#onTrustEvent?.(e),
    });
    this.#account = init.account;
    this.#accountBytes = init.accountBytes;
    this.#mailbox = init.mailbox;
    this.deviceId = init.account.deviceId;
    this.publicIdentity = init.account.publicIdentity;
  }

  /**
   * Opens the engine on `store`: loads the account, or creates one if the store is empty.
   * Call `initCrypto()` first.
   * @throws ParleyError `STORAGE_INTEGRITY` when a record fails to authenticate or parse, or when
   *   the store holds conversation records but no account (docs/threats.md ST6: a lost identity is
   *   never silently replaced by a new one); `USAGE` for bad trust options.
   */
  static async open(options: EngineOptions): Promise<ConversationEngine> {
    if (!options || typeof options.store?.setMany !== 'function') throw new ParleyError('USAGE', 'options.store is required');
    const trust = resolveTrust(options.trust);
    const store = options.store;
    const now = options.now ?? Date.now;
    let accountBytes = await store.get(K.account);
    let account: Account;
    if (accountBytes === undefined) {
      const existing = await store.keys('');
      if (existing.length > 0) {
        throw new ParleyError('STORAGE_INTEGRITY', 'the store holds conversation state but no account; refusing to create a new identity', {
          details: { records: existing.length },
        });
      }
      account = Account.create({ now: now() });
      accountBytes = account.pickle();
      const meta = { format: STORE_FORMAT, version: STORE_VERSION, deviceId: account.deviceId, createdAt: now() };
      await store.setMany([
        [K.account, accountBytes],
        [K.meta, jsonBytes(meta)],
      ]);
    } else {
      account = Account.unpickle(accountBytes);
      const metaBytes = await store.get(K.meta);
      if (metaBytes) {
        const meta = parseJsonRecord<{ format?: string; version?: number; deviceId?: string }>(metaBytes, 'meta record');
        if (meta.format !== STORE_FORMAT || meta.deviceId !== account.deviceId) {
          throw new ParleyError('STORAGE_INTEGRITY', 'meta record does not match the account');
        }
        if (meta.version !== STORE_VERSION) {
          throw new ParleyError('UNSUPPORTED_VERSION', 'unsupported engine store version', { details: { version: meta.version ?? -1 } });
        }
      }
    }

    const revocations = await RevocationSet.load(store, trust.orgKey, now());
    const engine = new ConversationEngine({ options, trust, account, accountBytes, mailbox: await Mailbox.load(store), revocations });
    for (const key of await store.keys('peer/')) {
      const bytes = await store.get(key);
      if (bytes) engine.#peers.set(key.slice('peer/'.length), decodePeerRecord(bytes));
    }
    for (const key of await store.keys('label/')) {
      const bytes = await store.get(key);
      if (bytes) engine.#labels.set(key.slice('label/'.length), new TextDecoder().decode(bytes));
    }
    return engine;
  }

  /** Runs `fn` after every earlier operation finished (one writer at a time). */
  #run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(new ParleyError('USAGE', 'engine is closed'));
    const p = this.#tail.then(fn);
    this.#tail = p.catch(() => undefined);
    return p;
  }

  // ---------------------------------------------------------------- prekeys and signatures

  /**
   * The upload to publish on the relay: identity, current signed prekey (rotated when older than
   * {@link SIGNED_PREKEY_MAX_AGE_MS} or when the account says rotation is due; retired ones whose
   * grace ended are deleted) and every one-time prekey not yet marked uploaded. Generates
   * new one-time prekeys so that at least `min` are ready (at most 100 per upload, the relay's
   * cap). New keys are persisted before this returns, so a crash after the relay stored them
   * never leaves the relay handing out keys this device has lost. Call {@link markUploaded} with
   * the ids once the relay acked.
   */
  async prekeyUpload(min: number = DEFAULT_PREKEY_TARGET): Promise<PrekeyUpload> {
    if (!Number.isInteger(min) || min < 0 || min > RELAY_MAX_OPKS_PER_UPLOAD) {
      throw new ParleyError('USAGE', `min must be an integer from 0 to ${RELAY_MAX_OPKS_PER_UPLOAD}`);
    }
    return this.#run(async () => {
      const account = Account.unpickle(this.#accountBytes);
      const now = this.#now();
      let changed = false;
      // Rotate by age, or early when the current SPK's base-key memory nears its cap (a full SPK
      // refuses first messages rather than forget a base key: docs/threats.md C6).
      if (now - account.signedPrekey.createdAt > SIGNED_PREKEY_MAX_AGE_MS || account.signedPrekeyRotationDue) {
        account.rotateSignedPrekey(now);
        changed = true;
      }
      // Retired SPKs whose grace ended go, with the base keys they remembered.
      if (account.deleteExpiredSignedPrekeys(now) > 0) changed = true;
      const ready = account.prekeyUpload().oneTimePrekeys.length;
      if (ready < min) {
        account.generateOneTimePrekeys(min - ready);
        changed = true;
      }
      if (changed) await this.#commitAccount(account);
      else account.dispose();
      const upload = this.#account.prekeyUpload();
      return { ...upload, oneTimePrekeys: upload.oneTimePrekeys.slice(0, RELAY_MAX_OPKS_PER_UPLOAD) };
    });
  }

  /** Marks one-time prekeys as uploaded (after the relay acked `uploadPrekeys`). */
  markUploaded(ids: readonly number[]): Promise<void> {
    return this.#run(async () => {
      const account = Account.unpickle(this.#accountBytes);
      account.markPrekeysPublished(ids);
      await this.#commitAccount(account);
    });
  }

  async #commitAccount(account: Account): Promise<void> {
    const bytes = account.pickle();
    await this.#store.setMany([[K.account, bytes]]);
    this.#swapAccount(account, bytes);
  }

  #swapAccount(account: Account, bytes: Uint8Array): void {
    const old = this.#account;
    this.#account = account;
    this.#accountBytes = bytes;
    if (old !== account) old.dispose();
  }

  /**
   * Signs a relay login answer (context `relayAuth`) for this device. Only the fixed payload
   * layout of `relayAuthPayload` is signed, never bytes the relay chose alone (docs/threats.md C14).
   */
  signRelayAuth(input: Omit<RelayAuthInput, 'deviceId'>): Uint8Array {
    return this.#account.sign('relayAuth', relayAuthPayload({ ...input, deviceId: this.deviceId }));
  }

  /**
   * Answers a relay's login challenge: a fresh client nonce, this engine's clock and the
   * `relayAuth` signature over both nonces, the origin and the device id.
   */
  relayLoginAnswer(challenge: { serverNonce: Uint8Array; origin: string }): {
    identity: PublicIdentity;
    clientNonce: Uint8Array;
    timestamp: number;
    signature: Uint8Array;
  } {
    const clientNonce = getCrypto().randomBytes(RELAY_NONCE_BYTES);
    const timestamp = Math.floor(this.#now());
    const signature = this.signRelayAuth({ serverNonce: challenge.serverNonce, clientNonce, origin: challenge.origin, timestamp });
    return { identity: this.publicIdentity, clientNonce, timestamp, signature };
  }

  /**
   * Proves at staff sign-in that this device holds its identity key: signs
   * `staffSignInPayload(challenge, issuerOrigin)` (context `staffSignIn`), never raw bytes.
   * @throws ParleyError `USAGE` for a challenge that is not 32 bytes or a bad origin.
   */
  signStaffSignIn(challenge: Uint8Array, issuerOrigin: string): Uint8Array {
    return this.#account.sign('staffSignIn', staffSignInPayload(challenge, issuerOrigin));
  }

  /**
   * Signs a consent receipt (context `consentReceipt`) over its fixed layout
   * (`consentReceiptPayload`), never raw bytes: the owner's answer or withdrawal (docs/threats.md P1).
   */
  signConsent(receipt: UnsignedConsentReceipt): Uint8Array {
    return this.#account.sign('consentReceipt', consentReceiptPayload(receipt));
  }

  /** Signs an enclave measurement statement (context `botAttestation`), for the bot SDK. */
  signBotAttestation(payload: Uint8Array): Uint8Array {
    return this.#account.sign('botAttestation', payload);
  }

  /**
   * Signs a compliance archive submission (context `archiveEntry`; build `payload` with
   * `archiveSubmissionPayload` or pass this to `makeArchiveSubmission`).
   */
  signArchiveSubmission(payload: Uint8Array): Uint8Array {
    return this.#account.sign('archiveEntry', payload);
  }

  /**
   * Signs an erasure request or a deletion receipt (context `erasure`; build `payload` with
   * `erasureRequestPayload` / `deletionReceiptPayload`), for the conversation book.
   */
  signErasure(payload: Uint8Array): Uint8Array {
    return this.#account.sign('erasure', payload);
  }

  /**
   * Erasure: forgets messages `ids` (all when undefined) sent to `peer` and not receipted yet
   * (their kept payloads, which a session reset would re-send): an erased conversation's
   * plaintext must not stay here.
   */
  forgetUnconfirmed(peer: string, ids?: readonly string[]): Promise<void> {
    return this.#run(async () => {
      const rec = this.#peers.get(peer);
      const drop = new Set(ids ?? (rec?.unconfirmed ?? []).map((e) => e.id));
      const gone = (rec?.unconfirmed ?? []).filter((e) => drop.has(e.id));
      if (!rec || gone.length === 0) return;
      const next = clonePeer(rec);
      next.unconfirmed = (rec.unconfirmed ?? []).filter((e) => !drop.has(e.id));
      await this.#store.setMany([[K.peer(peer), encodePeerRecord(next)]]);
      this.#peers.set(peer, next);
      await this.#store.delMany(gone.map((e) => K.unconfirmed(peer, e.id)));
    });
  }

  // ---------------------------------------------------------------- peers and trust

  /** True when sending to `peer` needs its bundle first (no session yet). */
  needsBundle(peer: string): boolean {
    const rec = this.#peers.get(peer);
    return !rec || rec.sessions.length === 0;
  }

  /** The identity recorded for `peer` (first contact), if any. */
  peerIdentity(peer: string): PublicIdentity | undefined {
    const id = this.#peers.get(peer)?.identity;
    return id ? identityFromRecord(id) : undefined;
  }

  /** The verified org certificate of `peer`, if any. */
  peerCertificate(peer: string): PeerCertificateInfo | undefined {
    const c = this.#peers.get(peer)?.cert;
    return c ? { role: c.role, label: c.label, expiresAt: c.expiresAt } : undefined;
  }

  /** The verified archive disclosure of `peer` and when it was first verified, if any. */
  peerDisclosure(peer: string): StoredDisclosure | undefined {
    return disclosureOf(this.#peers.get(peer));
  }

  /**
   * The archive status of a conversation whose non-customer members are `peers` and whose first
   * message was at `firstMessageAt` (archive-disclosure.ts `archiveStatus`).
   */
  archiveStatus(peers: readonly string[], firstMessageAt: number | undefined): ArchiveStatus {
    return archiveStatus(peers.map((peer) => {
      const d = disclosureOf(this.#peers.get(peer));
      return d ? { peer, disclosure: d } : { peer };
    }), firstMessageAt, this.#now());
  }

  /** The verified staff credential of `peer` (name, roles, expiry), if any. */
  peerStaff(peer: string): PeerStaffInfo | undefined {
    const s = this.#peers.get(peer)?.staff;
    return s ? { personId: s.personId, displayName: s.displayName, roles: [...s.roles], expiresAt: s.expiresAt, issuerName: s.issuerName } : undefined;
  }

  /**
   * Takes the staff revocation lists the relay holds (`fetchRevocations`): each is verified
   * against `trust.orgKey` (the relay is not trusted for them) and kept, persisted, when newer
   * than the one held for its issuer. From then on, sending to or receiving from a staff peer
   * they name fails with `UNTRUSTED_IDENTITY` reason `revoked`. Without an org key, nothing is
   * kept.
   */
  async setRevocationLists(lists: readonly Uint8Array[]): Promise<RevocationUpdate> {
    if (!Array.isArray(lists) || !lists.every((l) => l instanceof Uint8Array)) throw new ParleyError('USAGE', 'lists must be an array of Uint8Array');
    const orgKey = this.#trust.orgKey;
    if (!orgKey) return { accepted: 0, stale: 0, refused: lists.length };
    return this.#run(async () => {
      const plan = this.#revocations.plan(lists, orgKey, this.#now());
      if (plan.write) await this.#store.setMany([plan.write]);
      plan.apply();
      return { accepted: plan.accepted, stale: plan.stale, refused: plan.refused };
    });
  }

  /** The verified bot attestation of `peer` (measurement, issuedAt), if any. */
  peerAttestation(peer: string): PeerAttestationInfo | undefined {
    const a = this.#peers.get(peer)?.att;
    return a ? { measurement: a.measurement, issuedAt: a.issuedAt, ...(a.release ? { releaseVersion: a.release.version } : {}) } : undefined;
  }

  /** True while sending to `peer` waits for {@link acceptIdentityChange}. */
  isBlocked(peer: string): boolean {
    return this.#peers.get(peer)?.blocked !== undefined;
  }

  /** The device a label points at, if any. */
  resolveLabel(label: string): string | undefined {
    return this.#labels.get(label);
  }

  /**
   * The 60-digit safety number of this device and `peer`, identical on both sides.
   * @throws ParleyError `SESSION_NOT_FOUND` when the peer's identity is not known yet.
   */
  safetyNumber(peer: string): string {
    // 10,400 hash rounds each (about 0.1-0.2 s in a browser): computed once per peer. A device id
    // is the hash of its identity keys, so a peer's number never changes.
    const known = this.#safetyNumbers.get(peer);
    if (known !== undefined) return known;
    const identity = this.peerIdentity(peer);
    if (!identity) throw new ParleyError('SESSION_NOT_FOUND', 'peer identity not known yet');
    const n = protocolSafetyNumber(this.publicIdentity, identity);
    if (this.#safetyNumbers.size >= MAX_CACHED_SAFETY_NUMBERS) this.#safetyNumbers.clear();
    this.#safetyNumbers.set(peer, n);
    return n;
  }

  /**
   * Points `label` (an app-level name such as "bob") at `peer`. The first binding is trusted
   * (TOFU). Re-binding a known label to another device blocks sending to the new device and
   * throws `IDENTITY_CHANGED` until {@link acceptIdentityChange}. Labels starting with `org:` are
   * reserved for certified peers (set only by a verified org certificate).
   * @throws ParleyError `IDENTITY_CHANGED` (details: label, previous, peer), `USAGE`.
   */
  async bindLabel(label: string, peer: string): Promise<void> {
    assertDeviceId(peer);
    if (typeof label !== 'string' || label.length === 0 || label.length > 200 || label.includes('/')) {
      throw new ParleyError('USAGE', 'label must be 1-200 chars without "/"');
    }
    if (label.startsWith('org:')) {
      // Only a verified org certificate may point a certified label (issue 10, Info).
      throw new ParleyError('USAGE', 'labels starting with "org:" are reserved for org-certified peers; choose another label');
    }
    return this.#run(async () => {
      const previous = this.#labels.get(label);
      if (previous === peer) return;
      if (previous === undefined) {
        await this.#store.setMany([[K.label(label), new TextEncoder().encode(peer)]]);
        this.#labels.set(label, peer);
        return;
      }
      const rec = clonePeer(this.#peers.get(peer) ?? newPeerRecord());
      rec.blocked = { label, previous };
      await this.#store.setMany([[K.peer(peer), encodePeerRecord(rec)]]);
      this.#peers.set(peer, rec);
      this.#onTrustEvent?.({ type: 'identityChanged', peer, label, previous, blocked: true });
      throw new ParleyError('IDENTITY_CHANGED', 'label now points at another device', { details: { label, previous, peer } });
    });
  }

  /**
   * Accepts a pending identity change: the blocked label now points at `peer`, and sending to
   * it is allowed. Messages already encrypted to the previous device are not re-encrypted.
   * @returns false when nothing was pending for `peer`.
   */
  async acceptIdentityChange(peer: string): Promise<boolean> {
    assertDeviceId(peer);
    return this.#run(async () => {
      const rec = this.#peers.get(peer);
      if (!rec?.blocked) return false;
      const next = clonePeer(rec);
      const { label } = rec.blocked;
      delete next.blocked;
      await this.#store.setMany([
        [K.peer(peer), encodePeerRecord(next)],
        [K.label(label), new TextEncoder().encode(peer)],
      ]);
      this.#peers.set(peer, next);
      this.#labels.set(label, peer);
      return true;
    });
  }

  /**
   * Verifies and stores an org certificate for `peer` obtained out of band (a bundle extra, the
   * app's configuration). The peer's identity must already be known, or given.
   * @throws ParleyError `UNTRUSTED_IDENTITY` (details.reason), `IDENTITY_CHANGED` (policy
   *   `block`), `USAGE` when no org key is pinned.
   */
  async setPeerCertificate(peer: string, certificate: Uint8Array, identity?: PublicIdentity): Promise<PeerCertificateInfo> {
    assertDeviceId(peer);
    return this.#run(async () => {
      const rec = clonePeer(this.#peers.get(peer) ?? newPeerRecord());
      const known = rec.identity ? identityFromRecord(rec.identity) : identity;
      if (!known) throw new ParleyError('SESSION_NOT_FOUND', 'peer identity not known yet');
      this.#peerTrust.checkIdentity(peer, known, rec);
      const writes: [string, Uint8Array][] = [];
      const after = this.#peerTrust.applyCertificate(peer, rec, known, certificate, writes);
      writes.push([K.peer(peer), encodePeerRecord(rec)]);
      await this.#store.setMany(writes);
      this.#peers.set(peer, rec);
      after();
      return this.peerCertificate(peer)!;
    });
  }

  /**
   * Verifies and stores a peer's statements obtained without a bundle (the relay's
   * `fetchIdentity`, or the app's configuration): its org certificate (when an org key is
   * pinned) and, when the trust policy requires one for it, its bot attestation. All or nothing.
   * @throws ParleyError `UNTRUSTED_IDENTITY` (identity or certificate refused),
   *   `ATTESTATION_INVALID` (missing, forged, stale or wrong measurement), `IDENTITY_CHANGED`
   *   (policy `block`), `SESSION_NOT_FOUND` (identity unknown and not given).
   */
  async setPeerStatements(peer: string, statements: PeerStatements): Promise<void> {
    assertDeviceId(peer);
    return this.#run(async () => {
      const rec = clonePeer(this.#peers.get(peer) ?? newPeerRecord());
      const known = rec.identity ? identityFromRecord(rec.identity) : statements.identity;
      if (!known) throw new ParleyError('SESSION_NOT_FOUND', 'peer identity not known yet');
      this.#peerTrust.checkIdentity(peer, known, rec);
      const writes: [string, Uint8Array][] = [];
      let after = (): void => undefined;
      if (statements.certificate && this.#trust.orgKey) after = this.#peerTrust.applyCertificate(peer, rec, known, statements.certificate, writes);
      this.#peerTrust.applyAttestation(peer, rec, known, statements.attestation, statements.manifests);
      applyDisclosure(rec, statements.disclosure, { orgKey: this.#trust.orgKey, now: this.#now() });
      writes.push([K.peer(peer), encodePeerRecord(rec)]);
      await this.#store.setMany(writes);
      this.#peers.set(peer, rec);
      after();
    });
  }

  // ---------------------------------------------------------------- sessions

  async #loadSession(peer: string, sessionId: string): Promise<Session> {
    const key = K.session(peer, sessionId);
    let bytes = this.#sessions.get(key);
    if (!bytes) {
      bytes = await this.#store.get(key);
      if (!bytes) throw new ParleyError('STORAGE_INTEGRITY', 'a session record is missing', { details: { peer, sessionId } });
      this.#sessions.set(key, bytes);
    }
    const kept = this.#failedSessions.get(key);
    if (kept) {
      this.#failedSessions.delete(key);
      // Decrypt is transactional: after a failure the live session equals its record.
      if (kept.bytes === bytes) return kept.session;
      kept.session.dispose();
    }
    const live = this.#liveSessions.get(key);
    if (live) {
      this.#liveSessions.delete(key);
      if (live.bytes === bytes) return live.session;
      live.session.dispose();
    }
    const session = Session.unpickle(bytes);
    if (session.remoteDeviceId !== peer || session.sessionId !== sessionId) {
      throw new ParleyError('STORAGE_INTEGRITY', 'session record belongs to another conversation', { details: { peer, sessionId } });
    }
    return session;
  }

  /** Puts `sessionId` first; returns ids pushed out beyond {@link MAX_SESSIONS_PER_PEER}. */
  #promote(rec: PeerRecord, sessionId: string): string[] {
    rec.sessions = [sessionId, ...rec.sessions.filter((s) => s !== sessionId)];
    return rec.sessions.length > MAX_SESSIONS_PER_PEER ? rec.sessions.splice(MAX_SESSIONS_PER_PEER) : [];
  }

  // ---------------------------------------------------------------- sending

  /**
   * Encrypts one message to `peer` and puts it in the outbox. The session, the peer record and
   * the outbox entry are persisted together **before** this returns (persist before send); send
   * the result, then call {@link markDelivered} once the relay acked it.
   * @throws ParleyError `SESSION_NOT_FOUND` (no session: pass `bundle`), `IDENTITY_CHANGED`
   *   (blocked until `acceptIdentityChange`), `UNTRUSTED_IDENTITY` (forged bundle, or a missing,
   *   invalid or expired org certificate), `INVALID_SIGNATURE`/`INVALID_KEY` (bad bundle),
   *   `PAYLOAD_TOO_LARGE`, `USAGE` (bad ids, id already in the outbox).
   */
  async encrypt(peer: string, payload: Uint8Array, opts: EncryptOptions): Promise<OutgoingEnvelope> {
    assertDeviceId(peer);
    assertMessageId(opts?.messageId);
    if (!(payload instanceof Uint8Array)) throw new ParleyError('USAGE', 'payload must be a Uint8Array');
    return this.#run(() => this.#encryptNow(peer, payload, opts, NO_PLAN));
  }

  /**
   * {@link encrypt} inside the queue; the `extra` plan is written in the same atomic write and
   * applied right after it (before anything else can touch the in-memory view).
   */
  async #encryptNow(
    peer: string,
    payload: Uint8Array,
    opts: EncryptOptions,
    extra: MailboxPlan,
    resend?: { readonly inner: Uint8Array; readonly relayId: string },
  ): Promise<OutgoingEnvelope> {
    {
      const relayId = resend?.relayId ?? opts.messageId;
      if (this.#mailbox.hasOutgoing(peer, relayId)) throw new ParleyError('USAGE', 'messageId is already in the outbox');
      const rec = clonePeer(this.#peers.get(peer) ?? newPeerRecord());
      if (rec.blocked) {
        throw new ParleyError('IDENTITY_CHANGED', 'identity change not accepted yet; sending is blocked', {
          details: { peer, label: rec.blocked.label, previous: rec.blocked.previous },
        });
      }
      const writes: [string, Uint8Array][] = [];
      let after = (): void => undefined;
      let session: Session;
      if (opts.bundle) {
        const bundle = opts.bundle;
        this.#peerTrust.checkIdentity(peer, bundle.identity, rec);
        if (bundle.certificate && this.#trust.orgKey) {
          after = this.#peerTrust.applyCertificate(peer, rec, bundle.identity, bundle.certificate, writes);
        }
        this.#peerTrust.checkCertified(peer, rec);
        // After the certificate: whether a bot attestation is required depends on its role.
        this.#peerTrust.applyAttestation(peer, rec, bundle.identity, bundle.attestation, bundle.manifests);
        this.#peerTrust.checkAttested(peer, rec);
        applyDisclosure(rec, bundle.disclosure, { orgKey: this.#trust.orgKey, now: this.#now() });
        const blocked = rec.blocked as PeerRecord['blocked'];
        if (blocked) {
          // A certified label moved and the policy says block: remember that, then refuse.
          await this.#store.setMany([[K.peer(peer), encodePeerRecord(rec)]]);
          this.#peers.set(peer, rec);
          after();
          throw new ParleyError('IDENTITY_CHANGED', 'certified label moved to a new device; sending is blocked', {
            details: { peer, label: blocked.label, previous: blocked.previous },
          });
        }
        session = this.#account.createOutboundSession(bundle);
      } else {
        const active = rec.sessions[0];
        if (!active) throw new ParleyError('SESSION_NOT_FOUND', 'no session with this peer; fetch its bundle', { details: { peer } });
        this.#peerTrust.checkCertified(peer, rec);
        this.#peerTrust.checkAttested(peer, rec);
        session = await this.#loadSession(peer, active);
      }
      const evicted = this.#promote(rec, session.sessionId);
      let inner: Uint8Array;
      let forget: string[] = [];
      if (resend) {
        // The stored payload as first sent: same id, seq and send time, so the peer dedupes it.
        inner = resend.inner;
        rec.unconfirmed = rec.unconfirmed?.map((e) => (e.id === opts.messageId ? { ...e, resent: e.resent + 1 } : e));
      } else {
        rec.sendSeq += 1;
        inner = encodePayload({ id: opts.messageId, type: opts.type ?? 'binary', sentAt: this.#now(), seq: rec.sendSeq, body: payload });
        if ((opts.type ?? 'binary') !== 'receipt') {
          const kept = planUnconfirmed(rec, peer, opts.messageId, inner, this.#now());
          writes.push(kept.write);
          forget = kept.drop;
        }
      }
      const envelope = session.encrypt(inner);
      const out: OutgoingEnvelope = { to: peer, id: relayId, envelope };
      const sessionKey = K.session(peer, session.sessionId);
      const sessionBytes = session.pickle();
      const queued = this.#mailbox.planOutgoing(out, this.#now());
      writes.push([sessionKey, sessionBytes], [K.peer(peer), encodePeerRecord(rec)], ...queued.writes, ...extra.writes);
      try {
        await this.#store.setMany(writes);
      } catch (e) {
        session.dispose();
        throw e;
      }
      this.#sessions.set(sessionKey, sessionBytes);
      this.#keepLive(sessionKey, sessionBytes, session);
      this.#peers.set(peer, rec);
      queued.apply();
      extra.apply();
      after();
      await this.#dropSessions(peer, evicted);
      if (forget.length > 0) await this.#store.delMany(forget);
      return out;
    }
  }

  // ---------------------------------------------------------------- receipts

  /** Peers owed receipts, with their pending ids, oldest first (see {@link ReceiveOptions.receipt}). */
  pendingReceipts(): { peer: string; ids: readonly string[] }[] {
    return this.#mailbox.pendingReceipts();
  }

  /** How many receipt ids `peer` is owed. */
  pendingReceiptCount(peer: string): number {
    return this.#mailbox.owedReceipts(peer).length;
  }

  /**
   * Encrypts one receipt to `peer` listing up to {@link MAX_RECEIPT_IDS} of its pending receipt
   * ids (oldest first) and puts it in the outbox; the ids leave the pending list in the same
   * atomic write. Resolves `undefined` when nothing is pending. Throws like {@link encrypt}
   * (nothing changes then; see {@link dropReceipts}).
   */
  encryptReceipts(peer: string): Promise<OutgoingEnvelope | undefined> {
    assertDeviceId(peer);
    return this.#run(async () => {
      const pending = this.#mailbox.owedReceipts(peer);
      if (pending.length === 0) return undefined;
      const ids = pending.slice(0, MAX_RECEIPT_IDS);
      const rest = this.#mailbox.planReceipts(peer, pending.slice(ids.length));
      return this.#encryptNow(peer, encodeReceiptBody(ids), { messageId: receiptMessageId(ids[0]!), type: 'receipt' }, rest);
    });
  }

  /** Forgets pending receipt ids of `peer` (a receipt that cannot be encrypted: blocked or untrusted peer). */
  dropReceipts(peer: string, ids: readonly string[]): Promise<void> {
    return this.#run(async () => {
      const pending = this.#mailbox.owedReceipts(peer);
      const drop = new Set(ids);
      const rest = pending.filter((id) => !drop.has(id));
      if (rest.length === pending.length) return;
      const plan = this.#mailbox.planReceipts(peer, rest);
      await this.#store.setMany([...plan.writes]);
      plan.apply();
    });
  }

  async #dropSessions(peer: string, ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return;
    const keys = ids.map((id) => K.session(peer, id));
    for (const k of keys) {
      this.#sessions.delete(k);
      this.#liveSessions.get(k)?.session.dispose();
      this.#liveSessions.delete(k);
    }
    // After the commit that stopped referencing them: a crash here leaves unreferenced records only.
    await this.#store.delMany(keys);
  }

  /** The relay acked (durably stored) `id` to `peer`: drop it from the outbox. */
  markDelivered(peer: string, id: string): Promise<void> {
    return this.#run(() => this.#mailbox.markDelivered(peer, id));
  }

  /** Envelopes persisted but not yet acked by the relay, oldest first: send them again on reconnect. */
  pendingOutbox(): OutgoingEnvelope[] {
    return this.#mailbox.pendingOutbox();
  }

  // ---------------------------------------------------------------- receiving

  /**
   * Decrypts one relay delivery. Duplicates (an id already received from this peer) return
   * `{ kind: 'duplicate' }` without touching any session. Otherwise the session (new or
   * advanced), the account (when a prekey message opened a session), the seen id and the
   * decrypted message (inbox) are persisted in one atomic write **before** this returns; ack the
   * relay after that. Nothing changes when it throws (docs/threats.md I2).
   * @throws ParleyError `AUTH_FAILED` (forged, misrouted, or the relay's id differs from the
   *   authenticated one), `DUPLICATE_MESSAGE`, `SENDER_STATE_ROLLBACK`, `MESSAGE_KEY_EXPIRED`,
   *   `TOO_MANY_SKIPPED`, `INVALID_PREKEY`, `INVALID_KEY`, `INVALID_SIGNATURE`,
   *   `MALFORMED_MESSAGE`, `UNSUPPORTED_VERSION`, `SESSION_NOT_FOUND` (no session for a
   *   non-prekey message), `UNTRUSTED_IDENTITY` (identity does not match `from`, or the peer
   *   must be certified and is not).
   */
  async receive(incoming: IncomingEnvelope, options: ReceiveOptions = {}): Promise<ReceiveResult> {
    const { from, id, envelope } = incoming ?? ({} as IncomingEnvelope);
    if (typeof from !== 'string' || !DEVICE_ID_PATTERN.test(from)) throw new ParleyError('MALFORMED_MESSAGE', 'invalid sender device id');
    if (typeof id !== 'string' || !MESSAGE_ID_PATTERN.test(id)) throw new ParleyError('MALFORMED_MESSAGE', 'invalid message id');
    if (!(envelope instanceof Uint8Array)) throw new ParleyError('MALFORMED_MESSAGE', 'envelope must be bytes');
    return this.#run(async () => {
      if (from === this.deviceId) throw new ParleyError('AUTH_FAILED', 'message claims to come from this device');
      if (await this.#mailbox.seen(from, id)) return { kind: 'duplicate', from, id } as const;
      if (isSessionReset(envelope)) return this.#receiveReset(from, id, envelope);
      const rec = clonePeer(this.#peers.get(from) ?? newPeerRecord());
      // 1. Decrypt on copies: nothing persistent changes if this throws.
      const opened = await this.#open(from, envelope, rec);
      let kept = false;
      try {
        // 2. Plan every write of this delivery, 3. write them at once, 4. apply them in memory.
        const plan = await this.#planReceive(from, id, rec, opened, options);
        await this.#store.setMany(plan.writes);
        const { evicted, dropBucket } = plan.apply();
        kept = true; // the session is live in `#liveSessions` now
        opened.account = undefined; // now owned by the engine
        if (dropBucket !== undefined) await this.#mailbox.dropSeenBucket(from, dropBucket);
        await this.#dropSessions(from, evicted);
        if (plan.forget.length > 0) await this.#store.delMany(plan.forget);
        if (plan.duplicate) return { kind: 'duplicate', from, id: plan.message.id } as const;
        return { kind: 'message', gapClosed: plan.gapClosed, ...plan.message } as const;
      } finally {
        if (!kept) opened.session.dispose();
        opened.account?.dispose();
      }
    });
  }

  /**
   * Finds the session that opens `envelope` (an existing one, or a new inbound one from a prekey
   * message, on a copy of the account) and decrypts it, after the trust checks the message type
   * needs. Works on copies only: the caller persists, then applies.
   */
  async #open(from: string, envelope: Uint8Array, rec: PeerRecord): Promise<{ session: Session; plaintext: Uint8Array; account: Account | undefined }> {
    const parsed = parseMessage(envelope);
    if (parsed.type === MESSAGE_TYPE.prekey) {
      this.#peerTrust.checkIdentity(from, parsed.identity, rec);
      this.#peerTrust.checkCertified(from, rec);
      this.#peerTrust.checkAttested(from, rec);
      for (const sid of knownSessions(rec)) {
        const candidate = await this.#loadSession(from, sid);
        if (candidate.matchesPrekeyMessage(envelope)) return { session: candidate, plaintext: candidate.decrypt(envelope, { now: this.#now() }), account: undefined };
        candidate.dispose();
      }
      const account = Account.unpickle(this.#accountBytes);
      try {
        const created = account.createInboundSession(envelope, { now: this.#now() });
        return { session: created.session, plaintext: created.plaintext, account };
      } catch (e) {
        account.dispose();
        throw e;
      }
    }
    const known = knownSessions(rec);
    if (known.length === 0) throw new ParleyError('SESSION_NOT_FOUND', 'no session with this peer', { details: { peer: from } });
    this.#peerTrust.checkCertified(from, rec);
    this.#peerTrust.checkAttested(from, rec);
    let firstError: unknown;
    for (const sid of known) {
      const candidate = await this.#loadSession(from, sid);
      try {
        return { session: candidate, plaintext: candidate.decrypt(envelope, { now: this.#now() }), account: undefined };
      } catch (e) {
        this.#keepFailed(from, sid, candidate);
        // Keep the most telling error: a specific one beats "did not authenticate here".
        if (firstError === undefined || (isParleyError(firstError, 'AUTH_FAILED') && !isParleyError(e, 'AUTH_FAILED'))) firstError = e;
      }
    }
    throw firstError;
  }

  /**
   * Plans one decrypted delivery: the session, peer record, seen ids, inbox entry, account (when a
   * prekey message opened a session) and owed receipt, as one batch of writes, plus `apply`,
   * which updates the in-memory view once the batch is durable and returns the sessions evicted.
   * @throws ParleyError `AUTH_FAILED` when the relay's id differs from the authenticated one.
   */
  async #planReceive(
    from: string,
    id: string,
    rec: PeerRecord,
    opened: { session: Session; plaintext: Uint8Array; account: Account | undefined },
    options: ReceiveOptions,
  ): Promise<{
    writes: [string, Uint8Array][];
    message: ReceivedMessage;
    gapClosed: boolean;
    /** A resend (after a session reset) of a message already received: only the session advances. */
    duplicate: boolean;
    /** Payload records to delete after the commit (messages the peer receipted). */
    forget: string[];
    apply: () => { evicted: string[]; dropBucket: number | undefined };
  }> {
    const inner = decodePayload(opened.plaintext);
    if (!relayIdNames(id, inner.id)) throw new ParleyError('AUTH_FAILED', 'relay message id differs from the authenticated id');
    const { session, account } = opened;
    const message: ReceivedMessage = {
      from,
      id: inner.id,
      type: inner.type,
      payload: inner.body,
      sentAt: inner.sentAt,
      seq: inner.seq,
      sessionId: session.sessionId,
      receivedAt: this.#now(),
    };
    const duplicate = inner.id !== id && (await this.#mailbox.seen(from, inner.id));
    // A session archived by a reset still opens messages that were in flight; it never becomes active again.
    const evicted = rec.archived?.includes(session.sessionId) ? [] : this.#promote(rec, session.sessionId);
    let gapClosed = false;
    let forget: string[] = [];
    let mailed: { writes: readonly [string, Uint8Array][]; apply(): number | undefined } = { writes: [], apply: () => undefined };
    if (!duplicate) {
      gapClosed = noteReceived(rec, inner.seq, this.#now()).closedReported;
      if (inner.type === 'receipt') forget = planConfirmed(rec, from, receiptIds(inner.body));
      // Before the peer record is encoded: it may move `rec.seenBucket` to a new bucket.
      mailed = await this.#mailbox.planIncoming(message, rec, options.receipt === true && inner.type !== 'receipt');
    }
    const sessionKey = K.session(from, session.sessionId);
    const sessionBytes = session.pickle();
    const writes: [string, Uint8Array][] = [[sessionKey, sessionBytes], [K.peer(from), encodePeerRecord(rec)], ...mailed.writes];
    const accountBytes = account?.pickle();
    if (accountBytes) writes.push([K.account, accountBytes]);

    const apply = () => {
      this.#sessions.set(sessionKey, sessionBytes);
      this.#keepLive(sessionKey, sessionBytes, session);
      this.#peers.set(from, rec);
      const dropBucket = mailed.apply();
      if (account && accountBytes) this.#swapAccount(account, accountBytes);
      return { evicted, dropBucket };
    };
    return { writes, message, gapClosed, duplicate, forget, apply };
  }

  // ---------------------------------------------------------------- self-healing sessions

  /**
   * A peer's signed session reset request: verify it against the peer's recorded identity, then
   * archive every session with the peer (bounded: one per {@link RESET_APPLY_INTERVAL_MS}, and
   * never an older request than one applied). The request's id is remembered like any message.
   */
  async #receiveReset(from: string, id: string, envelope: Uint8Array): Promise<SessionResetResult> {
    const current = this.#peers.get(from);
    if (!current?.identity) {
      // Nothing to reset, and nothing to check the signature with.
      throw new ParleyError('SESSION_NOT_FOUND', 'session reset request from a peer this device never talked to', { details: { peer: from } });
    }
    const request = openSessionReset(envelope, { from, to: this.deviceId }, identityFromRecord(current.identity));
    if (request.requestId !== id) throw new ParleyError('AUTH_FAILED', 'relay message id differs from the signed id');
    const rec = clonePeer(current);
    const now = this.#now();
    const last = rec.lastReset;
    const applied = last === undefined || (request.sentAt > last.requestSentAt && now - last.at >= RESET_APPLY_INTERVAL_MS);
    const evicted = applied ? planArchive(rec) : [];
    if (applied) rec.lastReset = { at: now, requestSentAt: request.sentAt };
    const seen = await this.#mailbox.planSeen(from, id, rec);
    await this.#store.setMany([[K.peer(from), encodePeerRecord(rec)], ...seen.writes]);
    this.#peers.set(from, rec);
    const dropBucket = seen.apply();
    if (dropBucket !== undefined) await this.#mailbox.dropSeenBucket(from, dropBucket);
    await this.#dropSessions(from, evicted);
    return { kind: 'sessionReset', from, id, reason: request.reason, applied, unconfirmed: rec.unconfirmed?.length ?? 0 };
  }

  /**
   * After a decrypt from `peer` failed for a session reason (see `resetReasonOf`), asks the
   * peer for a fresh session: a signed reset request goes into the outbox (send it like any
   * envelope). Bounded per peer and in total; resolves `undefined` when the bound says not now,
   * and then remembers the request (in memory) for {@link requestDeferredResets}, so a failure
   * inside the interval is not forgotten.
   * @param failure the relay id of the message that failed, and the error code it raised.
   */
  requestSessionReset(peer: string, failure: { readonly failedId: string; readonly reason: SessionResetReason }): Promise<OutgoingEnvelope | undefined> {
    assertDeviceId(peer);
    return this.#run(async () => {
      const now = this.#now();
      if (!this.#resetLimiter.allow(peer, this.#peers.get(peer)?.identity !== undefined, now)) {
        this.#deferredResets.delete(peer);
        this.#deferredResets.set(peer, failure);
        if (this.#deferredResets.size > MAX_DEFERRED_RESETS) this.#deferredResets.delete(this.#deferredResets.keys().next().value!);
        return undefined;
      }
      this.#deferredResets.delete(peer);
      const requestId = `x${ConversationEngine.newMessageId()}`;
      const envelope = encodeSessionReset(
        { sentAt: Math.floor(now), reason: failure.reason, requestId, failedId: failure.failedId },
        { from: this.deviceId, to: peer },
        (payload) => this.#account.sign('sessionReset', payload),
      );
      const out: OutgoingEnvelope = { to: peer, id: requestId, envelope };
      const queued = this.#mailbox.planOutgoing(out, now);
      await this.#store.setMany([...queued.writes]);
      queued.apply();
      return out;
    });
  }

  /**
   * Sends the reset requests {@link requestSessionReset} held back whose time has come (call it
   * now and then: `ParleyClient` does every few seconds). Resolves the envelopes queued.
   */
  /** How many reset requests are held back (see {@link requestDeferredResets}). */
  get deferredResetCount(): number {
    return this.#deferredResets.size;
  }

  async requestDeferredResets(): Promise<{ readonly envelope: OutgoingEnvelope; readonly reason: SessionResetReason }[]> {
    const queued: { envelope: OutgoingEnvelope; reason: SessionResetReason }[] = [];
    for (const [peer, failure] of [...this.#deferredResets]) {
      const envelope = await this.requestSessionReset(peer, failure);
      if (envelope) queued.push({ envelope, reason: failure.reason });
    }
    return queued;
  }

  /** Messages sent to `peer` that its receipts have not confirmed yet, oldest first. */
  unconfirmedCount(peer: string): number {
    return this.#peers.get(peer)?.unconfirmed?.length ?? 0;
  }

  /**
   * Re-encrypts every unconfirmed message to `peer` (after an applied reset) into the outbox,
   * with its original id, sequence number and send time, in a fresh session from `bundle` when
   * the peer has no active session. Each message is resent at most {@link MAX_RESENDS} times;
   * after that it is dropped and listed in `failed`.
   * @throws ParleyError `SESSION_NOT_FOUND` when a bundle is needed and not given; otherwise like {@link encrypt}.
   */
  resendUnconfirmed(peer: string, bundle?: FetchedBundle): Promise<ResendResult> {
    assertDeviceId(peer);
    return this.#run(async () => {
      const entries = this.#peers.get(peer)?.unconfirmed ?? [];
      const resent: OutgoingEnvelope[] = [];
      const failed: string[] = [];
      for (const entry of entries) {
        const inner = entry.resent < MAX_RESENDS ? await this.#store.get(K.unconfirmed(peer, entry.id)) : undefined;
        if (!inner) {
          failed.push(entry.id);
          continue;
        }
        const withBundle = this.needsBundle(peer) && bundle ? { bundle } : {};
        const relayId = resendRelayId(entry.id, entry.resent + 1);
        resent.push(await this.#encryptNow(peer, inner, { messageId: entry.id, ...withBundle }, NO_PLAN, { inner, relayId }));
      }
      if (failed.length > 0) {
        const rec = clonePeer(this.#peers.get(peer)!);
        const forget = planConfirmed(rec, peer, failed);
        await this.#store.setMany([[K.peer(peer), encodePeerRecord(rec)]]);
        this.#peers.set(peer, rec);
        await this.#store.delMany(forget);
      }
      return { resent, failed };
    });
  }

  /**
   * Message gaps to report (docs/threats.md C25): per peer, the sequence numbers that went
   * missing at least `timeoutMs` ago and were not reported yet. Report them, then call
   * {@link markGapsReported}; a late arrival then comes back with `gapClosed: true`.
   */
  messageGaps(timeoutMs: number): { peer: string; seqs: number[]; since: number }[] {
    const dueBefore = this.#now() - timeoutMs;
    const out: { peer: string; seqs: number[]; since: number }[] = [];
    for (const [peer, rec] of this.#peers) {
      const due = dueGaps(rec, dueBefore);
      if (due) out.push({ peer, ...due });
    }
    return out;
  }

  /** Records that the app was told of these missing sequence numbers of `peer`. */
  markGapsReported(peer: string, seqs: readonly number[]): Promise<void> {
    return this.#run(async () => {
      const current = this.#peers.get(peer);
      if (!current) return;
      const rec = clonePeer(current);
      markReported(rec, seqs);
      await this.#store.setMany([[K.peer(peer), encodePeerRecord(rec)]]);
      this.#peers.set(peer, rec);
    });
  }

  /** Decrypted messages not yet consumed by the app, oldest first (they survive restarts). */
  inbox(): ReceivedMessage[] {
    return this.#mailbox.inbox();
  }

  /** The app has handled `(from, id)`: drop it from the inbox. The seen id stays (dedupe). */
  consume(from: string, id: string): Promise<void> {
    return this.#run(() => this.#mailbox.consume(from, id));
  }

  /** A fresh random message id (16 bytes, hex). */
  static newMessageId(): string {
    return toHex(getCrypto().randomBytes(16));
  }

  /** Keeps a session whose state `bytes` were just persisted (see `#liveSessions`); the least recently kept beyond the bound is wiped. */
  #keepLive(key: string, bytes: Uint8Array, session: Session): void {
    const old = this.#liveSessions.get(key);
    if (old && old.session !== session) old.session.dispose();
    this.#liveSessions.delete(key);
    this.#liveSessions.set(key, { bytes, session });
    if (this.#liveSessions.size > MAX_LIVE_SESSIONS_KEPT) {
      const [oldest, entry] = this.#liveSessions.entries().next().value!;
      this.#liveSessions.delete(oldest);
      entry.session.dispose();
    }
  }

  /** Keeps a session whose decrypt failed (see `#failedSessions`); the oldest beyond the bound is wiped. */
  #keepFailed(peer: string, sessionId: string, session: Session): void {
    const key = K.session(peer, sessionId);
    const bytes = this.#sessions.get(key);
    if (!bytes) {
      session.dispose();
      return;
    }
    this.#failedSessions.get(key)?.session.dispose();
    this.#failedSessions.delete(key);
    this.#failedSessions.set(key, { bytes, session });
    if (this.#failedSessions.size > MAX_FAILED_SESSIONS_KEPT) {
      const [oldest, entry] = this.#failedSessions.entries().next().value!;
      this.#failedSessions.delete(oldest);
      entry.session.dispose();
    }
  }

  /** Waits for running operations, then refuses new ones and wipes the account's keys. */
  async close(): Promise<void> {
    if (this.#closed) return;
    await this.#tail;
    this.#closed = true;
    for (const { session } of this.#failedSessions.values()) session.dispose();
    this.#failedSessions.clear();
    for (const { session } of this.#liveSessions.values()) session.dispose();
    this.#liveSessions.clear();
    this.#account.dispose();
    this.#sessions.clear();
  }

  toJSON(): { deviceId: string } {
    return { deviceId: this.deviceId };
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `ConversationEngine { deviceId: '${this.deviceId}', keys: [redacted] }`;
  }
}
