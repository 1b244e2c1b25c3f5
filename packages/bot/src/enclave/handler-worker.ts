/**
 * The handler worker's entry point: the developer's handler runs here, and only here.
 *
 * The enclave starts this worker (`handler.ts`); it is a separate V8 isolate with its own module
 * instances, so nothing the handler imports or patches (`@parley/protocol`'s crypto provider,
 * the engine's prototypes, the enclave's modules) is the enclave's: it holds no key, no
 * session, no sealed state and no crypto provider. It gets, over its port, the decrypted message
 * and the bot's device id, and can ask for a reply to the message it is running (and, in a
 * conversation, a handoff, a consent request or a form request), and for that conversation's
 * safety number, members and consent receipts. Its environment is empty; no secret is in its
 * `workerData`, `argv` or `env`.
 *
 * Before the handler loads, this worker refuses every file that is not part of the measurement
 * (or whose bytes changed since it was measured): an ES module load hook for `import`, and a
 * wrapper on CommonJS's loaders for `require` (Node 20's module hooks do not see `require`).
 * This worker's own modules load before the guards, and are the enclave's measured code.
 */
import { parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import { createRequire, register } from 'node:module';
import { createHash } from 'node:crypto';
import { readFileSync, writeSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { format } from 'node:util';
import { ERROR_CODES, ParleyError } from '@parley/protocol/errors';
import { encodeContent, type OutgoingContent } from '@parley/protocol/wire';
import type { BotConsentEntry, BotConsentRequest, BotContext, BotFormRequest, BotHandler, EgressFetchInit, HandoffRequest, JsonValue, Member } from '../handler-api.js';
import { checkStateKey, decodeState, encodeState, stateBytes, stateTooLarge, stateValueText, MAX_STATE_BYTES } from './handler-state.js';
import {
  CHANGED_MARK,
  MAX_DEV_MESSAGE,
  MAX_DEV_STACK,
  MAX_REPLY_BODY_BYTES,
  UNMEASURED_MARK,
  type FromHandler,
  type HandlerDevReport,
  type HandlerFailure,
  type HandlerWorkerData,
  type SyncAnswer,
  type SyncRequest,
  type ToHandler,
} from './handler-protocol.js';
import { BUILTIN_MARK, refusal, sealHandlerSandbox } from './handler-sandbox.js';
import { EgressClient, type EgressAnswerMessage } from './handler-egress-api.js';

if (!parentPort) throw new Error('the handler worker must run in a worker thread');
const port = parentPort;
const data = workerData as HandlerWorkerData;

/** How long `ctx.safetyNumber()` waits for the enclave. */
const SYNC_TIMEOUT_MS = 10_000;

function post(msg: FromHandler): void {
  port.postMessage(msg);
}

// The handler's console writes straight to the process's file descriptors, as the enclave's does:
// a worker's `process.stdout` goes through its parent thread (the enclave reads this worker's
// streams and writes them to the descriptors too, so nothing reaches the host thread).
for (const [name, fd] of [['log', 1], ['info', 1], ['debug', 1], ['warn', 2], ['error', 2]] as const) {
  (console as unknown as Record<string, unknown>)[name] = (...args: unknown[]) => {
    try {
      writeSync(fd, `[parley-handler] ${format(...args)}\n`);
    } catch {
      // a closed descriptor is not worth crashing over
    }
  };
}

// ---- the load guards -------------------------------------------------------------------------

const measured = new Map(data.measured.map(([path, sha256]) => [path, sha256]));

function unmeasured(path: string): ParleyError {
  return new ParleyError('USAGE', `the handler loads ${path}, which is not part of its measurement (import it with a string literal so computeMeasurement follows it, or bundle it in)`, {
    details: { reason: 'unmeasuredImport', file: path },
  });
}

function changed(path: string): ParleyError {
  return new ParleyError('USAGE', `the handler loads ${path}, which changed since it was measured`, { details: { reason: 'changedImport', file: path } });
}

/** CommonJS: every file `require` loads goes through `Module._extensions[ext]`. */
const Module = createRequire(import.meta.url)('node:module') as { _extensions: Record<string, (this: unknown, module: unknown, filename: string) => unknown> };
for (const ext of Object.keys(Module._extensions)) {
  const load = Module._extensions[ext]!;
  Module._extensions[ext] = function guarded(this: unknown, module: unknown, filename: string) {
    const want = measured.get(filename);
    if (want === undefined) throw unmeasured(filename);
    let got = '';
    try {
      got = createHash('sha256').update(readFileSync(filename)).digest('hex');
    } catch {
      // unreadable: refused below
    }
    if (got !== want) throw changed(filename);
    return load.call(this, module, filename);
  };
}

/**
 * ES modules: a load hook (on Node's loader thread) that checks every `file:` module the same
 * way before the next loader (Node's, or tsx's in development) reads it. Inline, so it is part
 * of this measured file and needs no loader of its own.
 */
const LOAD_GUARD = `
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
let measured = new Map();
export function initialize(data) { measured = new Map(data.measured); }
export async function load(url, context, nextLoad) {
  if (url.startsWith('file:')) {
    const path = fileURLToPath(url);
    const want = measured.get(path);
    if (want === undefined) throw new Error(${JSON.stringify(UNMEASURED_MARK)} + path);
    let got = '';
    try { got = createHash('sha256').update(readFileSync(path)).digest('hex'); } catch {}
    if (got !== want) throw new Error(${JSON.stringify(CHANGED_MARK)} + path);
  }
  return nextLoad(url, context);
}
`;
register(`data:text/javascript,${encodeURIComponent(LOAD_GUARD)}`, { data: { measured: data.measured } });
// No network, files, processes or workers but through ctx (README "Egress policy and ctx.fetch").
sealHandlerSandbox();

// ---- loading the handler ---------------------------------------------------------------------

/**
 * Why a module failed to load, as the developer needs it: the error's name and first message
 * line, and the first `file:line` in its stack (Node puts the offending line first in a syntax
 * error's stack, and a module that threw while evaluated is the top frame).
 */
export function loaderReason(e: unknown): string {
  if (!(e instanceof Error)) return 'a non-error value was thrown';
  const located = /(file:\/\/[^\s)]+?):(\d+)/.exec(e.stack ?? '');
  const where = located ? ` (at ${fileURLToPath(located[1]!)}:${located[2]})` : '';
  return `${e.name}: ${e.message.split('\n')[0] ?? ''}${where}`.slice(0, 400);
}

/** The guard's refusal inside `e`, as the typed error, if it is one. */
function guardRefusal(e: unknown): ParleyError | undefined {
  if (e instanceof ParleyError && (e.details?.reason === 'unmeasuredImport' || e.details?.reason === 'changedImport' || e.details?.reason === 'sandbox')) return e;
  const message = e instanceof Error ? e.message : '';
  const builtin = message.indexOf(BUILTIN_MARK);
  if (builtin >= 0) {
    const name = message.slice(builtin + BUILTIN_MARK.length).split(/[:\n]/)[0]!;
    return refusal(`node:${name}`, name);
  }
  for (const [mark, make] of [[UNMEASURED_MARK, unmeasured], [CHANGED_MARK, changed]] as const) {
    const at = message.indexOf(mark);
    if (at >= 0) return make(message.slice(at + mark.length).split('\n')[0]!);
  }
  return undefined;
}

/**
 * Imports the handler module and returns its default export (or named `handle`).
 * @throws ParleyError `USAGE` naming the module and the loader's reason (file, line) when it
 *   fails to load, naming the file when it loads one outside its measurement, or when it
 *   exports no handler function.
 */
async function loadHandler(url: string): Promise<BotHandler> {
  let mod: { default?: unknown; handle?: unknown };
  try {
    mod = (await import(url)) as typeof mod;
  } catch (e) {
    throw guardRefusal(e) ?? new ParleyError('USAGE', `the handler module ${fileURLToPath(url)} failed to load: ${loaderReason(e)}`);
  }
  const fn = typeof mod.default === 'function' ? mod.default : mod.handle;
  if (typeof fn !== 'function') {
    throw new ParleyError('USAGE', `the handler module ${fileURLToPath(url)} must export a default function (or \`handle\`)`);
  }
  return fn as BotHandler;
}

// ---- running it ------------------------------------------------------------------------------

/** Errors the enclave answered a request with, so a rethrow of one is reported with its (SDK) text. */
const echoes = new WeakMap<object, number>();
/** Replies waiting for the enclave's answer, by `run/seq`. */
const waiting = new Map<string, { resolve: (id: string | undefined) => void; reject: (e: unknown) => void }>();
let nextCall = 1;

function echoed(error: { error: Parameters<typeof ParleyError.fromJSON>[0]; echo: number }): ParleyError {
  const e = ParleyError.fromJSON(error.error);
  echoes.set(e, error.echo);
  return e;
}

/**
 * Dev mode only: the error's message and stack, and the first frame in a file of the handler's
 * measured graph (where the developer's code threw). May carry plaintext.
 */
function devReport(e: unknown): HandlerDevReport {
  const message = (e instanceof Error ? `${e.name}: ${String(e.message)}` : `non-error value: ${String(e)}`).slice(0, MAX_DEV_MESSAGE);
  const stack = e instanceof Error && typeof e.stack === 'string' ? e.stack.slice(0, MAX_DEV_STACK) : undefined;
  let where: { file: string; line: number } | undefined;
  for (const m of (stack ?? '').matchAll(/((?:file:\/\/)?\/[^\s():]+):(\d+)(?::\d+)?/g)) {
    let file = m[1]!;
    try {
      if (file.startsWith('file:')) file = fileURLToPath(file);
    } catch {
      continue;
    }
    if (measured.has(file)) {
      where = { file, line: Number(m[2]) };
      break;
    }
  }
  return { message, ...(stack !== undefined ? { stack } : {}), ...(where ?? {}) };
}

/** What the enclave may be told about a thrown value: its name, a ParleyError's code, an echo (and in dev mode, {@link devReport}). */
function failureOf(e: unknown): HandlerFailure {
  let dev: HandlerDevReport | undefined;
  try {
    if (data.dev) dev = devReport(e);
  } catch {
    dev = { message: 'the thrown value could not be described' };
  }
  try {
    const echo = typeof e === 'object' && e !== null ? echoes.get(e) : undefined;
    const name = e instanceof Error && /^[A-Za-z]{1,40}$/.test(e.name) ? e.name : 'non-error value';
    const raw = e instanceof Error ? (e as { code?: unknown }).code : undefined;
    const code = typeof raw === 'string' && (ERROR_CODES as readonly string[]).includes(raw) ? raw : undefined;
    return { name, ...(code !== undefined ? { code } : {}), ...(echo !== undefined ? { echo } : {}), ...(dev ? { dev } : {}) };
  } catch {
    return { name: 'non-error value', ...(dev ? { dev } : {}) };
  }
}

/**
 * `ctx.state` for one run: the conversation's committed state, with this run's writes on top.
 * Nothing is written anywhere until the run returns: the enclave commits the whole record with
 * the message's consumption (README "Handler state"), so a failed or interrupted run changes nothing.
 */
function stateFor(record: string, isOver: () => boolean): { api: BotContext['state']; changed: () => string | undefined } {
  const entries = decodeState(record);
  let dirty = false;
  const over = (): void => {
    if (isOver()) throw new ParleyError('USAGE', 'the handler already returned for this message: change ctx.state before it returns');
  };
  const api: BotContext['state'] = Object.freeze({
    get: async (key: string) => {
      const text = entries.get(checkStateKey(key));
      return text === undefined ? undefined : JSON.parse(text);
    },
    set: async (key: string, value: JsonValue) => {
      over();
      const k = checkStateKey(key);
      const text = stateValueText(value);
      const before = entries.get(k);
      entries.set(k, text);
      const bytes = stateBytes(encodeState(entries));
      if (bytes > MAX_STATE_BYTES) {
        if (before === undefined) entries.delete(k);
        else entries.set(k, before);
        throw stateTooLarge(bytes);
      }
      dirty = true;
    },
    delete: async (key: string) => {
      over();
      const had = entries.delete(checkStateKey(key));
      dirty ||= had;
      return had;
    },
    entries: async () => [...entries].map(([k, v]): [string, JsonValue] => [k, JSON.parse(v) as JsonValue]),
  });
  return { api, changed: () => (dirty ? encodeState(entries) : undefined) };
}

/** A synchronous call to the enclave (`ctx.safetyNumber()`, `ctx.members()`, `ctx.consents()`: the handler API is synchronous there). */
function syncCall(run: number, what: 'safetyNumber' | 'members' | 'consents'): Extract<SyncAnswer, { ok: true }> {
  const { port: sync, flag } = data.sync;
  const call = nextCall++;
  Atomics.store(flag, 0, 0);
  sync.postMessage({ call, run, ...(what !== 'safetyNumber' ? { what } : {}) } satisfies SyncRequest);
  const deadline = Date.now() + SYNC_TIMEOUT_MS;
  for (;;) {
    const got = receiveMessageOnPort(sync)?.message as SyncAnswer | undefined;
    if (got?.call === call) {
      if (got.ok) return got;
      throw echoed(got.error);
    }
    if (got) continue; // a late answer to a call that timed out
    const left = deadline - Date.now();
    if (left <= 0) throw new ParleyError('ENCLAVE_UNAVAILABLE', 'the enclave did not answer in time');
    Atomics.wait(flag, 0, 0, left);
    Atomics.store(flag, 0, 0);
  }
}

function safetyNumber(run: number): string {
  const got = syncCall(run, 'safetyNumber');
  if (!('value' in got)) throw new ParleyError('INTERNAL', 'the enclave answered another question');
  return got.value;
}

function members(run: number): readonly Member[] {
  const got = syncCall(run, 'members');
  if (!('members' in got)) throw new ParleyError('INTERNAL', 'the enclave answered another question');
  return Object.freeze(got.members.map((m) => Object.freeze({ ...m })));
}

function consents(run: number): readonly BotConsentEntry[] {
  const got = syncCall(run, 'consents');
  if (!('consents' in got)) throw new ParleyError('INTERNAL', 'the enclave answered another question');
  return Object.freeze(got.consents.map((c) => Object.freeze({ ...c, fields: Object.freeze([...c.fields]) })));
}

/** `ctx.requestConsent`'s argument, as the enclave takes it (checked in full there, by the protocol's `checkConsentRequest`). */
function consentRequest(request: BotConsentRequest): BotConsentRequest {
  const r = request as Partial<BotConsentRequest> | null | undefined;
  if (typeof r !== 'object' || r === null || typeof r.purpose !== 'string' || !Array.isArray(r.fields) || !r.fields.every((f) => typeof f === 'string') || typeof r.retentionDays !== 'number' || typeof r.controller !== 'string') {
    throw new ParleyError('USAGE', 'ctx.requestConsent takes { purpose: string, fields: string[], retentionDays: number, controller: string }');
  }
  return { purpose: r.purpose, fields: [...r.fields], retentionDays: r.retentionDays, controller: r.controller };
}

/** `ctx.requestForm`'s argument, as the enclave takes it (checked in full there). */
function formRequest(request: BotFormRequest): BotFormRequest {
  const r = request as Partial<BotFormRequest> | null | undefined;
  if (typeof r !== 'object' || r === null || !Array.isArray(r.fields) || !r.fields.every((f) => typeof f === 'string') || typeof r.consentRequest !== 'string') {
    throw new ParleyError('USAGE', 'ctx.requestForm takes { fields: string[], consentRequest: string }');
  }
  return { fields: [...r.fields], consentRequest: r.consentRequest };
}

/** `ctx.handoff`'s argument, as the enclave takes it (checked again there). */
function handoffRequest(request: HandoffRequest): { queue: string; reason: string } {
  const r = request as Partial<HandoffRequest> | null | undefined;
  if (typeof r !== 'object' || r === null || typeof r.queue !== 'string' || (r.reason !== undefined && typeof r.reason !== 'string')) {
    throw new ParleyError('USAGE', 'ctx.handoff takes { queue: string, reason?: string }');
  }
  return { queue: r.queue, reason: r.reason ?? '' };
}

async function run(handler: BotHandler, m: Extract<ToHandler, { t: 'run' }>): Promise<void> {
  let seq = 0;
  let returned = false;
  /** Posts a request numbered like the replies; resolves with the id the enclave answers with. */
  const ask = (build: (s: number) => FromHandler): Promise<string> =>
    new Promise<string>((resolve, reject) => {
      const s = seq++;
      waiting.set(`${m.run}/${s}`, { resolve: (id) => (id === undefined ? reject(new ParleyError('INTERNAL', 'the enclave answered without an id')) : resolve(id)), reject });
      post(build(s));
    });
  const state = stateFor(m.state, () => returned);
  const ctx: BotContext = Object.freeze({
    botDeviceId: m.botDeviceId,
    state: state.api,
    safetyNumber: () => safetyNumber(m.run),
    members: () => members(m.run),
    consents: () => consents(m.run),
    requestConsent: async (request: BotConsentRequest): Promise<string> => {
      const checked = consentRequest(request);
      return ask((s) => ({ t: 'consentRequest', run: m.run, seq: s, request: checked }));
    },
    requestForm: async (request: BotFormRequest): Promise<string> => {
      const checked = formRequest(request);
      return ask((s) => ({ t: 'formRequest', run: m.run, seq: s, fields: checked.fields, consentRequest: checked.consentRequest }));
    },
    handoff: (request: HandoffRequest): Promise<void> =>
      new Promise<void>((resolve, reject) => {
        let checked;
        try {
          checked = handoffRequest(request);
        } catch (e) {
          reject(e);
          return;
        }
        const s = seq++;
        waiting.set(`${m.run}/${s}`, { resolve: () => resolve(), reject });
        post({ t: 'handoff', run: m.run, seq: s, queue: checked.queue, reason: checked.reason });
      }),
    fetch: (url: string | URL, init?: EgressFetchInit) => egress.fetch(m.run, url, init),
    reply: (content: OutgoingContent): Promise<void> =>
      new Promise<void>((resolve, reject) => {
        let encoded;
        try {
          encoded = encodeContent(content);
        } catch (e) {
          reject(e);
          return;
        }
        if (encoded.body.length > MAX_REPLY_BODY_BYTES) {
          post({ t: 'oversize', run: m.run });
          reject(new ParleyError('PAYLOAD_TOO_LARGE', 'plaintext exceeds the maximum message size'));
          return;
        }
        const s = seq++;
        waiting.set(`${m.run}/${s}`, { resolve: () => resolve(), reject });
        post({ t: 'reply', run: m.run, seq: s, type: encoded.type, body: encoded.body });
      }),
  });
  let failure: HandlerFailure | undefined;
  try {
    await handler(m.message, ctx);
  } catch (e) {
    failure = failureOf(e);
  }
  returned = true;
  const changed = failure ? undefined : state.changed();
  post({ t: 'done', run: m.run, ...(failure ? { failure } : {}), ...(changed !== undefined ? { state: changed } : {}) });
}

let handler: BotHandler | undefined;
try {
  handler = await loadHandler(data.handlerUrl);
} catch (e) {
  // Nothing but the handler's own code has run: no plaintext can be in this message. The
  // worker then idles (its port keeps it alive) until the enclave ends it.
  const reason = e instanceof ParleyError ? e.details?.reason : undefined;
  const file = e instanceof ParleyError ? e.details?.file : undefined;
  post({
    t: 'loadFailed',
    message: e instanceof ParleyError ? e.message : `the handler module failed to load: ${loaderReason(e)}`,
    ...(typeof reason === 'string' && typeof file === 'string' ? { details: { reason, file } } : {}),
  });
}

/** `ctx.fetch`: asks the enclave, which enforces the egress policy (`handler-egress-api.ts`). */
const egress = new EgressClient((m) => port.postMessage(m), echoed);

port.on('message', (m: ToHandler | EgressAnswerMessage) => {
  if (m.t === 'fetched') egress.answer(m);
  else if (m.t === 'run') {
    if (handler) void run(handler, m);
  } else if (m.t === 'ping') {
    post({ t: 'pong', n: m.n });
  } else if (m.t === 'replied') {
    const key = `${m.run}/${m.seq}`;
    const w = waiting.get(key);
    if (!w) return;
    waiting.delete(key);
    if (m.error) w.reject(echoed(m.error));
    else w.resolve(m.id);
  }
});
if (handler) post({ t: 'loaded' });
