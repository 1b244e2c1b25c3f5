/**
 * The tree is the trust map: nothing in src/host imports src/enclave (the worker's entry is
 * referenced only as a URL string) and nothing in src/enclave imports src/host. The
 * `@parley/bot/attestation` subpath imports nothing Node-only.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const src = fileURLToPath(new URL('../src/', import.meta.url));

function files(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) files(p, out);
    else if (/\.(ts|mjs)$/.test(name)) out.push(p);
  }
  return out;
}

/** Static and dynamic import specifiers, plus `new URL('…', import.meta.url)` references. */
function imports(file: string): { specifier: string; kind: 'import' | 'url' }[] {
  const text = readFileSync(file, 'utf8');
  const out: { specifier: string; kind: 'import' | 'url' }[] = [];
  for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]/g)) out.push({ specifier: m[1]!, kind: 'import' });
  for (const m of text.matchAll(/(?:^|\n)\s*import\s+['"]([^'"]+)['"]/g)) out.push({ specifier: m[1]!, kind: 'import' });
  for (const m of text.matchAll(/import\(\s*['"]([^'"]+)['"]\s*\)/g)) out.push({ specifier: m[1]!, kind: 'import' });
  for (const m of text.matchAll(/new URL\(\s*['"]([^'"]+)['"]\s*,\s*import\.meta\.url\s*\)/g)) out.push({ specifier: m[1]!, kind: 'url' });
  return out;
}

function area(path: string): string {
  return relative(src, path).split(/[\\/]/)[0]!;
}

test('src/host never imports src/enclave, and src/enclave never imports src/host', () => {
  const all = files(src);
  assert.ok(all.length > 10);
  let urls = 0;
  for (const file of all) {
    const from = area(file);
    for (const { specifier, kind } of imports(file)) {
      if (!specifier.startsWith('.')) continue;
      const to = area(resolve(dirname(file), specifier));
      if (from === 'host' && to === 'enclave') {
        assert.equal(kind, 'url', `${relative(src, file)} imports ${specifier}`);
        assert.equal(specifier, '../enclave/bootstrap.mjs');
        urls++;
      }
      if (from === 'enclave') assert.notEqual(to, 'host', `${relative(src, file)} imports ${specifier}`);
      if (from === 'rpc') assert.ok(to === 'rpc', `rpc must stand alone: ${relative(src, file)} imports ${specifier}`);
    }
  }
  assert.equal(urls, 1, 'the worker entry is referenced once, as a URL');
});

test('the enclave is not reachable from the host through shared modules either', () => {
  // Shared modules (attestation, measurement, handler-api, index) must not import enclave code.
  for (const file of files(src)) {
    const from = area(file);
    if (from === 'host' || from === 'enclave') continue;
    for (const { specifier, kind } of imports(file)) {
      if (kind === 'import' && specifier.startsWith('.')) {
        assert.notEqual(area(resolve(dirname(file), specifier)), 'enclave', `${relative(src, file)} imports ${specifier}`);
      }
    }
  }
});

test('@parley/bot/attestation has no Node-only imports', () => {
  const specs = imports(join(src, 'attestation.ts')).map((i) => i.specifier);
  // A re-export of the pure protocol module (which the root boundaries test keeps free of node: imports).
  assert.deepEqual(specs, ['@parley/protocol/attestation']);
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { exports: Record<string, string> };
  assert.equal(pkg.exports['./attestation'], './src/attestation.ts');
});
