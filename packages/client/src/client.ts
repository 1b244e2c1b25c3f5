/**
 * `ParleyClient`: the device-side API. It wires the {@link ConversationEngine} (keys, sessions,
 * trust, dedupe, outbox, inbox) to a relay through the {@link RelayLink}.
 *
 * Delivery guarantees (docs/threats.md I4, I5):
 * - **Sending.** `send` persists the encrypted envelope in the outbox before anything reaches
 *   the network; the envelope leaves the outbox only when the relay acked durable storage, or
 *   when the relay refused it for good (reported: `send` rejects, or an `error` event for retries
 *   with nobody waiting). After a reconnect or a restart the outbox is sent again; the relay
 *   stores a retried `(sender, id)` once.
 * - **Receiving.** A delivery is decrypted, and the new session state, the seen id and the
 *   plaintext (inbox) are persisted in one atomic write, **then** the relay is acked. The app
 *   gets each message from the inbox; it leaves the inbox once every `message` listener has
 *   returned and every `messages()` iterator has asked for the next one. A message is therefore
 *   never lost by a crash; the app sees it twice only if the process dies between handing it to
 *   the app and the inbox delete (make handlers idempotent on `(from, id)` if that matters).
 * - **Receipts.** Persisting a message also records that its sender is owed a receipt (same
 *   atomic write). Owed ids are collected per peer and sent as one encrypted `receipt` listing
 *   them after `receiptDelayMs`, at once when {@link RECEIPT_BATCH_IDS} are owed, or just before
 *   the app's next message to that peer; each id surfaces at the sender as a `delivered` event
 *   (end to end: the relay cannot forge it). Owed ids survive restarts and go out after login.
 */
import {
  ParleyError,
  decodeContent,
  encodeContent,
  formatSafetyNumber,
  getCrypto,
  initCrypto,
  isParleyError,
  fromHex,
  decodeStaffCredential,
  decodeArchiveDisclosure,
  isStaffCredential,
  sameIdentity,
  verifyStaffCredential,
  type MessageContent,
  type OutgoingContent,
  type ParleyErrorCode,
  type PublicIdentity,
  type StaffRole,
  isSessionReset,
  type SessionResetReason,
} from '@parley/protocol';
import {
  ConversationBook,
  ConversationEngine,
  MAX_RECEIPT_IDS,
  decodeReceiptBody,
  resetReasonOf,
  type KeyValueStore,
  type OutgoingEnvelope,
  type PayloadType,
  type PeerAttestationInfo,
  type PeerCertificateInfo,
  type PeerStaffInfo,
  type ReceivedMessage,
  type TrustEvent,
  type TrustOptions,
} from '@parley/engine';
import { Emitter } from './emitter.js';
import { StatementFetchBudget } from './statement-budget.js';
import { ConversationHub } from './conversations/hub.js';
import { ArchiveNoticeQueue, archiveOpenedEvent } from './conversations/archive-notices.js';
import { ArchiveErasureLog } from './conversations/erasure.js';
import type { FanOutFailure } from './conversations/port.js';
import { CONVERSATION_EVENT_NAMES, type ClientTickets, type Conversation, type ConversationEvents } from './conversations/types.js';
import { DEFAULT_CONNECT_TIMEOUT_MS, RelayLink, type Logger, type RelayLinkOptions } from '@parley/relay-link';

/** Options of {@link ParleyClient.create}. */
export interface ParleyClientOptions {
  /** The relay, e.g. `https://relay.example.com`. */
  readonly relayUrl: string;
  /** Where state lives. Give `store`, or `storagePath` (Node: a sealed {@link FileStore} directory). */
  readonly store?: KeyValueStore;
  /** Node only: directory of a `FileStore`, opened (and closed by {@link ParleyClient.close}) by the client. */
  readonly storagePath?: string;
  /**
   * With `storagePath`: a high-entropy secret (≥ 32 random bytes recommended) from which the
   * storage key is derived. Without it, a 0600 key file `<storagePath>.key` is created next to the
   * directory, never inside it (see FileStore).
   */
  readonly storageSecret?: Uint8Array | string;
  /** Who to trust: pinned org key, which peers must be certified. */
  readonly trust?: TrustOptions;
  /** Structured logger; Parley never logs content or keys. */
  readonly logger?: Logger;
  /** Bots only: the relay API key. */
  readonly apiKey?: string;
  /** Send delivery receipts. Default true. */
  readonly receipts?: boolean;
  /**
   * How long receipts owed to a peer are collected before one receipt listing them all is sent
   * (ms, 0 to 60,000). Default 25. One receipt per burst instead of one per message saves the
   * encryption, the relay round trip and, in a one-way stream, the ratchet's DH step of every
   * message. 0 sends a receipt right after each message. A message the app sends to the peer
   * first takes the owed receipt with it (sent just before).
   */
  readonly receiptDelayMs?: number;
  /** One-time prekeys to keep on the relay. Default 50 (at most 100). */
  readonly prekeyTarget?: number;
  /**
   * How long a missing message may stay missing before a `messageGap` event reports it (ms,
   * 1,000 to 86,400,000). Default 30,000. Every message carries the sender's sequence number
   * inside the encrypted payload, so a relay that withholds one is noticed (docs/threats.md C25).
   */
  readonly gapTimeoutMs?: number;
  /** Clock. Default `Date.now`. */
  readonly now?: () => number;
  /**
   * Node only: the CA certificate(s) (PEM) that signed the relay's TLS certificate, trusted in
   * place of the system store (a private CA, a self-signed relay). Without it an untrusted
   * certificate fails `connect` with `TRANSPORT` / `tls`. Browsers use the system trust store
   * and ignore it.
   */
  readonly ca?: string | Uint8Array | readonly (string | Uint8Array)[];
  /**
   * How long {@link ParleyClient.connect} waits for the login before it rejects with
   * `TRANSPORT` / `timeout` (ms). Default 15,000. Refused connections, DNS and TLS failures and
   * login refusals reject sooner.
   */
  readonly connectTimeoutMs?: number;
  /** Transport tuning: origin, reconnect delays, socket.io options. */
  readonly transport?: Omit<Partial<RelayLinkOptions>, 'url' | 'credentials' | 'logger' | 'order'>;
  /**
   * With `trust.orgKey`: how often the staff revocation lists are fetched from the relay (ms,
   * 1,000 to 86,400,000). Default 300,000 (5 min). They are also fetched at every login and
   * before a message to a staff peer when the last fetch is older than this, so a revoked staff
   * device is refused at most this long after its revocation reached the relay (and at once
   * after the next login).
   */
  readonly revocationRefreshMs?: number;
}

/** Default {@link ParleyClientOptions.revocationRefreshMs}: 5 minutes. */
export const DEFAULT_REVOCATION_REFRESH_MS = 5 * 60 * 1000;

/** This device's own staff credential, as {@link ParleyClient.staffCredential} shows it. */
export interface OwnStaffCredential {
  readonly personId: string;
  readonly displayName: string;
  readonly roles: readonly StaffRole[];
  readonly issuerName: string;
  readonly expiresAt: number;
}

/** A message as the app sees it. */
/**
 * A received message: its content in the one content model shared with bot handlers (exactly
 * one of `text`, `json`, `binary`, per `type`) plus its envelope facts.
 */
export type IncomingMessage = MessageContent & {
  /** Sender device id. */
  readonly from: string;
  /** The sender's message id (authenticated end to end). */
  readonly id: string;
  /** Sender's clock, ms since the epoch. */
  readonly sentAt: number;
  /** This device's clock when it was decrypted. */
  readonly receivedAt: number;
  /** The sender's per-conversation counter (gaps mean withheld or lost messages). */
  readonly seq: number;
};

/** An error no call is waiting for (a delivery that failed to decrypt, a send refused on retry…). */
export interface ClientErrorEvent {
  readonly error: ParleyError;
  /** The peer involved, if any. */
  readonly peer?: string;
  /** The message id involved, if any. */
  readonly id?: string;
}

/** Events of {@link ParleyClient} (with those of conversations: {@link ConversationEvents}). */
export interface ParleyClientEvents extends ConversationEvents {
  message: IncomingMessage;
  /** The peer's device persisted our message `id` (end-to-end receipt). */
  delivered: { readonly peer: string; readonly id: string };
  identityChanged: TrustEvent;
  error: ClientErrorEvent;
  /** Logged in to the relay (first time and after every reconnect). */
  connected: { readonly deviceId: string };
  /** The connection dropped; the client reconnects by itself unless the login was refused. */
  disconnected: { readonly reason: string };
  /**
   * The relay refused the login for good (`UNAUTHENTICATED`; `error.details.reason` says why,
   * e.g. `origin`, `clockSkew`, `apiKeyRevoked`). The client stops reconnecting; a later
   * {@link ParleyClient.connect} tries again.
   */
  authFailed: { readonly error: ParleyError };
  /**
   * Messages of `peer` with these sequence numbers are still missing `gapTimeoutMs` after later
   * ones arrived: withheld or lost on the way. Reported once per number.
   */
  messageGap: { readonly peer: string; readonly seqs: readonly number[]; readonly since: number };
  /** A message reported missing arrived after all (its `message` event comes too). */
  gapClosed: { readonly peer: string; readonly id: string; readonly seq: number };
  /**
   * The session with `peer` was reset (self-healing, docs/threats.md C3). `initiatedBy: 'self'`:
   * a message of the peer could not be decrypted for `reason`, and this device asked it for a
   * fresh session and a resend. `'peer'`: the peer asked; this device started a fresh session
   * and resent what the peer had not receipted. Either way no message is shown twice, and
   * `safetyNumber` is the (unchanged) identity check of the pair.
   */
  sessionReset: { readonly peer: string; readonly initiatedBy: 'self' | 'peer'; readonly reason: SessionResetReason; readonly safetyNumber?: string };
}

/** Default {@link ParleyClientOptions.gapTimeoutMs}. */
export const DEFAULT_GAP_TIMEOUT_MS = 30_000;

/** Receive errors after which retrying cannot help: ack (drop) the delivery and report it. */
const KEEP_ON_ERROR: ReadonlySet<ParleyErrorCode> = new Set(['STORAGE_INTEGRITY', 'STORAGE_QUOTA', 'INTERNAL', 'USAGE', 'TRANSPORT']);
/** Send errors worth retrying later. */
const RETRY_SEND: ReadonlySet<ParleyErrorCode> = new Set(['TRANSPORT', 'RATE_LIMITED', 'STORAGE_QUOTA', 'INTERNAL']);
const RETRY_DELAY_MS = 1000;
/** The unsafe-default warning goes to `console.warn` once per process when no logger is given. */
let warnedWithoutLogger = false;
/**
 * While logged in, prekeys are published again this often. Publishing is when the engine
 * rotates the signed prekey (by age, or early when its base-key memory fills) and deletes
 * retired ones past their grace (docs/threats.md C6); a device that stays logged in for days
 * would otherwise do it only on a low-supply notice. One small upload an hour.
 */
const PREKEY_REFRESH_MS = 60 * 60 * 1000;
/** Default {@link ParleyClientOptions.receiptDelayMs}. */
export const DEFAULT_RECEIPT_DELAY_MS = 25;
/** Receipt ids owed to one peer that trigger a receipt at once, whatever the delay. */
export const RECEIPT_BATCH_IDS = MAX_RECEIPT_IDS;
/**
 * Receipt failures that may pass: storage, or no session right after a session reset (the
 * peer's fresh session or our next send brings one). Keep the ids owed and try again later.
 */
const KEEP_RECEIPT_ON_ERROR: ReadonlySet<ParleyErrorCode> = new Set(['STORAGE_INTEGRITY', 'STORAGE_QUOTA', 'INTERNAL', 'SESSION_NOT_FOUND']);

/**
 * A client that pins neither an org key nor a bot measurement trusts whoever a device id
 * belongs to on first use: say so once, with the fix (README "Trust").
 */
function warnUnsafeTrust(options: ParleyClientOptions): void {
  if (options.trust?.orgKey !== undefined || options.trust?.botMeasurement !== undefined) return;
  const line = {
    event: 'unsafeDefault',
    option: 'trust',
    fix: 'pin your org key with `trust: { orgKey }` (and `botMeasurement` to require an attested bot)',
  };
  const msg = 'no trust settings: any device id is trusted on first use, with no org certificate or bot attestation check';
  if (options.logger) {
    options.logger.warn?.(line, msg);
  } else if (!warnedWithoutLogger) {
    warnedWithoutLogger = true;
    console.warn(`parley: ${msg}; ${line.fix}`);
  }
}

async function ensureCrypto(): Promise<void> {
  try {
    getCrypto();
  } catch {
    await initCrypto();
  }
}

interface IteratorState {
  queue: { message: IncomingMessage; release: () => void }[];
  wake: (() => void) | undefined;
  release: (() => void) | undefined;
  done: boolean;
}

/**
 * An end-to-end encrypted chat client for one device.
 *
 * @example
 * import { ParleyClient } from '@parley/client';
 * const client = await ParleyClient.create({ relayUrl: 'https://relay.example.com', storagePath: './parley', storageSecret: process.env.PARLEY_SECRET });
 * client.on('message', (m) => console.log(m.from, m.text));
 * client.on('delivered', ({ id }) => console.log('delivered', id));
 * await client.connect();
 * const { id } = await client.send(supportDeviceId, 'Hello, I need help with my order');
 * // …
 * await client.close();
 */
export class ParleyClient {
  readonly #engine: ConversationEngine;
  readonly #transport: RelayLink;
  readonly #events = new Emitter<ParleyClientEvents>();
  readonly #options: ParleyClientOptions;
  readonly #ownedStore: { close(): Promise<void> } | undefined;
  readonly #iterators = new Set<IteratorState>();
  readonly #delivering = new Set<string>();
  readonly #statementBudget = new StatementFetchBudget(Date.now());
  /** Each `send` call waiting for its own envelope, by `to/id`: settled by the outbox flush. */
  readonly #sendWaiters = new Map<string, (failure: ParleyError | undefined) => void>();
  #sendLock: Promise<unknown> = Promise.resolve();
  #prekeyLock: Promise<unknown> = Promise.resolve();
  #flushing: Promise<void> | undefined;
  #flushAgain = false;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  readonly #gapTimer: ReturnType<typeof setInterval>;
  readonly #prekeyTimer: ReturnType<typeof setInterval>;
  #draining: Promise<void> | undefined;
  #drainAgain = false;
  #closed = false;
  /** A prekey publication is queued and not started yet: another request joins it. */
  #prekeyPublishQueued: Promise<void> | undefined;
  #receiptTimer: ReturnType<typeof setTimeout> | undefined;
  #receipting: Promise<void> | undefined;
  #receiptAgain = false;
  /** This device's staff credential (`setStaffCredential`): presented at login, published as its certificate. */
  #staffCredential: Uint8Array | undefined;
  /** This device's archive disclosure (`setArchiveDisclosure`): undefined keeps the relay's, empty removes it. */
  #archiveDisclosure: Uint8Array | undefined;
  readonly #revocationTimer: ReturnType<typeof setInterval> | undefined;
  /** When the revocation lists were last fetched (attempted), by this client's clock. */
  #revocationsAt = 0;
  #revocationFetch: Promise<void> | undefined;
  /** Conversations with several members and the handoff (conversations/hub.ts). */
  readonly #conversations: ConversationHub;
  /** A conversation frame waits in the inbox for the relay (a claim check, a ticket to open): drain again later. */
  #drainRetryTimer: ReturnType<typeof setTimeout> | undefined;

  /** Archive opening notices held until the app listens (conversations/archive-notices.ts). */
  readonly #archiveNotices = new ArchiveNoticeQueue(
    (event) => {
      for (const e of this.#events.emit('archiveOpened', event)) this.#report(e);
    },
    () => this.#events.listenerCount('archiveOpened') > 0,
  );

  private constructor(options: ParleyClientOptions, engine: ConversationEngine, transport: RelayLink, book: ConversationBook, ownedStore?: { close(): Promise<void> }, archiveLog?: ArchiveErasureLog) {
    this.#options = options;
    this.#engine = engine;
    this.#transport = transport;
    this.#ownedStore = ownedStore;
    this.#conversations = new ConversationHub(book, {
      deviceId: engine.deviceId,
      orgKeyPinned: options.trust?.orgKey !== undefined,
      fanOut: (recipients, frame, id) => this.#fanOut(recipients, frame, id),
      refreshStatements: (peer) => this.#refreshStatements(peer),
      peerStaff: (peer) => engine.peerStaff(peer),
      peerCertificate: (peer) => engine.peerCertificate(peer),
      archiveStatus: (peers, firstMessageAt) => engine.archiveStatus(peers, firstMessageAt),
      archiveHooks: {
        signingKey: engine.publicIdentity.signingKey,
        sign: (payload) => engine.signArchiveSubmission(payload),
        append: (ref, submission) => transport.archiveAppend(ref, submission),
        ownArchiveKey: () => (this.#archiveDisclosure && this.#archiveDisclosure.length > 0 ? decodeArchiveDisclosure(this.#archiveDisclosure).archiveKey : undefined),
      },
      safetyNumber: (peer) => this.#safetyNumberOf(peer).safetyNumber,
      link: transport,
      emit: <K extends keyof ConversationEvents>(event: K, value: ConversationEvents[K]) => {
        for (const e of this.#events.emit(event, value as ParleyClientEvents[K])) this.#report(e);
      },
      report: (e, context) => this.#report(e, context),
      newMessageId: () => ConversationEngine.newMessageId(),
      erasureHooks: {
        forgetUnconfirmed: (peer, ids) => engine.forgetUnconfirmed(peer, ids),
        purge: (o) => transport.purge(o),
        ...(archiveLog ? { archiveLog } : {}),
      },
    });
    transport.setHandlers({
      onAuthenticated: () => this.#onAuthenticated(),
      onMessage: (m) => this.#onDelivery(m),
      // The notice's count may be stale by the time it arrives: the publication asks the relay.
      onPrekeysLow: () => void this.#publishPrekeys().catch((e) => this.#report(e)),
      onDisconnected: (reason) => this.#events.emit('disconnected', { reason }),
      onAuthFailed: (error) => this.#events.emit('authFailed', { error }),
      onError: (error) => this.#report(error),
      onTicket: (update) => this.#events.emit('ticket', update),
      onTicketUnclaimed: (info) => this.#events.emit('ticketUnclaimed', info),
      // Opening notices (conversations/archive-notices.ts): acked once this returns.
      onArchiveOpened: (notice) => {
        const event = archiveOpenedEvent(book, notice);
        return event && this.#archiveNotices.deliver(event);
      },
    });
    const gapTimeout = options.gapTimeoutMs ?? DEFAULT_GAP_TIMEOUT_MS;
    this.#gapTimer = setInterval(() => {
      void this.#reportGaps(gapTimeout);
      void this.#sendDeferredResets();
      // Retention (conversations/erasure.ts): conversations whose retention ran out are erased.
      if (!this.#closed) void this.#conversations.eraseDue();
    }, Math.min(5_000, gapTimeout / 2));
    this.#gapTimer.unref?.();
    this.#prekeyTimer = setInterval(() => {
      if (!this.#closed && this.#transport.authenticated) void this.#publishPrekeys().catch((e) => this.#report(e));
    }, PREKEY_REFRESH_MS);
    this.#prekeyTimer.unref?.();
    if (options.trust?.orgKey !== undefined) {
      this.#revocationTimer = setInterval(() => {
        if (!this.#closed && this.#transport.authenticated) void this.#refreshRevocations();
      }, this.#revocationRefreshMs);
      this.#revocationTimer.unref?.();
    }
  }

  /** Reports the gaps that outlived `timeoutMs` (once each) as `messageGap` events. */
  async #reportGaps(timeoutMs: number): Promise<void> {
    if (this.#closed) return;
    for (const gap of this.#engine.messageGaps(timeoutMs)) {
      try {
        await this.#engine.markGapsReported(gap.peer, gap.seqs);
      } catch (e) {
        this.#report(e, { peer: gap.peer });
        continue;
      }
      this.#events.emit('messageGap', gap);
    }
    await this.#conversations.reportGaps(timeoutMs);
  }

  /**
   * Opens the device state (creating an identity on first use) and prepares the relay
   * connection. Call {@link connect} next.
   * @throws ParleyError `USAGE` (no store, bad options), `STORAGE_INTEGRITY` (tampered state,
   *   wrong storage secret, or state without an identity).
   */
  static async create(options: ParleyClientOptions): Promise<ParleyClient> {
    if (!options || typeof options.relayUrl !== 'string') throw new ParleyError('USAGE', 'relayUrl is required');
    if (!options.store === !options.storagePath) throw new ParleyError('USAGE', 'give exactly one of store and storagePath');
    const target = options.prekeyTarget ?? 50;
    if (!Number.isInteger(target) || target < 1 || target > 100) throw new ParleyError('USAGE', 'prekeyTarget must be 1..100');
    const delay = options.receiptDelayMs ?? DEFAULT_RECEIPT_DELAY_MS;
    if (typeof delay !== 'number' || !Number.isFinite(delay) || delay < 0 || delay > 60_000) throw new ParleyError('USAGE', 'receiptDelayMs must be 0..60000');
    const gapTimeout = options.gapTimeoutMs ?? DEFAULT_GAP_TIMEOUT_MS;
    if (!Number.isInteger(gapTimeout) || gapTimeout < 1_000 || gapTimeout > 86_400_000) throw new ParleyError('USAGE', 'gapTimeoutMs must be 1000..86400000');
    const refresh = options.revocationRefreshMs ?? DEFAULT_REVOCATION_REFRESH_MS;
    if (!Number.isInteger(refresh) || refresh < 1_000 || refresh > 86_400_000) throw new ParleyError('USAGE', 'revocationRefreshMs must be 1000..86400000');
    await ensureCrypto();
    let store = options.store;
    let owned: { close(): Promise<void> } | undefined;
    if (!store) {
      // Loaded only when asked for, so browser bundles never reach node:fs.
      const { FileStore } = await import('./node/file-store.js');
      const fileStore = await FileStore.open({ dir: options.storagePath!, ...(options.storageSecret === undefined ? {} : { storageSecret: options.storageSecret }) });
      store = fileStore;
      owned = fileStore;
    }
    let client: ParleyClient | undefined;
    try {
      const engine = await ConversationEngine.open({
        store,
        ...(options.trust ? { trust: options.trust } : {}),
        ...(options.now ? { now: options.now } : {}),
        onTrustEvent: (e) => {
          if (client) client.#events.emit('identityChanged', e);
        },
      });
      const transport = new RelayLink({
        ...(options.ca === undefined ? {} : { ca: options.ca }),
        ...(options.connectTimeoutMs === undefined ? {} : { connectTimeoutMs: options.connectTimeoutMs }),
        ...options.transport,
        url: options.relayUrl,
        credentials: {
          // A staff device presents its credential at every login (the relay reads its roles).
          answer: (challenge) => {
            const answer = engine.relayLoginAnswer(challenge);
            const credential = client ? client.#staffCredential : undefined;
            return credential ? { ...answer, credential } : answer;
          },
          ...(options.apiKey === undefined ? {} : { apiKey: options.apiKey }),
        },
        ...(options.logger ? { logger: options.logger } : {}),
      });
      // Conversations live in the same store, under their own keys.
      const book = await ConversationBook.open({
        store, deviceId: engine.deviceId, ...(options.now ? { now: options.now } : {}),
        erasure: { sign: (p) => engine.signErasure(p), signingKey: (peer) => engine.peerIdentity(peer)?.signingKey },
        consent: { sign: (r) => engine.signConsent(r), signingKey: (peer) => engine.peerIdentity(peer)?.signingKey },
      });
      client = new ParleyClient(options, engine, transport, book, owned, await ArchiveErasureLog.open(store));
      warnUnsafeTrust(options);
      return client;
    } catch (e) {
      await owned?.close();
      throw e;
    }
  }

  /** A fresh random message id (what {@link ParleyClient.send} uses when none is given). */
  static newMessageId(): string {
    return ConversationEngine.newMessageId();
  }

  /** This device's id: give it to peers (or to your support backend) so they can reach you. */
  get deviceId(): string {
    return this.#engine.deviceId;
  }

  /** This device's public identity (for certification, QR codes). */
  get publicIdentity(): PublicIdentity {
    return this.#engine.publicIdentity;
  }

  /** True while logged in to the relay. */
  get connected(): boolean {
    return this.#transport.authenticated;
  }

  /**
   * Connects to the relay, logs in with the device key, publishes prekeys, re-sends the outbox
   * and starts receiving. Reconnects by itself afterwards until {@link close}. Always settles:
   * a refused connection, a DNS or TLS failure rejects at the first attempt, a login refusal at
   * once, anything else after `timeoutMs` (default `connectTimeoutMs`, 15 s). After a
   * `TRANSPORT` rejection the client keeps trying in the background (`connected` tells when it
   * made it); after `UNAUTHENTICATED` it stops until `connect` is called again.
   * @throws ParleyError `TRANSPORT` with `details.reason` `refused` | `dns` | `tls` | `timeout`
   *   and `details.cause` (e.g. `ECONNREFUSED`, `ENOTFOUND`, `SELF_SIGNED_CERT_IN_CHAIN`);
   *   `UNAUTHENTICATED` (login refused; `details.reason` from the relay, e.g. `origin`).
   */
  async connect(options: { timeoutMs?: number } = {}): Promise<void> {
    if (this.#closed) throw new ParleyError('USAGE', 'client is closed');
    const timeoutMs = options.timeoutMs ?? this.#options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    await this.#transport.connect({ timeoutMs });
    void this.#drain();
  }

  /**
   * Sends a text (string), a JSON value (object, array, number…) or raw bytes (`Uint8Array`) to
   * a peer device. Starts a session from the peer's bundle when needed. Resolves once the
   * envelope is safely in the outbox and, when connected, acked by the relay; while offline it
   * resolves with the envelope queued (sent after the next login).
   * @returns the message id (the peer receives it as `message.id`; `delivered` events carry it).
   * @throws ParleyError `IDENTITY_CHANGED` (accept it first), `UNTRUSTED_IDENTITY` (forged
   *   bundle, missing or invalid org certificate), `SESSION_NOT_FOUND` (peer never published
   *   prekeys), `TRANSPORT` (a bundle is needed and the relay is unreachable), `RATE_LIMITED`,
   *   `PAYLOAD_TOO_LARGE`, `USAGE`.
   * @example
   * await client.send(peer, 'hi');
   * await client.send(peer, { orderId: 1234, action: 'refund' });
   */
  async send(peer: string, content: OutgoingContent, options: { id?: string } = {}): Promise<{ id: string }> {
    if (this.#closed) throw new ParleyError('USAGE', 'client is closed');
    const { type, body } = encodeContent(content);
    const id = options.id ?? ConversationEngine.newMessageId();
    const run = this.#sendLock.then(() => this.#encryptTo(peer, body, type, id));
    this.#sendLock = run.catch(() => undefined);
    await run;
    // The envelope is durable in the outbox: wait for the flush to settle it (sent, refused, or
    // left queued while the relay is out of reach).
    const settled = new Promise<ParleyError | undefined>((resolve) => this.#sendWaiters.set(`${peer}/${id}`, resolve));
    void this.#flushOutbox();
    const failure = await settled;
    if (failure) throw failure;
    return { id };
  }

  /** Encrypts one message to `peer` into the outbox (inside the send lock): owed receipts first, a bundle when there is no session. */
  async #encryptTo(peer: string, body: Uint8Array, type: PayloadType, id: string): Promise<void> {
    // Receipts owed to this peer go first: in the same ratchet direction, so nearly free.
    if (this.#engine.pendingReceiptCount(peer) > 0 && this.#receiptsOn) await this.#encryptReceipts(peer);
    // A staff peer: never encrypt to it on revocation lists older than revocationRefreshMs.
    if (this.#engine.peerStaff(peer) && this.#now() - this.#revocationsAt >= this.#revocationRefreshMs) await this.#refreshRevocations();
    const bundle = this.#engine.needsBundle(peer) ? await this.#transport.fetchBundle(peer) : undefined;
    try {
      await this.#engine.encrypt(peer, body, { messageId: id, type, ...(bundle ? { bundle } : {}) });
    } catch (e) {
      // An existing session whose attestation is missing or was made for an old pin: fetch the
      // peer's current statements (no OPK used), verify them, and try once more.
      if (bundle || !needsStatements(e) || !this.#transport.authenticated) throw e;
      await this.#refreshStatements(peer);
      await this.#engine.encrypt(peer, body, { messageId: id, type });
    }
  }

  /**
   * A conversation frame to each recipient, all with message id `id` (pairwise fan-out through
   * the outbox). Resolves once the relay settled each envelope (or it waits in the outbox);
   * the recipients it could not be encrypted to or that the relay refused are returned.
   */
  async #fanOut(recipients: readonly string[], frame: Uint8Array, id: string): Promise<FanOutFailure[]> {
    if (this.#closed) throw new ParleyError('USAGE', 'client is closed');
    const failed: FanOutFailure[] = [];
    const queued: string[] = [];
    const run = this.#sendLock.then(async () => {
      for (const peer of recipients) {
        try {
          await this.#encryptTo(peer, frame, 'conversation', id);
          queued.push(peer);
        } catch (e) {
          failed.push({ peer, error: isParleyError(e) ? e : new ParleyError('INTERNAL', 'encrypt failed', { cause: e }) });
        }
      }
    });
    this.#sendLock = run.catch(() => undefined);
    await run;
    const settled = queued.map((peer) => new Promise<ParleyError | undefined>((resolve) => this.#sendWaiters.set(`${peer}/${id}`, resolve)));
    void this.#flushOutbox();
    const outcomes = await Promise.all(settled);
    outcomes.forEach((error, i) => error && failed.push({ peer: queued[i]!, error }));
    return failed;
  }

  /**
   * Starts a conversation owned by this device (the customer) with `peers` (a bot, or several
   * devices). Each peer is verified first, as {@link send} does, and must be a certified bot
   * (org certificate role `bot`) or a staff device (agent or supervisor); with no org key pinned
   * peers are accepted on first use. Every member then learns the member list.
   * `retentionDays` (1-3650): members see it (`ConversationInfo.retentionDays`), and this client
   * erases the conversation ({@link Conversation.erase}) once it is that many days old.
   * @throws ParleyError `UNTRUSTED_IDENTITY` (`details.reason`: `missing`, `role`, or the
   *   engine's refusal of its certificate), `SESSION_NOT_FOUND` (unknown device), `USAGE`.
   * @example
   * const conv = await client.startConversation(botDeviceId);
   * await conv.send('Hello, where is my parcel?');
   */
  startConversation(peers: string | readonly string[], options: { name?: string; retentionDays?: number } = {}): Promise<Conversation> {
    if (this.#closed) return Promise.reject(new ParleyError('USAGE', 'client is closed'));
    return this.#conversations.start(peers, options);
  }

  /** The conversation `id`, if this device knows it. */
  conversation(id: string): Conversation | undefined {
    return this.#conversations.get(id);
  }

  /** Every conversation this device knows (also from before a restart). */
  conversations(): Conversation[] {
    return this.#conversations.list();
  }

  /** The handoff queue at the relay (agents and supervisors): list and claim tickets. */
  get tickets(): ClientTickets {
    return this.#conversations.tickets;
  }

  /**
   * Listens for an event. Returns a function that removes the listener.
   * A `message` leaves the durable inbox once all `message` listeners returned; a listener
   * that throws is reported as an `error` event and does not stop the others.
   * @example
   * const off = client.on('message', (m) => render(m.from, m.text ?? m.json));
   */
  on<K extends keyof ParleyClientEvents>(event: K, listener: (value: ParleyClientEvents[K]) => void): () => void {
    const off = this.#events.on(event, listener);
    if (event === 'message' || (CONVERSATION_EVENT_NAMES as readonly string[]).includes(event)) void this.#drain();
    if (event === 'archiveOpened') this.#archiveNotices.flush();
    return off;
  }

  /** Removes a listener. */
  off<K extends keyof ParleyClientEvents>(event: K, listener: (value: ParleyClientEvents[K]) => void): void {
    this.#events.off(event, listener);
  }

  /**
   * Incoming messages as an async iterator, starting with any not yet consumed (also from before
   * a restart). A message is consumed when the loop asks for the next one, so one interrupted
   * mid-handling is delivered again after a restart. Ends on {@link close}.
   * @example
   * for await (const m of client.messages()) console.log(m.text);
   */
  messages(): AsyncIterableIterator<IncomingMessage> {
    const state: IteratorState = { queue: [], wake: undefined, release: undefined, done: this.#closed };
    this.#iterators.add(state);
    void this.#drain();
    const finish = (): IteratorResult<IncomingMessage> => {
      state.release?.();
      state.release = undefined;
      state.done = true;
      this.#iterators.delete(state);
      for (const q of state.queue.splice(0)) q.release();
      return { done: true, value: undefined };
    };
    const iterator: AsyncIterableIterator<IncomingMessage> = {
      next: async () => {
        state.release?.();
        state.release = undefined;
        while (!state.done && state.queue.length === 0) await new Promise<void>((resolve) => (state.wake = resolve));
        const item = state.queue.shift();
        if (!item) return finish();
        state.release = item.release;
        return { done: false, value: item.message };
      },
      return: async () => finish(),
      [Symbol.asyncIterator]: () => iterator,
    };
    return iterator;
  }

  /**
   * The safety number with `peer`: 60 digits in groups of five, identical on both devices.
   * Compare it out of band (in person, by phone) to rule out a man in the middle.
   * @throws ParleyError `SESSION_NOT_FOUND` before any contact with the peer.
   */
  safetyNumber(peer: string): string {
    return formatSafetyNumber(this.#engine.safetyNumber(peer));
  }

  /** The identity recorded for `peer`, if any. */
  peerIdentity(peer: string): PublicIdentity | undefined {
    return this.#engine.peerIdentity(peer);
  }

  /** The verified org certificate of `peer` (role, label), if any. */
  peerCertificate(peer: string): PeerCertificateInfo | undefined {
    return this.#engine.peerCertificate(peer);
  }

  /**
   * The verified staff credential of `peer`, if any: the person's certified display name, person
   * id, roles, expiry and issuer. Show the name beside the conversation; it is the issuer's
   * word, checked against the pinned org key, never the relay's.
   */
  peerStaff(peer: string): PeerStaffInfo | undefined {
    return this.#engine.peerStaff(peer);
  }

  /**
   * Staff sign-in: this device's proof that it holds its identity key, for the issuer's
   * `challenge` (32 bytes) and the issuer's origin (`staffSignInPayload`, signed under its own
   * context by the engine: never raw bytes). {@link signInStaff} calls it.
   * @throws ParleyError `USAGE` for a challenge that is not 32 bytes or an empty origin.
   */
  staffProof(challenge: Uint8Array, issuerOrigin: string): Uint8Array {
    return this.#engine.signStaffSignIn(challenge, issuerOrigin);
  }

  /**
   * A bot or agent device: publishes the org-signed compliance archive disclosure
   * (`parley-org disclose`) with its statements, or removes it (`null`). Customers' clients accept
   * the archive only for conversations whose first message came after they verified it.
   */
  async setArchiveDisclosure(disclosure: Uint8Array | null): Promise<void> {
    this.#archiveDisclosure = disclosure ? disclosure.slice() : new Uint8Array(0);
    await this.#publishPrekeys();
  }

  /**
   * Fetches `peer`'s published statements (certificate, attestation, archive disclosure) from the
   * relay now and lets the engine verify them.
   * @throws the engine's refusal (`UNTRUSTED_IDENTITY`, `ATTESTATION_INVALID`…), `TRANSPORT`.
   */
  refreshPeerStatements(peer: string): Promise<void> {
    return this.#refreshStatements(peer);
  }

  /**
   * Makes this device a staff device: `credential` (from the issuer, `signInStaff` passes it)
   * is presented at every relay login (the relay gives the connection its roles) and published
   * as the device's certificate statement (customers verify it against their pinned org key).
   * Held in memory: after a restart, sign in again. When connected, the device logs in again at
   * once so the relay reads it.
   * @throws ParleyError `USAGE` (not a staff credential, or it certifies another device),
   *   `UNTRUSTED_IDENTITY` (with `trust.orgKey` pinned: it does not verify, `details.reason`).
   */
  async setStaffCredential(credential: Uint8Array): Promise<void> {
    if (this.#closed) throw new ParleyError('USAGE', 'client is closed');
    if (!(credential instanceof Uint8Array) || !isStaffCredential(credential)) throw new ParleyError('USAGE', 'not a staff credential');
    const decoded = decodeStaffCredential(credential);
    if (!sameIdentity({ ...decoded.staff, binding: new Uint8Array(0) }, { ...this.publicIdentity, binding: new Uint8Array(0) })) {
      throw new ParleyError('USAGE', 'the staff credential certifies another device');
    }
    const orgKey = this.#options.trust?.orgKey;
    if (orgKey !== undefined) {
      verifyStaffCredential(credential, { orgKey: typeof orgKey === 'string' ? fromHex(orgKey) : orgKey, identity: this.publicIdentity, now: this.#now() });
    }
    this.#staffCredential = credential.slice();
    if (this.#transport.authenticated) await this.#transport.relogin();
  }

  /** This device's own staff credential (decoded, not re-verified), if it has one. */
  get staffCredential(): OwnStaffCredential | undefined {
    if (!this.#staffCredential) return undefined;
    const { staff, issuer } = decodeStaffCredential(this.#staffCredential);
    return { personId: staff.personId, displayName: staff.displayName, roles: staff.roles, issuerName: issuer.name, expiresAt: staff.expiresAt };
  }

  /**
   * The verified bot attestation of `peer`, if any: the measurement it attested, issuedAt and,
   * when an org-signed release manifest allowed it (trust `releaseManifests`), its `releaseVersion`.
   */
  peerAttestation(peer: string): PeerAttestationInfo | undefined {
    return this.#engine.peerAttestation(peer);
  }

  /**
   * Names a peer device ("bob"). Re-binding a known name to another device raises
   * `IDENTITY_CHANGED` (and an `identityChanged` event); sending to the new device is blocked
   * until {@link acceptIdentityChange}.
   */
  bindLabel(label: string, peer: string): Promise<void> {
    return this.#engine.bindLabel(label, peer);
  }

  /** Accepts a pending identity change of `peer`, unblocking sends to it. */
  acceptIdentityChange(peer: string): Promise<boolean> {
    return this.#engine.acceptIdentityChange(peer);
  }

  /** Envelopes waiting for the relay (persisted; re-sent on reconnect). */
  get pendingCount(): number {
    return this.#engine.pendingOutbox().length;
  }

  /**
   * Resolves once every delivery received so far is handled and acked, and the receipts owed
   * for them are encrypted and handed to the relay (without waiting for `receiptDelayMs`).
   */
  async idle(): Promise<void> {
    await this.#transport.idle();
    if (this.#engine.pendingReceipts().length > 0) await this.#flushReceipts();
    await this.#receipting;
    await this.#flushing;
    await this.#draining;
  }

  /** Disconnects, ends `messages()` iterators, and closes the store if the client opened it. */
  async close(): Promise<void> {
    if (this.#closed) return;
    await this.#transport.idle().catch(() => undefined);
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    clearTimeout(this.#drainRetryTimer);
    clearInterval(this.#gapTimer);
    clearInterval(this.#prekeyTimer);
    clearInterval(this.#revocationTimer);
    clearTimeout(this.#receiptTimer);
    this.#receiptTimer = undefined;
    await this.#transport.close();
    for (const it of this.#iterators) {
      it.done = true;
      it.wake?.();
    }
    await this.#flushing?.catch(() => undefined);
    await this.#draining?.catch(() => undefined);
    await this.#receipting?.catch(() => undefined);
    await this.#engine.close();
    await this.#ownedStore?.close();
  }

  toJSON(): { deviceId: string } {
    return { deviceId: this.deviceId };
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `ParleyClient { deviceId: '${this.deviceId}', connected: ${this.connected} }`;
  }

  // ------------------------------------------------------------------ internals

  #report(e: unknown, context: { peer?: string; id?: string } = {}): void {
    const error = isParleyError(e) ? e : new ParleyError('INTERNAL', 'unexpected error', { cause: e });
    this.#options.logger?.warn?.({ event: 'error', code: error.code, peer: context.peer });
    if (this.#events.listenerCount('error') > 0) this.#events.emit('error', { error, ...context });
  }

  #now(): number {
    return this.#options.now?.() ?? Date.now();
  }

  get #revocationRefreshMs(): number {
    return this.#options.revocationRefreshMs ?? DEFAULT_REVOCATION_REFRESH_MS;
  }

  /**
   * Fetches the staff revocation lists from the relay and hands them to the engine (which
   * verifies them against the org key). With no org key pinned there is nothing to check them
   * against. Never throws: a failure is logged, and the next refresh tries again.
   */
  #refreshRevocations(): Promise<void> {
    if (this.#options.trust?.orgKey === undefined || !this.#transport.authenticated) return Promise.resolve();
    this.#revocationFetch ??= (async () => {
      try {
        const lists = await this.#transport.fetchRevocations();
        const update = await this.#engine.setRevocationLists(lists);
        if (update.refused > 0) this.#options.logger?.warn?.({ event: 'revocationListRefused', count: update.refused });
      } catch (e) {
        // Tried again at the next refresh, not before every message (a relay without lists).
        this.#options.logger?.warn?.({ event: 'revocationFetchFailed', code: isParleyError(e) ? e.code : 'INTERNAL' });
      } finally {
        this.#revocationsAt = this.#now();
      }
    })().finally(() => {
      this.#revocationFetch = undefined;
    });
    return this.#revocationFetch;
  }

  async #onAuthenticated(): Promise<void> {
    try {
      await this.#publishPrekeys();
    } catch (e) {
      this.#report(e);
    }
    // Staff revocations first: a device revoked while this one was away is refused from now on.
    await this.#refreshRevocations();
    this.#events.emit('connected', { deviceId: this.deviceId });
    // Receipts still owed from before a restart (persisted with their messages) go out now.
    if (this.#engine.pendingReceipts().length > 0) await this.#flushReceipts();
    void this.#flushOutbox();
  }

  /**
   * Publishes the one-time prekeys not yet on the relay, learns the relay's count from its answer
   * and tops up to `prekeyTarget` when the count is below half of it. Runs at every login, hourly
   * while logged in ({@link PREKEY_REFRESH_MS}: the engine rotates signed prekeys here), and on
   * every low-supply notice, whatever the timing (a notice never gets ignored as "too soon": at
   * zero the relay would send no other); requests that arrive while one is queued join it.
   */
  #publishPrekeys(): Promise<void> {
    if (this.#prekeyPublishQueued) return this.#prekeyPublishQueued;
    const run = this.#prekeyLock.then(async () => {
      this.#prekeyPublishQueued = undefined;
      if (!this.#transport.authenticated) return;
      const target = this.#options.prekeyTarget ?? 50;
      const statements = {
        ...(this.#staffCredential ? { certificate: this.#staffCredential } : {}),
        ...(this.#archiveDisclosure ? { disclosure: this.#archiveDisclosure } : {}),
      };
      let upload = await this.#engine.prekeyUpload(0);
      const count = await this.#transport.uploadPrekeys({ ...upload, ...statements });
      await this.#engine.markUploaded(upload.oneTimePrekeys.map((k) => k.id));
      if (count < target / 2) {
        upload = await this.#engine.prekeyUpload(Math.min(100, target - count));
        await this.#transport.uploadPrekeys({ ...upload, ...statements });
        await this.#engine.markUploaded(upload.oneTimePrekeys.map((k) => k.id));
      }
    });
    this.#prekeyPublishQueued = run;
    this.#prekeyLock = run.catch(() => undefined);
    return run;
  }

  async #onDelivery(m: { from: string; id: string; envelope: Uint8Array }): Promise<'ack' | 'keep'> {
    let result;
    try {
      result = await this.#receiveWithCertificate(m);
    } catch (e) {
      const code = isParleyError(e) ? e.code : 'INTERNAL';
      this.#report(e, { peer: m.from, id: m.id });
      const reason = resetReasonOf(e);
      // Never answer a reset request with one: two devices that do not know each other would loop.
      if (reason && !isSessionReset(m.envelope)) void this.#requestReset(m.from, m.id, reason);
      // A peer we trusted whose certificate (or bot attestation) expired: keep the message at the
      // relay until a renewed one is published, instead of acking what the app never got (finding 7).
      if ((isParleyError(e, 'UNTRUSTED_IDENTITY') || isParleyError(e, 'ATTESTATION_INVALID')) && e.details?.reason === 'expired') return 'keep';
      return KEEP_ON_ERROR.has(code) ? 'keep' : 'ack';
    }
    if (result.kind === 'sessionReset') {
      if (result.applied) this.#resendAfterReset(result.from, result.reason);
      return 'ack';
    }
    if (result.kind === 'message' && result.gapClosed) this.#events.emit('gapClosed', { peer: result.from, id: result.id, seq: result.seq });
    if (result.kind === 'message' && result.type !== 'receipt') this.#scheduleReceipts(result.from);
    void this.#drain();
    return 'ack';
  }

  /** A message of `peer` failed for a session reason: ask the peer for a fresh session (bounded by the engine). */
  async #requestReset(peer: string, failedId: string, reason: SessionResetReason): Promise<void> {
    try {
      const out = await this.#engine.requestSessionReset(peer, { failedId, reason });
      if (!out) return;
      this.#events.emit('sessionReset', { peer, initiatedBy: 'self', reason, ...this.#safetyNumberOf(peer) });
      void this.#flushOutbox();
    } catch (e) {
      this.#report(e, { peer });
    }
  }

  /** Reset requests the engine held back (inside the per-peer interval) whose time has come. */
  async #sendDeferredResets(): Promise<void> {
    if (this.#closed) return;
    try {
      const queued = await this.#engine.requestDeferredResets();
      if (queued.length === 0) return;
      for (const { envelope, reason } of queued) this.#events.emit('sessionReset', { peer: envelope.to, initiatedBy: 'self', reason, ...this.#safetyNumberOf(envelope.to) });
      void this.#flushOutbox();
    } catch (e) {
      if (!this.#closed) this.#report(e);
    }
  }

  /** The peer asked for a fresh session: start one from its bundle and resend what it has not receipted. */
  #resendAfterReset(peer: string, reason: SessionResetReason): void {
    this.#events.emit('sessionReset', { peer, initiatedBy: 'peer', reason, ...this.#safetyNumberOf(peer) });
    const run = this.#sendLock.then(async () => {
      const bundle = this.#engine.unconfirmedCount(peer) > 0 && this.#engine.needsBundle(peer) ? await this.#transport.fetchBundle(peer) : undefined;
      const { failed } = await this.#engine.resendUnconfirmed(peer, bundle);
      for (const id of failed) {
        this.#report(new ParleyError('SESSION_NOT_FOUND', 'message given up after repeated session resets', { details: { peer } }), { peer, id });
      }
    });
    this.#sendLock = run.catch(() => undefined);
    run.then(
      () => void this.#flushOutbox(),
      (e: unknown) => this.#report(e, { peer }),
    );
  }

  #safetyNumberOf(peer: string): { safetyNumber?: string } {
    try {
      return { safetyNumber: this.safetyNumber(peer) };
    } catch {
      return {};
    }
  }

  /**
   * A certified-only (or attested-only) peer we have no certificate (or attestation) for yet:
   * fetch its published statements (no OPK used), verify them, and try once more.
   */
  async #receiveWithCertificate(m: { from: string; id: string; envelope: Uint8Array }) {
    const options = { receipt: this.#receiptsOn };
    try {
      return await this.#engine.receive(m, options);
    } catch (e) {
      if (!needsStatements(e) || !this.#transport.authenticated) throw e;
      // Strangers do not get to spend the relay budget this device's sends need (issue 10, finding 5).
      const known = this.#engine.peerIdentity(m.from) !== undefined;
      if (!this.#statementBudget.allow(m.from, known, Date.now())) throw e;
      let statements;
      try {
        statements = await this.#transport.fetchIdentity(m.from);
      } catch (f) {
        // The relay went away mid-fetch: keep the delivery (TRANSPORT: redelivered after the next login), and let that try fetch again.
        if (isParleyError(f, 'TRANSPORT')) {
          this.#statementBudget.forget(m.from);
          throw f;
        }
        throw e;
      }
      if (!statements) throw e;
      await this.#engine.setPeerStatements(m.from, statements);
      return this.#engine.receive(m, options);
    }
  }

  /** Fetches `peer`'s identity, certificate and attestation from the relay and lets the engine verify them. */
  async #refreshStatements(peer: string): Promise<void> {
    const s = await this.#transport.fetchIdentity(peer);
    await this.#engine.setPeerStatements(peer, s);
  }

  get #receiptsOn(): boolean {
    return this.#options.receipts !== false;
  }

  /** A message from `peer` now owes it a receipt (persisted by the engine): send it soon. */
  #scheduleReceipts(peer: string): void {
    if (this.#closed || !this.#receiptsOn) return;
    const delay = this.#options.receiptDelayMs ?? DEFAULT_RECEIPT_DELAY_MS;
    if (delay === 0 || this.#engine.pendingReceiptCount(peer) >= RECEIPT_BATCH_IDS) {
      void this.#flushReceipts();
      return;
    }
    this.#receiptTimer ??= setTimeout(() => {
      this.#receiptTimer = undefined;
      void this.#flushReceipts();
    }, delay);
  }

  /** Encrypts every owed receipt into the outbox (one per peer and up to 100 ids), then sends the outbox. */
  #flushReceipts(): Promise<void> {
    clearTimeout(this.#receiptTimer);
    this.#receiptTimer = undefined;
    if (this.#receipting) {
      this.#receiptAgain = true;
      return this.#receipting;
    }
    const run = (async () => {
      do {
        this.#receiptAgain = false;
        for (const { peer } of this.#engine.pendingReceipts()) {
          if (this.#closed) return;
          await this.#encryptReceipts(peer);
        }
      } while (this.#receiptAgain);
      void this.#flushOutbox();
    })();
    this.#receipting = run.finally(() => {
      this.#receipting = undefined;
    });
    return this.#receipting;
  }

  /** Encrypts the receipts owed to `peer`. Never throws: a receipt that cannot be encrypted is dropped (reported to the logger). */
  async #encryptReceipts(peer: string): Promise<void> {
    if (!this.#receiptsOn) return;
    while (!this.#closed && this.#engine.pendingReceiptCount(peer) > 0) {
      const ids = this.#engine.pendingReceipts().find((p) => p.peer === peer)?.ids.slice(0, MAX_RECEIPT_IDS) ?? [];
      try {
        await this.#engine.encryptReceipts(peer);
      } catch (e) {
        const code = isParleyError(e) ? e.code : 'INTERNAL';
        this.#options.logger?.debug?.({ event: 'receiptSkipped', code });
        if (this.#closed || KEEP_RECEIPT_ON_ERROR.has(code)) return; // still owed: next flush or next login
        // The peer is blocked or untrusted now: no receipt then (as for a single message).
        await this.#engine.dropReceipts(peer, ids).catch(() => undefined);
        return;
      }
    }
  }

  /**
   * Sends the outbox in order, one flush at a time; a call during a flush makes it run once more.
   * Every `send` waiting for an envelope is settled: by its outcome, or as queued when the flush
   * stops at an envelope that must wait (offline, rate-limited), since nothing after it may pass.
   */
  #flushOutbox(): Promise<void> {
    if (this.#flushing) {
      this.#flushAgain = true;
      return this.#flushing;
    }
    this.#flushing = this.#sendOutbox().finally(() => {
      this.#flushing = undefined;
      // A call that came after the last pass but before this point still gets its pass.
      if (this.#flushAgain) void this.#flushOutbox();
      else this.#releaseSendWaiters();
    });
    return this.#flushing;
  }

  async #sendOutbox(): Promise<void> {
    do {
      this.#flushAgain = false;
      for (const e of this.#engine.pendingOutbox()) {
        if ((await this.#sendEnvelope(e)) === 'wait') {
          this.#releaseSendWaiters();
          return;
        }
      }
    } while (this.#flushAgain);
  }

  /** One envelope to the relay: `done` (stored, or refused for good and reported), or `wait`. */
  async #sendEnvelope(e: OutgoingEnvelope): Promise<'done' | 'wait'> {
    if (!this.#transport.authenticated || this.#closed) return 'wait';
    try {
      await this.#transport.send(e);
      await this.#engine.markDelivered(e.to, e.id);
      this.#settleSend(e, undefined);
      return 'done';
    } catch (err) {
      const error = isParleyError(err) ? err : new ParleyError('INTERNAL', 'send failed', { cause: err });
      if (RETRY_SEND.has(error.code)) {
        if (error.code !== 'TRANSPORT') this.#scheduleRetry();
        return 'wait';
      }
      // The relay refused it for good (too large, malformed…): report, never retry forever.
      await this.#engine.markDelivered(e.to, e.id);
      if (!this.#settleSend(e, error)) this.#report(error, { peer: e.to, id: e.id });
      return 'done';
    }
  }

  /** Settles the `send` waiting for `e`, if any; false when none was waiting. */
  #settleSend(e: OutgoingEnvelope, failure: ParleyError | undefined): boolean {
    const key = `${e.to}/${e.id}`;
    const waiter = this.#sendWaiters.get(key);
    if (!waiter) return false;
    this.#sendWaiters.delete(key);
    waiter(failure);
    return true;
  }

  /** Resolves every waiting `send`: their envelopes stay queued in the outbox for a later flush. */
  #releaseSendWaiters(): void {
    for (const waiter of this.#sendWaiters.values()) waiter(undefined);
    this.#sendWaiters.clear();
  }

  #scheduleRetry(): void {
    if (this.#retryTimer || this.#closed) return;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      void this.#flushOutbox();
    }, RETRY_DELAY_MS);
  }

  #drain(): Promise<void> {
    if (this.#draining) {
      this.#drainAgain = true;
      return this.#draining;
    }
    const run = (async () => {
      do {
        this.#drainAgain = false;
        for (const m of this.#engine.inbox()) {
          if (this.#closed) return;
          const key = `${m.from}/${m.id}`;
          if (this.#delivering.has(key)) continue;
          if (m.type === 'receipt') {
            this.#delivering.add(key);
            this.#handleReceipt(m);
            await this.#consume(m, key);
            continue;
          }
          if (m.type === 'conversation') {
            // Kept until the app listens to conversations; the book applies it, then it leaves the inbox.
            if (!CONVERSATION_EVENT_NAMES.some((e) => this.#events.listenerCount(e) > 0)) continue;
            this.#delivering.add(key);
            if ((await this.#conversations.receive(m)) === 'keep') {
              this.#delivering.delete(key);
              this.#retryDrain();
              continue;
            }
            await this.#consume(m, key);
            continue;
          }
          const iterators = [...this.#iterators].filter((it) => !it.done);
          const listeners = this.#events.listenerCount('message');
          if (iterators.length === 0 && listeners === 0) continue; // keep it until someone listens
          this.#delivering.add(key);
          const message = toIncoming(m, m.type);
          let holds = iterators.length + 1;
          const release = () => {
            if (--holds === 0) void this.#consume(m, key);
          };
          for (const it of iterators) {
            it.queue.push({ message, release });
            it.wake?.();
            it.wake = undefined;
          }
          for (const e of this.#events.emit('message', message)) this.#report(e, { peer: m.from, id: m.id });
          release();
        }
      } while (this.#drainAgain);
    })();
    this.#draining = run.finally(() => {
      this.#draining = undefined;
    });
    return this.#draining;
  }

  /** Drains again after {@link RETRY_DELAY_MS} (a frame waits for the relay). */
  #retryDrain(): void {
    if (this.#drainRetryTimer || this.#closed) return;
    this.#drainRetryTimer = setTimeout(() => {
      this.#drainRetryTimer = undefined;
      void this.#drain();
    }, RETRY_DELAY_MS);
  }

  #handleReceipt(m: ReceivedMessage): void {
    let ids: string[];
    try {
      ids = decodeReceiptBody(m.payload);
    } catch (e) {
      this.#report(e, { peer: m.from, id: m.id });
      return;
    }
    for (const id of ids) this.#events.emit('delivered', { peer: m.from, id });
  }

  async #consume(m: ReceivedMessage, key: string): Promise<void> {
    try {
      await this.#engine.consume(m.from, m.id);
    } catch (e) {
      // Engine closed or storage failing: it stays in the inbox and comes back after a restart.
      if (!this.#closed) this.#report(e, { peer: m.from, id: m.id });
    } finally {
      this.#delivering.delete(key);
    }
  }
}

/** A refusal that fetching the peer's current certificate/attestation could cure. */
function needsStatements(e: unknown): boolean {
  // `expired`: the peer may have published a renewed certificate since (issue 10, finding 7).
  if (isParleyError(e, 'UNTRUSTED_IDENTITY')) return e.details?.reason === 'missing' || e.details?.reason === 'expired';
  // `manifest`: the release manifest we hold expired; the bot may publish a renewed one.
  if (isParleyError(e, 'ATTESTATION_INVALID')) {
    const reason = e.details?.reason;
    return reason === 'missing' || reason === 'measurement' || reason === 'manifest' || reason === 'expired';
  }
  return false;
}

function toIncoming(m: ReceivedMessage, type: Exclude<PayloadType, 'receipt' | 'conversation'>): IncomingMessage {
  return { from: m.from, id: m.id, sentAt: m.sentAt, receivedAt: m.receivedAt, seq: m.seq, ...decodeContent(type, m.payload) };
}
