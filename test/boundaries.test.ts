/**
 * The tree is the trust map (DESIGN.md "Layout", STYLE.md rule 1). This test reads the import
 * graph of every package's src/ and fails when code on one side of a trust boundary reaches
 * into the other's internals.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

function sourceFiles(dir: string, out: string[] = []): string[] {
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) sourceFiles(path, out);
    else if (/\.(ts|mts|mjs)$/.test(name)) out.push(path);
  }
  return out;
}

/** Module specifiers of every static and dynamic import / export-from in a file. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  const specs: string[] = [];
  for (const m of text.matchAll(/(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|import\s*\(\s*['"]([^'"]+)['"]\s*\)|import\s+['"]([^'"]+)['"]/g)) {
    specs.push((m[1] ?? m[2] ?? m[3])!);
  }
  return specs;
}

const packageExports = new Map<string, Record<string, string>>();
for (const pkg of readdirSync(join(root, 'packages'))) {
  const manifest = JSON.parse(readFileSync(join(root, 'packages', pkg, 'package.json'), 'utf8')) as { name: string; exports?: Record<string, string> };
  packageExports.set(manifest.name, Object.fromEntries(Object.entries(manifest.exports ?? {}).map(([k, v]) => [k, join(root, 'packages', pkg, v)])));
}

/** Resolves a specifier to a file in this repo, or null for external modules. */
function resolveSpec(from: string, spec: string): string | null {
  if (spec.startsWith('.')) {
    const base = resolve(dirname(from), spec);
    for (const candidate of [base.replace(/\.js$/, '.ts'), base, `${base}.ts`, join(base, 'index.ts')]) {
      if (existsSync(candidate) && statSync(candidate).isFile()) return candidate;
    }
    return null;
  }
  const m = /^(@parley\/[^/]+)(\/.*)?$/.exec(spec);
  if (!m) return null;
  return packageExports.get(m[1]!)?.[`.${m[2] ?? ''}`] ?? null;
}

function closure(entries: string[]): Set<string> {
  const seen = new Set<string>();
  const stack = [...entries];
  while (stack.length) {
    const file = stack.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    for (const spec of importsOf(file)) {
      const target = resolveSpec(file, spec);
      if (target) stack.push(target);
    }
  }
  return seen;
}

const rel = (f: string) => relative(root, f);
const srcOf = (pkg: string) => sourceFiles(join(root, 'packages', pkg, 'src'));

test('the relay reaches no key or session code, only public types and signature checks', () => {
  const relayFiles = srcOf('relay');
  assert.ok(relayFiles.length > 0, 'relay has source files');
  for (const file of relayFiles) {
    for (const spec of importsOf(file)) {
      if (spec.startsWith('@parley/')) {
        assert.ok(['@parley/protocol/verify', '@parley/protocol/wire'].includes(spec), `${rel(file)} imports ${spec}`);
      }
    }
  }
  const reached = [...closure(relayFiles)].map(rel).filter((f) => f.startsWith('packages/protocol/'));
  const forbidden = ['account.ts', 'session.ts', 'ratchet.ts', 'x3dh.ts', 'identity.ts', 'pickle.ts', 'fingerprint.ts'];
  for (const f of reached) assert.ok(!forbidden.some((name) => f.endsWith(`/src/${name}`)), `relay reaches ${f}`);
});

test('only the protocol crypto module imports libsodium or noble', () => {
  for (const pkg of readdirSync(join(root, 'packages'))) {
    for (const file of srcOf(pkg)) {
      if (rel(file).startsWith('packages/protocol/src/crypto/')) continue;
      for (const spec of importsOf(file)) {
        assert.ok(!/^(libsodium-wrappers|@noble\/)/.test(spec), `${rel(file)} imports ${spec}`);
      }
    }
  }
});

test('the protocol core is pure: no I/O modules, no transport', () => {
  for (const file of srcOf('protocol')) {
    for (const spec of importsOf(file)) {
      if (spec === 'node:crypto' && rel(file).startsWith('packages/protocol/src/crypto/')) continue;
      assert.ok(!/^(node:|fs|net|http|https|socket\.io|better-sqlite3|redis|pino)/.test(spec), `${rel(file)} imports ${spec}`);
    }
  }
});

test('device, relay and bot packages do not import each other across the boundary', () => {
  const rules: [string, RegExp][] = [
    ['client', /^@parley\/(relay|bot)/],
    ['relay', /^@parley\/(client|bot)/],
    ['bot', /^@parley\/relay/],
  ];
  for (const [pkg, banned] of rules) {
    for (const file of srcOf(pkg)) {
      for (const spec of importsOf(file)) assert.ok(!banned.test(spec), `${rel(file)} imports ${spec}`);
      for (const spec of importsOf(file).filter((s) => s.startsWith('.'))) {
        const target = resolveSpec(file, spec);
        if (target) assert.ok(rel(target).startsWith(`packages/${pkg}/`), `${rel(file)} reaches outside its package: ${rel(target)}`);
      }
    }
  }
});

test('the client conversation engine is transport- and platform-agnostic', () => {
  const core = sourceFiles(join(root, 'packages/client/src/core'));
  assert.ok(core.length > 0, 'client core has source files');
  // The protocol's Node backend is reached only by a dynamic import behind a Node check, and the
  // protocol's own purity is the test above; here: the engine's code in the client package.
  for (const file of [...closure(core)].filter((f) => rel(f).startsWith('packages/client/'))) {
    for (const spec of importsOf(file)) {
      assert.ok(!/^(node:|socket\.io|fs$|path$)/.test(spec), `${rel(file)} (reached from client core) imports ${spec}`);
    }
  }
});
