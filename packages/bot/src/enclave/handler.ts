/**
 * Running the developer's handler, from the enclave's side. Runs only inside the enclave.
 *
 * The enclave never imports the handler. It starts a second worker, the *handler worker*
 * (`handler-worker.ts`): a separate V8 isolate, with its own module instances, heap and crypto
 * (none), that loads the handler and only the files the measurement covers. The enclave hands it
 * one decrypted message at a time (with that conversation's `ctx.state` record) and does what it
 * asks on that message's behalf: encrypt and send a reply (through the same sealed outbox as
 * before; in a conversation with several members, to each member), ask the customer's device
 * for a human (`ctx.handoff`), for consent or a form (`ctx.requestConsent`, `ctx.requestForm`), or tell it the safety number or the current members. No key, session, sealed record or engine object ever
 * crosses; nothing the handler patches or wraps in its isolate is the enclave's.
 *
 * Limits (THREATS B6): every run has a time limit. At the limit the run is abandoned (its later
 * replies are refused) and reported as a `timeout` failure; the enclave then probes the worker,
 * and a worker that does not answer (a busy loop: Node cannot preempt a promise, only end the
 * isolate) is ended and started again, its other runs reported as `interrupted` (the enclave
 * re-runs them, flagged `redelivered`). A run that throws is a `threw` failure, one that asked
 * for a reply too large to send an `oversize` failure.
 *
 * The handler sees plaintext; nothing it returns or throws leaves the enclave except as a typed
 * `{ code, message }` whose message is fixed by the SDK (and, only in dev mode, the error's own
 * message and stack). Everything the handler worker posts is validated here first: the handler's
 * own code can post anything on that port.
 */
import { writeSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { MessageChannel, Worker, resourceLimits as ownResourceLimits, type MessagePort, type ResourceLimits } from 'node:worker_threads';
import type { Readable } from 'node:stream';
import { ERROR_CODES, ParleyError, decodeContent, type OutgoingContent, type ParleyErrorCode, type SerializedParleyError } from '@parley/protocol';
import { toWireError } from '../rpc/messages.js';
import type { BotConsentEntry, BotConsentRequest, BotFormRequest, BotMessage, Member } from '../handler-api.js';
import {
  MAX_DEV_MESSAGE,
  MAX_DEV_STACK,
  MAX_REPLY_BODY_BYTES,
  type FromHandler,
  type HandlerDevReport,
  type HandlerFailure,
  type HandlerWorkerData,
  type SyncAnswer,
  type ToHandler,
} from './handler-protocol.js';
import { decodeState, encodeState, MAX_STATE_BYTES } from './handler-state.js';
import { egressFetch, parseEgressRequest } from './egress.js';
import { handlerWorkerExecArgv } from './process-port.js';
import { MAX_EGRESS_REQUESTS_PER_RUN, type EgressRequestMessage } from './handler-egress-api.js';

export type { BotHandler, BotMessage, BotContext } from '../handler-api.js';
export type { HandlerDevReport } from './handler-protocol.js';

/**
 * Where the handler worker starts. Installed (compiled) it is `dist/enclave/handler-worker.js`;
 * from the repository's TypeScript sources it is a tiny .mjs that registers tsx in the worker first.
 */
export const HANDLER_WORKER_URL = import.meta.url.endsWith('.ts') ? new URL('./handler-bootstrap.mjs', import.meta.url) : new URL('./handler-worker.js', import.meta.url);

/** At most this many characters of a load failure reach the host (the RPC's limit for an error message). */
const MAX_LOAD_MESSAGE = 500;
/** Default time limit of one handler run (`handlerTimeoutMs`). */
export const DEFAULT_HANDLER_TIMEOUT_MS = 30_000;
/** How long a worker has to answer the liveness probe after a run's time limit: the limit itself, at most this. */
const MAX_PROBE_GRACE_MS = 5_000;

/** Why a handler run failed (the host's `HandlerFailureKind`). */
export type HandlerFailureKind = 'timeout' | 'threw' | 'oversize';

/** How one run ended. */
export type RunOutcome =
  /** The handler returned; `state`: the conversation's new `ctx.state` record when the run changed it (`''`: now empty). */
  | { readonly status: 'done'; readonly state?: string }
  /** The handler failed; `error` in the SDK's words, `dev` only in dev mode. */
  | { readonly status: 'failed'; readonly kind: HandlerFailureKind; readonly error: ParleyError; readonly dev?: HandlerDevReport }
  /** The run's worker was ended (another run was stuck): run it again. */
  | { readonly status: 'interrupted' };

export interface HandlerWorkerOptions {
  /** The handler module (`file:` URL). */
  handlerUrl: string;
  /** Every file of the handler's graph: real path and SHA-256 (hex), as measured. */
  measured: readonly (readonly [path: string, sha256: string])[];
  /** The safety number of the conversation with `peer` (for `ctx.safetyNumber()`). */
  safetyNumber(peer: string): string;
  /** Called once when the worker stops by itself after it loaded the handler, or cannot be started again (the enclave restarts). */
  onExit(reason: string): void;
  /** Time limit of one run (default {@link DEFAULT_HANDLER_TIMEOUT_MS}). */
  timeoutMs?: number;
  /** Dev mode: failures carry the error's message, stack, file and line. */
  dev?: boolean;
  /** Called when a stuck worker was ended and started again (for the enclave's log). */
  onRestart?(): void;
  /** The measured egress policy (canonical origins) `ctx.fetch` is held to; none: no network. */
  egress?: readonly string[];
}

/**
 * What a run may ask the enclave for, on its message's behalf: a reply, a handoff (in a
 * conversation), the conversation's current members.
 */
export interface RunActions {
  reply(content: OutgoingContent): Promise<void>;
  /** `ctx.handoff` (the enclave checks the queue and reason, and that the message came in a conversation). */
  handoff(queue: string, reason: string): Promise<void>;
  /** `ctx.members()`: the current members, or `[]` outside a conversation. */
  members(): readonly Member[];
  /** `ctx.requestConsent` (the enclave checks the request, and that the message came in a conversation); resolves with the request's id. */
  requestConsent(request: BotConsentRequest): Promise<string>;
  /** `ctx.requestForm` (checked likewise); resolves with the form's id. */
  requestForm(request: BotFormRequest): Promise<string>;
  /** `ctx.consents()`: the conversation's receipts, or `[]` outside a conversation. */
  consents(): readonly BotConsentEntry[];
}

/** Most fields a consent or form request may carry across the port (the protocol allows 32). */
const MAX_REQUEST_FIELDS = 64;
/** Longest string of a consent or form request taken from the worker before the protocol's own checks. */
const MAX_REQUEST_STRING = 2_000;

const isShortString = (v: unknown): v is string => typeof v === 'string' && v.length <= MAX_REQUEST_STRING;

/** A field list as the worker posted it, bounded (a copy); `undefined` when it is not one. */
function fieldList(v: unknown): string[] | undefined {
  if (!Array.isArray(v) || v.length > MAX_REQUEST_FIELDS || !v.every(isShortString)) return undefined;
  return [...(v as string[])];
}

/** Longest queue name or handoff reason the enclave takes from the worker before its own checks. */
const MAX_HANDOFF_FIELD = 2_000;

interface Run {
  readonly peer: string;
  readonly actions: RunActions;
  /** The errors the enclave answered this run's requests with (a rethrow may name one). */
  readonly errors: SerializedParleyError[];
  /** This run's replies, one after the other, in the order the handler asked. */
  replies: Promise<void>;
  /** A reply of this run was refused for its size. */
  oversize: boolean;
  readonly timer: NodeJS.Timeout;
  readonly settle: (outcome: RunOutcome) => void;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isCode = (v: unknown): v is ParleyErrorCode => typeof v === 'string' && (ERROR_CODES as readonly string[]).includes(v);

/** A dev report as the worker posted it, bounded; `undefined` when it is not one. */
function parseDev(d: unknown): HandlerDevReport | undefined {
  if (!isObject(d) || typeof d.message !== 'string') return undefined;
  const file = typeof d.file === 'string' && d.file.length > 0 ? d.file.slice(0, 1000) : undefined;
  const line = isCount(d.line) ? d.line : undefined;
  return {
    message: d.message.slice(0, MAX_DEV_MESSAGE),
    ...(typeof d.stack === 'string' ? { stack: d.stack.slice(0, MAX_DEV_STACK) } : {}),
    ...(file !== undefined ? { file } : {}),
    ...(line !== undefined ? { line } : {}),
  };
}

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
    case 'handoff': {
      const { run, seq, queue, reason } = raw;
      if (!isCount(run) || !isCount(seq) || typeof queue !== 'string' || typeof reason !== 'string') return undefined;
      if (queue.length > MAX_HANDOFF_FIELD || reason.length > MAX_HANDOFF_FIELD) return undefined;
      return { t: 'handoff', run, seq, queue, reason };
    }
    case 'consentRequest': {
      const { run, seq, request: r } = raw;
      if (!isCount(run) || !isCount(seq) || !isObject(r)) return undefined;
      const fields = fieldList(r.fields);
      if (!fields || !isShortString(r.purpose) || !isShortString(r.controller) || typeof r.retentionDays !== 'number') return undefined;
      return { t: 'consentRequest', run, seq, request: { purpose: r.purpose, fields, retentionDays: r.retentionDays, controller: r.controller } };
    }
    case 'formRequest': {
      const { run, seq, consentRequest } = raw;
      const fields = fieldList(raw.fields);
      if (!isCount(run) || !isCount(seq) || !fields || !isShortString(consentRequest)) return undefined;
      return { t: 'formRequest', run, seq, fields, consentRequest };
    }
    case 'done': {
      const { run, failure } = raw;
      if (!isCount(run)) return undefined;
      // Bounded here (a longer record is still over the limit, so still refused); checked in full before it is sealed.
      const state = typeof raw.state === 'string' ? raw.state.slice(0, MAX_STATE_BYTES + 1) : undefined;
      if (failure === undefined) return { t: 'done', run, ...(state !== undefined ? { state } : {}) };
      if (!isObject(failure)) return { t: 'done', run, failure: { name: 'non-error value' } };
      const dev = parseDev(failure.dev);
      if (typeof failure.name !== 'string' || !/^([A-Za-z]{1,40}|non-error value)$/.test(failure.name)) return { t: 'done', run, failure: { name: 'non-error value', ...(dev ? { dev } : {}) } };
      const code = isCode(failure.code) ? failure.code : undefined;
      const echo = isCount(failure.echo) ? failure.echo : undefined;
      return { t: 'done', run, failure: { name: failure.name, ...(code ? { code } : {}), ...(echo !== undefined ? { echo } : {}), ...(dev ? { dev } : {}) } };
    }
    case 'oversize':
      return isCount(raw.run) ? { t: 'oversize', run: raw.run } : undefined;
    case 'pong':
      return isCount(raw.n) ? { t: 'pong', n: raw.n } : undefined;
    default:
      return undefined;
  }
}

/** What the enclave answers a request of the worker it cannot take (the handler's call settles with it). */
const REFUSED = {
  reply: 'a reply must be text, JSON or bytes of at most 1 MiB',
  handoff: 'ctx.handoff takes { queue: string, reason?: string }',
  consentRequest: 'ctx.requestConsent takes { purpose: string, fields: string[], retentionDays: number, controller: string }',
  formRequest: 'ctx.requestForm takes { fields: string[], consentRequest: string }',
} as const;

/** How a request after the run returned is named in its refusal. */
const LATE = { reply: 'reply', handoff: 'hand off', consentRequest: 'request consent', formRequest: 'request a form' } as const;

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

/** One handler worker (one isolate), seen from the enclave. */
class HandlerIsolate {
  readonly #worker: Worker;
  readonly #sync: MessagePort;
  readonly #flag: Int32Array;
  readonly #opts: HandlerWorkerOptions;
  readonly #timeoutMs: number;
  readonly #runs = new Map<number, Run>();
  #nextRun = 1;
  #state: 'loading' | 'ready' | 'stopped' = 'loading';
  #exitReason = '';
  #loaded: { resolve: () => void; reject: (e: unknown) => void } | undefined;
  /** The liveness probe in flight, if any. */
  #probe: { n: number; timer: NodeJS.Timeout } | undefined;
  #nextProbe = 1;
  /** Called when the worker did not answer the probe in time. */
  onStuck: (() => void) | undefined;

  constructor(opts: HandlerWorkerOptions) {
    this.#opts = opts;
    this.#timeoutMs = opts.timeoutMs ?? DEFAULT_HANDLER_TIMEOUT_MS;
    const { port1, port2 } = new MessageChannel();
    this.#sync = port1;
    this.#flag = new Int32Array(new SharedArrayBuffer(4));
    const workerData: HandlerWorkerData = { handlerUrl: opts.handlerUrl, measured: opts.measured, sync: { port: port2, flag: this.#flag }, ...(opts.dev ? { dev: true } : {}) };
    this.#worker = new Worker(HANDLER_WORKER_URL, {
      workerData,
      transferList: [port2],
      // Nothing from the enclave's (already empty) environment, no arguments; the loader flags
      // the process runs with (e.g. `--import tsx`), so the handler loads as it did in the enclave.
      env: {},
      argv: [],
      execArgv: handlerWorkerExecArgv(),
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

  /** Resolves once the worker loaded the handler; rejects (`USAGE`) when it could not. */
  loaded(): Promise<void> {
    return new Promise<void>((resolve, reject) => (this.#loaded = { resolve, reject }));
  }

  run(message: BotMessage, botDeviceId: string, state: string, actions: RunActions): Promise<RunOutcome> {
    if (this.#state !== 'ready') return Promise.resolve({ status: 'interrupted' });
    const id = this.#nextRun++;
    return new Promise<RunOutcome>((resolve) => {
      const run: Run = {
        peer: message.from,
        actions,
        errors: [],
        replies: Promise.resolve(),
        oversize: false,
        timer: setTimeout(() => this.#timedOut(id), this.#timeoutMs),
        settle: (outcome) => {
          this.#runs.delete(id);
          clearTimeout(run.timer);
          resolve(outcome);
        },
      };
      this.#runs.set(id, run);
      this.#post({ t: 'run', run: id, botDeviceId, message, state });
    });
  }

  /** Stops the worker (without the `onExit` call); runs in flight end `interrupted`. */
  async terminate(): Promise<void> {
    this.#state = 'stopped';
    clearTimeout(this.#probe?.timer);
    this.#probe = undefined;
    this.#sync.close();
    for (const run of [...this.#runs.values()]) run.settle({ status: 'interrupted' });
    await this.#worker.terminate();
  }

  #post(msg: ToHandler): void {
    this.#worker.postMessage(msg);
  }

  /** Run `id` reached its limit: abandon it (its later replies are refused), then probe the worker. */
  #timedOut(id: number): void {
    const run = this.#runs.get(id);
    if (!run) return;
    run.settle({
      status: 'failed',
      kind: 'timeout',
      error: new ParleyError('INTERNAL', `the handler did not finish within handlerTimeoutMs (${this.#timeoutMs} ms); the run was abandoned`, { details: { reason: 'handlerTimeout', timeoutMs: this.#timeoutMs } }),
    });
    if (this.#probe || this.#state !== 'ready') return;
    const n = this.#nextProbe++;
    const grace = Math.min(this.#timeoutMs, MAX_PROBE_GRACE_MS);
    this.#probe = {
      n,
      timer: setTimeout(() => {
        if (this.#probe?.n !== n || this.#state !== 'ready') return;
        this.#probe = undefined;
        this.onStuck?.();
      }, grace),
    };
    this.#post({ t: 'ping', n });
  }

  /** How a run that returned ends: its replies settled first. */
  #finish(id: number, run: Run, m: Extract<FromHandler, { t: 'done' }>): void {
    // No later reply of this run is taken (the run is no longer listed), and its outcome waits for the ones it asked for.
    this.#runs.delete(id);
    void run.replies.then(() => {
      const f = m.failure;
      if (f) {
        const error = failureError(f, run);
        const kind: HandlerFailureKind = run.oversize || error.code === 'PAYLOAD_TOO_LARGE' ? 'oversize' : 'threw';
        run.settle({ status: 'failed', kind, error, ...(this.#opts.dev && f.dev ? { dev: f.dev } : {}) });
      } else if (run.oversize) {
        run.settle({ status: 'failed', kind: 'oversize', error: new ParleyError('PAYLOAD_TOO_LARGE', 'the handler asked for a reply larger than a message may be') });
      } else if (m.state !== undefined) {
        // The handler's code could have posted anything: the record is checked before it is sealed.
        try {
          run.settle({ status: 'done', state: encodeState(decodeState(m.state)) });
        } catch (e) {
          run.settle({ status: 'failed', kind: 'threw', error: e instanceof ParleyError ? e : new ParleyError('USAGE', 'the handler state record is malformed') });
        }
      } else {
        run.settle({ status: 'done' });
      }
    });
  }

  /** `ctx.fetch` requests made per run (bounded by {@link MAX_EGRESS_REQUESTS_PER_RUN}). */
  readonly #fetches = new Map<number, number>();

  /** `ctx.fetch`: made here, under the measured policy (`egress.ts`), for a run that is still going. */
  #onFetch(req: EgressRequestMessage): void {
    const run = this.#runs.get(req.run);
    const made = this.#fetches.get(req.run) ?? 0;
    const answer = (result: Promise<Awaited<ReturnType<typeof egressFetch>>>): void => {
      result.then(
        (response) => this.#post({ t: 'fetched', run: req.run, seq: req.seq, response }),
        (e: unknown) => {
          const error = toWireError(e);
          const now = this.#runs.get(req.run);
          this.#post({ t: 'fetched', run: req.run, seq: req.seq, error: { error, echo: now ? now.errors.push(error) - 1 : -1 } });
        },
      );
    };
    if (!run) return answer(Promise.reject(new ParleyError('USAGE', 'ctx.fetch works only while the handler runs for a message')));
    if (made >= MAX_EGRESS_REQUESTS_PER_RUN) return answer(Promise.reject(new ParleyError('USAGE', `at most ${MAX_EGRESS_REQUESTS_PER_RUN} ctx.fetch requests per message`)));
    if (this.#fetches.size > 256) for (const id of this.#fetches.keys()) if (!this.#runs.has(id)) this.#fetches.delete(id);
    this.#fetches.set(req.run, made + 1);
    answer(egressFetch(this.#opts.egress ?? [], req));
  }

  #onMessage(raw: unknown): void {
    if (isObject(raw) && raw.t === 'fetch') {
      const req = parseEgressRequest(raw);
      if (req) this.#onFetch(req);
      return;
    }
    const m = parseFromHandler(raw);
    if (!m) {
      // A reply (or handoff, consent or form request) the enclave cannot take is still answered, so the handler's call settles.
      if (isObject(raw) && typeof raw.t === 'string' && Object.hasOwn(REFUSED, raw.t) && isCount(raw.run) && isCount(raw.seq)) {
        const error = new ParleyError('USAGE', REFUSED[raw.t as keyof typeof REFUSED]).toJSON();
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
      case 'reply':
      case 'handoff':
      case 'consentRequest':
      case 'formRequest': {
        const run = this.#runs.get(m.run);
        if (!run) {
          this.#post({ t: 'replied', run: m.run, seq: m.seq, error: { error: new ParleyError('USAGE', `the handler already returned for this message: ${LATE[m.t]} before it returns`).toJSON(), echo: -1 } });
          return;
        }
        run.replies = run.replies.then(async () => {
          try {
            let id: string | undefined;
            if (m.t === 'reply') await run.actions.reply(replyContent(m.type, m.body));
            else if (m.t === 'handoff') await run.actions.handoff(m.queue, m.reason);
            else if (m.t === 'consentRequest') id = await run.actions.requestConsent(m.request);
            else id = await run.actions.requestForm({ fields: m.fields, consentRequest: m.consentRequest });
            this.#post({ t: 'replied', run: m.run, seq: m.seq, ...(id !== undefined ? { id } : {}) });
          } catch (e) {
            if (e instanceof ParleyError && e.code === 'PAYLOAD_TOO_LARGE') run.oversize = true;
            const error = toWireError(e);
            this.#post({ t: 'replied', run: m.run, seq: m.seq, error: { error, echo: run.errors.push(error) - 1 } });
          }
        });
        return;
      }
      case 'oversize': {
        const run = this.#runs.get(m.run);
        if (run) run.oversize = true;
        return;
      }
      case 'pong':
        if (this.#probe?.n === m.n) {
          clearTimeout(this.#probe.timer);
          this.#probe = undefined;
        }
        return;
      case 'done': {
        const run = this.#runs.get(m.run);
        if (run) this.#finish(m.run, run, m);
        return;
      }
    }
  }

  /** `ctx.safetyNumber()`, `ctx.members()`, `ctx.consents()`: answers on the sync port, then wakes the worker. */
  #onSync(raw: unknown): void {
    if (!isObject(raw) || !isCount(raw.call) || !isCount(raw.run)) return;
    const run = this.#runs.get(raw.run);
    const what = raw.what === 'members' || raw.what === 'consents' ? raw.what : 'safetyNumber';
    let answer: SyncAnswer;
    try {
      if (!run) throw new ParleyError('USAGE', `ctx.${what}() works only while the handler runs for a message`);
      answer =
        what === 'members'
          ? { call: raw.call, ok: true, members: run.actions.members().map((m) => ({ deviceId: m.deviceId, role: m.role, name: m.name })) }
          : what === 'consents'
            ? { call: raw.call, ok: true, consents: run.actions.consents() }
            : { call: raw.call, ok: true, value: this.#opts.safetyNumber(run.peer) };
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
    clearTimeout(this.#probe?.timer);
    this.#sync.close();
    if (state === 'loading') {
      this.#loaded?.reject(new ParleyError('USAGE', `the handler module ${fileURLToPath(this.#opts.handlerUrl)} stopped its worker while loading (${reason})`));
    } else if (state === 'ready') {
      this.#opts.onExit(reason);
    }
  }
}

/**
 * The handler worker, seen from the enclave: one isolate at a time, replaced when it is stuck
 * (a run past its limit whose worker does not answer the probe). Runs asked for while it is
 * replaced wait for the new one.
 */
export class HandlerWorker {
  readonly #opts: HandlerWorkerOptions;
  #current: Promise<HandlerIsolate>;
  #stopped = false;

  private constructor(opts: HandlerWorkerOptions, first: HandlerIsolate) {
    this.#opts = opts;
    this.#current = Promise.resolve(first);
    this.#watch(first);
  }

  /**
   * Starts the handler worker and waits until it loaded the handler.
   * @throws ParleyError `USAGE` naming the module and the reason when the handler fails to load
   *   (including a file outside its measurement), or its worker stops while loading.
   */
  static async start(opts: HandlerWorkerOptions): Promise<HandlerWorker> {
    const first = new HandlerIsolate(opts);
    await first.loaded();
    return new HandlerWorker(opts, first);
  }

  #watch(isolate: HandlerIsolate): void {
    isolate.onStuck = () => {
      if (this.#stopped) return;
      // Ending the isolate interrupts its other runs (the enclave runs them again); the next
      // runs wait for the new isolate. One that cannot load any more ends the enclave.
      const next = (async () => {
        await isolate.terminate();
        const fresh = new HandlerIsolate(this.#opts);
        await fresh.loaded();
        return fresh;
      })();
      this.#current = next;
      next.then(
        (fresh) => {
          if (this.#stopped) return void fresh.terminate();
          this.#watch(fresh);
          this.#opts.onRestart?.();
        },
        (e: unknown) => this.#opts.onExit(`the stuck handler worker could not be started again (${toWireError(e).code})`),
      );
    };
  }

  /**
   * Runs the handler for one message with the conversation's `ctx.state` record (`''`: empty).
   * `actions.reply` (or `handoff`) is called for each reply (or handoff) the handler asks for, in
   * order, until the run settles. Never rejects: how the run ended is the {@link RunOutcome}.
   */
  async run(message: BotMessage, botDeviceId: string, state: string, actions: RunActions): Promise<RunOutcome> {
    let isolate: HandlerIsolate;
    try {
      isolate = await this.#current;
    } catch {
      return new Promise<RunOutcome>(() => undefined); // the enclave is ending (onExit)
    }
    return isolate.run(message, botDeviceId, state, actions);
  }

  /** Stops the worker (without the `onExit` call). */
  async terminate(): Promise<void> {
    this.#stopped = true;
    await (await this.#current.catch(() => undefined))?.terminate();
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
