/**
 * What the handler can reach in its worker (README "Egress policy and ctx.fetch"; docs/threats.md
 * B7). Runs in the handler worker, after its own modules loaded and before the handler does.
 *
 * - Node built-ins: only those without I/O of their own ({@link ALLOWED_BUILTINS}: `node:crypto`,
 *   `node:path`, `node:util`, …). Every other one (`node:fs`, `node:net`, `node:http`,
 *   `node:child_process`, `node:cluster`, `node:module`, `node:vm`, `node:v8`, …, with or
 *   without the `node:` prefix) is refused with `USAGE` saying what to use instead: for `import`
 *   by an ES module resolve hook, for `require` by a wrapper on CommonJS's `Module._load`.
 *   `node:worker_threads` loads without `Worker` (which throws `USAGE`): the handler starts no
 *   thread (one would run code outside these guards), while its own `parentPort` and `workerData`
 *   give it nothing `ctx` does not (the enclave checks all it posts; nothing in it is secret).
 *   `node:module` loads with `createRequire`, `isBuiltin` and `builtinModules` only, and
 *   `Module.register` throws: a module hook of the handler's would run before these guards.
 * - Globals: `fetch`, `WebSocket`, `EventSource`, `XMLHttpRequest` and `BroadcastChannel` throw
 *   `USAGE` (use `ctx.fetch`).
 * - `process`: `binding`, `_linkedBinding`, `dlopen`, `getBuiltinModule`, `kill`,
 *   `_debugProcess`, `loadEnvFile` and `report` throw `USAGE`.
 *
 * This is a barrier in JavaScript, inside one process: code that escapes V8 (or finds a path
 * this list misses) is not stopped by it. The process mode adds the OS process boundary and
 * Node's permission model under it (README "Enclave modes: worker and process").
 */
import { builtinModules, createRequire, isBuiltin, register } from 'node:module';
import * as workerThreads from 'node:worker_threads';
import { ParleyError } from '@parley/protocol/errors';

/** Built-ins a handler may import: none of them opens a file, a socket or a process. */
export const ALLOWED_BUILTINS: readonly string[] = [
  'assert',
  'assert/strict',
  'async_hooks',
  'buffer',
  'console',
  'constants',
  'crypto',
  'diagnostics_channel',
  'events',
  'os',
  'path',
  'path/posix',
  'path/win32',
  'perf_hooks',
  'process',
  'punycode',
  'querystring',
  'stream',
  'stream/consumers',
  'stream/promises',
  'stream/web',
  'string_decoder',
  'sys',
  'timers',
  'timers/promises',
  'url',
  'util',
  'util/types',
  'zlib',
];

/** What the ESM resolve guard's error message starts with (the worker turns it into a typed error). */
export const BUILTIN_MARK = 'parley-refused-builtin:';

const allowed = new Set(ALLOWED_BUILTINS);

/** The advice for a refused built-in or global. */
function advice(name: string): string {
  if (/^(fs|fs\/promises)$/.test(name)) return 'keep data in ctx.state (sealed by the enclave)';
  if (/^(net|http|https|http2|tls|dgram|dns|dns\/promises|fetch|WebSocket|EventSource|XMLHttpRequest)$/.test(name)) return "use ctx.fetch (the bot's egress policy applies)";
  return 'it is not available to a bot handler';
}

/** The error a refused built-in or global gets. */
export function refusal(what: string, name: string): ParleyError {
  return new ParleyError('USAGE', `the handler may not use ${what}: ${advice(name)} (README "Egress policy and ctx.fetch")`, {
    // `file`: what was refused, as a load failure names the file (`handler-worker.ts`).
    details: { reason: 'sandbox', name: name.slice(0, 60), file: what.slice(0, 80) },
  });
}

/** The built-in `specifier` names (without `node:`), if it names one the handler may not load. */
export function refusedBuiltin(specifier: string): string | undefined {
  const prefixed = specifier.startsWith('node:');
  if (!prefixed && !isBuiltin(specifier)) return undefined;
  const name = prefixed ? specifier.slice(5) : specifier;
  return allowed.has(name) ? undefined : name;
}

/** `node:worker_threads` as the handler sees it: everything but `Worker` (and `BroadcastChannel`). */
const WORKER_THREADS_SHIM = `data:text/javascript,${encodeURIComponent(`/* parley worker_threads */
import * as wt from 'node:worker_threads';
export class Worker { constructor() { const e = new Error('the handler may not start a Worker: it would run code outside the handler sandbox'); e.code = 'USAGE'; throw e; } }
export const BroadcastChannel = undefined;
export const { isMainThread, parentPort, workerData, threadId, resourceLimits, MessageChannel, MessagePort, receiveMessageOnPort, markAsUntransferable, moveMessagePortToContext, getEnvironmentData, setEnvironmentData, SHARE_ENV } = wt;
export default Object.freeze({ ...wt, Worker, BroadcastChannel });
`)}`;

/** `node:module` as the handler sees it: `createRequire` (whose `require` is guarded below), `isBuiltin`, `builtinModules`. */
const MODULE_SHIM = `data:text/javascript,${encodeURIComponent(`/* parley module */
import { createRequire, isBuiltin, builtinModules } from 'node:module';
export { createRequire, isBuiltin, builtinModules };
export default Object.freeze({ createRequire, isBuiltin, builtinModules });
`)}`;

/** ES modules: refuses the built-ins outside the list for every `import` from now on. */
const RESOLVE_GUARD = `
import { isBuiltin } from 'node:module';
let allowed = new Set();
let shims = {};
export function initialize(data) { allowed = new Set(data.allowed); shims = data.shims; }
export async function resolve(specifier, context, nextResolve) {
  const prefixed = specifier.startsWith('node:');
  if (prefixed || isBuiltin(specifier)) {
    const name = prefixed ? specifier.slice(5) : specifier;
    const shim = Object.hasOwn(shims, name) ? shims[name] : undefined;
    if (shim !== undefined) {
      if (context.parentURL === shim) return nextResolve(specifier, context);
      return { url: shim, shortCircuit: true };
    }
    if (!allowed.has(name)) {
      const e = new Error(${JSON.stringify(BUILTIN_MARK)} + name + ': the handler may not import node:' + name);
      e.code = 'USAGE';
      throw e;
    }
  }
  return nextResolve(specifier, context);
}
`;

function blocked(what: string, name: string): () => never {
  return () => {
    throw refusal(what, name);
  };
}

/**
 * Closes the handler's ways out (see the file comment). Call once, after the worker's own
 * modules loaded and before the handler loads.
 */
export function sealHandlerSandbox(): void {
  register(`data:text/javascript,${encodeURIComponent(RESOLVE_GUARD)}`, { data: { allowed: [...allowed], shims: { worker_threads: WORKER_THREADS_SHIM, module: MODULE_SHIM } } });

  // CommonJS: `require` of every built-in goes through Module._load.
  const Module = createRequire(import.meta.url)('node:module') as { _load: (request: string, parent: unknown, isMain: boolean) => unknown; register: unknown };
  const load = Module._load;
  const BlockedWorker = blocked('node:worker_threads Worker', 'Worker');
  const threads = Object.freeze({ ...workerThreads, Worker: BlockedWorker, BroadcastChannel: undefined });
  const moduleShim = Object.freeze({ createRequire, isBuiltin, builtinModules });
  Module._load = function guardedLoad(this: unknown, request: string, parent: unknown, isMain: boolean) {
    if (request === 'worker_threads' || request === 'node:worker_threads') return threads;
    if (request === 'module' || request === 'node:module') return moduleShim;
    const name = typeof request === 'string' ? refusedBuiltin(request) : undefined;
    if (name !== undefined) throw refusal(`node:${name}`, name);
    return load.call(this, request, parent, isMain);
  };

  // Reachable from a CommonJS module as `module.constructor.register`.
  Object.defineProperty(Module, 'register', { value: blocked('module.register', 'register'), writable: false, configurable: false });
  for (const name of ['fetch', 'WebSocket', 'EventSource', 'XMLHttpRequest', 'BroadcastChannel']) {
    Object.defineProperty(globalThis, name, { value: blocked(`the global ${name}`, name), writable: false, configurable: false, enumerable: false });
  }
  const proc = process as unknown as Record<string, unknown>;
  for (const name of ['binding', '_linkedBinding', 'dlopen', 'getBuiltinModule', 'kill', '_debugProcess', 'loadEnvFile']) {
    Object.defineProperty(proc, name, { value: blocked(`process.${name}`, name), writable: false, configurable: false, enumerable: false });
  }
  Object.defineProperty(proc, 'report', { get: blocked('process.report', 'report'), configurable: false, enumerable: false });
}
