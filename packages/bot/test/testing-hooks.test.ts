/**
 * The key-exposing test hook does not exist in the published build (issue 10, Low 11;
 * docs/threats.md B12). `createBotForTesting(…, { unsafeTestingExposeKeys })` handed the host the
 * identity key and every session key while the bot attested the production measurement. Now the
 * enclave refuses the hook (`FORBIDDEN`) unless its code runs from the repository's TypeScript
 * sources, and a bot run from the sources measures differently from the published build.
 *
 * The published form is built here as `npm install` would lay it out: every module of the bot's,
 * the protocol's and the engine's `src/` compiled to `.js` (TypeScript's transpiler) under the
 * published `exports`, no TypeScript loader. Its enclave starts normally without the hook.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { MessageChannel, receiveMessageOnPort } from 'node:worker_threads';
import ts from 'typescript';
import { isParleyError } from '@parley/protocol';
import { computeMeasurement, handlerUrl } from '../src/measurement.js';
import { openSupervisor, setupCrypto, tempDir } from './helpers.js';

await setupCrypto();

const packagesDir = fileURLToPath(new URL('../..', import.meta.url));

/** Compiles the package at `root`: its `src/` into `<into>/dist` and writes its package.json with the published exports. */
function compilePackage(root: string, into: string): void {
  const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { exports: unknown; publishConfig?: { exports?: unknown } };
  mkdirSync(into, { recursive: true });
  writeFileSync(join(into, 'package.json'), JSON.stringify({ ...manifest, exports: manifest.publishConfig?.exports ?? manifest.exports }));
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir)) {
      const path = join(dir, entry);
      const target = join(into, 'dist', relative(join(root, 'src'), path));
      if (statSync(path).isDirectory()) {
        walk(path);
        continue;
      }
      mkdirSync(dirname(target), { recursive: true });
      if (entry.endsWith('.mjs')) copyFileSync(path, target);
      else if (entry.endsWith('.ts') && !entry.endsWith('.d.ts')) {
        const js = ts.transpileModule(readFileSync(path, 'utf8'), { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 }, fileName: path }).outputText;
        writeFileSync(target.replace(/\.ts$/, '.js'), js);
      }
    }
  };
  walk(join(root, 'src'));
}

/**
 * The published form of the bot and of the two packages its enclave runs (`@parley/protocol`,
 * `@parley/engine`), as `npm install` lays them out: compiled `dist/` and the published
 * `exports`, no TypeScript anywhere. Returns the enclave's start file.
 */
function publishedBuild(): { entry: URL; cleanup: () => void } {
  const out = mkdtempSync(join(tmpdir(), 'parley-published-'));
  compilePackage(fileURLToPath(new URL('..', import.meta.url)), out);
  compilePackage(join(packagesDir, 'protocol'), join(out, 'node_modules/@parley/protocol'));
  compilePackage(join(packagesDir, 'engine'), join(out, 'node_modules/@parley/engine'));
  // The protocol's own dependencies (noble, libsodium), as installed in the workspace.
  symlinkSync(join(packagesDir, 'protocol/node_modules'), join(out, 'node_modules/@parley/protocol/node_modules'), 'dir');
  return { entry: pathToFileURL(join(out, 'dist/enclave/entry.js')), cleanup: () => rmSync(out, { recursive: true, force: true }) };
}

test('B12: the published build refuses unsafeTestingExposeKeys (FORBIDDEN) and nothing reaches the test port; the sources measure differently', { timeout: 120_000 }, async (t) => {
  const build = publishedBuild();
  t.after(build.cleanup);

  // (A published bot's handler is JavaScript.)
  const handler = join(tempDir(t), 'handler.mjs');
  writeFileSync(handler, 'export default async (message, ctx) => { await ctx.reply(`echo:${message.text}`); };\n');
  const channel = new MessageChannel();
  t.after(() => channel.port1.close());
  const hooked = await openSupervisor(tempDir(t), { entryUrl: build.entry, handlerUrl: handlerUrl(handler), unsafeTestingExposeKeys: channel.port2 });
  let refusal: unknown;
  try {
    await hooked.sup.start();
    // (Before issue 10 it started, and answered the dump with the bot's private keys.)
    channel.port1.postMessage('dump');
    await new Promise((r) => setTimeout(r, 500));
  } catch (e) {
    refusal = e;
  }
  await hooked.sup.stop();
  const leaked = receiveMessageOnPort(channel.port1)?.message as { secrets?: unknown[] } | undefined;
  assert.equal(leaked?.secrets?.length ?? 0, 0, 'no key reached the test port');
  assert.ok(isParleyError(refusal, 'FORBIDDEN') && refusal.details?.reason === 'testingHookInPublishedBuild', `refused: ${String(refusal)}`);
  assert.match(refusal.message, /published build/);

  // The same build without the hook starts; its measurement is not the sources' one, where the
  // hook exists.
  const plain = await openSupervisor(tempDir(t), { entryUrl: build.entry, handlerUrl: handlerUrl(handler) });
  const info = await plain.sup.start();
  await plain.sup.stop();
  const sources = await computeMeasurement(handler);
  assert.notEqual(Buffer.from(info.measurement).toString('hex'), sources.hex);
  assert.ok(sources.files.some((f) => f.label === '@parley/bot/src/enclave/unsafe-testing.ts'));
});
