/**
 * The enclave's code measurement. Node-only (reads files). The enclave computes it for itself
 * at start; developers call {@link computeMeasurement} to get the value clients should pin.
 *
 * ```
 *  measurement = SHA-256( "parley/v1/enclave-measurement" || 0x00
 *                         || for each measured file, in order:
 *                              u16 BE label length || label (UTF-8) || SHA-256(file bytes) )
 * ```
 * Measured files: the code that actually runs in the enclave, in the form it runs. From source
 * (development, tests) that is the `.ts` files under each package's `src/`; from an installed
 * package it is the compiled `.js` under `dist/` (never the `.d.ts` or source maps). In order:
 * 1. the enclave's own code: every code file under `<bot code dir>/enclave` and `<bot code dir>/rpc`,
 *    plus `<bot code dir>/attestation.*`, `<bot code dir>/measurement.*`, `<bot code dir>/handler-graph.*`
 *    and `<bot code dir>/egress-policy.*`;
 * 2. every code file of `@parley/protocol` and then of `@parley/engine` (the protocol and the
 *    conversation engine the enclave runs), found from where each package's entry resolves;
 *   each group sorted by label, labels being `<package>/<path inside the package>` with `/`;
 * 3. the handler module, label `handler`;
 * 4. every file the handler's stated imports reach, followed file by file (`handler-graph.ts`):
 *    its own modules, labelled `handler/<path from the handler's directory>`, and the packages
 *    it imports from `node_modules`, labelled `handler/node_modules/<package>/<path>`, sorted by
 *    label. The handler worker loads nothing else: a file outside this list, or one whose bytes
 *    changed since they were measured, is refused (`enclave/handler-worker.ts`);
 * 5. the egress policy (README "Egress policy and ctx.fetch"), label `egress`, its bytes the
 *    canonical origins joined by `\n` (`egress-policy.ts`), only when the policy is not empty:
 *    a bot without egress (no network) measures as before the policy existed, and no other
 *    entry can carry that label.
 *
 * So a measurement taken from the sources differs from one taken from the installed package:
 * pin the value that `computeMeasurement` prints where the bot really runs.
 *
 * Not measured: Node itself, the enclave's own third-party dependencies in node_modules (pinned
 * by the lockfile: noble, libsodium), and code the handler makes at run time (`eval`, workers,
 * files it reads). Bytes are hashed as stored (line endings count).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, isAbsolute, join, relative, sep, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { getCrypto, initCrypto, concatBytes, utf8, ParleyError } from '@parley/protocol/verify';
import { measurementHex } from './attestation.js';
import { handlerGraph, type HandlerFile } from './handler-graph.js';
import { canonicalEgress, egressPolicyBytes } from './egress-policy.js';

export { canonicalEgress } from './egress-policy.js';

export type { HandlerFile } from './handler-graph.js';

const MEASUREMENT_DOMAIN = 'parley/v1/enclave-measurement';
const CODE_FILE = /\.(ts|mts|mjs|js)$/;
const NOT_CODE = /\.d\.(ts|mts)$/;

/** One measured file. */
export interface MeasuredFile {
  readonly label: string;
  /** SHA-256 of the file, hex. */
  readonly sha256: string;
}

/** What {@link computeMeasurement} returns. */
export interface Measurement {
  /** The 32-byte measurement. */
  readonly measurement: Uint8Array;
  /** The same, 64 lower-case hex chars (the form to pin). */
  readonly hex: string;
  /** Every file that went in, in order (the egress policy last, label `egress`, when not empty). */
  readonly files: readonly MeasuredFile[];
  /** The egress policy that went in, canonical (origins, sorted); empty: no network. */
  readonly egress: readonly string[];
}

/** Options of {@link computeMeasurement}. */
export interface MeasurementOptions {
  /**
   * The bot's egress policy, as in `BotOptions.egress` (host names, `host:port` or origins):
   * part of the measurement. Default: none (no network).
   */
  readonly egress?: readonly string[];
  /**
   * The org root public key, as in `BotOptions.orgKey` (32 bytes or 64 hex chars): part of the
   * measurement when given (README "Staff"). Default: none.
   */
  readonly orgKey?: Uint8Array | string;
}

/** The measurement entry of the bot's pinned org key (`BotOptions.orgKey`), after the handler's files. */
export const ORG_KEY_MEASUREMENT_LABEL = 'parley:org-key';

/**
 * An org key as `BotOptions.orgKey` and {@link MeasurementOptions.orgKey} take it: 32 bytes or 64 hex chars.
 * @throws ParleyError `USAGE` otherwise.
 */
export function parseOrgKey(value: Uint8Array | string): Uint8Array {
  if (value instanceof Uint8Array && value.length === 32) return value.slice();
  if (typeof value === 'string' && /^[0-9a-fA-F]{64}$/.test(value)) return new Uint8Array(Buffer.from(value, 'hex'));
  throw new ParleyError('USAGE', 'orgKey must be 32 bytes or 64 hex chars');
}

function listCode(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name.startsWith('.')) continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) listCode(path, out);
    else if (CODE_FILE.test(name) && !NOT_CODE.test(name)) out.push(path);
  }
  return out;
}

function packageRootOf(entryFile: string): string {
  let dir = dirname(entryFile);
  for (let i = 0; i < 10; i++) {
    try {
      if (statSync(join(dir, 'package.json')).isFile()) return dir;
    } catch {
      // keep walking up
    }
    dir = dirname(dir);
  }
  throw new ParleyError('INTERNAL', 'cannot find a package root for a measured module');
}

function label(pkg: string, root: string, file: string): string {
  return `${pkg}/${relative(root, file).split(sep).join('/')}`;
}

/** The measured code files of the enclave (everything but the handler), as [label, path], in order. */
export function enclaveCodeFiles(): [string, string][] {
  // This file runs from `<root>/src` (sources) or `<root>/dist` (installed): measure that form.
  const codeDir = dirname(fileURLToPath(import.meta.url));
  const botRoot = packageRootOf(fileURLToPath(import.meta.url));
  const require = createRequire(import.meta.url);
  const own: [string, string][] = [];
  for (const sub of ['enclave', 'rpc']) for (const f of listCode(join(codeDir, sub))) own.push([label('@parley/bot', botRoot, f), f]);
  for (const name of readdirSync(codeDir)) {
    if (/^(attestation|measurement|handler-graph|egress-policy)\.(ts|js|mjs)$/.test(name)) own.push([label('@parley/bot', botRoot, join(codeDir, name)), join(codeDir, name)]);
  }
  const groups: [string, string][][] = [own];
  for (const pkg of ['@parley/protocol', '@parley/engine']) {
    const entry = require.resolve(pkg);
    const root = packageRootOf(entry);
    groups.push(listCode(dirname(entry)).map((f) => [label(pkg, root, f), f]));
  }
  return groups.flatMap((g) => g.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)));
}

/**
 * Resolves the `handler` option to the absolute path of the module the enclave will import and
 * measure. Accepted forms, the same from sources, from `dist/` and from a bundle:
 * - a `file:` URL (e.g. `new URL('./handler.mjs', import.meta.url)`);
 * - an absolute path, or a relative one (`./bot/handler.mjs`, resolved against the working directory);
 * - a package specifier (`my-bot/handler`), resolved from the working directory with Node's
 *   `require` resolution (`node_modules`, `exports` with the `node`/`default` conditions).
 * @throws ParleyError `USAGE` naming the handler when it is not local, cannot be resolved or does not exist.
 */
export function handlerPath(handler: string | URL): string {
  if (!(handler instanceof URL) && typeof handler !== 'string') throw new ParleyError('USAGE', 'handler must be a path, a file: URL or a module specifier');
  let path: string;
  if (handler instanceof URL || /^file:/i.test(handler)) {
    const url = handler instanceof URL ? handler : new URL(handler);
    if (url.protocol !== 'file:') throw new ParleyError('USAGE', `handler ${url.href} is not a local file (it is measured)`);
    path = fileURLToPath(url);
  } else if (/^[a-z][a-z0-9+.-]*:\/\//i.test(handler)) {
    throw new ParleyError('USAGE', `handler ${handler} is not a local file (it is measured)`);
  } else if (isAbsolute(handler) || handler.startsWith('.')) {
    path = resolve(handler);
  } else {
    try {
      path = createRequire(join(process.cwd(), 'package.json')).resolve(handler);
    } catch (e) {
      const reason = e instanceof Error ? e.message.split('\n')[0] : 'unknown reason';
      throw new ParleyError('USAGE', `handler "${handler}" cannot be resolved from ${process.cwd()}: ${reason}`);
    }
  }
  let isFile = false;
  try {
    isFile = statSync(path).isFile();
  } catch {
    isFile = false;
  }
  if (!isFile) throw new ParleyError('USAGE', `handler module not found: ${path} (check the handler option; relative paths resolve against ${process.cwd()})`);
  return path;
}

/** The handler as a `file:` URL string (what the enclave imports). */
export function handlerUrl(handler: string | URL): string {
  return pathToFileURL(handlerPath(handler)).href;
}

async function ensureCrypto(): Promise<void> {
  try {
    getCrypto();
  } catch {
    await initCrypto();
  }
}

/**
 * Measurement from already-read contents (used by the enclave, which reads each file once), and
 * the canonical egress policy (appended as the entry `egress` when not empty).
 */
export function measure(files: readonly (readonly [string, Uint8Array])[], egress: readonly string[] = []): Measurement {
  const policy = canonicalEgress(egress);
  if (policy.length > 0) files = [...files, ['egress', egressPolicyBytes(policy)]];
  const c = getCrypto();
  const parts: Uint8Array[] = [utf8(MEASUREMENT_DOMAIN), new Uint8Array([0])];
  const listed: MeasuredFile[] = [];
  for (const [name, content] of files) {
    const l = utf8(name);
    const digest = c.sha256(content);
    parts.push(new Uint8Array([l.length >> 8, l.length & 0xff]), l, digest);
    listed.push({ label: name, sha256: measurementHex(digest) });
  }
  const measurement = c.sha256(concatBytes(...parts));
  return { measurement, hex: measurementHex(measurement), files: listed, egress: policy };
}

/**
 * The handler module at `handler` and every file its imports reach, in measurement order, read
 * once each (the enclave measures these bytes and lets the handler worker load exactly them).
 * @throws ParleyError `USAGE` for a handler that is not a local file, or a graph that cannot be read.
 */
export function handlerCodeFiles(handler: string | URL): HandlerFile[] {
  return handlerGraph(handlerPath(handler));
}

/**
 * Reads and measures the enclave code plus the handler at `handler` and its imports, and the
 * egress policy. Needs a crypto backend (initialised if none).
 */
export function measureFiles(handler: string | URL, options: MeasurementOptions = {}): Measurement {
  const egress = canonicalEgress(options.egress);
  const files: [string, Uint8Array][] = enclaveCodeFiles().map(([l, p]) => [l, new Uint8Array(readFileSync(p))]);
  for (const f of handlerCodeFiles(handler)) files.push([f.label, f.bytes]);
  if (options.orgKey !== undefined) files.push([ORG_KEY_MEASUREMENT_LABEL, parseOrgKey(options.orgKey)]);
  return measure(files, egress);
}

/**
 * The measurement an enclave running `handler` will attest to: pin its `hex` in the clients'
 * configuration (`expectedMeasurement`). It changes whenever the SDK's enclave code, the
 * protocol, the engine, the handler or any file the handler imports change, and when the
 * egress policy or the pinned org key change (give the bot's `egress` and `orgKey` options here too).
 * @throws ParleyError `USAGE` for a handler that is not a local file, or a bad egress entry.
 * @example
 * const { hex } = await computeMeasurement('./bot/handler.ts', { egress: ['api.example.com'] });
 * console.log(`pin this: ${hex}`);
 */
export async function computeMeasurement(handler: string | URL, options: MeasurementOptions = {}): Promise<Measurement> {
  await ensureCrypto();
  return measureFiles(handler, options);
}
