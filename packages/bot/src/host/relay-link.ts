/**
 * The bot host's socket to the relay: a thin socket.io-client wrapper over the relay contract
 * (`@parley/protocol/wire`). Runs in the host, so it only ever carries public keys, ciphertext
 * and routing ids. The login signature is made by the enclave (`relayAuth`), over a payload the
 * enclave builds itself; the host passes the relay's nonce and the origin it dialled.
 *
 * socket.io reconnects on its own; every new connection gets a fresh `hello`, and the link
 * authenticates again and tells the bot (`onAuthenticated`) so it can re-upload prekeys and
 * re-send its outbox.
 */
import { io, type Socket } from 'socket.io-client';
import { ParleyError } from '@parley/protocol/errors';
import type {
  AuthAnswer,
  ClientToServerEvents,
  RelayHello,
  PrekeyPublication,
  RelayMessage,
  RelayResult,
  SendRequest,
  SendResult,
  ServerToClientEvents,
} from '@parley/protocol/wire';
import type { BotLogger } from './supervisor.js';

/** How long a relay request may take before it fails with `TRANSPORT`. */
export const RELAY_REQUEST_TIMEOUT_MS = 10_000;

export interface RelayLinkOptions {
  url: string;
  apiKey: string;
  logger: BotLogger;
  /** Builds the signed auth answer (done inside the enclave). */
  answer(serverNonce: Uint8Array, origin: string): Promise<Omit<AuthAnswer, 'apiKey'>>;
  onAuthenticated(deviceId: string): void;
  onMessage(message: RelayMessage): void;
  onPrekeysLow(remaining: number): void;
  /** socket.io-client transports; default websocket only. */
  transports?: string[];
}

type RelaySocket = Socket<ServerToClientEvents, ClientToServerEvents>;

export class RelayLink {
  readonly #opts: RelayLinkOptions;
  readonly #socket: RelaySocket;
  readonly #origin: string;
  #authenticated = false;
  #closed = false;
  #firstAuth: { resolve: () => void; reject: (e: unknown) => void } | undefined;

  constructor(options: RelayLinkOptions) {
    this.#opts = options;
    this.#origin = new URL(options.url).origin;
    this.#socket = io(options.url, {
      autoConnect: false,
      transports: options.transports ?? ['websocket'],
      reconnection: true,
      reconnectionDelay: 200,
      reconnectionDelayMax: 5_000,
      forceNew: true,
    });
    this.#socket.on('hello', (hello) => void this.#authenticate(hello));
    // The relay pushes messages only after a successful login; the backlog can arrive in the
    // same read as the login ack, before our ack continuation runs, so no gating here.
    this.#socket.on('message', (m) => this.#opts.onMessage(m));
    this.#socket.on('prekeysLow', (info) => this.#opts.onPrekeysLow(typeof info?.remaining === 'number' ? info.remaining : 0));
    this.#socket.on('relayError', (e) => this.#opts.logger.warn({ event: 'relay.error', code: String(e?.code).slice(0, 40) }, 'relay error'));
    this.#socket.on('disconnect', (reason) => {
      this.#authenticated = false;
      this.#opts.logger.warn({ event: 'relay.disconnected', reason: String(reason).slice(0, 60) }, 'relay disconnected');
    });
    this.#socket.on('connect_error', (e) => {
      this.#opts.logger.warn({ event: 'relay.connectError', message: e.message.slice(0, 100) }, 'relay connection failed');
    });
  }

  /** True while connected and logged in. */
  get authenticated(): boolean {
    return this.#authenticated;
  }

  /** Connects; resolves after the first successful login. */
  connect(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#firstAuth = { resolve, reject };
      this.#socket.connect();
    });
  }

  async #authenticate(hello: RelayHello): Promise<void> {
    try {
      if (!(hello?.serverNonce instanceof Uint8Array)) throw new ParleyError('MALFORMED_MESSAGE', 'bad hello from the relay');
      const answer = await this.#opts.answer(new Uint8Array(hello.serverNonce), this.#origin);
      const r = await this.#request<{ deviceId: string }>('auth', { ...answer, apiKey: this.#opts.apiKey });
      this.#authenticated = true;
      this.#opts.logger.info({ event: 'relay.authenticated', deviceId: r.deviceId }, 'logged in to the relay');
      this.#firstAuth?.resolve();
      this.#firstAuth = undefined;
      this.#opts.onAuthenticated(r.deviceId);
    } catch (e) {
      this.#opts.logger.warn({ event: 'relay.authFailed', code: e instanceof ParleyError ? e.code : 'INTERNAL' }, 'relay login failed');
      if (e instanceof ParleyError && e.code === 'UNAUTHENTICATED' && this.#firstAuth) {
        this.#firstAuth.reject(e);
        this.#firstAuth = undefined;
        this.close();
      } else if (this.#socket.connected) {
        // e.g. the enclave is restarting: reconnect for a fresh challenge.
        this.#socket.disconnect();
        setTimeout(() => {
          if (!this.#closed) this.#socket.connect();
        }, 250).unref();
      }
    }
  }

  async #request<T extends object>(event: keyof ClientToServerEvents, payload: unknown): Promise<T> {
    if (!this.#socket.connected) throw new ParleyError('TRANSPORT', 'not connected to the relay');
    let r: RelayResult<T>;
    try {
      r = await (this.#socket.timeout(RELAY_REQUEST_TIMEOUT_MS) as unknown as { emitWithAck(e: string, p: unknown): Promise<RelayResult<T>> }).emitWithAck(event, payload);
    } catch (e) {
      throw new ParleyError('TRANSPORT', 'the relay did not answer', { cause: e, details: { event } });
    }
    if (!r || typeof r !== 'object') throw new ParleyError('TRANSPORT', 'malformed relay answer');
    if (!r.ok) throw ParleyError.fromJSON(r.error);
    return r;
  }

  /** Queues an envelope; resolves once the relay stored it durably. */
  async send(req: SendRequest): Promise<SendResult> {
    this.#needAuth();
    return this.#request<SendResult>('send', req);
  }

  /** Publishes prekeys, with the bot's attestation and certificate when given (opaque to the relay). */
  async uploadPrekeys(upload: PrekeyPublication): Promise<{ oneTimePrekeys: number }> {
    this.#needAuth();
    return this.#request('uploadPrekeys', upload);
  }

  /** Tells the relay these deliveries are durably processed (it deletes them). */
  async ack(seqs: number[]): Promise<{ deleted: number }> {
    this.#needAuth();
    return this.#request('ack', { seqs });
  }

  /** Asks the relay to push every pending message again. */
  async fetchQueue(): Promise<{ pending: number }> {
    this.#needAuth();
    return this.#request('fetchQueue', {});
  }

  #needAuth(): void {
    if (!this.#authenticated) throw new ParleyError('TRANSPORT', 'not logged in to the relay');
  }

  close(): void {
    this.#closed = true;
    this.#authenticated = false;
    this.#socket.disconnect();
  }
}
