/**
 * The one relay client, shared by devices (`@parley/client`) and the bot host (`@parley/bot`):
 * speaks the relay contract (`@parley/protocol/wire`, relay.ts) and nothing else. It answers the
 * `hello` challenge on every (re)connection, reconnects with exponential backoff and jitter,
 * turns acks into results or typed errors, and batches delivery acks. It holds no keys: the
 * login answer is signed by a callback (a device's engine, or the bot's enclave over RPC).
 *
 * It never lets socket.io buffer an event while logged out (the relay would answer
 * `UNAUTHENTICATED`): calls made while not authenticated fail at once with `TRANSPORT`, and the
 * caller's outbox retries them after the next login.
 */
import type * as v from 'valibot';
import { ANSWERS, PUSHES, checked } from './answers.js';
import { TICKET_ANSWERS, TICKET_PUSHES, toTicket } from './ticket-answers.js';
import { uint8ArrayParser } from './binary-parser.js';
import {
  classifyConnectError,
  connectFailureError,
  connectTimeoutError,
  displayUrl,
  isFinalRefusal,
  loginRefusedError,
  type ConnectFailure,
} from './connect-error.js';
import { io, type ManagerOptions, type Socket, type SocketOptions } from 'socket.io-client';
import { ParleyError, isParleyError, type PrekeyBundle, type PrekeyUpload, type PublicIdentity } from '@parley/protocol/verify';
import {
  RELAY_MAX_ACK_BATCH,
  RELAY_NONCE_BYTES,
  RELAY_PROTOCOL_VERSION,
  type AuthAnswer,
  type AuthResult,
  type ClientToServerEvents,
  type PurgeRequest,
  type PurgeResult,
  type ArchiveOpenedNotice,
  type RelayHello,
  type RelayMessage,
  type RelayResult,
  type SendRequest,
  type SendResult,
  type ServerToClientEvents,
  DEVICE_ID_PATTERN,
  TICKET_ID_PATTERN,
  TICKET_NAME_PATTERN,
  type Ticket,
  type TicketUnclaimed,
  type TicketUpdate,
} from '@parley/protocol/wire';

type RelaySocket = Socket<ServerToClientEvents, ClientToServerEvents>;

/** The relay's login challenge, as the key holder signs it. */
export interface LoginChallenge {
  /** The relay's random nonce from `hello`. */
  readonly serverNonce: Uint8Array;
  /** The origin this link dialled (never one the relay names). */
  readonly origin: string;
}

/** A signed login answer, without the API key (the link adds it). */
export type LoginAnswer = Omit<AuthAnswer, 'apiKey'>;

/** What the link needs to log in. It holds no key: the key holder answers the challenge. */
export interface RelayCredentials {
  /**
   * Builds the signed login answer (context `relayAuth`): a fresh client nonce, the time and the
   * signature, e.g. `engine.relayLoginAnswer(challenge)` or the bot enclave's `relayAuth` call.
   */
  readonly answer: (challenge: LoginChallenge) => LoginAnswer | Promise<LoginAnswer>;
  /** Bots only. */
  readonly apiKey?: string;
}

/** A minimal structured logger; Parley never logs content or keys. */
export interface Logger {
  debug?(obj: object, msg?: string): void;
  info?(obj: object, msg?: string): void;
  warn?(obj: object, msg?: string): void;
  error?(obj: object, msg?: string): void;
}

/** Options of {@link RelayLink}. */
export interface RelayLinkOptions {
  /** Relay URL, e.g. `https://relay.example.com`. */
  readonly url: string;
  readonly credentials: RelayCredentials;
  /** The origin to sign. Default: the origin of `url` (the one dialled, never one the relay names). */
  readonly origin?: string;
  /** First reconnect delay. Default 250 ms; doubles up to `maxReconnectDelayMs`, with ±50% jitter. */
  readonly reconnectDelayMs?: number;
  /** Default 10 s. */
  readonly maxReconnectDelayMs?: number;
  /** Ack timeout of each call. Default 10 s. */
  readonly callTimeoutMs?: number;
  /**
   * How long {@link RelayLink.connect} waits for the first login before it rejects with
   * `TRANSPORT` / `timeout`. Default {@link DEFAULT_CONNECT_TIMEOUT_MS} (15 s). A refused
   * connection, a DNS failure or an untrusted certificate rejects sooner: at the first attempt
   * that fails that way.
   */
  readonly connectTimeoutMs?: number;
  /**
   * Node only: the CA certificate(s) to trust for the relay's TLS certificate (PEM), in place of
   * the system store, e.g. a private CA or a self-signed relay. Browsers cannot take it: they
   * use the system's trust store.
   */
  readonly ca?: string | Uint8Array | readonly (string | Uint8Array)[];
  /** Delivery acks are batched for this long. Default 25 ms. */
  readonly ackDelayMs?: number;
  /**
   * How deliveries are handed to `onMessage`: `serial` (default) one at a time in arrival order;
   * `per-sender` in order per sender, different senders concurrently (the bot host: its
   * enclave handles conversations in parallel).
   */
  readonly order?: 'serial' | 'per-sender';
  /** Extra socket.io-client options (e.g. `transports: ['websocket', 'polling']`). */
  readonly socketOptions?: Partial<ManagerOptions & SocketOptions>;
  readonly logger?: Logger;
}

/** Callbacks of the transport; each is optional. */
export interface TransportHandlers {
  /** Logged in (first time and after every reconnect). Awaited before messages are handled. */
  onAuthenticated?(result: AuthResult): Promise<void> | void;
  /** A relay delivery. Resolve once it is handled and persisted; the transport then acks it. Reject to leave it un-acked. */
  onMessage?(message: RelayMessage): Promise<'ack' | 'keep'>;
  onPrekeysLow?(remaining: number): void;
  onDisconnected?(reason: string): void;
  /**
   * The relay refused the login for good (`UNAUTHENTICATED`: API key unknown or revoked, origin
   * mismatch, clock skew…; `details.reason` says which), at a (re)connection or by dropping a
   * logged-in socket. The link stops reconnecting; a later {@link RelayLink.connect} tries again.
   */
  onAuthFailed?(error: ParleyError): void;
  /** Errors no caller is waiting for (login refused, relay errors). */
  onError?(error: ParleyError): void;
  /**
   * A handoff ticket changed (`opened`, `claimed`, `released`, `closed`): pushed to staff
   * (agents, supervisors) on every relay node, and to the ticket's customer and notify device.
   * A malformed push is dropped (and reported to `onError`).
   */
  onTicket?(update: TicketUpdate): void;
  /** A ticket of this device (customer or notify device) waited longer than the relay's `ticketUnclaimedMs`; once per waiting period. */
  onTicketUnclaimed?(info: TicketUnclaimed): void;
  /**
   * The compliance officer opened (or exported) an archive ref this device appended to. The
   * notice is acknowledged to the relay once this resolves (then never pushed again); without
   * this handler, or when it rejects, it is not, and the relay pushes it again at the next login.
   */
  onArchiveOpened?(notice: ArchiveOpenedNotice): Promise<void> | void;
}

const DEFAULT_CALL_TIMEOUT_MS = 10_000;
/** Default {@link RelayLinkOptions.connectTimeoutMs}. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 15_000;

/** PEM text for socket.io-client (which types `ca` as strings). */
function caOption(ca: RelayLinkOptions['ca']): { ca: string | string[] } | Record<string, never> {
  if (ca === undefined) return {};
  const text = (c: string | Uint8Array): string => (typeof c === 'string' ? c : new TextDecoder().decode(c));
  return { ca: typeof ca === 'string' || ca instanceof Uint8Array ? text(ca) : ca.map(text) };
}

interface ConnectWaiter {
  resolve: (r: AuthResult) => void;
  reject: (e: ParleyError) => void;
  timer: ReturnType<typeof setTimeout> | undefined;
}

function toError(e: unknown, event: string): ParleyError {
  if (isParleyError(e)) return e;
  return new ParleyError('TRANSPORT', `relay call "${event}" failed (${e instanceof Error ? e.message : 'no answer'})`, { cause: e });
}

/**
 * A logged-in connection to one relay.
 * @example
 * const link = new RelayLink({ url, credentials: { answer: (c) => engine.relayLoginAnswer(c) } });
 * link.setHandlers({ onMessage: async (m) => { await engine.receive(m); return 'ack'; } });
 * await link.connect();
 */
export class RelayLink {
  readonly #opts: RelayLinkOptions;
  readonly #socket: RelaySocket;
  readonly #origin: string;
  #handlers: TransportHandlers = {};
  #authenticated = false;
  #closed = false;
  #started = false;
  #attempt = 0;
  #reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  #ackTimer: ReturnType<typeof setTimeout> | undefined;
  #pendingAcks: number[] = [];
  #inbound: Promise<void> = Promise.resolve();
  /** `per-sender` order: the tail of each sender's chain. */
  readonly #senders = new Map<string, Promise<void>>();
  #generation = 0;
  #waiters: ConnectWaiter[] = [];
  #lastAuth: AuthResult | undefined;
  /** The final login refusal; no reconnecting until the next {@link connect}. */
  #refused: ParleyError | undefined;
  /** The last failed attempt since the last login (for the timeout error and log dedupe). */
  #lastFailure: ConnectFailure | undefined;

  constructor(options: RelayLinkOptions) {
    this.#opts = options;
    let origin: string;
    try {
      origin = options.origin ?? new URL(options.url).origin;
    } catch {
      throw new ParleyError('USAGE', 'relay url is not a valid URL');
    }
    this.#origin = origin;
    this.#socket = io(options.url, {
      transports: ['websocket'],
      parser: uint8ArrayParser,
      ...caOption(options.ca),
      ...options.socketOptions,
      autoConnect: false,
      // Our own loop: socket.io does not reconnect after a server-side disconnect, and a relay
      // restart is exactly that.
      reconnection: false,
      forceNew: true,
    });
    const s = this.#socket;
    s.on('hello', (hello) => void this.#onHello(hello));
    s.on('message', (m) => this.#onPush('message', m, (message) => this.#onMessage(message)));
    s.on('prekeysLow', (info) => this.#onPush('prekeysLow', info, ({ remaining }) => this.#handlers.onPrekeysLow?.(remaining)));
    s.on('ticket', (update) => this.#onTicketPush('ticket', update));
    s.on('ticketUnclaimed', (info) => this.#onTicketPush('ticketUnclaimed', info));
    s.on('archiveOpened', (notice, ack) => this.#onPush('archiveOpened', notice, (n) => {
      const handler = this.#handlers.onArchiveOpened;
      if (!handler) return;
      void (async () => handler.call(this.#handlers, n))().then(
        () => typeof ack === 'function' && ack(),
        (e: unknown) => this.#handlers.onError?.(toError(e, 'archiveOpened')),
      );
    }));
    s.on('relayError', (err) => {
      const error = ParleyError.fromJSON(err);
      this.#opts.logger?.warn?.({ event: 'relayError', code: error.code, reason: error.details?.['reason'] });
      // The relay dropping this socket because the key was revoked (or the like): final.
      if (isFinalRefusal(error, 'push')) this.#refuse(loginRefusedError(this.#opts.url, error));
      else this.#handlers.onError?.(error);
    });
    s.on('disconnect', (reason) => this.#onDown(String(reason)));
    s.on('connect_error', (err) => this.#onConnectError(err));
  }

  /** Sets the callbacks (replacing earlier ones). */
  setHandlers(handlers: TransportHandlers): void {
    this.#handlers = handlers;
  }

  /** True while logged in. */
  get authenticated(): boolean {
    return this.#authenticated;
  }

  /** The last successful login. */
  get session(): AuthResult | undefined {
    return this.#lastAuth;
  }

  /**
   * Connects and logs in; resolves after the first login (and its `onAuthenticated`). Always
   * settles: it rejects at the first attempt (after this call) that is refused, fails DNS or TLS,
   * at a final login refusal, or after `timeoutMs` (default `connectTimeoutMs`). Unless the login
   * was refused, the link keeps reconnecting in the background afterwards until {@link close};
   * calling `connect` again retries at once (also after a login refusal).
   * @throws ParleyError `TRANSPORT` with `details.reason` `refused` | `dns` | `tls` | `timeout` |
   *   `closed` (and `details.cause`, the system or TLS error code); `UNAUTHENTICATED` when the
   *   relay refuses the login (`details.reason` from the relay: `apiKey`, `apiKeyRevoked`,
   *   `origin`…); `UNSUPPORTED_VERSION`.
   */
  connect(options: { timeoutMs?: number } = {}): Promise<AuthResult> {
    if (this.#closed) return Promise.reject(new ParleyError('USAGE', 'transport is closed'));
    if (this.#authenticated && this.#lastAuth) return Promise.resolve(this.#lastAuth);
    const timeoutMs = options.timeoutMs ?? this.#opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    if (typeof timeoutMs !== 'number' || !(timeoutMs > 0)) return Promise.reject(new ParleyError('USAGE', 'connect timeout must be a positive number of ms'));
    const p = new Promise<AuthResult>((resolve, reject) => {
      const waiter: ConnectWaiter = { resolve, reject, timer: undefined };
      if (Number.isFinite(timeoutMs)) {
        waiter.timer = setTimeout(() => {
          const i = this.#waiters.indexOf(waiter);
          if (i < 0) return;
          this.#waiters.splice(i, 1);
          reject(connectTimeoutError(this.#opts.url, timeoutMs, this.#lastFailure));
        }, timeoutMs);
      }
      this.#waiters.push(waiter);
    });
    if (!this.#started || this.#refused) {
      this.#started = true;
      this.#refused = undefined;
      this.#attempt = 0;
      if (!this.#socket.connected) this.#socket.connect();
    } else if (this.#reconnectTimer && !this.#socket.connected) {
      // Waiting out a backoff: try now.
      clearTimeout(this.#reconnectTimer);
      this.#reconnectTimer = undefined;
      this.#socket.connect();
    }
    return p;
  }

  /** Settles every pending {@link connect}. */
  #settleWaiters(outcome: { result: AuthResult } | { error: ParleyError }): void {
    for (const w of this.#waiters.splice(0)) {
      clearTimeout(w.timer);
      if ('result' in outcome) w.resolve(outcome.result);
      else w.reject(outcome.error);
    }
  }

  /** A failed connection attempt: refused, DNS and TLS failures reject pending connects at once. */
  #onConnectError(err: unknown): void {
    const failure = classifyConnectError(err);
    const repeated = this.#lastFailure?.cause === failure.cause;
    this.#lastFailure = failure;
    const log = { event: 'connectFailed', relay: displayUrl(this.#opts.url), reason: failure.reason ?? 'other', cause: failure.cause };
    // Once per distinct cause at warn; the retries of the same failure at debug.
    if (repeated) this.#opts.logger?.debug?.(log);
    else this.#opts.logger?.warn?.(log);
    if (failure.reason) this.#settleWaiters({ error: connectFailureError(this.#opts.url, { ...failure, reason: failure.reason }) });
    this.#onDown(`connect_error: ${failure.cause}`);
  }

  /** A final login refusal: stop reconnecting, reject pending connects, tell the owner. */
  #refuse(error: ParleyError): void {
    if (this.#closed) return;
    this.#refused = error;
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = undefined;
    this.#opts.logger?.error?.({ event: 'authFailed', relay: displayUrl(this.#opts.url), code: error.code, reason: error.details?.['reason'] });
    this.#settleWaiters({ error });
    this.#handlers.onAuthFailed?.(error);
    if (this.#socket.connected) this.#socket.disconnect();
    this.#onDown('login refused');
  }

  async #onHello(hello: RelayHello): Promise<void> {
    const gen = ++this.#generation;
    try {
      if (!(hello?.serverNonce instanceof Uint8Array) || hello.serverNonce.length !== RELAY_NONCE_BYTES) {
        throw new ParleyError('MALFORMED_MESSAGE', 'relay hello is malformed');
      }
      if (hello.protocol !== RELAY_PROTOCOL_VERSION) {
        throw new ParleyError('UNSUPPORTED_VERSION', 'relay speaks another protocol version', { details: { protocol: Number(hello.protocol) } });
      }
      const { answer, apiKey } = this.#opts.credentials;
      const signed = await answer({ serverNonce: new Uint8Array(hello.serverNonce), origin: this.#origin });
      if (gen !== this.#generation || !this.#socket.connected) return;
      // The signed origin rides along (not secret), so the relay can name an origin mismatch.
      const sent = { ...signed, origin: this.#origin };
      const result: AuthResult = await this.#call('auth', apiKey === undefined ? sent : { ...sent, apiKey }, true);
      if (gen !== this.#generation || !this.#socket.connected) return;
      this.#authenticated = true;
      this.#attempt = 0;
      this.#lastAuth = result;
      this.#lastFailure = undefined;
      this.#opts.logger?.info?.({ event: 'authenticated', deviceId: result.deviceId, role: result.role });
      // Messages pushed right after the login wait for this (they queue behind it).
      const ready = Promise.resolve(this.#handlers.onAuthenticated?.(result));
      this.#inbound = this.#inbound.then(() => ready.then(() => undefined, () => undefined));
      await ready;
      this.#settleWaiters({ result });
    } catch (e) {
      const err = toError(e, 'auth');
      if (isFinalRefusal(err, 'answer')) {
        this.#refuse(loginRefusedError(this.#opts.url, err));
        return;
      }
      this.#lastFailure = { reason: undefined, cause: err.code };
      this.#opts.logger?.warn?.({ event: 'loginFailed', code: err.code, reason: err.details?.['reason'] });
      this.#handlers.onError?.(err);
      if (err.code === 'UNSUPPORTED_VERSION') this.#settleWaiters({ error: err });
      if (this.#socket.connected) this.#socket.disconnect();
      this.#onDown('auth failed');
    }
  }

  #onDown(reason: string): void {
    const wasUp = this.#authenticated;
    this.#authenticated = false;
    this.#generation++;
    this.#pendingAcks = []; // the relay re-pushes un-acked messages after the next login
    if (wasUp) {
      this.#opts.logger?.info?.({ event: 'disconnected', reason });
      this.#handlers.onDisconnected?.(reason);
    }
    if (this.#closed || this.#refused || this.#reconnectTimer) return;
    const base = this.#opts.reconnectDelayMs ?? 250;
    const max = this.#opts.maxReconnectDelayMs ?? 10_000;
    const delay = Math.min(max, base * 2 ** Math.min(this.#attempt, 16)) * (0.5 + Math.random());
    this.#attempt++;
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined;
      if (this.#closed || this.#refused || this.#socket.connected) return;
      this.#socket.connect();
    }, delay);
  }

  /** A push from the relay, checked first: a malformed one is reported and dropped (never acked). */
  #onPush<E extends keyof typeof PUSHES>(event: E, input: unknown, handle: (value: v.InferOutput<(typeof PUSHES)[E]>) => void): void {
    let value: v.InferOutput<(typeof PUSHES)[E]>;
    try {
      value = checked(PUSHES[event], input, `"${event}" push`);
    } catch (e) {
      this.#opts.logger?.warn?.({ event: 'relay.malformedPush', push: event });
      this.#handlers.onError?.(toError(e, event));
      return;
    }
    handle(value);
  }

  /** A ticket push, checked first: a malformed one is reported and dropped; a throwing handler never breaks the link. */
  #onTicketPush(event: keyof typeof TICKET_PUSHES, input: unknown): void {
    let deliver: () => void;
    try {
      if (event === 'ticket') {
        const u = checked(TICKET_PUSHES.ticket, input, '"ticket" push');
        const update: TicketUpdate = { ticket: toTicket(u.ticket), change: u.change };
        deliver = () => this.#handlers.onTicket?.(update);
      } else {
        const u = checked(TICKET_PUSHES.ticketUnclaimed, input, '"ticketUnclaimed" push');
        const info: TicketUnclaimed = { ticket: toTicket(u.ticket), waitingMs: u.waitingMs };
        deliver = () => this.#handlers.onTicketUnclaimed?.(info);
      }
    } catch (e) {
      this.#opts.logger?.warn?.({ event: 'relay.malformedPush', push: event });
      this.#handlers.onError?.(toError(e, event));
      return;
    }
    try {
      deliver();
    } catch (e) {
      this.#opts.logger?.warn?.({ event: 'relay.pushHandlerFailed', push: event });
      this.#handlers.onError?.(toError(e, event));
    }
  }

  #onMessage(m: RelayMessage): void {
    const gen = this.#generation;
    const handle = async (): Promise<void> => {
      if (gen !== this.#generation || !this.#handlers.onMessage) return;
      let verdict: 'ack' | 'keep';
      try {
        verdict = await this.#handlers.onMessage(m);
      } catch (e) {
        this.#handlers.onError?.(toError(e, 'message'));
        return;
      }
      if (verdict === 'ack' && gen === this.#generation && typeof m?.seq === 'number') this.#queueAck(m.seq);
    };
    if (this.#opts.order !== 'per-sender' || typeof m?.from !== 'string') {
      this.#inbound = this.#inbound.then(handle);
      return;
    }
    // One sender's deliveries in order, different senders concurrently; `#inbound` still
    // tracks the latest of them all so `idle()` waits for every chain.
    const tail = (this.#senders.get(m.from) ?? this.#inbound).then(handle);
    this.#senders.set(m.from, tail);
    void tail.then(() => {
      if (this.#senders.get(m.from) === tail) this.#senders.delete(m.from);
    });
    const before = this.#inbound;
    this.#inbound = Promise.all([before, tail]).then(() => undefined);
  }

  #queueAck(seq: number): void {
    this.#pendingAcks.push(seq);
    if (this.#pendingAcks.length >= RELAY_MAX_ACK_BATCH) {
      void this.flushAcks();
      return;
    }
    this.#ackTimer ??= setTimeout(() => void this.flushAcks(), this.#opts.ackDelayMs ?? 25);
  }

  /** Sends queued delivery acks now. */
  async flushAcks(): Promise<void> {
    clearTimeout(this.#ackTimer);
    this.#ackTimer = undefined;
    while (this.#pendingAcks.length > 0 && this.#authenticated) {
      const seqs = this.#pendingAcks.splice(0, RELAY_MAX_ACK_BATCH);
      try {
        await this.#call('ack', { seqs });
      } catch (e) {
        // Not acked: the relay pushes them again and the engine reports duplicates.
        this.#opts.logger?.debug?.({ event: 'ackFailed', code: toError(e, 'ack').code });
        return;
      }
    }
  }

  /** Waits until every delivery received so far has been handled (tests, shutdown). */
  async idle(): Promise<void> {
    let current: Promise<void>;
    do {
      current = this.#inbound;
      await current;
    } while (current !== this.#inbound);
    await this.flushAcks();
  }

  /** One relay call; its answer checked against {@link ANSWERS} (a malformed one is `MALFORMED_MESSAGE`). */
  #call<E extends keyof typeof ANSWERS>(event: E, payload: unknown, duringAuth = false): Promise<v.InferOutput<(typeof ANSWERS)[E]>> {
    return this.#callChecked(ANSWERS[event], event, payload, duringAuth);
  }

  /** A ticket call; its answer checked against {@link TICKET_ANSWERS}. */
  #ticketCall<E extends keyof typeof TICKET_ANSWERS>(event: E, payload: unknown): Promise<v.InferOutput<(typeof TICKET_ANSWERS)[E]>> {
    return this.#callChecked(TICKET_ANSWERS[event], event, payload, false);
  }

  async #callChecked<S extends v.GenericSchema>(schema: S, event: string, payload: unknown, duringAuth: boolean): Promise<v.InferOutput<S>> {
    if (this.#closed) throw new ParleyError('TRANSPORT', 'transport is closed');
    if (!this.#socket.connected || (!duringAuth && !this.#authenticated)) {
      throw new ParleyError('TRANSPORT', 'not connected to the relay');
    }
    let result: RelayResult<object>;
    try {
      result = await (this.#socket.timeout(this.#opts.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS) as unknown as {
        emitWithAck(ev: string, p: unknown): Promise<RelayResult<object>>;
      }).emitWithAck(event, payload);
    } catch (e) {
      throw toError(e, event);
    }
    if (!result || typeof result !== 'object') throw new ParleyError('TRANSPORT', `relay answered "${event}" with garbage`);
    if (result.ok === true) return checked(schema, result, `"${event}" answer`);
    throw ParleyError.fromJSON(result.error);
  }

  /**
   * Queues an envelope on the relay; resolves once it is durably stored there.
   * @throws ParleyError `TRANSPORT` (not logged in, timeout), or the relay's code
   *   (`PAYLOAD_TOO_LARGE`, `STORAGE_QUOTA`, `RATE_LIMITED`, `MALFORMED_MESSAGE`…).
   */
  send(req: SendRequest): Promise<SendResult> {
    return this.#call('send', { to: req.to, id: req.id, envelope: req.envelope });
  }

  /**
   * Fetches a peer's bundle (consumes one of its one-time prekeys). Extra fields the relay may
   * add beside the bundle (`certificate`, `attestation`, `manifests`) are passed through.
   * @throws ParleyError `SESSION_NOT_FOUND`, `RATE_LIMITED`, `TRANSPORT`.
   */
  async fetchBundle(deviceId: string): Promise<PrekeyBundle & { certificate?: Uint8Array; attestation?: Uint8Array; manifests?: Uint8Array; disclosure?: Uint8Array }> {
    const { bundle, ...outer } = await this.#call('fetchBundle', { deviceId });
    const { certificate, attestation, ...keys } = bundle;
    const cert = certificate ?? outer.certificate;
    const att = attestation ?? outer.attestation;
    return {
      ...keys,
      ...(cert ? { certificate: new Uint8Array(cert) } : {}),
      ...(att ? { attestation: new Uint8Array(att) } : {}),
      ...(outer.manifests ? { manifests: new Uint8Array(outer.manifests) } : {}),
      ...(outer.disclosure ? { disclosure: new Uint8Array(outer.disclosure) } : {}),
    };
  }

  /**
   * Publishes prekeys, and optionally this device's `certificate`/`attestation`/`manifests`
   * (opaque to the relay; absent keeps what the relay has, empty removes it); resolves with the
   * number of one-time prekeys the relay now holds.
   */
  async uploadPrekeys(upload: PrekeyUpload & { certificate?: Uint8Array; attestation?: Uint8Array; manifests?: Uint8Array; disclosure?: Uint8Array }): Promise<number> {
    const payload = {
      identity: upload.identity,
      signedPrekey: upload.signedPrekey,
      oneTimePrekeys: upload.oneTimePrekeys.map((k) => ({ id: k.id, publicKey: k.publicKey })),
      ...(upload.certificate ? { certificate: upload.certificate } : {}),
      ...(upload.attestation ? { attestation: upload.attestation } : {}),
      ...(upload.manifests ? { manifests: upload.manifests } : {}),
      ...(upload.disclosure ? { disclosure: upload.disclosure } : {}),
    };
    const r = await this.#call('uploadPrekeys', payload);
    return r.oneTimePrekeys;
  }

  /**
   * A peer's identity with its `certificate`/`attestation`/`manifests` (when published),
   * consuming no one-time prekey. Nothing here is trusted: the engine verifies what it uses.
   * @throws ParleyError `SESSION_NOT_FOUND`, `RATE_LIMITED`, `TRANSPORT`, `MALFORMED_MESSAGE` (garbage answer).
   */
  async fetchIdentity(deviceId: string): Promise<{ identity: PublicIdentity; certificate?: Uint8Array; attestation?: Uint8Array; manifests?: Uint8Array; disclosure?: Uint8Array }> {
    const r = await this.#call('fetchIdentity', { deviceId });
    const i = r.identity;
    const out: { identity: PublicIdentity; certificate?: Uint8Array; attestation?: Uint8Array; manifests?: Uint8Array; disclosure?: Uint8Array } = {
      identity: { signingKey: new Uint8Array(i.signingKey), dhKey: new Uint8Array(i.dhKey), binding: new Uint8Array(i.binding) },
    };
    if (r.certificate instanceof Uint8Array) out.certificate = new Uint8Array(r.certificate);
    if (r.attestation instanceof Uint8Array) out.attestation = new Uint8Array(r.attestation);
    if (r.manifests instanceof Uint8Array) out.manifests = new Uint8Array(r.manifests);
    if (r.disclosure instanceof Uint8Array) out.disclosure = new Uint8Array(r.disclosure);
    return out;
  }

  /**
   * Appends this device's signed archive submission (`encodeArchiveSubmission`) to the
   * append-only compliance archive of `ref`; resolves with the index the relay gave it.
   * `options.retry`: these exact bytes may have been appended before (an earlier call's answer
   * was lost, or the sender restarted): the relay then answers with that entry's index instead
   * of appending a second copy (relay README "Compliance archive").
   * @throws ParleyError `INVALID_SIGNATURE`, `FORBIDDEN` (reason `notSender`), `MALFORMED_MESSAGE`, `TRANSPORT`.
   */
  async archiveAppend(ref: string, submission: Uint8Array, options: { retry?: boolean } = {}): Promise<number> {
    const r = await this.#call('archiveAppend', { ref, submission, ...(options.retry ? { retry: true } : {}) });
    return r.index;
  }

  /**
   * Erasure: deletes the envelopes this device sent that the relay still queues (per recipient,
   * by message id) and closes its own tickets; resolves with what was deleted.
   * @throws ParleyError `MALFORMED_MESSAGE` (over 20 recipients, 500 ids each, 50 tickets), `TRANSPORT`.
   */
  async purge(req: PurgeRequest): Promise<PurgeResult> {
    const r = await this.#call('purge', req);
    return { envelopes: r.envelopes, tickets: r.tickets, archiveEntries: r.archiveEntries, archiveHeld: [...r.archiveHeld] };
  }

  /** Asks the relay to push every pending message again. */
  async fetchQueue(): Promise<number> {
    const r = await this.#call('fetchQueue', {});
    return r.pending;
  }

  /**
   * Logs in again now, on a fresh connection: for what the relay reads at login only (a staff
   * device's new credential and its roles). Resolves after the new login, like {@link connect}.
   * @throws as {@link connect}.
   */
  relogin(options: { timeoutMs?: number } = {}): Promise<AuthResult> {
    if (this.#closed) return Promise.reject(new ParleyError('USAGE', 'transport is closed'));
    // The disconnect schedules a reconnect (`#onDown`); `connect` then tries at once.
    if (this.#socket.connected) this.#socket.disconnect();
    this.#authenticated = false;
    return this.connect(options);
  }

  /**
   * The signed staff revocation lists the relay holds (one per issuer). Not trusted: verify each
   * with `verifyRevocationList` against the pinned org key before use.
   * @throws ParleyError `TRANSPORT`, `MALFORMED_MESSAGE` (garbage answer), `MALFORMED_MESSAGE`
   *   from a relay that predates revocation lists (unknown event).
   */
  async fetchRevocations(): Promise<Uint8Array[]> {
    const r = await this.#call('fetchRevocations', {});
    return r.lists.map((l) => new Uint8Array(l));
  }

  /**
   * Opens a handoff ticket for this device (the customer) in `queue`; `ref` is an opaque
   * reference the caller chooses (never the conversation id), `notify` a device also told of the
   * ticket's changes (the bot that asked for the handoff). Idempotent on `ref` while the ticket
   * is open: the open one is returned.
   * @throws ParleyError `USAGE` (bad queue, ref or notify), `TRANSPORT`, `RATE_LIMITED`, `MALFORMED_MESSAGE`.
   */
  async openTicket(queue: string, ref: string, notify?: string): Promise<Ticket> {
    checkName(queue, 'queue');
    checkName(ref, 'ref');
    if (notify !== undefined && (typeof notify !== 'string' || !DEVICE_ID_PATTERN.test(notify))) {
      throw new ParleyError('USAGE', 'ticket notify must be a device id');
    }
    const r = await this.#ticketCall('ticketOpen', notify === undefined ? { queue, ref } : { queue, ref, notify });
    return toTicket(r.ticket);
  }

  /**
   * Open tickets (of `queue`, or of every queue), oldest first. Agents and supervisors only.
   * @throws ParleyError `FORBIDDEN` (`details.reason` `role`), `USAGE`, `TRANSPORT`.
   */
  async listTickets(queue?: string): Promise<Ticket[]> {
    if (queue !== undefined) checkName(queue, 'queue');
    const r = await this.#ticketCall('ticketList', queue === undefined ? {} : { queue });
    return r.tickets.map(toTicket);
  }

  /**
   * One ticket: for its customer, notify device, claimant, or staff.
   * @throws ParleyError `USAGE` (`details.reason` `noSuchTicket`), `FORBIDDEN` (`notParty`), `TRANSPORT`.
   */
  async getTicket(id: string): Promise<Ticket> {
    checkTicketId(id);
    const r = await this.#ticketCall('ticketGet', { ticketId: id });
    return toTicket(r.ticket);
  }

  /**
   * Claims a waiting ticket (agents, supervisors), atomically on every relay node; claiming one's
   * own claim again is fine.
   * @throws ParleyError `CONFLICT` (`details.reason` `claimed`) when another agent holds it,
   *   `FORBIDDEN` (`role`), `USAGE` (`noSuchTicket`), `TRANSPORT`.
   */
  async claimTicket(id: string): Promise<Ticket> {
    checkTicketId(id);
    const r = await this.#ticketCall('ticketClaim', { ticketId: id });
    return toTicket(r.ticket);
  }

  /**
   * Puts a ticket back to waiting (optionally in another `queue`): the customer declining a
   * claimant, or the claimant transferring or escalating.
   * @throws ParleyError `FORBIDDEN` (`notParty`), `USAGE` (`noSuchTicket`), `TRANSPORT`.
   */
  async releaseTicket(id: string, queue?: string): Promise<Ticket> {
    checkTicketId(id);
    if (queue !== undefined) checkName(queue, 'queue');
    const r = await this.#ticketCall('ticketRelease', queue === undefined ? { ticketId: id } : { ticketId: id, queue });
    return toTicket(r.ticket);
  }

  /**
   * Ends a ticket (the relay deletes it): by its customer or its claimant.
   * @throws ParleyError `FORBIDDEN` (`notParty`), `USAGE` (`noSuchTicket`), `TRANSPORT`.
   */
  async closeTicket(id: string): Promise<void> {
    checkTicketId(id);
    await this.#ticketCall('ticketClose', { ticketId: id });
  }

  /** Flushes acks, disconnects and stops reconnecting. */
  async close(): Promise<void> {
    if (this.#closed) return;
    await this.flushAcks().catch(() => undefined);
    this.#closed = true;
    clearTimeout(this.#reconnectTimer);
    clearTimeout(this.#ackTimer);
    this.#authenticated = false;
    this.#settleWaiters({ error: new ParleyError('TRANSPORT', 'the relay link was closed before it logged in', { details: { reason: 'closed' } }) });
    this.#socket.disconnect();
    this.#socket.removeAllListeners();
  }
}

function checkName(value: unknown, what: 'queue' | 'ref'): void {
  if (typeof value !== 'string' || !TICKET_NAME_PATTERN.test(value)) {
    throw new ParleyError('USAGE', `ticket ${what} must be 1 to 64 of [A-Za-z0-9_-]`);
  }
}

function checkTicketId(value: unknown): void {
  if (typeof value !== 'string' || !TICKET_ID_PATTERN.test(value)) throw new ParleyError('USAGE', 'ticket id must be 22 characters of base64url');
}
