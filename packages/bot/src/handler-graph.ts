/**
 * The handler's import graph: every file the handler module can load through an import the
 * source states (`import … from`, `export … from`, `import '…'`, `import('…')` and `require('…')`
 * with a string literal), followed through relative and absolute paths, `file:` URLs, package
 * imports (`#…`) and bare package specifiers (`node_modules`, `exports` maps), file by file.
 * Node-only (reads files); shared by the measurement (`measurement.ts`) and the host's
 * error reporting. It runs nothing it reads.
 *
 * The scan over-approximates on purpose: when Node could pick one of several files (an
 * extensionless path, a `.js` specifier that tsx maps to `.ts`, the `import` and `require`
 * branches of a package's `exports`), every existing candidate is included. What it cannot see
 * (an `import()` or `require()` of a computed string, a file a package finds at run time) is not
 * measured, and the handler worker refuses to load it (see `enclave/handler-worker.ts`).
 *
 * Not followed: Node built-ins (`node:fs`, `fs`), type-only imports (`import type`,
 * `export type … from`), `data:` URLs (their code is inside a measured file), tsconfig `paths`.
 */
import { readFileSync, realpathSync, statSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ParleyError } from '@parley/protocol/verify';

/** At most this many files in a handler's graph (bundle a bigger one). */
export const MAX_HANDLER_FILES = 20_000;
/** At most this many bytes in a handler's graph. */
export const MAX_HANDLER_BYTES = 256 * 1024 * 1024;

/** One file of the handler's graph. */
export interface HandlerFile {
  /** `handler` for the handler module; `handler/<path>` for the files it imports (see {@link handlerLabel}). */
  readonly label: string;
  /** The real path (symlinks resolved: the path Node loads it from). */
  readonly path: string;
  readonly bytes: Uint8Array;
}

/** What an import names, and with which of Node's resolutions (`import` or `require`). */
export interface ImportSpecifier {
  readonly specifier: string;
  readonly kind: 'import' | 'require';
}

// ---------------------------------------------------------------------------------------------
// Scanning a source file for the imports it states

type Token = { readonly t: 'id' | 'str' | 'p' | 'other'; readonly v: string };

/** After these keywords a `/` starts a regular expression, not a division. */
const REGEX_AFTER = new Set(['return', 'typeof', 'instanceof', 'in', 'of', 'new', 'delete', 'void', 'throw', 'case', 'do', 'else', 'yield', 'await', 'extends']);
const ID_START = /[A-Za-z_$\u0080-\uffff]/;
const ID_PART = /[\w$\u0080-\uffff]/;

function unescape(raw: string): string {
  if (!raw.includes('\\')) return raw;
  return raw.replace(/\\(u\{[0-9a-fA-F]+\}|u[0-9a-fA-F]{4}|x[0-9a-fA-F]{2}|\r\n|[\s\S])/g, (_m, e: string) => {
    if (e[0] === 'u' && e.length > 1) return String.fromCodePoint(parseInt(e[1] === '{' ? e.slice(2, -1) : e.slice(1), 16));
    if (e[0] === 'x' && e.length === 3) return String.fromCharCode(parseInt(e.slice(1), 16));
    if (e === '\n' || e === '\r\n' || e === '\r') return '';
    return ({ n: '\n', r: '\r', t: '\t', b: '\b', f: '\f', v: '\v', '0': '\0' } as Record<string, string>)[e] ?? e;
  });
}

/**
 * The tokens of JavaScript or TypeScript source that matter for finding imports: identifiers,
 * string literals and punctuation, with comments, template text and regular expressions skipped.
 */
function tokenize(src: string): Token[] {
  const out: Token[] = [];
  const n = src.length;
  let i = src.startsWith('#!') ? src.indexOf('\n') : 0;
  if (i < 0) return out;
  let depth = 0;
  /** Brace depths at which an open template literal's `${` expression ends. */
  const templates: number[] = [];
  const regexAllowed = (): boolean => {
    const last = out[out.length - 1];
    if (!last) return true;
    if (last.t === 'p') return last.v !== ')' && last.v !== ']' && last.v !== '}';
    if (last.t === 'id') return REGEX_AFTER.has(last.v);
    return false;
  };
  /** Reads template text from `j` (just after a backtick or a closing `}`); returns where it stopped. */
  const template = (j: number): number => {
    while (j < n) {
      const c = src[j]!;
      if (c === '\\') j += 2;
      else if (c === '`') {
        out.push({ t: 'other', v: '`' });
        return j + 1;
      } else if (c === '$' && src[j + 1] === '{') {
        templates.push(depth);
        depth++;
        return j + 2;
      } else j++;
    }
    return n;
  };
  while (i < n) {
    const c = src[i]!;
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === '\f' || c === '\v' || c === '\u00a0' || c === '\ufeff') {
      i++;
    } else if (c === '/' && src[i + 1] === '/') {
      const end = src.indexOf('\n', i);
      i = end < 0 ? n : end;
    } else if (c === '/' && src[i + 1] === '*') {
      const end = src.indexOf('*/', i + 2);
      i = end < 0 ? n : end + 2;
    } else if (c === '"' || c === "'") {
      let j = i + 1;
      while (j < n && src[j] !== c && src[j] !== '\n') j += src[j] === '\\' ? 2 : 1;
      out.push({ t: 'str', v: unescape(src.slice(i + 1, j)) });
      i = j + 1;
    } else if (c === '`') {
      i = template(i + 1);
    } else if (c === '/' && regexAllowed()) {
      let j = i + 1;
      let inClass = false;
      while (j < n && src[j] !== '\n') {
        const d = src[j]!;
        if (d === '\\') j++;
        else if (d === '[') inClass = true;
        else if (d === ']') inClass = false;
        else if (d === '/' && !inClass) break;
        j++;
      }
      if (j >= n || src[j] === '\n') {
        // Not a regular expression after all: a lone slash.
        out.push({ t: 'p', v: '/' });
        i++;
      } else {
        j++;
        while (j < n && ID_PART.test(src[j]!)) j++;
        out.push({ t: 'other', v: 're' });
        i = j;
      }
    } else if (ID_START.test(c) || (c === '#' && i + 1 < n && ID_START.test(src[i + 1]!))) {
      let j = i + 1;
      while (j < n && ID_PART.test(src[j]!)) j++;
      out.push({ t: 'id', v: src.slice(i, j) });
      i = j;
    } else if (/[0-9]/.test(c) || (c === '.' && /[0-9]/.test(src[i + 1] ?? ''))) {
      let j = i + 1;
      while (j < n && /[\w.]/.test(src[j]!)) j++;
      out.push({ t: 'other', v: 'num' });
      i = j;
    } else if (c === '.' && src[i + 1] === '.' && src[i + 2] === '.') {
      out.push({ t: 'p', v: '...' });
      i += 3;
    } else if (c === '?' && src[i + 1] === '.' && !/[0-9]/.test(src[i + 2] ?? '')) {
      out.push({ t: 'p', v: '?.' });
      i += 2;
    } else if (c === '{') {
      depth++;
      out.push({ t: 'p', v: c });
      i++;
    } else if (c === '}') {
      if (templates.length > 0 && templates[templates.length - 1] === depth - 1) {
        templates.pop();
        depth--;
        i = template(i + 1);
      } else {
        depth = Math.max(0, depth - 1);
        out.push({ t: 'p', v: c });
        i++;
      }
    } else {
      out.push({ t: 'p', v: c });
      i++;
    }
  }
  return out;
}

const isP = (tok: Token | undefined, v: string): boolean => tok?.t === 'p' && tok.v === v;
const isId = (tok: Token | undefined, v: string): boolean => tok?.t === 'id' && tok.v === v;

/** `from '…'` ending an import or re-export clause that starts at `k`, or undefined. */
function clauseSource(toks: readonly Token[], k: number): string | undefined {
  for (let j = k; j < toks.length && j < k + 2000; j++) {
    const x = toks[j]!;
    if (isId(x, 'from') && toks[j + 1]?.t === 'str' && j > k) return toks[j + 1]!.v;
    if (x.t === 'id') continue;
    if (x.t === 'p' && (x.v === '{' || x.v === '}' || x.v === ',' || x.v === '*')) continue;
    // `export { "a-b" as c } from …`: a string name inside the braces.
    if (x.t === 'str' && !isId(toks[j - 1], 'from')) continue;
    return undefined;
  }
  return undefined;
}

/**
 * The imports `source` states with a string literal, in order (duplicates kept). Type-only
 * imports and re-exports are skipped; `import.meta` and member calls (`x.require(…)`) are not imports.
 */
export function scanImports(source: string): ImportSpecifier[] {
  const toks = tokenize(source);
  const found: ImportSpecifier[] = [];
  for (let k = 0; k < toks.length; k++) {
    const tok = toks[k]!;
    if (tok.t !== 'id' || (tok.v !== 'import' && tok.v !== 'export' && tok.v !== 'require')) continue;
    const prev = toks[k - 1];
    if (isP(prev, '.') || isP(prev, '?.')) continue;
    const a = toks[k + 1];
    if (tok.v === 'require') {
      if (isP(a, '(') && toks[k + 2]?.t === 'str' && (isP(toks[k + 3], ')') || isP(toks[k + 3], ','))) found.push({ specifier: toks[k + 2]!.v, kind: 'require' });
      continue;
    }
    if (tok.v === 'import') {
      if (!a || isP(a, '.')) continue; // import.meta
      if (isP(a, '(')) {
        if (toks[k + 2]?.t === 'str' && (isP(toks[k + 3], ')') || isP(toks[k + 3], ','))) found.push({ specifier: toks[k + 2]!.v, kind: 'import' });
        continue;
      }
      if (a.t === 'str') {
        found.push({ specifier: a.v, kind: 'import' });
        continue;
      }
      // `import type X from`, `import type { X } from`: type-only. (`import type from '…'` and
      // `import type, { x } from '…'` import a binding named `type`.)
      if (isId(a, 'type') && !isId(toks[k + 2], 'from') && !isP(toks[k + 2], ',')) continue;
      const from = clauseSource(toks, k + 1);
      if (from !== undefined) found.push({ specifier: from, kind: 'import' });
      continue;
    }
    // export * from '…', export { … } from '…' (not `export type …`)
    if (isP(a, '*') || isP(a, '{')) {
      const from = clauseSource(toks, k + 1);
      if (from !== undefined) found.push({ specifier: from, kind: 'import' });
    }
  }
  return found;
}

// ---------------------------------------------------------------------------------------------
// Resolving what an import names to files

/** The `exports`/`imports` conditions followed: every one Node may pick (over-approximation). */
const CONDITIONS = new Set(['node', 'import', 'require', 'module-sync', 'default', 'node-addons']);
/** Extensions tried for a path without one (Node's CommonJS list, plus tsx's TypeScript ones). */
const PROBE_EXTENSIONS = ['.ts', '.tsx', '.mts', '.cts', '.js', '.jsx', '.mjs', '.cjs', '.json', '.node'];
/** Files scanned for further imports. */
const SCANNED = /\.(?:[mc]?[jt]sx?)$/;

function isFile(p: string): boolean {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

type PackageJson = { name?: unknown; main?: unknown; exports?: unknown; imports?: unknown };

function readPackageJson(dir: string): PackageJson | undefined {
  try {
    const v = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as unknown;
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as PackageJson) : undefined;
  } catch {
    return undefined;
  }
}

/** The directory of the nearest package.json above `dir` (inclusive), and its contents. */
function packageScope(dir: string): { dir: string; pkg: PackageJson } | undefined {
  for (let d = dir; ; d = dirname(d)) {
    if (isFile(join(d, 'package.json'))) {
      const pkg = readPackageJson(d);
      return pkg ? { dir: d, pkg } : undefined;
    }
    if (dirname(d) === d) return undefined;
  }
}

/** Every existing file a path names: itself, its TypeScript twin, extension and index probes. */
function fileCandidates(p: string, depth = 0): string[] {
  const out: string[] = [];
  if (isFile(p)) out.push(p);
  // tsx: a `.js` specifier may name the `.ts` source (`.mjs` → `.mts`, `.cjs` → `.cts`, `.jsx` → `.tsx`).
  const js = /\.([mc]?)js(x?)$/.exec(p);
  if (js) {
    const ts = `${p.slice(0, -js[0].length)}.${js[1]}ts${js[2]}`;
    if (isFile(ts)) out.push(ts);
  }
  if (out.length > 0) return out;
  for (const ext of PROBE_EXTENSIONS) if (isFile(p + ext)) out.push(p + ext);
  if (isDir(p) && depth < 3) {
    const main = readPackageJson(p)?.main;
    if (typeof main === 'string' && main !== '' && main !== '.' && main !== './') out.push(...fileCandidates(join(p, main), depth + 1));
    for (const ext of PROBE_EXTENSIONS) if (isFile(join(p, `index${ext}`))) out.push(join(p, `index${ext}`));
  }
  return out;
}

/** The targets of a conditional `exports`/`imports` value, with `*` replaced by `star`. */
function conditionTargets(value: unknown, star: string | undefined, depth = 0): string[] {
  if (depth > 16) return [];
  if (typeof value === 'string') return [star === undefined ? value : value.split('*').join(star)];
  if (Array.isArray(value)) return value.flatMap((v) => conditionTargets(v, star, depth + 1));
  if (value && typeof value === 'object') {
    return Object.entries(value as Record<string, unknown>)
      .filter(([k]) => CONDITIONS.has(k))
      .flatMap(([, v]) => conditionTargets(v, star, depth + 1));
  }
  return [];
}

/** The targets `map` (an `exports` or `imports` object) gives `key`: an exact entry, else the longest `*` pattern. */
function mapTargets(map: Record<string, unknown>, key: string): string[] {
  if (Object.hasOwn(map, key)) return conditionTargets(map[key], undefined);
  let best: { key: string; star: string; prefix: number } | undefined;
  for (const k of Object.keys(map)) {
    const at = k.indexOf('*');
    if (at < 0 || k.indexOf('*', at + 1) >= 0) continue;
    const before = k.slice(0, at);
    const after = k.slice(at + 1);
    if (key.length < k.length - 1 || !key.startsWith(before) || !key.endsWith(after)) continue;
    if (!best || before.length > best.prefix) best = { key: k, star: key.slice(before.length, key.length - after.length), prefix: before.length };
  }
  return best ? conditionTargets(map[best.key], best.star) : [];
}

/** The files a package at `dir` exports under `subpath` (`.` or `./x`). */
function packageTargets(dir: string, subpath: string): string[] {
  const pkg = readPackageJson(dir);
  const exports = pkg?.exports;
  if (exports !== undefined && exports !== null) {
    const sugar = typeof exports === 'string' || Array.isArray(exports) || (typeof exports === 'object' && !Object.keys(exports).some((k) => k.startsWith('.')));
    const map = (sugar ? { '.': exports } : exports) as Record<string, unknown>;
    return mapTargets(map, subpath)
      .filter((t) => t.startsWith('./'))
      .flatMap((t) => fileCandidates(join(dir, t)));
  }
  if (subpath === '.') {
    const main = typeof pkg?.main === 'string' && pkg.main !== '' ? fileCandidates(join(dir, pkg.main)) : [];
    return main.length > 0 ? main : fileCandidates(join(dir, 'index'));
  }
  return fileCandidates(join(dir, subpath));
}

/** The files a bare specifier (`pkg`, `@scope/pkg/sub`) names from `fromDir`. */
function bareTargets(specifier: string, fromDir: string): string[] {
  const m = /^((?:@[^/]+\/)?[^/]+)(\/.*)?$/.exec(specifier);
  if (!m) return [];
  const name = m[1]!;
  const subpath = m[2] ? `.${m[2]}` : '.';
  // A package importing itself by name (through its own `exports`).
  const scope = packageScope(fromDir);
  if (scope && scope.pkg.name === name && scope.pkg.exports !== undefined) return packageTargets(scope.dir, subpath);
  for (let d = fromDir; ; d = dirname(d)) {
    const candidate = join(d, 'node_modules', name);
    if (isDir(candidate)) return packageTargets(candidate, subpath);
    if (dirname(d) === d) return [];
  }
}

/**
 * The files `spec` (imported from `from`) can load, real paths; [] for built-ins, `data:` URLs
 * and what does not resolve (Node would fail to load it; the handler worker refuses it if it
 * appears later).
 */
export function resolveImport(spec: ImportSpecifier, from: string): string[] {
  const s = spec.specifier;
  if (s === '' || s.startsWith('node:') || isBuiltin(s)) return [];
  const fromDir = dirname(from);
  let found: string[];
  if (/^[a-z][a-z0-9+.-]*:/i.test(s) && !/^[a-z]:[\\/]/i.test(s)) {
    if (!s.startsWith('file:')) return []; // data:, http: (refused by Node unless enabled)
    try {
      found = fileCandidates(fileURLToPath(new URL(s)));
    } catch {
      return [];
    }
  } else if (s.startsWith('#')) {
    const scope = packageScope(fromDir);
    const imports = scope?.pkg.imports;
    if (!scope || !imports || typeof imports !== 'object') return [];
    found = mapTargets(imports as Record<string, unknown>, s).flatMap((t) => (t.startsWith('./') ? fileCandidates(join(scope.dir, t)) : t.startsWith('#') ? [] : bareTargets(t, scope.dir)));
  } else if (s === '.' || s === '..' || s.startsWith('./') || s.startsWith('../') || s.startsWith('/') || /^[a-z]:[\\/]/i.test(s)) {
    if (spec.kind === 'import' && !/^[a-z]:[\\/]/i.test(s)) {
      // ESM specifiers are URLs: `?query`/`#hash` are not part of the file, `%20` is a space.
      try {
        const url = new URL(s, pathToFileURL(from));
        url.search = '';
        url.hash = '';
        found = fileCandidates(fileURLToPath(url));
      } catch {
        return [];
      }
    } else {
      found = fileCandidates(s.startsWith('/') || /^[a-z]:[\\/]/i.test(s) ? s : join(fromDir, s));
    }
  } else {
    found = bareTargets(s, fromDir);
  }
  const real: string[] = [];
  for (const f of found) {
    try {
      real.push(realpathSync(f));
    } catch {
      // vanished meanwhile
    }
  }
  return real;
}

// ---------------------------------------------------------------------------------------------
// The graph

/**
 * The label of a file of the handler's graph other than the handler itself: `handler/` and then
 * - for a file inside a `node_modules` directory, its path after the last `node_modules/`
 *   (`handler/node_modules/<package>/<path in the package>`), whatever the installer's layout;
 * - otherwise its path relative to the handler's directory (`handler/lib/util.ts`,
 *   `handler/../lib/text.ts`), `/`-separated.
 */
export function handlerLabel(file: string, handlerDir: string): string {
  const marker = `${sep}node_modules${sep}`;
  const at = file.lastIndexOf(marker);
  if (at >= 0) return `handler/node_modules/${file.slice(at + marker.length).split(sep).join('/')}`;
  return `handler/${relative(handlerDir, file).split(sep).join('/')}`;
}

/**
 * The handler module at `entry` and every file its stated imports reach, read once each: the
 * handler first (label `handler`), then the rest sorted by label.
 * @throws ParleyError `USAGE` naming the file when a file of the graph cannot be read, or the
 *   graph has more than {@link MAX_HANDLER_FILES} files or {@link MAX_HANDLER_BYTES} bytes.
 */
export function handlerGraph(entry: string): HandlerFile[] {
  let root: string;
  try {
    root = realpathSync(entry);
  } catch {
    throw new ParleyError('USAGE', `handler module not found: ${entry}`);
  }
  const handlerDir = dirname(root);
  const files = new Map<string, HandlerFile>();
  const queue = [root];
  let bytes = 0;
  const decoder = new TextDecoder();
  while (queue.length > 0) {
    const path = queue.shift()!;
    if (files.has(path)) continue;
    if (files.size >= MAX_HANDLER_FILES) throw new ParleyError('USAGE', `the handler's import graph has more than ${MAX_HANDLER_FILES} files; bundle the handler`, { details: { files: MAX_HANDLER_FILES } });
    let content: Uint8Array;
    try {
      content = new Uint8Array(readFileSync(path));
    } catch (e) {
      const code = (e as NodeJS.ErrnoException)?.code ?? 'unknown';
      throw new ParleyError('USAGE', `the handler imports ${path}, which cannot be read (${code})`, { details: { file: path } });
    }
    bytes += content.length;
    if (bytes > MAX_HANDLER_BYTES) throw new ParleyError('USAGE', `the handler's import graph exceeds ${MAX_HANDLER_BYTES} bytes; bundle the handler`, { details: { bytes: MAX_HANDLER_BYTES } });
    files.set(path, { label: path === root ? 'handler' : handlerLabel(path, handlerDir), path, bytes: content });
    if (!SCANNED.test(path) || /\.d\.[mc]?ts$/.test(path)) continue;
    for (const spec of scanImports(decoder.decode(content))) {
      for (const target of resolveImport(spec, path)) if (!files.has(target)) queue.push(target);
    }
  }
  const rest = [...files.values()].filter((f) => f.path !== root);
  // Two copies of a package can share a label: their bytes order them (never the machine's paths).
  rest.sort((a, b) => (a.label < b.label ? -1 : a.label > b.label ? 1 : Buffer.compare(a.bytes, b.bytes)));
  return [files.get(root)!, ...rest];
}
