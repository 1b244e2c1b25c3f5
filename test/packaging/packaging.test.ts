/**
 * The SDK as people install it: every public package is packed with `pnpm pack` (its
 * `prepack` compiles dist/), the tarballs are checked with publint and arethetypeswrong, then
 * installed with plain npm into an empty project with no tsx and no TypeScript. There, plain
 * `node` runs the `parley-relay` and `parley-org` CLIs, a bot whose handler is a `.mjs` file and
 * a ParleyClient that exchange messages end to end; a consumer `.ts` file type-checks against
 * the installed `.d.ts` under `nodenext` and `bundler` resolution; and Vite bundles a page that
 * imports the browser client from the installed package.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, type ExecFileSyncOptions } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const fixture = fileURLToPath(new URL('./fixture/', import.meta.url));
/** Every public package, in dependency order. */
const PACKAGES = ['protocol', 'engine', 'relay-link', 'client', 'bot', 'relay', 'issuer'] as const;
const PNPM = ['-y', 'pnpm@10.34.9'];

let work: string;
let app: string;
const tarballs = new Map<string, string>();

/** The environment of an installed app: no tsx loader, no source conditions from the test runner. */
function plainEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  delete env.PARLEY_ROOT;
  for (const k of Object.keys(env)) if (k.startsWith('npm_') || k.startsWith('PNPM_') || k.startsWith('pnpm_')) delete env[k];
  return env;
}

function sh(cmd: string, args: string[], opts: ExecFileSyncOptions = {}): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20, ...opts }) as string;
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${err.message}\n${err.stdout ?? ''}\n${err.stderr ?? ''}`);
  }
}

before(() => {
  work = mkdtempSync(join(tmpdir(), 'parley-packaging-'));
  const packs = join(work, 'tarballs');
  for (const pkg of PACKAGES) {
    const dir = join(root, 'packages', pkg);
    sh('npx', [...PNPM, 'pack', '--pack-destination', packs], { cwd: dir });
    const name = readdirSync(packs).find((f) => f.startsWith(`parley-${pkg}-`) && f.endsWith('.tgz') && ![...tarballs.values()].includes(join(packs, f)));
    assert.ok(name, `pnpm pack produced a tarball for ${pkg}`);
    tarballs.set(pkg, join(packs, name));
  }
  app = join(work, 'app');
  cpSync(fixture, app, { recursive: true });
  const dependencies = Object.fromEntries([...tarballs].map(([pkg, file]) => [`@parley/${pkg}`, `file:${file}`]));
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'installed-app', private: true, type: 'module', dependencies }, null, 2));
  sh('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: app, env: plainEnv() });
});

after(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

test('each tarball holds compiled JavaScript, declarations and source maps, and no sources or tests', () => {
  for (const [pkg, file] of tarballs) {
    const listing = sh('tar', ['tzf', file]).split('\n').filter(Boolean);
    assert.ok(listing.includes('package/dist/index.js'), `${pkg}: dist/index.js`);
    assert.ok(listing.includes('package/dist/index.d.ts'), `${pkg}: dist/index.d.ts`);
    assert.ok(listing.includes('package/dist/index.js.map'), `${pkg}: source map`);
    const stray = listing.filter((f) => /^package\/(src|test)\//.test(f) || /\.tsbuildinfo$/.test(f) || (/\.ts$/.test(f) && !/\.d\.ts$/.test(f)));
    assert.deepEqual(stray, [], `${pkg}: nothing but dist/, README and package.json`);
    const manifest = JSON.parse(sh('tar', ['xzf', file, '-O', 'package/package.json'])) as {
      exports: Record<string, { types: string; default: string }>;
      dependencies?: Record<string, string>;
    };
    for (const [sub, target] of Object.entries(manifest.exports)) {
      assert.equal(Object.keys(target)[0], 'types', `${pkg}${sub}: types first`);
      assert.match(target.default, /^\.\/dist\/.*\.js$/, `${pkg}${sub}: compiled entry`);
    }
    for (const [dep, range] of Object.entries(manifest.dependencies ?? {})) assert.ok(!range.startsWith('workspace:'), `${pkg}: ${dep} ${range} resolved`);
  }
});

test('publint finds no problem in any tarball', async () => {
  const { publint } = await import('publint');
  const { unpack } = await import('@publint/pack');
  for (const [pkg, file] of tarballs) {
    const { files } = await unpack(readFileSync(file).buffer);
    const { messages } = await publint({ pkgDir: 'package', pack: { files }, strict: true });
    assert.deepEqual(messages.map((m) => `${m.type} ${m.code} ${m.path.join('.')}`), [], `publint ${pkg}`);
  }
});

test('arethetypeswrong: every entry point resolves to its types under node16 ESM and bundlers', () => {
  const attw = join(root, 'test', 'node_modules', '.bin', 'attw');
  for (const [pkg, file] of tarballs) {
    // ESM-only packages: `require` (node10, node16 from CJS) is not offered, on purpose.
    // attw exits non-zero on any problem in the resolutions the profile keeps.
    const report = JSON.parse(sh(attw, [file, '--profile', 'esm-only', '--format', 'json'], { env: plainEnv() })) as {
      analysis: { entrypoints: Record<string, { resolutions: Record<string, { resolution?: { fileName: string } }> }> };
    };
    const entrypoints = Object.entries(report.analysis.entrypoints);
    assert.ok(entrypoints.length > 0, `attw ${pkg}: entry points analysed`);
    for (const [sub, e] of entrypoints) {
      for (const kind of ['node16-esm', 'bundler']) assert.match(e.resolutions[kind]?.resolution?.fileName ?? '', /\/dist\/.*\.d\.ts$/, `attw ${pkg} ${sub} ${kind}`);
    }
  }
});

test('installed with npm, plain node runs the CLIs, a bot with a .mjs handler and a client end to end', () => {
  assert.ok(!existsSync(join(app, 'node_modules', 'tsx')), 'no tsx in the app');
  assert.ok(!existsSync(join(app, 'node_modules', 'typescript')), 'no TypeScript in the app');
  const out = sh(process.execPath, ['e2e.mjs'], { cwd: app, env: plainEnv(), timeout: 120_000 });
  const result = JSON.parse(out.trim().split('\n').pop()!) as {
    orgKey: string;
    missingHandler: string;
    measurementMatches: boolean;
    cliMeasurementMatches: boolean;
    botVersion: string;
    measuredFiles: string[];
    replies: unknown[];
  };
  assert.match(result.orgKey, /^[0-9a-f]{64}$/);
  assert.equal(result.missingHandler, 'USAGE with path');
  assert.deepEqual(result.replies, [
    { type: 'text', text: 'echo: hello from an installed package' },
    { type: 'text', text: 'echo: second message' },
    { type: 'binary', binary: [250, 3, 2, 1] },
  ]);
  assert.equal(result.measurementMatches, true);
  assert.equal(result.cliMeasurementMatches, true, 'parley-bot measure prints bot.measurement');
  assert.match(result.botVersion, /^\d+\.\d+\.\d+/);
  // The measurement hashes what runs: compiled JavaScript, never sources or declarations.
  assert.ok(result.measuredFiles.includes('@parley/bot/dist/enclave/entry.js'), result.measuredFiles.join(' '));
  assert.ok(result.measuredFiles.some((f) => f.startsWith('@parley/engine/dist/')));
  assert.ok(result.measuredFiles.every((f) => f === 'handler' || (/\/dist\//.test(f) && /\.js$/.test(f))), result.measuredFiles.join(' '));
});

test('installed with npm, plain node runs parley-issuer (fastify, argon2id, WebAuthn and TOTP libraries load)', () => {
  const bin = join(app, 'node_modules', '.bin', 'parley-issuer');
  assert.match(sh(bin, ['--version'], { cwd: app, env: plainEnv() }), /^\d+\.\d+\.\d+/);
  assert.match(sh(bin, ['keygen', '--out', join(work, 'issuer.key')], { cwd: app, env: plainEnv() }), /^[0-9a-f]{64}\n$/);
});

for (const resolution of ['nodenext', 'bundler'] as const) {
  test(`a consumer .ts file type-checks against the installed .d.ts (moduleResolution ${resolution})`, () => {
    const tsconfig = {
      compilerOptions: {
        strict: true,
        noEmit: true,
        skipLibCheck: false,
        target: 'ES2022',
        lib: ['ES2023', 'DOM'],
        module: resolution === 'nodenext' ? 'NodeNext' : 'ESNext',
        moduleResolution: resolution,
        types: ['node'],
        typeRoots: [join(root, 'node_modules', '@types')],
      },
      files: ['consumer.ts'],
    };
    writeFileSync(join(app, `tsconfig.${resolution}.json`), JSON.stringify(tsconfig, null, 2));
    const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
    sh(process.execPath, [tsc, '-p', `tsconfig.${resolution}.json`], { cwd: app });
  });
}

test('Vite bundles a browser page from the installed @parley/client', async () => {
  const { build } = await import('vite');
  const outDir = join(app, 'web-dist');
  await build({ root: join(app, 'web'), logLevel: 'error', build: { outDir, emptyOutDir: true, target: 'es2022' } });
  const assets = readdirSync(join(outDir, 'assets')).filter((f) => f.endsWith('.js'));
  assert.ok(assets.length > 0, 'a JavaScript bundle');
  const bundle = assets.map((f) => readFileSync(join(outDir, 'assets', f), 'utf8')).join('\n');
  assert.ok(bundle.includes('installed-widget'), 'the page code is in the bundle');
  assert.ok(!/node:fs|better-sqlite3|worker_threads/.test(bundle), 'no Node-only module reached the browser bundle');
  assert.ok(statSync(join(outDir, 'index.html')).isFile());
});
