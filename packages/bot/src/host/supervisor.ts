/**
 * Starts the enclave worker, talks to it through the typed RPC, and restarts it from the last
 * sealed state when it dies. Runs in the host.
 *
 * - Every message from the worker is validated (`parseEnclaveMessage`, then the per-method
 *   result schema); an invalid one is dropped and counted, never trusted.
 * - On worker `error` or `exit`, every in-flight call rejects with `ENCLAVE_UNAVAILABLE` at once
 *   (well within the 1 s of docs/threats.md B2), and a restart is scheduled with exponential backoff.
 * - `persist` requests are written to the {@link SealedBlobStore} and acked; a write that lands
 *   after the worker died is still durable, and the next worker starts from it.
 * - The sealing secret never passes through here as bytes unless the app supplies a provider,
 *   in which case the buffer is transferred (detached) at once and not kept.
 */
import { Worker, type MessagePort, type ResourceLimits } from 'node:worker_threads';
import { ParleyError } from '@parley/protocol/errors';
import {
  fromWireError,
  parseEnclaveMessage,
  parseParams,
  parseResult,
  toWireError,
  type EnclaveMessage,
  type MethodName,
  type Params,
  type Result,
} from '../rpc/messages.js';
import type { SealedBlobStore } from './blob-store.js';
import { ProcessEnclave, type EnclaveChannel } from './process-enclave.js';
import type { HandlerFailedEvent } from './events.js';

/**
 * Where the enclave worker starts. Installed (compiled) it is `dist/enclave/entry.js`, run by
 * plain node; from the repository's TypeScript sources it is a tiny .mjs that registers tsx
 * in the worker first.
 */
export const ENCLAVE_ENTRY_URL = import.meta.url.endsWith('.ts')
  ? new URL('../enclave/bootstrap.mjs', import.meta.url)
  : new URL('../enclave/entry.js', import.meta.url);

/** The default worker limits. `resourceLimits` does not cover ArrayBuffers (Node docs). */
export const DEFAULT_RESOURCE_LIMITS: ResourceLimits = { maxOldGenerationSizeMb: 256, maxYoungGenerationSizeMb: 32, stackSizeMb: 4 };
/** First restart delay; doubles per consecutive crash up to {@link MAX_RESTART_DELAY_MS}. */
export const MIN_RESTART_DELAY_MS = 50;
export const MAX_RESTART_DELAY_MS = 5_000;
/** A worker that stayed up this long resets the backoff. */
export const STABLE_AFTER_MS = 10_000;
/** A call with no answer after this long rejects with `ENCLAVE_UNAVAILABLE`. */
export const DEFAULT_CALL_TIMEOUT_MS = 30_000;

/** Where the enclave's sealing secret comes from (README "Sealing secret"). */
export type SealingSecretOption =
  /** A 32-byte file (mode 0600) the enclave opens itself; `create` makes one if missing. */
  | { file: string; create?: boolean }
  /** Called at every worker start; the returned buffer is transferred to the worker (detached here). */
  | { provide: () => ArrayBuffer | Promise<ArrayBuffer> };

export interface EnclaveInfo {
  readonly deviceId: string;
  readonly identity: Result<'init'>['identity'];
  readonly measurement: Uint8Array;
  readonly attestation: Result<'init'>['attestation'];
  /** Messages whose handler run was interrupted by a crash and is being re-run. */
  readonly redelivered: number;
  /** What opening the sealed state did (logged by the supervisor). */
  readonly sealing?: Result<'init'>['sealing'];
}

/** A minimal structured logger: never given plaintext or key bytes (there are none here). */
export interface BotLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface SupervisorOptions {
  handlerUrl: string;
  blobStore: SealedBlobStore;
  sealing: SealingSecretOption;
  oneTimePrekeys: number;
  /** Re-seal a state sealed to this measurement (or `'unbound'`) for the running code (README "Measurement binding"). */
  migrateFrom?: Uint8Array | 'unbound';
  /** The enclave's rollback anchor file (README "Rollback"); none when absent. */
  rollbackAnchor?: string;
  resourceLimits?: ResourceLimits;
  logger: BotLogger;
  /** Called for each envelope the enclave wants sent (already in its sealed outbox). */
  onSend(out: { to: string; id: string; envelope: Uint8Array }): void;
  /** Called when the enclave needs a peer's bundle (a session reset): fetch it and call `resend`. */
  onNeedBundle?(peer: string): void;
  /** Called for each sealed archive submission the enclave wants appended (already in its sealed archive outbox). */
  onArchive?(out: { key: string; ref: string; submission: Uint8Array; retry: boolean }): void;
  /** The published archive disclosure: the enclave verifies it against `orgKey` and seals its conversation messages to it. */
  archiveDisclosure?: Uint8Array;
  /** Called after every (re)start once the enclave is initialised. */
  onReady(info: EnclaveInfo, restart: boolean): void;
  /** Test-only: a port the enclave posts its key bytes to, on the test's request. */
  unsafeTestingExposeKeys?: MessagePort;
  /** Test-only: sees every message crossing the boundary, both directions. */
  unsafeTestingTap?: (direction: 'toEnclave' | 'fromEnclave', message: unknown) => void;
  callTimeoutMs?: number;
  /** Restart backoff bounds (default 50 ms doubling to 5 s). */
  restartBackoffMs?: { min: number; max: number };
  /** Entry file of the worker (tests swap in a fake enclave). */
  entryUrl?: URL;
  /** Extra worker execArgv (e.g. a stronger-isolation mode). */
  execArgv?: string[];
  /**
   * `'worker'` (default): the enclave is a worker thread of this process; `'process'`: its own
   * Node process under the permission model (`process-enclave.ts`; README "Enclave modes").
   */
  enclave?: 'worker' | 'process';
  /** The egress policy (canonical origins): measured and enforced by the enclave (README "Egress policy and ctx.fetch"). */
  egress?: readonly string[];
  /** Time limit of one handler run, ms (the enclave's default: 30 s). */
  handlerTimeoutMs?: number;
  /** Failures of one message before it is quarantined (the enclave's default: 3). */
  maxHandlerFailures?: number;
  /** The failure reply, encoded (`encodeContent`); none when absent. */
  failureReply?: { type: 'text' | 'json' | 'binary'; body: Uint8Array };
  /** The unclaimed-handoff reply, encoded; none when absent (README "Conversations and handoff"). */
  handoffUnclaimedReply?: { type: 'text' | 'json' | 'binary'; body: Uint8Array };
  /** Dev mode: handler errors reach the host with their message, file and line (never in production). */
  dev?: boolean;
  /** The pinned org root key (32 bytes): staff credentials are verified against it inside the enclave (measured). */
  orgKey?: Uint8Array;
  /** Called for each failed handler run (after the stats, log line and, in dev mode, the console line). */
  onHandlerFailed?: (e: HandlerFailedEvent) => void;
}

interface Pending {
  method: MethodName;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
  timer: NodeJS.Timeout;
}

/** An `event` message from the enclave. */
type EnclaveEvent = Extract<EnclaveMessage, { type: 'event' }>;

/** Counts of what the supervisor saw (for metrics and tests). */
export interface SupervisorStats {
  starts: number;
  crashes: number;
  invalidMessages: number;
  handlerFailures: number;
  /** Handler runs that hit `handlerTimeoutMs` (also counted in `handlerFailures`). */
  handlerTimeouts: number;
  /** Messages quarantined after `maxHandlerFailures` failed runs: never run again. */
  quarantined: number;
  /** Sessions with customers reset, asked for by the bot or by the customer (README "Self-healing sessions"). */
  sessionResets: number;
  /** Replies given up on after repeated session resets: never delivered. */
  repliesGivenUp: number;
  /** Conversation replies (or handoffs) that could not be encrypted to one member (the others got them). */
  conversationSendFailures: number;
}

export class EnclaveSupervisor {
  readonly #opts: SupervisorOptions;
  #worker: EnclaveChannel | undefined;
  #generation = 0;
  /** The worker generation one of whose sealed writes failed (its later writes are refused). */
  #persistFailedGeneration = -1;
  #nextCall = 1;
  readonly #pending = new Map<number, Pending>();
  #ready: Promise<EnclaveInfo> | undefined;
  #info: EnclaveInfo | undefined;
  #stopped = false;
  #consecutiveCrashes = 0;
  #startedAt = 0;
  #restartTimer: NodeJS.Timeout | undefined;
  #testingPort: MessagePort | undefined;
  #migrationNoted = false;
  readonly stats: SupervisorStats = { starts: 0, crashes: 0, invalidMessages: 0, handlerFailures: 0, handlerTimeouts: 0, quarantined: 0, sessionResets: 0, repliesGivenUp: 0, conversationSendFailures: 0 };
  readonly #readyWaiters: { resolve: (i: EnclaveInfo) => void; reject: (e: unknown) => void }[] = [];

  constructor(options: SupervisorOptions) {
    this.#opts = options;
    this.#testingPort = options.unsafeTestingExposeKeys;
  }

  /** The last initialised enclave's public facts (undefined while none is up). */
  get info(): EnclaveInfo | undefined {
    return this.#info;
  }

  /** True while a worker is up and initialised. */
  get up(): boolean {
    return this.#info !== undefined;
  }

  /** Starts the first worker; resolves once it is initialised. */
  start(): Promise<EnclaveInfo> {
    if (this.#ready) return this.#ready;
    this.#ready = this.#spawn(false);
    return this.#ready;
  }

  /** Resolves when an enclave is up (at once if one is), rejects if the supervisor stops. */
  whenReady(): Promise<EnclaveInfo> {
    if (this.#info) return Promise.resolve(this.#info);
    if (this.#stopped) return Promise.reject(new ParleyError('ENCLAVE_UNAVAILABLE', 'the bot is stopped'));
    return new Promise((resolve, reject) => this.#readyWaiters.push({ resolve, reject }));
  }

  async #spawn(restart: boolean): Promise<EnclaveInfo> {
    const generation = ++this.#generation;
    this.stats.starts++;
    const worker: EnclaveChannel =
      this.#opts.enclave === 'process'
        ? ProcessEnclave.start({
            handlerUrl: this.#opts.handlerUrl,
            ...('file' in this.#opts.sealing ? { sealingFile: { path: this.#opts.sealing.file, create: this.#opts.sealing.create ?? true } } : {}),
            ...(this.#opts.rollbackAnchor ? { rollbackAnchor: this.#opts.rollbackAnchor } : {}),
            ...(this.#opts.entryUrl ? { entryUrl: this.#opts.entryUrl } : {}),
            maxOldGenerationSizeMb: (this.#opts.resourceLimits ?? DEFAULT_RESOURCE_LIMITS).maxOldGenerationSizeMb ?? 256,
            ...(this.#opts.execArgv ? { execArgv: this.#opts.execArgv } : {}),
          })
        : new Worker(this.#opts.entryUrl ?? ENCLAVE_ENTRY_URL, {
            resourceLimits: this.#opts.resourceLimits ?? DEFAULT_RESOURCE_LIMITS,
            // Nothing secret in workerData, env or argv (docs/threats.md B1/B5): the worker gets an empty env.
            env: {},
            argv: [],
            stdout: false,
            stderr: false,
            ...(this.#opts.execArgv ? { execArgv: this.#opts.execArgv } : {}),
          });
    this.#worker = worker;
    this.#startedAt = Date.now();
    worker.on('message', (raw: unknown) => this.#onMessage(generation, raw));
    worker.on('error', (e) => this.#onDeath(generation, worker, e));
    worker.on('exit', (code) => this.#onDeath(generation, worker, code));
    try {
      const records = await this.#opts.blobStore.readAll();
      const sealing = await this.#sealingParams();
      const port = this.#testingPort;
      this.#testingPort = undefined; // transferred once: only the first worker gets it
      const transfer: (ArrayBuffer | MessagePort)[] = [];
      if (sealing.type === 'buffer') transfer.push(sealing.secret);
      if (port) transfer.push(port);
      const info = await this.#call(
        'init',
        {
          handlerUrl: this.#opts.handlerUrl,
          records,
          sealing,
          oneTimePrekeys: this.#opts.oneTimePrekeys,
          ...(port ? { unsafeTestingExposeKeys: port } : {}),
          ...(this.#opts.migrateFrom ? { migrateFrom: this.#opts.migrateFrom } : {}),
          ...(this.#opts.rollbackAnchor ? { rollbackAnchor: this.#opts.rollbackAnchor } : {}),
          ...(this.#opts.egress && this.#opts.egress.length > 0 ? { egress: this.#opts.egress } : {}),
          ...(this.#opts.handlerTimeoutMs !== undefined ? { handlerTimeoutMs: this.#opts.handlerTimeoutMs } : {}),
          ...(this.#opts.maxHandlerFailures !== undefined ? { maxHandlerFailures: this.#opts.maxHandlerFailures } : {}),
          ...(this.#opts.failureReply ? { failureReply: this.#opts.failureReply } : {}),
          ...(this.#opts.handoffUnclaimedReply ? { handoffUnclaimedReply: this.#opts.handoffUnclaimedReply } : {}),
          ...(this.#opts.dev ? { dev: true } : {}),
          ...(this.#opts.orgKey ? { orgKey: this.#opts.orgKey } : {}),
          ...(this.#opts.archiveDisclosure ? { archiveDisclosure: this.#opts.archiveDisclosure } : {}),
        },
        transfer,
        generation,
      );
      if (generation !== this.#generation) throw new ParleyError('ENCLAVE_UNAVAILABLE', 'enclave restarted during init');
      this.#info = info;
      this.#logSealing(info);
      this.#opts.logger.info({ event: 'enclave.ready', deviceId: info.deviceId, restart, generation }, 'enclave ready');
      this.#opts.onReady(info, restart);
      for (const w of this.#readyWaiters.splice(0)) w.resolve(info);
      return info;
    } catch (e) {
      const err = e instanceof ParleyError ? e : new ParleyError('ENCLAVE_UNAVAILABLE', 'enclave failed to start', { cause: e });
      if (!restart) {
        // A first start that fails (bad handler, tampered state) is reported, not retried.
        this.#stopped = true;
        await worker.terminate();
        for (const w of this.#readyWaiters.splice(0)) w.reject(err);
      }
      throw err;
    }
  }

  /** Logs what opening the sealed state did: a migration, a missing or replaced rollback anchor. */
  #logSealing(info: EnclaveInfo): void {
    if (!info.sealing) return;
    const { migratedFrom, anchor } = info.sealing;
    const hex = (m: Uint8Array | 'unbound'): string => (m === 'unbound' ? m : Buffer.from(m).toString('hex'));
    const to = hex(info.measurement);
    if (migratedFrom) {
      this.#opts.logger.warn({ event: 'sealing.migrated', from: hex(migratedFrom), to }, 'sealed state migrated to the code now running (migrateFrom); remove the option once clients pin the new measurement');
    } else if (this.#opts.migrateFrom && !this.#migrationNoted) {
      this.#migrationNoted = true;
      this.#opts.logger.info({ event: 'sealing.migrateFromUnused', measurement: to }, 'the sealed state is already sealed to this code: migrateFrom can be removed');
    }
    if (anchor === 'missing') {
      this.#opts.logger.warn({ event: 'sealing.anchorMissing', anchor: this.#opts.rollbackAnchor }, 'no rollback anchor for existing sealed state: wrote a new one; a rollback of the state folder before this start is not detected');
    } else if (anchor === 'replaced') {
      this.#opts.logger.warn({ event: 'sealing.anchorReplaced', anchor: this.#opts.rollbackAnchor }, 'the rollback anchor belonged to another (older) state and the state folder holds a new one: replaced');
    }
  }

  async #sealingParams(): Promise<Params<'init'>['sealing']> {
    const s = this.#opts.sealing;
    if ('file' in s) return { type: 'file', path: s.file, create: s.create ?? true };
    const secret = await s.provide();
    if (!(secret instanceof ArrayBuffer) || secret.byteLength !== 32) throw new ParleyError('USAGE', 'sealing secret provider must return a 32-byte ArrayBuffer');
    return { type: 'buffer', secret };
  }

  #onDeath(generation: number, worker: EnclaveChannel, reason: unknown): void {
    if (generation !== this.#generation || this.#worker !== worker) return;
    this.#worker = undefined;
    this.#info = undefined;
    const code = reason instanceof Error ? (reason as NodeJS.ErrnoException).code ?? reason.name : `exit ${String(reason)}`;
    const err = new ParleyError('ENCLAVE_UNAVAILABLE', 'the enclave worker stopped', { details: { reason: String(code).slice(0, 60) } });
    for (const [id, p] of this.#pending) {
      clearTimeout(p.timer);
      p.reject(err);
      this.#pending.delete(id);
    }
    if (reason instanceof Error) void worker.terminate();
    if (this.#stopped) return;
    this.stats.crashes++;
    if (Date.now() - this.#startedAt > STABLE_AFTER_MS) this.#consecutiveCrashes = 0;
    const { min, max } = this.#opts.restartBackoffMs ?? { min: MIN_RESTART_DELAY_MS, max: MAX_RESTART_DELAY_MS };
    const delay = Math.min(max, min * 2 ** this.#consecutiveCrashes);
    this.#consecutiveCrashes = Math.min(this.#consecutiveCrashes + 1, 20);
    this.#opts.logger.warn({ event: 'enclave.crashed', reason: String(code).slice(0, 60), restartInMs: delay }, 'enclave stopped; restarting');
    clearTimeout(this.#restartTimer);
    this.#restartTimer = setTimeout(() => {
      if (this.#stopped) return;
      this.#spawn(true).catch((e: unknown) => {
        this.#opts.logger.error({ event: 'enclave.restartFailed', error: toWireError(e) }, 'enclave restart failed');
        // The worker's death (if it died) schedules the next attempt; if init failed while
        // the worker lives on, end it so that happens.
        void this.#worker?.terminate();
      });
    }, delay);
  }

  #onMessage(generation: number, raw: unknown): void {
    if (generation !== this.#generation) return;
    this.#opts.unsafeTestingTap?.('fromEnclave', raw);
    let msg;
    try {
      msg = parseEnclaveMessage(raw);
    } catch {
      this.stats.invalidMessages++;
      this.#opts.logger.warn({ event: 'enclave.invalidMessage' }, 'dropped an invalid message from the enclave');
      this.#failCallOf(raw);
      return;
    }
    switch (msg.type) {
      case 'result': {
        const p = this.#pending.get(msg.callId);
        if (!p) return;
        this.#pending.delete(msg.callId);
        clearTimeout(p.timer);
        if (!msg.ok) return p.reject(fromWireError(msg.error));
        try {
          p.resolve(parseResult(p.method, msg.value));
        } catch (e) {
          this.stats.invalidMessages++;
          p.reject(e);
        }
        return;
      }
      case 'persist': {
        const worker = this.#worker;
        // The enclave pipelines its commits, so a batch may build on an earlier one of the same
        // worker; once one failed, no later batch of that worker may become durable without it
        // (the worker exits when it sees the failure, and its successor starts from disk).
        const write =
          this.#persistFailedGeneration === generation
            ? Promise.reject(new ParleyError('STORAGE_QUOTA', 'an earlier sealed state write of this worker failed'))
            : this.#opts.blobStore.writeBatch(msg.puts, msg.dels);
        write.then(
          () => this.#post(worker, generation, { type: 'persisted', reqId: msg.reqId, ok: true }),
          (e: unknown) => {
            const errno = typeof (e as NodeJS.ErrnoException)?.code === 'string' ? (e as NodeJS.ErrnoException).code : undefined;
            this.#persistFailedGeneration = generation;
            this.#opts.logger.error({ event: 'enclave.persistFailed', error: toWireError(e), errno }, 'sealed state write failed');
            this.#post(worker, generation, { type: 'persisted', reqId: msg.reqId, ok: false, error: { code: 'STORAGE_QUOTA', message: 'sealed state write failed' } });
          },
        );
        return;
      }
      case 'send':
        this.#opts.onSend({ to: msg.to, id: msg.id, envelope: msg.envelope });
        return;
      case 'needBundle':
        this.#opts.onNeedBundle?.(msg.peer);
        return;
      case 'archive':
        this.#opts.onArchive?.({ key: msg.key, ref: msg.ref, submission: msg.submission, retry: msg.retry });
        return;
      case 'event': {
        const name = msg.name;
        if (name.type === 'handlerFailed') {
          this.#onHandlerFailed(name, msg.error);
        } else if (name.type === 'sessionReset') {
          this.stats.sessionResets++;
          this.#opts.logger.warn(
            { event: 'session.reset', peer: name.peer, initiatedBy: name.initiatedBy, reason: name.reason },
            name.initiatedBy === 'self'
              ? 'could not decrypt a customer message; asked the customer for a fresh session'
              : 'a customer asked for a fresh session; replies it has not receipted are resent',
          );
        } else if (name.type === 'resendGaveUp') {
          this.stats.repliesGivenUp += name.ids.length;
          this.#opts.logger.error({ event: 'resend.gaveUp', to: name.peer, ids: name.ids }, 'gave up on replies after repeated session resets');
        } else if (name.type === 'conversationSendFailed') {
          this.stats.conversationSendFailures++;
          this.#opts.logger.warn(
            { event: 'conversation.sendFailed', to: name.peer, id: name.messageId, code: name.code, ...(name.reason ? { reason: name.reason } : {}) },
            'a conversation reply could not be encrypted to one member; the other members got it',
          );
        }
        return;
      }
      case 'rejected':
        this.stats.invalidMessages++;
        this.#opts.logger.warn({ event: 'enclave.rejected', code: msg.error.code }, 'the enclave rejected a host message');
        return;
    }
  }

  /** A failed handler run: counted, logged (one warn line; in dev mode also the error, on the console), reported. */
  #onHandlerFailed(name: Extract<EnclaveEvent['name'], { type: 'handlerFailed' }>, error: EnclaveEvent['error']): void {
    this.stats.handlerFailures++;
    const wireError = error ? { code: error.code, message: error.message } : undefined;
    const { kind, peer, messageId, failures, quarantined, failureReplySent, dev } = name;
    if (kind === undefined || peer === undefined || messageId === undefined || failures === undefined) {
      // Not a run's failure: the commit after a run failed (the enclave restarts if it must).
      this.#opts.logger.warn({ event: 'handler.failed', error: wireError }, 'bot handler failed');
      return;
    }
    if (kind === 'timeout') this.stats.handlerTimeouts++;
    if (quarantined) this.stats.quarantined++;
    // The error's code only when the handler threw a ParleyError (or an SDK refusal it let through).
    const code = kind === 'timeout' || !error || error.code === 'INTERNAL' ? undefined : error.code;
    const reason = code && typeof error?.details?.reason === 'string' ? error.details.reason : undefined;
    this.#opts.logger.warn(
      { event: 'handler.failed', kind, peer, messageId, failures, quarantined: quarantined === true, failureReplySent: failureReplySent === true, ...(code ? { code } : {}), error: wireError },
      quarantined ? 'bot handler failed; the message is quarantined (never run again)' : 'bot handler failed',
    );
    if (dev) {
      const where = dev.file ? ` (${dev.file}${dev.line !== undefined ? `:${dev.line}` : ''})` : '';
      this.#opts.logger.error({ event: 'handler.dev', kind, messageId, message: dev.message, file: dev.file, line: dev.line, stack: dev.stack }, 'handler error (dev mode: may carry plaintext)');
      // eslint-disable-next-line no-console
      console.error(`[parley-bot dev] handler ${kind === 'timeout' ? 'timed out' : 'failed'}: ${dev.message}${where}${dev.stack ? `\n${dev.stack}` : ''}`);
    }
    const event: HandlerFailedEvent = {
      kind,
      peer,
      messageId,
      failures,
      quarantined: quarantined === true,
      failureReplySent: failureReplySent === true,
      ...(code ? { code } : {}),
      ...(reason ? { reason } : {}),
      ...(dev ? { dev: { message: dev.message, ...(dev.file !== undefined ? { file: dev.file } : {}), ...(dev.line !== undefined ? { line: dev.line } : {}), ...(dev.stack !== undefined ? { stack: dev.stack } : {}) } } : {}),
    };
    try {
      this.#opts.onHandlerFailed?.(event);
    } catch {
      // a listener's error is the app's, not the supervisor's
    }
  }

  #post(worker: EnclaveChannel | undefined, generation: number, msg: unknown, transfer: (ArrayBuffer | MessagePort)[] = []): void {
    if (!worker || generation !== this.#generation) return;
    this.#opts.unsafeTestingTap?.('toEnclave', msg);
    worker.postMessage(msg, transfer);
  }

  /**
   * An invalid answer to a pending call settles that call now (`INTERNAL`) rather than after the
   * call timeout: a delivery waiting on it fails and is retried instead of hanging.
   */
  #failCallOf(raw: unknown): void {
    if (typeof raw !== 'object' || raw === null) return;
    const { type, callId } = raw as { type?: unknown; callId?: unknown };
    if (type !== 'result' || typeof callId !== 'number') return; // ct-ok: public message tags
    const p = this.#pending.get(callId);
    if (!p) return;
    this.#pending.delete(callId);
    clearTimeout(p.timer);
    p.reject(new ParleyError('INTERNAL', 'the enclave answered with a malformed result', { details: { method: p.method } }));
  }

  #call<M extends MethodName>(method: M, params: Params<M>, transfer: (ArrayBuffer | MessagePort)[], generation: number): Promise<Result<M>> {
    const worker = this.#worker;
    if (!worker || generation !== this.#generation) return Promise.reject(new ParleyError('ENCLAVE_UNAVAILABLE', 'the enclave is not running'));
    const callId = this.#nextCall++;
    return new Promise<Result<M>>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(callId);
        reject(new ParleyError('ENCLAVE_UNAVAILABLE', 'the enclave did not answer in time', { details: { method } }));
      }, this.#opts.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS);
      this.#pending.set(callId, { method, resolve: resolve as (v: unknown) => void, reject, timer });
      this.#post(worker, generation, { type: 'call', callId, method, params }, transfer);
    });
  }

  /**
   * Calls the enclave.
   * @throws ParleyError `ENCLAVE_UNAVAILABLE` when no enclave is up or it dies before answering;
   *   otherwise the enclave's typed error, rebuilt with `ParleyError.fromJSON`.
   */
  call<M extends MethodName>(method: M, params: Params<M>): Promise<Result<M>> {
    if (!this.#info) return Promise.reject(new ParleyError('ENCLAVE_UNAVAILABLE', 'the enclave is not running'));
    let checked: Params<M>;
    try {
      checked = parseParams(method, params);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.#call(method, checked, [], this.#generation);
  }

  /** Test-only: posts a raw message to the worker, bypassing every type (B4 fuzzing). */
  unsafeTestingPostRaw(message: unknown, transfer: ArrayBuffer[] = []): void {
    this.#post(this.#worker, this.#generation, message, transfer);
  }

  /** Test-only: the enclave's process id in process mode (undefined in worker mode or while none runs). */
  get unsafeTestingEnclavePid(): number | undefined {
    return this.#worker instanceof ProcessEnclave ? this.#worker.pid : undefined;
  }

  /** Test-only: kills the worker now (crash injection). */
  async unsafeTestingTerminate(): Promise<void> {
    await this.#worker?.terminate();
  }

  /** Stops the worker for good. In-flight calls reject with `ENCLAVE_UNAVAILABLE`. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#restartTimer);
    for (const w of this.#readyWaiters.splice(0)) w.reject(new ParleyError('ENCLAVE_UNAVAILABLE', 'the bot is stopped'));
    const worker = this.#worker;
    if (worker) await worker.terminate();
  }
}
