/**
 * The package trust map (docs/architecture.md, "Packaging") is enforced by dependency-cruiser with
 * the rules in `.dependency-cruiser.cjs`. This test runs them on the real tree (0 violations), then
 * proves they bite: for each forbidden import it copies the packages' sources into a temporary
 * directory laid out like the repo, adds the import there (the real tree is never touched), cruises
 * the affected package and checks that the expected rule fires.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, symlinkSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cruise, type ICruiseOptions, type ICruiseResult } from 'dependency-cruiser';
import extractDepcruiseOptions from 'dependency-cruiser/config-utl/extract-depcruise-options';
import extractTSConfig from 'dependency-cruiser/config-utl/extract-ts-config';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const PACKAGES = readdirSync(join(root, 'packages')).sort();

let baseOptions: ICruiseOptions;
let ruleNames: string[];

before(async () => {
  baseOptions = await extractDepcruiseOptions(join(root, '.dependency-cruiser.cjs'));
  ruleNames = (baseOptions.ruleSet?.forbidden ?? []).map((r) => r.name ?? '(unnamed)');
});

/** Cruises `dirs` (relative to `baseDir`) with the repo's rules, as `npx depcruise` does. */
async function cruiseTree(baseDir: string, dirs: string[]): Promise<ICruiseResult> {
  const tsConfigFile = join(baseDir, 'tsconfig.json');
  const options: ICruiseOptions = { ...baseOptions, baseDir, tsConfig: { fileName: tsConfigFile } };
  const { output } = await cruise(dirs, options, {}, { tsConfig: extractTSConfig(tsConfigFile) });
  assert.ok(typeof output === 'object', 'the JSON cruise result');
  return output;
}

const ruleHits = (result: ICruiseResult) => result.summary.violations.map((v) => `${v.rule.name}: ${v.from} → ${v.to}`);

test('the real tree: every rule holds, on a graph that is not empty', async () => {
  const result = await cruiseTree(root, PACKAGES.map((p) => `packages/${p}/src`));
  assert.deepEqual(ruleHits(result), []);
  assert.ok(result.summary.totalCruised > 50, `cruised ${result.summary.totalCruised} modules`);
  assert.ok(ruleNames.length >= 20, 'the rule set loaded');

  const dep = (from: string, module: string) =>
    result.modules.find((m) => m.source === from)?.dependencies.find((d) => d.module === module);
  // @parley/* subpaths resolve to the packages' sources (otherwise the path rules would see nothing).
  assert.equal(dep('packages/relay/src/auth.ts', '@parley/protocol/verify')?.resolved, 'packages/protocol/src/verify.ts');
  assert.equal(dep('packages/relay/src/auth.ts', '@parley/protocol/wire')?.resolved, 'packages/protocol/src/wire/index.ts');
  assert.equal(dep('packages/bot/src/host/bot.ts', '@parley/relay-link')?.resolved, 'packages/relay-link/src/index.ts');
  assert.equal(dep('packages/client/src/client.ts', '@parley/engine')?.resolved, 'packages/engine/src/index.ts');
  assert.equal(dep('packages/bot/src/attestation.ts', '@parley/protocol/attestation')?.resolved, 'packages/protocol/src/attestation.ts');
  // Type-only imports are in the graph (tsPreCompilationDeps).
  assert.ok(dep('packages/relay/src/store/types.ts', '@parley/protocol/verify')?.dependencyTypes.includes('type-only'));
  // The client's one way into src/node/ is a dynamic import, which the browser-safety rule allows.
  const fileStore = dep('packages/client/src/client.ts', './node/file-store.js');
  assert.equal(fileStore?.resolved, 'packages/client/src/node/file-store.ts');
  assert.ok(fileStore?.dependencyTypes.includes('dynamic-import'));
  // The bot host reaches the shared modules and relay-link, so its closure rule has something to walk.
  assert.ok(result.modules.some((m) => m.source === 'packages/protocol/src/account.ts'), 'account.ts is in the graph');
});

test('@parley/bot/attestation is the browser-safe file the rules check', () => {
  // Not an import: the package's exports map must point the subpath at the file the
  // bot-attestation-only-protocol-attestation rule constrains.
  const manifest = JSON.parse(readFileSync(join(root, 'packages/bot/package.json'), 'utf8')) as { exports: Record<string, string> };
  assert.equal(manifest.exports['./attestation'], './src/attestation.ts');
});

// ---- the rules fail on forbidden imports -------------------------------------------------

const scratch = mkdtempSync(join(tmpdir(), 'parley-depcruise-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

/**
 * A copy of the workspace's packages (package.json + src/) in a fresh directory, with each
 * package's node_modules rebuilt: `@parley/*` links point at the copies (as pnpm's relative links
 * do), every other dependency at the real installed package.
 */
function copyTree(): string {
  const dir = mkdtempSync(join(scratch, 'tree-'));
  for (const name of ['tsconfig.json', 'tsconfig.base.json']) cpSync(join(root, name), join(dir, name));
  symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'));
  for (const pkg of PACKAGES) {
    const from = join(root, 'packages', pkg);
    const to = join(dir, 'packages', pkg);
    mkdirSync(join(to, 'node_modules'), { recursive: true });
    cpSync(join(from, 'package.json'), join(to, 'package.json'));
    cpSync(join(from, 'src'), join(to, 'src'), { recursive: true });
    for (const entry of readdirSync(join(from, 'node_modules'))) {
      if (entry === '@parley') {
        mkdirSync(join(to, 'node_modules/@parley'));
        for (const link of readdirSync(join(from, 'node_modules/@parley'))) {
          symlinkSync(readlinkSync(join(from, 'node_modules/@parley', link)), join(to, 'node_modules/@parley', link));
        }
      } else {
        symlinkSync(join(from, 'node_modules', entry), join(to, 'node_modules', entry));
      }
    }
  }
  return dir;
}

interface Case {
  title: string;
  /** Files to write (`write`) or to add lines to (`append`), relative to the tree. */
  write?: Record<string, string>;
  append?: Record<string, string>;
  /** The package src/ directories to cruise (the closure is followed from there). */
  cruise: string[];
  /** Rules that must fire, each with the module the violation is reported from. */
  expect: [rule: string, from: string][];
  /** Injected files whose imports are allowed: no violation may come from them. */
  clean?: string[];
}

const cases: Case[] = [
  {
    title: 'the issuer imports @parley/client (undeclared: a bare name the allow-list still sees)',
    write: { 'packages/issuer/src/injected.ts': "export { ParleyClient } from '@parley/client';\n" },
    cruise: ['packages/issuer/src'],
    expect: [
      ['issuer-allowed-packages', 'packages/issuer/src/injected.ts'],
      ['no-unresolvable-in-src', 'packages/issuer/src/injected.ts'],
    ],
  },
  {
    title: 'the relay imports @parley/engine',
    write: { 'packages/relay/src/injected.ts': "export { ConversationEngine } from '@parley/engine';\n" },
    cruise: ['packages/relay/src'],
    expect: [
      ['relay-only-key-free-protocol', 'packages/relay/src/injected.ts'],
      ['no-unresolvable-in-src', 'packages/relay/src/injected.ts'],
    ],
  },
  {
    title: 'the relay imports the @parley/protocol root (account, session, ... behind it)',
    write: { 'packages/relay/src/injected.ts': "export { Account } from '@parley/protocol';\n" },
    cruise: ['packages/relay/src'],
    expect: [
      ['relay-only-key-free-protocol', 'packages/relay/src/injected.ts'],
      ['relay-closure-key-free', 'packages/relay/src/injected.ts'],
    ],
  },
  {
    title: 'a protocol view (wire) starts importing session code, reaching the relay and relay-link closures',
    append: { 'packages/protocol/src/wire/message.ts': "\nexport { Session } from '../session.js';\n" },
    cruise: ['packages/relay/src', 'packages/relay-link/src'],
    expect: [
      ['protocol-views-key-free', 'packages/protocol/src/wire/index.ts'],
      ['relay-closure-key-free', 'packages/relay/src/auth.ts'],
      ['relay-link-closure-key-free', 'packages/relay-link/src/relay-link.ts'],
    ],
  },
  {
    title: 'a bot host file imports @parley/engine',
    write: { 'packages/bot/src/host/injected.ts': "export { ConversationEngine } from '@parley/engine';\n" },
    cruise: ['packages/bot/src'],
    expect: [
      ['bot-host-allowed-imports', 'packages/bot/src/host/injected.ts'],
      ['bot-host-closure-key-free', 'packages/bot/src/host/injected.ts'],
    ],
  },
  {
    title: 'a bot host file imports an engine type (type-only imports count)',
    write: { 'packages/bot/src/host/injected.ts': "import type { ConversationEngine } from '@parley/engine';\nexport type E = ConversationEngine;\n" },
    cruise: ['packages/bot/src'],
    expect: [
      ['bot-host-allowed-imports', 'packages/bot/src/host/injected.ts'],
      ['bot-host-closure-key-free', 'packages/bot/src/host/injected.ts'],
    ],
  },
  {
    title: "the bot host reaches protocol's account through a shared module and the @parley/protocol root",
    append: { 'packages/bot/src/measurement.ts': "\nexport { Account } from '@parley/protocol';\n" },
    cruise: ['packages/bot/src'],
    expect: [['bot-host-closure-key-free', 'packages/bot/src/host/bot.ts']],
  },
  {
    title: 'the bot host imports enclave code, and the enclave imports host code',
    write: {
      'packages/bot/src/host/injected.ts': "export { deriveSealingKey } from '../enclave/seal.js';\n",
      'packages/bot/src/enclave/injected.ts': "export { SealedBlobStore } from '../host/blob-store.js';\n",
    },
    cruise: ['packages/bot/src'],
    expect: [
      ['bot-host-not-enclave', 'packages/bot/src/host/injected.ts'],
      ['bot-host-allowed-imports', 'packages/bot/src/host/injected.ts'],
      ['bot-host-closure-key-free', 'packages/bot/src/host/injected.ts'],
      ['bot-enclave-not-host', 'packages/bot/src/enclave/injected.ts'],
    ],
  },
  {
    title: 'a shared bot module imports the enclave; the RPC imports a bot module; attestation imports node:fs',
    write: { 'packages/bot/src/injected.ts': "export { deriveSealingKey } from './enclave/seal.js';\n" },
    append: {
      'packages/bot/src/rpc/validate.ts': "\nexport { measurementHex } from '../attestation.js';\n",
      'packages/bot/src/attestation.ts': "\nexport { readFileSync } from 'node:fs';\n",
    },
    cruise: ['packages/bot/src'],
    expect: [
      ['bot-shared-not-enclave', 'packages/bot/src/injected.ts'],
      ['bot-rpc-standalone', 'packages/bot/src/rpc/validate.ts'],
      ['bot-attestation-only-protocol-attestation', 'packages/bot/src/attestation.ts'],
    ],
  },
  {
    title: 'the bot enclave imports @parley/relay-link',
    write: { 'packages/bot/src/enclave/injected.ts': "export { RelayLink } from '@parley/relay-link';\n" },
    cruise: ['packages/bot/src'],
    expect: [['bot-enclave-allowed-packages', 'packages/bot/src/enclave/injected.ts']],
  },
  {
    title: "the bot's handler worker reaches the enclave's engine and the protocol root",
    append: { 'packages/bot/src/enclave/handler-worker.ts': "\nexport { openEngine } from './engine.js';\nexport { Account } from '@parley/protocol';\n" },
    cruise: ['packages/bot/src'],
    expect: [['bot-handler-worker-key-free', 'packages/bot/src/enclave/handler-worker.ts']],
  },
  {
    title: 'the engine imports node:fs',
    write: { 'packages/engine/src/injected.ts': "export { readFileSync } from 'node:fs';\n" },
    cruise: ['packages/engine/src'],
    expect: [['engine-only-protocol', 'packages/engine/src/injected.ts']],
  },
  {
    title: 'a client core file statically imports ./node/file-store.js and node:fs (dynamic imports stay allowed)',
    write: {
      'packages/client/src/injected.ts': "export { FileStore } from './node/file-store.js';\nexport { readFileSync } from 'node:fs';\n",
      'packages/client/src/injected-dynamic.ts':
        "export const fileStore = () => import('./node/file-store.js');\nexport const fs = () => import('node:fs');\n",
    },
    clean: ['packages/client/src/injected-dynamic.ts'],
    cruise: ['packages/client/src'],
    expect: [
      ['client-browser-safe-no-static-node-dir', 'packages/client/src/injected.ts'],
      ['client-browser-safe-no-node-builtins', 'packages/client/src/injected.ts'],
    ],
  },
  {
    title: 'the client imports @parley/relay (a dev dependency: it resolves)',
    write: { 'packages/client/src/injected.ts': "export { createRelay } from '@parley/relay';\n" },
    cruise: ['packages/client/src'],
    expect: [['client-allowed-packages', 'packages/client/src/injected.ts']],
  },
  {
    title: "a client file imports protocol's source by relative path",
    write: { 'packages/client/src/injected.ts': "export { Account } from '../../protocol/src/account.js';\n" },
    cruise: ['packages/client/src'],
    expect: [['no-cross-package-relative', 'packages/client/src/injected.ts']],
  },
  {
    title: 'files outside protocol/src/crypto import @noble/curves (resolved from protocol, bare from engine)',
    write: {
      'packages/protocol/src/injected.ts': "export { ed25519 } from '@noble/curves/ed25519.js';\n",
      'packages/engine/src/injected.ts': "export { ed25519 } from '@noble/curves/ed25519.js';\n",
    },
    cruise: ['packages/protocol/src', 'packages/engine/src'],
    expect: [
      ['crypto-libs-only-in-protocol-crypto', 'packages/protocol/src/injected.ts'],
      ['protocol-pure', 'packages/protocol/src/injected.ts'],
      ['crypto-libs-only-in-protocol-crypto', 'packages/engine/src/injected.ts'],
      ['engine-only-protocol', 'packages/engine/src/injected.ts'],
      ['no-unresolvable-in-src', 'packages/engine/src/injected.ts'],
    ],
  },
  {
    title: 'protocol outside src/crypto imports node:crypto; src/crypto imports node:fs',
    write: {
      'packages/protocol/src/injected.ts': "export { randomBytes } from 'node:crypto';\n",
      'packages/protocol/src/crypto/injected.ts': "export { readFileSync } from 'node:fs';\n",
    },
    cruise: ['packages/protocol/src'],
    expect: [
      ['protocol-pure', 'packages/protocol/src/injected.ts'],
      ['protocol-crypto-only-crypto-libs', 'packages/protocol/src/crypto/injected.ts'],
    ],
  },
  {
    title: 'relay-link imports the @parley/protocol root',
    write: { 'packages/relay-link/src/injected.ts': "export { Account } from '@parley/protocol';\n" },
    cruise: ['packages/relay-link/src'],
    expect: [
      ['relay-link-allowed-imports', 'packages/relay-link/src/injected.ts'],
      ['relay-link-closure-key-free', 'packages/relay-link/src/injected.ts'],
    ],
  },
];

for (const c of cases) {
  test(`forbidden: ${c.title}`, async () => {
    const tree = copyTree();
    for (const [file, text] of Object.entries(c.write ?? {})) writeFileSync(join(tree, file), text);
    for (const [file, text] of Object.entries(c.append ?? {})) appendFileSync(join(tree, file), text);
    const result = await cruiseTree(tree, c.cruise);
    const hits = result.summary.violations;
    for (const [rule, from] of c.expect) {
      assert.ok(
        hits.some((v) => v.rule.name === rule && v.from === from),
        `expected ${rule} from ${from}; got:\n  ${ruleHits(result).join('\n  ') || '(no violations)'}`,
      );
    }
    for (const file of c.clean ?? []) {
      const deps = result.modules.find((m) => m.source === file)?.dependencies ?? [];
      assert.ok(deps.length > 0, `${file} was cruised, with its imports`);
      assert.deepEqual(hits.filter((v) => v.from === file).map((v) => v.rule.name), [], `${file} is allowed`);
    }
    // The injected imports trip exactly the expected rules, nothing else.
    const fired = [...new Set(hits.map((v) => v.rule.name))].sort();
    assert.deepEqual(fired, [...new Set(c.expect.map(([rule]) => rule))].sort(), ruleHits(result).join('\n'));
  });
}

test('every rule is proven to fire by at least one forbidden-import case', () => {
  const proven = new Set(cases.flatMap((c) => c.expect.map(([rule]) => rule)));
  assert.deepEqual(ruleNames.filter((r) => !proven.has(r)), []);
});
