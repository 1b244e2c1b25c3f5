/**
 * Issue 10, finding 10: the measurement covers the handler's whole import graph (its own
 * modules, and the packages it imports from node_modules, followed file by file), so a change to
 * any imported file changes it; and the handler worker refuses to load a file outside the
 * measurement (an import of a computed name) or one that changed since it was measured, with a
 * typed error naming the file.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isParleyError } from '@parley/protocol';
import { computeMeasurement } from '../src/index.js';
import { scanImports } from '../src/handler-graph.js';
import { Customer } from './customer.js';
import { startBot, startRelay } from './harness.js';
import { setupCrypto, tempDir, waitFor } from './helpers.js';

await setupCrypto();
const relay = await startRelay();
after(() => relay.close());

/** Writes `files` (path → content) under a fresh directory; returns it. */
function project(files: Record<string, string>): string {
  const dir = tempDir();
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(join(dir, path, '..'), { recursive: true });
    writeFileSync(join(dir, path), content);
  }
  return dir;
}

const MULTI_FILE = {
  'handler.mjs': [
    "// import gone from './only-in-a-comment.mjs';",
    "import { shout } from './lib/util.mjs';",
    "import dep from 'dep';",
    "import { createRequire } from 'node:module';",
    'const require = createRequire(import.meta.url);',
    "const legacy = require('./lib/legacy.cjs');",
    "const quoted = \"import nope from './only-in-a-string.mjs'\";",
    'export default async function handle(message, ctx) {',
    '  await ctx.reply(`${shout(message.text)} ${dep} ${legacy.n} ${quoted.length}`);',
    '}',
  ].join('\n'),
  'lib/util.mjs': "import { suffix } from './deep.mjs';\nexport const shout = (s) => s.toUpperCase() + suffix;\n",
  'lib/deep.mjs': "export const suffix = '!';\n",
  'lib/legacy.cjs': "module.exports = { n: require('./legacy-inner.cjs') };\n",
  'lib/legacy-inner.cjs': 'module.exports = 7;\n',
  'node_modules/dep/package.json': JSON.stringify({ name: 'dep', exports: { '.': { import: './esm.mjs', require: './cjs.cjs' } } }),
  'node_modules/dep/esm.mjs': "export default 'dep-esm';\n",
  'node_modules/dep/cjs.cjs': "module.exports = 'dep-cjs';\n",
};

test('the scanner finds stated imports, and skips comments, strings, regular expressions and type-only imports', () => {
  const found = scanImports(
    [
      "import a from './a.js'; import type { T } from './types.js'; import { type X, y } from './y.js';",
      "export * from './star.js'; export type { Q } from './q.js'; export { z } from './z.js';",
      "// import c from './comment.js'",
      "/* import d from './block.js' */ const s = \"import e from './string.js'\";",
      "const re = /import f from '.\\/re.js'/; const t = `${require('./in-template.cjs')} import g from './tmpl.js'`;",
      "const half = a / 2; const lazy = await import('./lazy.js'); const computed = import(name); obj.require('./member.js');",
      "import.meta.url; import './side-effect.js';",
    ].join('\n'),
  );
  assert.deepEqual(
    found.map((f) => `${f.kind} ${f.specifier}`),
    ['import ./a.js', 'import ./y.js', 'import ./star.js', 'import ./z.js', 'require ./in-template.cjs', 'import ./lazy.js', 'import ./side-effect.js'],
  );
});

test('the measurement covers every file the handler imports, through node_modules; changing any of them changes it', async () => {
  const dir = project(MULTI_FILE);
  const handler = join(dir, 'handler.mjs');
  const first = await computeMeasurement(handler);
  const labels = first.files.map((f) => f.label).filter((l) => l.startsWith('handler'));
  assert.deepEqual(labels, [
    'handler',
    'handler/lib/deep.mjs',
    'handler/lib/legacy-inner.cjs',
    'handler/lib/legacy.cjs',
    'handler/lib/util.mjs',
    // Both branches of the package's exports: Node may load either.
    'handler/node_modules/dep/cjs.cjs',
    'handler/node_modules/dep/esm.mjs',
  ]);
  assert.equal((await computeMeasurement(handler)).hex, first.hex, 'deterministic');
  for (const file of ['lib/deep.mjs', 'lib/legacy-inner.cjs', 'node_modules/dep/esm.mjs']) {
    const before = MULTI_FILE[file as keyof typeof MULTI_FILE];
    writeFileSync(join(dir, file), `${before}// changed\n`);
    const changed = await computeMeasurement(handler);
    assert.notEqual(changed.hex, first.hex, `a change to ${file} changes the measurement`);
    writeFileSync(join(dir, file), before);
  }
  assert.equal((await computeMeasurement(handler)).hex, first.hex, 'restored');
  // A type-only import is not code the handler runs.
  const typed = project({ 'handler.ts': "import type { Shape } from './types.js';\nexport default async function handle(): Promise<void> {}\n", 'types.ts': 'export interface Shape { a: 1 }\n' });
  assert.deepEqual((await computeMeasurement(join(typed, 'handler.ts'))).files.filter((f) => f.label.startsWith('handler')).map((f) => f.label), ['handler']);
});

test('the bot runs a multi-file handler: the enclave measures what computeMeasurement does, and the imports load', async (t) => {
  const dir = project(MULTI_FILE);
  const handler = join(dir, 'handler.mjs');
  const { bot } = await startBot(relay, tempDir(t), { handler });
  t.after(() => bot.close());
  assert.equal(bot.measurement, (await computeMeasurement(handler)).hex);
  const c = await Customer.connect(relay.url);
  t.after(() => c.close());
  await c.send(bot.deviceId, 'hi');
  await waitFor(() => c.replies.length >= 1, 10_000, 'a reply');
  assert.equal(c.replies[0]!.text, 'HI! dep-esm 7 41');
});

async function refusal(files: Record<string, string>, t: Parameters<typeof tempDir>[0]): Promise<{ message: string; file: unknown; reason: unknown }> {
  const dir = project(files);
  try {
    const { bot } = await startBot(relay, tempDir(t), { handler: join(dir, 'handler.mjs') });
    await bot.close();
  } catch (e) {
    assert.ok(isParleyError(e, 'USAGE'), `USAGE, got ${String(e)}`);
    return { message: e.message, file: e.details?.file, reason: e.details?.reason };
  }
  return assert.fail('createBot accepted the handler');
}

test('an import the measurement could not follow is refused at start, naming the file', async (t) => {
  const esm = await refusal(
    {
      'handler.mjs': "const name = 'hidden.mjs';\nawait import(`./${name}`);\nexport default async function handle() {}\n",
      'hidden.mjs': 'export const x = 1;\n',
    },
    t,
  );
  assert.match(esm.message, /hidden\.mjs, which is not part of its measurement/);
  assert.match(String(esm.file), /hidden\.mjs$/);
  assert.equal(esm.reason, 'unmeasuredImport');

  const cjs = await refusal(
    {
      'handler.mjs': "import { createRequire } from 'node:module';\nconst load = createRequire(import.meta.url);\nload(['./hid', 'den.cjs'].join(''));\nexport default async function handle() {}\n",
      'hidden.cjs': 'module.exports = 1;\n',
    },
    t,
  );
  assert.match(cjs.message, /hidden\.cjs, which is not part of its measurement/);
  assert.equal(cjs.reason, 'unmeasuredImport');
});

test('an imported file that changed after it was measured is refused, naming it', async (t) => {
  // The file changes after the enclave measured it, before the handler imports it (the test
  // changes it: a handler has no files to write, README "Egress policy and ctx.fetch").
  const dir = project({
    'handler.mjs': "export default async function handle(message, ctx) {\n  try { await import('./late.mjs'); await ctx.reply('loaded'); } catch (e) { await ctx.reply(String(e.message)); }\n}\n",
    'late.mjs': 'export default 1;\n',
  });
  const { bot } = await startBot(relay, tempDir(t), { handler: join(dir, 'handler.mjs') });
  t.after(() => bot.close());
  writeFileSync(join(dir, 'late.mjs'), 'export default 2;\n');
  const c = await Customer.connect(relay.url);
  t.after(() => c.close());
  await c.send(bot.deviceId, 'import it');
  await waitFor(() => c.replies.length >= 1, 10_000, 'a reply');
  assert.match(c.replies[0]!.text!, /changed-import:.*late\.mjs$/);
});
