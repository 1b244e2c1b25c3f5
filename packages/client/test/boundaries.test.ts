/** The tree is the trust map: the core engine must stay free of Node APIs, sockets and files. */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const SRC = fileURLToPath(new URL('../src/', import.meta.url));

function imports(file: string): string[] {
  const text = readFileSync(file, 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  return [...text.matchAll(/(?:import|export)\s[^'"]*?from\s+'([^']+)'|import\(\s*'([^']+)'\s*\)/g)].map((m) => m[1] ?? m[2]!);
}

describe('import boundaries', () => {
  it('src/core imports only @parley/protocol and itself (no node:, no sockets, no storage backends)', () => {
    for (const name of readdirSync(join(SRC, 'core'))) {
      for (const spec of imports(join(SRC, 'core', name))) {
        const ok = spec.startsWith('./') || spec === '@parley/protocol' || spec === '@parley/protocol/wire';
        assert.ok(ok, `core/${name} imports ${spec}`);
      }
    }
  });

  it('the client reaches node-only code through a dynamic import only', () => {
    for (const file of ['client.ts', 'index.ts', 'emitter.ts', join('transport', 'socket.ts')]) {
      const text = readFileSync(join(SRC, file), 'utf8');
      assert.ok(!/from\s+'node:/.test(text), `${file} imports node:`);
      assert.ok(!/from\s+'\.\/node\//.test(text), `${file} statically imports src/node`);
    }
  });

  it('nothing in the client imports protocol internals by path', () => {
    const walk = (dir: string): string[] =>
      readdirSync(dir, { withFileTypes: true }).flatMap((d) => (d.isDirectory() ? walk(join(dir, d.name)) : [join(dir, d.name)]));
    for (const file of walk(SRC)) for (const spec of imports(file)) assert.ok(!spec.includes('protocol/src'), `${file} imports ${spec}`);
  });
});
