/**
 * Running the developer's handler, from the enclave's side. Runs only inside the enclave.
 *
 * The enclave never imports the handler. It starts a second worker, the *handler worker*
 * (`handler-worker.ts`): a separate V8 isolate, with its own module instances, heap and crypto
 * (none), that loads the handler and only the files the measurement covers. The enclave hands it
 * one decrypted message at a time and does what it asks on that message's behalf: encrypt and
 * send a reply (through the same sealed outbox as before), or tell it the safety number. No key,
 * session, sealed record or engine object ever crosses; nothing the handler patches or wraps in
 * its isolate is the enclave's.
 *
 * The handler sees plaintext; nothing it returns or throws leaves the enclave except as a typed
 * `{ code, message }` whose message is fixed by the SDK. Everything the handler worker posts is
 * validated here first: the handler's own code can post anything on that port.
 */
import { writeSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { MessageChannel, Worker, resourceLimits as ownResourceLimits, type MessagePort, type ResourceLimits } from 'node:worker_threads';
import type { Readable } from 'node:stream';
import { ERROR_CODES, ParleyError, decodeContent, type OutgoingContent, type ParleyErrorCode, type SerializedParleyError } from '@parley/protocol';
import { toWireError } from '../rpc/messages.js';
import type { BotMessage } from '../handler-api.js';
import { MAX_REPLY_BODY_BYTES, type FromHandler, type HandlerFailure, type HandlerWorkerData, type SyncAnswer, type ToHandler } from './handler-protocol.js';

export type { BotHandler, BotMessage, BotContext } from '../handler-api.js';

/**
 * Where the handler worker starts. Installed (compiled) it is `dist/enclave/handler-worker.js`;
 * from the repository's TypeScript sources it is a tiny .mjs that registers tsx in the worker first.
 */
export const HANDLER_WORKER_URL = import.meta.url.endsWith('.ts') ? new URL('./handler-bootstrap.mjs', import.meta.url) : new URL('./handler-worker.js', import.meta.url);

/** At most this many characters of a load failure reach the host (the RPC's limit for an error message). */
const MAX_LOAD_MESSAGE = 500;

export interface HandlerWorkerOptions {
  /** The handler module (`file:` URL). */
  handlerUrl: string;
  /** Every file of the handler's graph: real path and SHA-256 (hex), as measured. */
  measured: readonly (readonly [path: string, sha256: string])[];
  /** The safety number of the conversation with `peer` (for `ctx.safetyNumber()`). */
  safetyNumber(peer: string): string;
  /** Called once when the worker stops after it loaded the handler (the enclave restarts). */
  onExit(reason: string): void;
}

interface Run {
  readonly peer: string;
  readonly reply: (content: OutgoingContent) => Promise<void>;
  /** The errors the enclave answered this run's requests with (a rethrow may name one). */
  readonly errors: SerializedParleyError[];
  /** This run's replies, one after the other, in the order the handler asked. */
  replies: Promise<void>;
  readonly done: (failure: HandlerFailure | undefined) => void;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isCode = (v: unknown): v is ParleyErrorCode => typeof v === 'string' && (ERROR_CODES as readonly string[]).includes(v);

/** A message from the handler worker, checked; `undefined` for anything else (ignored). */
export function parseFromHandler(raw: unknown): FromHandler | undefined {
  if (!isObject(raw) || typeof raw.t !== 'string') return undefined;
  switch (raw.t) {
    case 'loaded':
      return { t: 'loaded' };
    case 'loadFailed': {
      if (typeof raw.message !== 'string') return undefined;
      const d = raw.details;
      const details = isObject(d) && typeof d.reason === 'string' && typeof d.file === 'string' ? { reason: d.reason.slice(0, 40), file: d.file.slice(0, 200) } : undefined;
      return { t: 'loadFailed', message: raw.message.slice(0, MAX_LOAD_MESSAGE), ...(details ? { details } : {}) };
    }
    case 'reply': {
      const { run, seq, type, body } = raw;
      if (!isCount(run) || !isCount(seq) || (type !== 'text' && type !== 'json' && type !== 'binary')) return undefined;
      // Never a view of shared memory: the handler could change the bytes while they are encrypted.
      if (!(body instanceof Uint8Array) || !(body.buffer instanceof ArrayBuffer) || body.length > MAX_REPLY_BODY_BYTES) return undefined;
      return { t: 'reply', run, seq, type, body };
    }
    case 'done': {
      const { run, failure } = raw;
      if (!isCount(run)) return undefined;
      if (failure === undefined) return { t: 'done', run };
      if (!isObject(failure) || typeof failure.name !== 'string' || !/^([A-Za-z]{1,40}|non-error value)$/.test(failure.name)) return { t: 'done', run, failure: { name: 'non-error value' } };
      const code = isCode(failure.code) ? failure.code : undefined;
      const echo = isCount(failure.echo) ? failure.echo : undefined;
      return { t: 'done', run, failure: { name: failure.name, ...(code ? { code } : {}), ...(echo !== undefined ? { echo } : {}) } };
    }
    default:
      return undefined;
  }
}

/** The content a checked reply body carries, or a typed error if the body does not decode as its type. */
function replyContent(type: 'text' | 'json' | 'binary', body: Uint8Array): OutgoingContent {
  const c = decodeContent(type, body);
  if (c.type !== type) throw new ParleyError('USAGE', `reply content is not valid ${type}`);
  return c.type === 'text' ? c.text : c.type === 'json' ? c.json : c.binary;
}

/** The error a failed run is reported with: the SDK's own words only. */
function failureError(f: HandlerFailure, run: Run): ParleyError {
  const echoed = f.echo !== undefined ? run.errors[f.echo] : undefined;
  if (echoed) return ParleyError.fromJSON(echoed);
  if (isCode(f.code)) return new ParleyError(f.code, `the handler threw ${f.code} (message withheld at the enclave boundary)`);
  return new ParleyError('INTERNAL', `unexpected ${f.name} (message withheld at the enclave boundary)`);
}

/** The enclave's own worker limits (the host's `resourceLimits`), for the handler worker too. */
function limits(): ResourceLimits {
  const out: ResourceLimits = {};
  for (const [k, v] of Object.entries(ownResourceLimits ?? {})) if (typeof v === 'number' && v > 0) out[k as keyof ResourceLimits] = v;
  return out;
}

/** Copies a worker's output stream straight to a file descriptor of the process. */
function toDescriptor(stream: Readable, fd: number): void {
  stream.on('data', (chunk: Buffer) => {
    try {
      writeSync(fd, chunk);
    } catch {
      // a closed descriptor is not worth crashing the enclave over
    }
  });
}

/** The handler worker, seen from the enclave. */
export class HandlerWorker {
  readonly #worker: Worker;
  readonly #sync: MessagePort;
  readonly #flag: Int32Array;
  readonly #opts: HandlerWorkerOptions;
  readonly #runs = new Map<number, Run>();
  #nextRun = 1;
  #state: 'loading' | 'ready' | 'stopped' = 'loading';
  #exitReason = '';
  #loaded: { resolve: () => void; reject: (e: unknown) => void } | undefined;

  private constructor(opts: HandlerWorkerOptions) {
    this.#opts = opts;
    const { port1, port2 } = new MessageChannel();
    this.#sync = port1;
    this.#flag = new Int32Array(new SharedArrayBuffer(4));
    const workerData: HandlerWorkerData = { handlerUrl: opts.handlerUrl, measured: opts.measured, sync: { port: port2, flag: this.#flag } };
    this.#worker = new Worker(HANDLER_WORKER_URL, {
      workerData,
      transferList: [port2],
      // Nothing from the enclave's (already empty) environment, no arguments; the loader flags
      // the process runs with (e.g. `--import tsx`), so the handler loads as it did in the enclave.
      env: {},
      argv: [],
      execArgv: process.execArgv,
      // Its own heap, as small as the enclave's: a handler that exhausts it stops only this worker.
      resourceLimits: limits(),
      stdout: true,
      stderr: true,
    });
    toDescriptor(this.#worker.stdout, 1);
    toDescriptor(this.#worker.stderr, 2);
    this.#worker.on('message', (raw: unknown) => this.#onMessage(raw));
    this.#worker.on('error', (e: Error) => {
      this.#exitReason ||= String((e as NodeJS.ErrnoException).code ?? e.name).slice(0, 60);
    });
    this.#worker.on('exit', (code) => this.#onExit(code));
    this.#sync.on('message', (raw: unknown) => this.#onSync(raw));
    this.#sync.unref();
  }

  /**
   * Starts the handler worker and waits until it loaded the handler.
   * @throws ParleyError `USAGE` naming the module and the reason when the handler fails to load
   *   (including a file outside its measurement), or its worker stops while loading.
   */
  static async start(opts: HandlerWorkerOptions): Promise<HandlerWorker> {
    const w = new HandlerWorker(opts);
    await new Promise<void>((resolve, reject) => (w.#loaded = { resolve, reject }));
    return w;
  }

  /**
   * Runs the handler for one message. `reply` is called for each reply the handler asks for, in
   * order; the returned promise settles after the handler returned and its replies settled.
   * @throws ParleyError the handler's failure, in the SDK's words (see {@link failureError}).
   */
  run(message: BotMessage, botDeviceId: string, reply: (content: OutgoingContent) => Promise<void>): Promise<void> {
    if (this.#state !== 'ready') return Promise.reject(new ParleyError('ENCLAVE_UNAVAILABLE', 'the handler worker is not running'));
    const id = this.#nextRun++;
    return new Promise<void>((resolve, reject) => {
      const run: Run = {
        peer: message.from,
        reply,
        errors: [],
        replies: Promise.resolve(),
        done: (failure) => {
          this.#runs.delete(id);
          void run.replies.then(() => (failure ? reject(failureError(failure, run)) : resolve()));
        },
      };
      this.#runs.set(id, run);
      this.#post({ t: 'run', run: id, botDeviceId, message });
    });
  }

  /** Stops the worker (without the `onExit` call). */
  async terminate(): Promise<void> {
    this.#state = 'stopped';
    this.#sync.close();
    await this.#worker.terminate();
  }

  #post(msg: ToHandler): void {
    this.#worker.postMessage(msg);
  }

  #onMessage(raw: unknown): void {
    const m = parseFromHandler(raw);
    if (!m) {
      // A reply the enclave cannot take is still answered, so the handler's `ctx.reply` settles.
      if (isObject(raw) && raw.t === 'reply' && isCount(raw.run) && isCount(raw.seq)) {
        const error = new ParleyError('USAGE', 'a reply must be text, JSON or bytes of at most 1 MiB').toJSON();
        const run = this.#runs.get(raw.run);
        this.#post({ t: 'replied', run: raw.run, seq: raw.seq, error: { error, echo: run ? run.errors.push(error) - 1 : -1 } });
      }
      return;
    }
    switch (m.t) {
      case 'loaded':
        if (this.#state !== 'loading') return;
        this.#state = 'ready';
        this.#loaded?.resolve();
        return;
      case 'loadFailed':
        if (this.#state !== 'loading') return;
        this.#state = 'stopped';
        void this.#worker.terminate();
        this.#loaded?.reject(new ParleyError('USAGE', m.message, m.details ? { details: m.details } : undefined));
        return;
      case 'reply': {
        const run = this.#runs.get(m.run);
        if (!run) {
          this.#post({ t: 'replied', run: m.run, seq: m.seq, error: { error: new ParleyError('USAGE', 'the handler already returned for this message: reply before it returns').toJSON(), echo: -1 } });
          return;
        }
        run.replies = run.replies.then(async () => {
          try {
            await run.reply(replyContent(m.type, m.body));
            this.#post({ t: 'replied', run: m.run, seq: m.seq });
          } catch (e) {
            const error = toWireError(e);
            this.#post({ t: 'replied', run: m.run, seq: m.seq, error: { error, echo: run.errors.push(error) - 1 } });
          }
        });
        return;
      }
      case 'done':
        this.#runs.get(m.run)?.done(m.failure);
        return;
    }
  }

  /** `ctx.safetyNumber()`: answers on the sync port, then wakes the worker. */
  #onSync(raw: unknown): void {
    if (!isObject(raw) || !isCount(raw.call) || !isCount(raw.run)) return;
    const run = this.#runs.get(raw.run);
    let answer: SyncAnswer;
    try {
      if (!run) throw new ParleyError('USAGE', 'ctx.safetyNumber() works only while the handler runs for a message');
      answer = { call: raw.call, ok: true, value: this.#opts.safetyNumber(run.peer) };
    } catch (e) {
      const error = toWireError(e);
      answer = { call: raw.call, ok: false, error: { error, echo: run ? run.errors.push(error) - 1 : -1 } };
    }
    this.#sync.postMessage(answer);
    Atomics.store(this.#flag, 0, 1);
    Atomics.notify(this.#flag, 0);
  }

  #onExit(code: number): void {
    const reason = this.#exitReason || `exit ${code}`;
    const state = this.#state;
    this.#state = 'stopped';
    this.#sync.close();
    if (state === 'loading') {
      this.#loaded?.reject(new ParleyError('USAGE', `the handler module ${fileURLToPath(this.#opts.handlerUrl)} stopped its worker while loading (${reason})`));
    } else if (state === 'ready') {
      this.#opts.onExit(reason);
    }
  }
}

/**
 * Runs handler jobs: in order within one conversation, concurrently across conversations, at
 * most `maxConcurrent` at once.
 */
export class HandlerQueue {
  readonly #chains = new Map<string, Promise<void>>();
  readonly #max: number;
  #running = 0;
  readonly #waiting: (() => void)[] = [];

  constructor(maxConcurrent: number) {
    this.#max = maxConcurrent;
  }

  /** Queues `job` behind earlier jobs of the same `peer`. */
  push(peer: string, job: () => Promise<void>): void {
    const prev = this.#chains.get(peer) ?? Promise.resolve();
    const next = prev.then(async () => {
      await this.#slot();
      try {
        await job();
      } finally {
        this.#running--;
        this.#waiting.shift()?.();
      }
    });
    this.#chains.set(peer, next);
    void next.finally(() => {
      if (this.#chains.get(peer) === next) this.#chains.delete(peer);
    });
  }

  async #slot(): Promise<void> {
    if (this.#running < this.#max) {
      this.#running++;
      return;
    }
    await new Promise<void>((r) => this.#waiting.push(r));
    this.#running++;
  }

  /** Jobs queued or running. */
  get pending(): number {
    return this.#chains.size;
  }
}
