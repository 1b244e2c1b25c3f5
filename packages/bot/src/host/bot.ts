/**
 * `createBot`: the bot host. Runs in the host process and never holds a plaintext or a private
 * key: it moves ciphertext between the relay and the enclave worker, stores sealed blobs, and
 * supervises the worker. This file wires the pieces, each in its own module:
 *
 * - delivery (`delivery.ts`): a relay message goes to the enclave, and is acked only once the
 *   enclave's sealed commit is durable; retried across enclave restarts, in order per sender;
 * - replies (`reply-outbox.ts`): the enclave commits each encrypted reply to its sealed outbox
 *   before posting it here; the host sends it per recipient in order and tells the enclave
 *   `sent` after the relay's ack; what is left is posted again by the enclave when it
 *   (re)starts, before it re-runs any interrupted handler;
 * - prekeys (`prekey-publisher.ts`): published with the current attestation and certificate on
 *   login, on a low-supply notice, after an enclave restart and every attestation refresh;
 * - self-healing sessions (`bundle-courier.ts`): the enclave asks a customer for a session reset
 *   like it sends a reply; when a customer asks the bot, the enclave asks the host for that
 *   customer's bundle, which the courier fetches from the relay and hands in (`resend`), and the
 *   re-encrypted replies leave through the reply outbox;
 * - the supervisor (`supervisor.ts`) and the sealed blob store (`blob-store.ts`).
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mkdir } from 'node:fs/promises';
import type { MessagePort, ResourceLimits } from 'node:worker_threads';
import { ParleyError, fromBase64, type PublicIdentity } from '@parley/protocol/verify';
import type { OutgoingContent, RelayMessage } from '@parley/protocol/wire';
import { encodeAttestation, measurementHex, type BotAttestation } from '../attestation.js';
import { canonicalEgress, handlerUrl as toHandlerUrl, parseOrgKey } from '../measurement.js';
import { DEFAULT_REVOCATION_REFRESH_MS, StaffTrust } from './staff-trust.js';
import { RelayLink } from '@parley/relay-link';
import { BotEventEmitter, type BotEventListener } from './bot-events.js';
import type { BotEvents } from './events.js';
import { SealedBlobStore, resolveStateFiles } from './blob-store.js';
import { BundleCourier } from './bundle-courier.js';
import { checkCertificate, parseCertificate } from './certificate.js';
import { encodeManifests, manifestsFor } from './manifests.js';
import { deliverToEnclave } from './delivery.js';
import { PrekeyPublisher } from './prekey-publisher.js';
import { ReplyOutbox } from './reply-outbox.js';
import { ArchiveOutbox } from './archive-outbox.js';
import { withSyntaxLocation } from './handler-syntax.js';
import { checkHandlerOptions } from './handler-options.js';
import { toWireError } from '../rpc/messages.js';
import { EnclaveSupervisor, type BotLogger, type EnclaveInfo, type SealingSecretOption, type SupervisorStats } from './supervisor.js';

/** Re-issue the attestation this often (clients accept 24 h by default). */
export const ATTESTATION_REFRESH_MS = 12 * 60 * 60 * 1000;
/** Retry unsent replies this often. */
export const SEND_RETRY_MS = 1_000;
/** One-time prekeys kept published by default. */
export const DEFAULT_ONE_TIME_PREKEYS = 50;

/** Options of {@link createBot}. */
export interface BotOptions {
  /** The relay, e.g. `https://relay.example.com`. */
  relayUrl: string;
  /** The bot's API key, issued by the relay operator. */
  apiKey: string;
  /**
   * The handler module (path or `file:` URL). It is loaded and run inside the enclave, and its
   * source is part of the measurement. Default export: `async (message, ctx) => {}`.
   */
  handler: string | URL;
  /** Directory of the sealed state (created if missing). */
  stateDir: string;
  /**
   * Where the enclave gets its sealing secret. Default: `{ file: <stateDir>.sealing.key, create: true }`,
   * a 0600 file beside the state folder that the enclave itself reads (and creates on first
   * start). Never inside `stateDir` (refused: a copy of the folder would carry its key). Prefer a
   * mounted secret, or a `provide` function fetching it from a KMS. See README "Sealing secret".
   */
  sealingSecret?: SealingSecretOption;
  /**
   * The sealed state is bound to the enclave's measurement: after a code change (the SDK, the
   * protocol, the engine or the handler) the enclave refuses the state until it is migrated.
   * Give the measurement the state is sealed to (64 hex chars, as the refusal names it), or
   * `'unbound'` for a state written before issue 10; the enclave re-seals it for the running code
   * and the host logs `sealing.migrated`. See README "Measurement binding".
   */
  migrateFrom?: string;
  /**
   * The rollback anchor: a small file outside `stateDir` where the enclave records the state
   * version before it runs the handler, so that an older copy of the state folder is refused.
   * Default `<stateDir>.anchor`; `false` turns rollback detection off. See README "Rollback".
   */
  rollbackAnchor?: string | false;
  /** One-time prekeys kept published (default 50, at most 100). */
  oneTimePrekeys?: number;
  /**
   * The bot's org certificate, as printed by `parley-org certify` (base64, or the `--json`
   * output), or its bytes. Published with the prekeys (and the current attestation), so
   * customers pinning the org key accept this bot. It must certify this bot's identity, which
   * the enclave creates on first start: start once without it, certify `bot.identityHex`, then
   * restart with it (or call `bot.setCertificate`). See README "Certificate and attestation".
   */
  certificate?: Uint8Array | string;
  /**
   * Org-signed release manifests this bot runs under, as printed by `parley-org manifest`
   * (base64, or the `--json` output), or their bytes. Those naming this bot's measurement are
   * published with the prekeys (at most 8); one made for other code is left out with a warning
   * naming its measurement. Customers pinning only the org key (`trust.releaseManifests`) accept
   * the bot through them. Absent: what the relay holds is kept; `[]` removes it. See README
   * "Release manifests"; `bot.setManifests` publishes new ones without a restart.
   */
  manifests?: readonly (Uint8Array | string)[];
  /**
   * The org-signed compliance archive disclosure (`parley-org disclose`, base64 or bytes),
   * published with the prekeys so customers' clients can verify it before the first message
   * (client README "Compliance archive"). Absent: what the relay holds is kept. With `orgKey`
   * pinned, the enclave verifies it and seals every message the bot sends in a conversation to
   * its compliance key, appended to the relay's archive (README "Compliance archive: the bot's
   * messages"); without `orgKey` it is only published (a warning says so). A disclosure that
   * does not verify against `orgKey` fails the start (`FORBIDDEN`, reason `archiveNotDisclosed`).
   */
  archiveDisclosure?: Uint8Array | string;
  /**
   * Time limit of one handler run, ms (default 30,000). At the limit the run is abandoned (its
   * later replies are not sent; a busy loop's worker is restarted), counted as a failure, and
   * the customer gets `failureReply`. See README "Handler limits and failures".
   */
  handlerTimeoutMs?: number;
  /**
   * What the customer gets when a run fails (times out, throws, asks for an oversize reply):
   * text, a JSON value or bytes, sent once per message. Default: "Sorry, something went wrong on
   * our side. Please try again."; `false` (or `null`) sends none.
   */
  failureReply?: OutgoingContent | false | null;
  /**
   * What a customer gets in its conversation with the bot when the handoff ticket the bot asked
   * for (`ctx.handoff`, or one the customer opened with the bot to notify) waits longer than the
   * relay's `ticketUnclaimedMs` unclaimed: text, a JSON value or bytes, sent once per ticket
   * (and the `handoffUnclaimed` event fires). Default: "Everyone is busy right now. You are still
   * in the queue; an agent will join as soon as one is free."; `null` sends none (the event
   * still fires). Host configuration like `failureReply`, not part of the measurement: a host
   * could change the text, but only this one message, once per ticket, into a conversation the
   * customer owns with the bot. See README "Conversations and handoff".
   */
  handoffUnclaimedReply?: OutgoingContent | null;
  /**
   * Failed runs of one message after which it is quarantined: never run again, across restarts
   * (default 3, at most 100). Until then a failed run is run again at once, flagged `redelivered`.
   */
  maxHandlerFailures?: number;
  /**
   * Development only, unsafe in production: a failing handler's error message, file, line and
   * stack reach the host (console and logger, and the `handlerFailed` event's `dev`). They may
   * carry customers' plaintext. Part of the measurement: a dev bot attests to another value
   * than the production one. Default `false`: errors stay withheld at the enclave boundary.
   */
  dev?: boolean;
  /** Worker heap limits (default 256 MB old generation). */
  resourceLimits?: ResourceLimits;
  /** Worker restart backoff after crashes (default 50 ms doubling to 5 s; reset after 10 s up). */
  restartBackoffMs?: { min: number; max: number };
  /** Structured logger (pino-compatible). Default: warnings and errors as JSON lines on stderr. */
  logger?: BotLogger;
  /** socket.io-client transports (default `['websocket']`). */
  transports?: string[];
  /**
   * The egress policy: where the handler may send data, through `ctx.fetch` only. Host names
   * (`api.example.com`: HTTPS), `host:port`, or origins (`https://api.example.com`,
   * `http://127.0.0.1:8080`: plain HTTP only where an entry says so). Part of the measurement,
   * so clients verify it with the code (give the same list to `computeMeasurement`). Default:
   * none (the handler has no network). See README "Egress policy and ctx.fetch".
   */
  egress?: readonly string[];
  /**
   * Where the enclave runs: `'worker'` (default), a worker thread of this process; `'process'`,
   * its own Node process under Node's permission model (no file writes but its rollback anchor,
   * no child processes, no native add-ons). Same RPC and measurement. See README "Enclave
   * modes: worker and process" for what each protects against, and what neither does.
   */
  enclave?: 'worker' | 'process';
  /**
   * The org root public key (32 bytes or 64 hex chars, as `parley-org keygen` prints it). With it,
   * a sender publishing a staff credential is verified inside the enclave (org root → issuer →
   * device, the issuer's policy, expiry, the relay's revocation lists) and the handler sees who
   * they are (`message.staff`); a staff device whose credential is refused, expired or revoked is
   * not handled. Customers still need no certificate. Part of the measurement (give it to
   * `computeMeasurement` too). See README "Staff".
   */
  orgKey?: Uint8Array | string;
  /**
   * How often the staff revocation lists are fetched from the relay, ms (also after each login).
   * Default 300,000 (5 min, as `ParleyClient`'s), 1,000..86,400,000. Only with `orgKey`.
   */
  revocationRefreshMs?: number;
  /**
   * How long `createBot` waits for the first relay login before it rejects with `TRANSPORT` /
   * `timeout` (ms). Default 15,000. A refused connection, a DNS or TLS failure and a refused API
   * key reject sooner, each with its own typed error (README "Connection errors").
   */
  connectTimeoutMs?: number;
  /**
   * The CA certificate(s) (PEM) that signed the relay's TLS certificate, trusted in place of the
   * system store: a private CA or a self-signed relay. Without it such a relay fails with
   * `TRANSPORT` / `tls`.
   */
  ca?: string | Uint8Array | readonly (string | Uint8Array)[];
}

/** A running bot. */
export interface Bot {
  /** The bot's device id (hash of its identity keys, which never leave the enclave). */
  readonly deviceId: string;
  /** The bot's public identity. */
  readonly identity: PublicIdentity;
  /** The identity as `parley-org certify --identity` takes it: signingKey ‖ dhKey, 128 hex chars. */
  readonly identityHex: string;
  /** The org certificate being published, if any (bytes). */
  certificate(): Uint8Array | undefined;
  /**
   * Publishes a (new) org certificate for this bot now, with the prekeys and attestation.
   * @throws ParleyError `USAGE` when it is malformed or certifies another identity.
   */
  setCertificate(certificate: Uint8Array | string): Promise<void>;
  /** The release manifests being published (bytes; those naming this bot's measurement). */
  manifests(): Uint8Array[];
  /**
   * Publishes these release manifests now (replacing the previous ones), with the prekeys: those
   * naming this bot's measurement; others are left out with a warning.
   * @returns how many were published.
   * @throws ParleyError `USAGE` when one is malformed, or more than 8 name this measurement.
   */
  setManifests(manifests: readonly (Uint8Array | string)[]): Promise<number>;
  /** The measurement the enclave computed for itself, hex (compare with `computeMeasurement`). */
  readonly measurement: string;
  /** The latest attestation (re-issued every 12 h and published with the prekeys). */
  attestation(): BotAttestation;
  /** Asks the enclave for a freshly signed attestation and publishes it. */
  refreshAttestation(): Promise<BotAttestation>;
  /** Supervisor counters: starts, crashes, invalid messages, handler failures (timeouts, quarantined messages), session resets, replies given up. */
  readonly stats: Readonly<SupervisorStats>;
  /** Resolves when nothing is waiting: no delivery in flight, no reply unsent, no customer bundle being fetched, no ack pending. */
  idle(): Promise<void>;
  /** True while logged in to the relay. */
  readonly connected: boolean;
  /**
   * Listens for a bot event (README "Events"): `connected`, `disconnected`, `authFailed`,
   * `handlerFailed`, `prekeysLow`, `enclaveRestarted`, `handoffUnclaimed`. Returns a function that removes the
   * listener. A listener that throws is logged and does not stop the bot.
   * @example
   * bot.on('authFailed', ({ error }) => alert(`bot login refused: ${error.details?.reason}`));
   */
  on<K extends keyof BotEvents>(event: K, listener: BotEventListener<K>): () => void;
  /** Removes a listener added with {@link Bot.on}. */
  off<K extends keyof BotEvents>(event: K, listener: BotEventListener<K>): void;
  /** Disconnects and stops the enclave. */
  close(): Promise<void>;
}

/**
 * Test hooks (`@parley/bot/testing`, never for production): they expose what the enclave
 * boundary exists to hide.
 */
export interface BotTestingHooks {
  /**
   * A `MessagePort` over which the enclave posts its private key bytes when the test posts
   * `'dump'` on the other end. Transferred to the first worker; the host never reads from it.
   */
  unsafeTestingExposeKeys?: MessagePort;
  /** Sees every message crossing the host/enclave boundary. */
  unsafeTestingTap?: (direction: 'toEnclave' | 'fromEnclave', message: unknown) => void;
}

/** A bot started with test hooks: the {@link Bot} plus its supervisor (crash injection, raw posts). */
export interface TestingBot extends Bot {
  readonly supervisor: EnclaveSupervisor;
}

/** `migrateFrom` as the enclave takes it. */
function parseMigrateFrom(value: string | undefined): Uint8Array | 'unbound' | undefined {
  if (value === undefined || value === 'unbound') return value;
  if (typeof value !== 'string' || !/^[0-9a-fA-F]{64}$/.test(value)) throw new ParleyError('USAGE', "migrateFrom must be a measurement (64 hex chars) or 'unbound'");
  return new Uint8Array(Buffer.from(value, 'hex'));
}

const stderrLogger: BotLogger = {
  info: () => undefined,
  warn: (obj, msg) => process.stderr.write(`${JSON.stringify({ level: 'warn', ...obj, msg })}\n`),
  error: (obj, msg) => process.stderr.write(`${JSON.stringify({ level: 'error', ...obj, msg })}\n`),
};

/**
 * Starts a bot: opens the sealed state, starts the enclave worker (which creates the bot's
 * identity on first start), logs in to the relay and publishes the bot's prekeys.
 * @throws ParleyError `USAGE` (bad options, bad handler module), `STORAGE_INTEGRITY` (sealed
 *   state altered or sealed under another secret), `UNAUTHENTICATED` (API key refused),
 *   `ENCLAVE_UNAVAILABLE` (the worker could not start).
 * @example
 * const bot = await createBot({
 *   relayUrl: 'https://relay.example.com',
 *   apiKey: process.env.PARLEY_API_KEY!,
 *   handler: './handler.mjs',
 *   stateDir: '/var/lib/parley-bot',
 * });
 * console.log('pin this measurement in your clients:', bot.measurement);
 */
export async function createBot(options: BotOptions): Promise<Bot> {
  return startBot(options, {});
}

/** {@link createBot} with test hooks; exported by `@parley/bot/testing` only. */
export async function startBot(options: BotOptions, hooks: BotTestingHooks): Promise<TestingBot> {
  if (!options || typeof options.relayUrl !== 'string') throw new ParleyError('USAGE', 'relayUrl is required');
  if (typeof options.apiKey !== 'string' || options.apiKey.length === 0) throw new ParleyError('USAGE', 'apiKey is required');
  if (typeof options.stateDir !== 'string' || options.stateDir.length === 0) throw new ParleyError('USAGE', 'stateDir is required');
  const oneTimePrekeys = options.oneTimePrekeys ?? DEFAULT_ONE_TIME_PREKEYS;
  if (!Number.isInteger(oneTimePrekeys) || oneTimePrekeys < 0 || oneTimePrekeys > 100) throw new ParleyError('USAGE', 'oneTimePrekeys must be 0..100');
  const logger = options.logger ?? stderrLogger;
  const handlerLimits = checkHandlerOptions(options);
  /** `bot.on(...)`: every part of the host reports through `events.emit(name, value)`. */
  const events = new BotEventEmitter(logger);
  let certificate = options.certificate === undefined ? undefined : parseCertificate(options.certificate);
  const handlerUrl = toHandlerUrl(options.handler);
  const egress = canonicalEgress(options.egress);
  if (options.enclave !== undefined && options.enclave !== 'worker' && options.enclave !== 'process') throw new ParleyError('USAGE', "enclave must be 'worker' or 'process'");
  const orgKey = options.orgKey === undefined ? undefined : parseOrgKey(options.orgKey);
  const revocationRefreshMs = options.revocationRefreshMs ?? DEFAULT_REVOCATION_REFRESH_MS;
  if (!Number.isInteger(revocationRefreshMs) || revocationRefreshMs < 1_000 || revocationRefreshMs > 86_400_000) throw new ParleyError('USAGE', 'revocationRefreshMs must be 1000..86400000');
  await mkdir(options.stateDir, { recursive: true, mode: 0o700 });
  const migrateFrom = parseMigrateFrom(options.migrateFrom);
  const stateFiles = await resolveStateFiles(options.stateDir, {
    ...(options.sealingSecret ? { sealingSecret: options.sealingSecret } : {}),
    ...(options.rollbackAnchor !== undefined ? { rollbackAnchor: options.rollbackAnchor } : {}),
  });
  const blobStore = await SealedBlobStore.open(join(options.stateDir, 'sealed'));

  let inFlight = 0;
  let attestation: BotAttestation | undefined;
  /** The release manifests to publish; `undefined` leaves the relay's list as it is. */
  let manifests: Uint8Array[] | undefined;
  let closed = false;
  const idleWaiters: (() => void)[] = [];
  const checkIdle = (): void => {
    if (inFlight === 0 && outbox.empty && bundles.empty && archives.empty) for (const w of idleWaiters.splice(0)) w();
  };

  const outbox: ReplyOutbox = new ReplyOutbox({
    send: (req) => relay.send(req),
    canSend: () => relay.authenticated,
    // Stored by the relay (or refused for good): the enclave may drop it from its sealed outbox.
    onSettled: (to, id) => void supervisor.call('sent', { to, id }).catch(() => undefined),
    onChange: checkIdle,
    logger,
  });

  // The bot's own conversation messages, sealed to the compliance archive by the enclave, appended at the relay.
  const archives: ArchiveOutbox = new ArchiveOutbox({
    append: (ref, submission, o) => relay.archiveAppend(ref, submission, o),
    canSend: () => relay.authenticated,
    onSettled: async (key) => void (await supervisor.call('archived', { key })),
    onChange: checkIdle,
    logger,
  });

  // Customers' bundles the enclave asked for (a customer's session reset), fetched from the relay.
  const bundles: BundleCourier = new BundleCourier({
    fetch: (peer) => relay.fetchBundle(peer),
    handIn: (peer, bundle) => supervisor.call('resend', { peer, bundle }),
    canFetch: () => relay.authenticated,
    onChange: checkIdle,
    logger,
  });

  // With an org key: staff credentials and revocation lists go to the enclave (README "Staff").
  const staff: StaffTrust | undefined = orgKey
    ? new StaffTrust({
        fetchRevocations: () => relay.fetchRevocations(),
        fetchIdentity: (peer) => relay.fetchIdentity(peer),
        handInRevocations: (p) => supervisor.call('revocations', p),
        handInStatements: (p) => supervisor.call('peerStatements', p),
        canFetch: () => relay.authenticated,
        logger,
      })
    : undefined;

  const archiveDisclosure = typeof options.archiveDisclosure === 'string' ? fromBase64(options.archiveDisclosure.trim()) : options.archiveDisclosure;
  if (archiveDisclosure && archiveDisclosure.length > 0 && !orgKey) {
    logger.warn({ event: 'archive.notSealing' }, 'archiveDisclosure without orgKey: the disclosure is published but the bot cannot verify it, so it seals none of its own messages to the archive');
  }
  const prekeys: PrekeyPublisher = new PrekeyPublisher({
    generate: () => supervisor.call('prekeys', { generate: oneTimePrekeys }),
    upload: (batch) => relay.uploadPrekeys(batch),
    markPublished: (ids) => supervisor.call('prekeysPublished', { ids }),
    statements: () => ({
      ...(attestation ? { attestation: encodeAttestation(attestation) } : {}),
      ...(certificate ? { certificate } : {}),
      // An empty array removes the relay's list.
      ...(manifests ? { manifests: manifests.length > 0 ? encodeManifests(manifests) : new Uint8Array(0) } : {}),
      ...(archiveDisclosure ? { disclosure: archiveDisclosure } : {}),
    }),
    canPublish: () => relay.authenticated,
    logger,
  });

  /**
   * Hands one relay delivery to the enclave. `ack` once the enclave committed it (or refused it
   * for good); `keep` leaves it with the relay, which pushes it again later. The link calls this
   * in order per sender, different senders concurrently.
   */
  const deliver = async (m: RelayMessage): Promise<'ack' | 'keep'> => {
    if (closed) return 'keep';
    inFlight++;
    try {
      // A staff sender's credential reaches the enclave first; a refused one drops the delivery.
      if (staff && (await staff.beforeDeliver(m)) === 'refused') return 'ack';
      return await deliverToEnclave(supervisor, m, { logger, stopped: () => closed });
    } finally {
      inFlight--;
      checkIdle();
    }
  };

  const supervisor: EnclaveSupervisor = new EnclaveSupervisor({
    handlerUrl,
    blobStore,
    sealing: stateFiles.sealing,
    ...(stateFiles.rollbackAnchor ? { rollbackAnchor: stateFiles.rollbackAnchor } : {}),
    ...(migrateFrom ? { migrateFrom } : {}),
    oneTimePrekeys,
    ...(egress.length > 0 ? { egress } : {}),
    ...(orgKey ? { orgKey } : {}),
    ...(options.enclave ? { enclave: options.enclave } : {}),
    ...(options.resourceLimits ? { resourceLimits: options.resourceLimits } : {}),
    ...(options.restartBackoffMs ? { restartBackoffMs: options.restartBackoffMs } : {}),
    ...handlerLimits,
    onHandlerFailed: (e) => events.emit('handlerFailed', e),
    logger,
    onSend: (out) => outbox.push(out),
    onNeedBundle: (peer) => bundles.request(peer),
    onArchive: (out) => archives.push(out),
    ...(archiveDisclosure && archiveDisclosure.length > 0 && orgKey ? { archiveDisclosure } : {}),
    onReady: (info: EnclaveInfo, restart: boolean) => {
      attestation = info.attestation;
      // A (re)started enclave posts the replies it committed but never handed over (`send`,
      // in commit order) before it re-runs any interrupted handler, so nothing to fetch here.
      // The restarted enclave signed a fresh attestation: publish it.
      if (restart && relay.authenticated) void prekeys.publish();
      if (restart) events.emit('enclaveRestarted', { crashes: supervisor.stats.crashes });
    },
    ...(hooks.unsafeTestingExposeKeys ? { unsafeTestingExposeKeys: hooks.unsafeTestingExposeKeys } : {}),
    ...(hooks.unsafeTestingTap ? { unsafeTestingTap: hooks.unsafeTestingTap } : {}),
  });

  const relay: RelayLink = new RelayLink({
    url: options.relayUrl,
    logger,
    order: 'per-sender',
    ...(options.connectTimeoutMs !== undefined ? { connectTimeoutMs: options.connectTimeoutMs } : {}),
    ...(options.ca !== undefined ? { ca: options.ca } : {}),
    ...(options.transports ? { socketOptions: { transports: options.transports } } : {}),
    credentials: {
      apiKey: options.apiKey,
      // The enclave signs; it may be restarting, so wait for it (the relay allows a few seconds).
      answer: async (challenge) => {
        await supervisor.whenReady();
        return supervisor.call('relayAuth', challenge);
      },
    },
  });
  relay.setHandlers({
    onAuthenticated: (result) => {
      void prekeys.publish();
      void staff?.refreshRevocations();
      outbox.pumpAll();
      archives.pumpAll();
      bundles.pumpAll();
      events.emit('connected', { deviceId: result.deviceId });
    },
    onMessage: deliver,
    onPrekeysLow: (remaining) => {
      void prekeys.publish();
      events.emit('prekeysLow', { remaining });
    },
    onDisconnected: (reason) => events.emit('disconnected', { reason }),
    // A handoff ticket naming this bot waited unclaimed: tell the app, and the customer (README
    // "Conversations and handoff"). The enclave decides whether and where the reply goes.
    onTicketUnclaimed: ({ ticket, waitingMs }) => {
      if (ticket.notify !== info.deviceId) return;
      events.emit('handoffUnclaimed', { ticketId: ticket.id, customer: ticket.customer, queue: ticket.queue, waitingMs });
      supervisor.call('handoffUnclaimed', { ticketId: ticket.id, customer: ticket.customer, waitingMs }).then(
        ({ sent }) => logger.info({ event: 'handoff.unclaimed', ticket: ticket.id, customer: ticket.customer, waitingMs, replySent: sent }, 'a handoff ticket waits unclaimed'),
        (e: unknown) => logger.warn({ event: 'handoff.unclaimedFailed', ticket: ticket.id, error: toWireError(e) }, 'could not tell the customer that its handoff ticket waits unclaimed'),
      );
    },
    // The link has stopped reconnecting: a refused key stays refused.
    onAuthFailed: (error) => events.emit('authFailed', { error }),
    onError: (e) => logger.warn({ event: 'relay.error', code: e.code }, 'relay error'),
  });

  let info: EnclaveInfo;
  try {
    info = await supervisor.start();
  } catch (e) {
    await blobStore.close();
    throw await withSyntaxLocation(e, fileURLToPath(handlerUrl));
  }
  attestation = info.attestation;
  try {
    // Only the manifests for the code the enclave measured in itself are published.
    if (options.manifests !== undefined) manifests = manifestsFor(options.manifests, info.measurement, logger);
    // The certificate must name the identity the enclave holds (created on its first start).
    if (certificate) checkCertificate(certificate, info.identity, logger);
    else {
      logger.warn(
        { event: 'unsafeDefault', option: 'certificate', identity: measurementHex(info.identity.signingKey) + measurementHex(info.identity.dhKey) },
        'no org certificate: customers pinning your org key refuse this bot; certify this identity with `parley-org certify --identity <identity>` and pass it as the `certificate` option (or call bot.setCertificate)',
      );
    }
    await relay.connect();
    await prekeys.publish();
  } catch (e) {
    await relay.close();
    await supervisor.stop();
    await blobStore.close();
    throw e;
  }

  const revocationTimer = staff ? setInterval(() => void staff.refreshRevocations(), revocationRefreshMs) : undefined;
  revocationTimer?.unref();
  const retryTimer = setInterval(() => {
    outbox.pumpAll();
    archives.pumpAll();
    bundles.pumpAll();
  }, SEND_RETRY_MS);
  retryTimer.unref();
  const attestTimer = setInterval(() => {
    supervisor.call('attest', {}).then(
      (a) => {
        attestation = a;
        // Re-signed: publish it with the prekeys, so clients never see one older than 12 h.
        if (relay.authenticated) void prekeys.publish();
      },
      () => undefined,
    );
  }, ATTESTATION_REFRESH_MS);
  attestTimer.unref();

  return {
    deviceId: info.deviceId,
    identity: info.identity,
    identityHex: measurementHex(info.identity.signingKey) + measurementHex(info.identity.dhKey),
    measurement: measurementHex(info.measurement),
    attestation: () => attestation!,
    async refreshAttestation() {
      const fresh = await supervisor.call('attest', {});
      attestation = fresh;
      if (relay.authenticated) await prekeys.publish();
      return fresh;
    },
    certificate: () => certificate?.slice(),
    async setCertificate(value: Uint8Array | string) {
      const bytes = parseCertificate(value);
      checkCertificate(bytes, info.identity, logger);
      certificate = bytes;
      await prekeys.publish();
    },
    manifests: () => (manifests ?? []).map((m) => m.slice()),
    async setManifests(values: readonly (Uint8Array | string)[]) {
      manifests = manifestsFor(values, info.measurement, logger);
      await prekeys.publish();
      return manifests.length;
    },
    stats: supervisor.stats,
    get connected() {
      return relay.authenticated;
    },
    on: (event, listener) => events.on(event, listener),
    off: (event, listener) => events.off(event, listener),
    async idle() {
      await relay.idle();
      await new Promise<void>((resolve) => {
        idleWaiters.push(resolve);
        checkIdle();
      });
      await relay.idle();
    },
    async close() {
      closed = true;
      clearInterval(retryTimer);
      clearInterval(attestTimer);
      clearInterval(revocationTimer);
      await relay.close();
      await supervisor.stop();
      await blobStore.close();
    },
    supervisor,
  };
}
