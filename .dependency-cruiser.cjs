// @ts-check
/**
 * The package trust map, enforced on the import graph (docs/architecture.md, "Packaging: an SDK
 * people can install": "The package graph follows the trust map"). Run by
 * test/dependency-rules.test.ts in the test command (`node scripts/test.mjs`), or by hand:
 *
 *   npx depcruise packages --config .dependency-cruiser.cjs --output-type err
 *
 * Module paths are relative to the repo root. `@parley/*` imports resolve through the workspace
 * symlinks and each package's "exports" map to `packages/<dir>/src/*.ts` (see `options`), so a
 * subpath import such as `@parley/protocol/verify` is the module `packages/protocol/src/verify.ts`.
 * An `@parley/*` import that does not resolve (the importing package does not declare it) stays a
 * bare `@parley/...` name: the allow-lists below match those too, and `no-unresolvable-in-src`
 * fails on them, so an undeclared import cannot slip past a rule by not resolving.
 *
 * Type-only imports count (`tsPreCompilationDeps: true`): a type is part of a package's public
 * contract, and `import type` from the wrong side today is the value import of tomorrow. Dynamic
 * `import()` counts too, except where a rule says otherwise (the client's Node-only code).
 */

/** Workspace code: a resolved `packages/...` module or an unresolved `@parley/...` name. */
const WORKSPACE = '^(packages/|@parley/)';
/** Protocol files that hold private keys or session state (never reachable from key-free code). */
const KEY_FILES = '^packages/protocol/src/(account|session|ratchet|x3dh|identity|pickle)[.]ts$';
const KEY_FILES_AND_FINGERPRINT = '^packages/protocol/src/(account|session|ratchet|x3dh|identity|pickle|fingerprint)[.]ts$';
/** The key-free views of the protocol: `@parley/protocol/verify`, `/wire`, `/errors`. */
const PROTOCOL_VERIFY_WIRE_ERRORS = '^packages/protocol/src/(verify[.]ts|errors[.]ts|wire/index[.]ts)$';
/** Crypto libraries, resolved (under node_modules, pnpm's .pnpm store included) or by bare name. */
const CRYPTO_LIBS = '(^|/node_modules/)(libsodium-wrappers(-sumo)?|@noble/[^/]+)(/|$)';

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    // ---- every package -------------------------------------------------------------------
    {
      name: 'no-cross-package-relative',
      comment:
        'Packaging: each package is installed on its own, so code reaches another package only through ' +
        'its name and "exports" map (which is what the trust rules below look at), never by a relative ' +
        'path into its src/.',
      severity: 'error',
      from: { path: '^packages/([^/]+)/src/' },
      to: { dependencyTypes: ['local'], path: '^packages/', pathNot: '^packages/$1/' },
    },
    {
      name: 'crypto-libs-only-in-protocol-crypto',
      comment:
        'Packaging / Protocol "Crypto providers": the modules under packages/protocol/src/crypto/ are the ' +
        'only importers of crypto libraries (libsodium-wrappers*, @noble/*); everything else goes through ' +
        'the provider interface.',
      severity: 'error',
      from: { path: '^packages/[^/]+/src/', pathNot: '^packages/protocol/src/crypto/' },
      to: { path: CRYPTO_LIBS },
    },
    {
      name: 'no-unresolvable-in-src',
      comment:
        'Packaging: every import in a package src/ resolves from that package (a declared dependency), so ' +
        'the trust rules see the real target and an undeclared @parley/* import cannot hide as a bare name.',
      severity: 'error',
      from: { path: '^packages/[^/]+/src/' },
      to: { couldNotResolve: true },
    },

    // ---- @parley/protocol: shared, pure ---------------------------------------------------
    {
      name: 'protocol-pure',
      comment:
        'Packaging table, @parley/protocol "may import: crypto libraries (only in src/crypto/)": no I/O, ' +
        'no transport, no other workspace package; outside src/crypto/ only its own files.',
      severity: 'error',
      from: { path: '^packages/protocol/src/', pathNot: '^packages/protocol/src/crypto/' },
      to: { pathNot: '^packages/protocol/src/' },
    },
    {
      name: 'protocol-crypto-only-crypto-libs',
      comment:
        'Packaging table, @parley/protocol: src/crypto/ may add the crypto libraries and node:crypto (the ' +
        'Node backend) and nothing else: no fs, no sockets, no storage.',
      severity: 'error',
      from: { path: '^packages/protocol/src/crypto/' },
      to: { pathNot: ['^packages/protocol/src/', CRYPTO_LIBS, '^(node:)?crypto$'] },
    },
    {
      name: 'protocol-views-key-free',
      comment:
        'Packaging: the subpaths @parley/protocol/verify, /wire, /attestation and /errors are the key-free ' +
        'views that the relay, the relay link and the bot host import; nothing with a private key, session ' +
        'state or safety numbers is reachable from them.',
      severity: 'error',
      from: { path: '^packages/protocol/src/(verify[.]ts|errors[.]ts|attestation[.]ts|wire/)' },
      to: { path: KEY_FILES_AND_FINGERPRINT, reachable: true },
    },

    // ---- @parley/engine: key holders ------------------------------------------------------
    {
      name: 'engine-only-protocol',
      comment:
        'Packaging table, @parley/engine "may import: protocol": the engine runs on devices (browser and ' +
        'Node) and in the bot enclave, so it is transport- and platform-agnostic: no node:, no socket.io, no ' +
        'fs, no other package.',
      severity: 'error',
      from: { path: '^packages/engine/src/' },
      to: { pathNot: '^packages/(engine|protocol)/src/' },
    },

    // ---- @parley/relay-link: key-free relay client ----------------------------------------
    {
      name: 'relay-link-allowed-imports',
      comment:
        'Packaging table, @parley/relay-link "may import: protocol\'s wire and verify subpaths only" (and ' +
        '/errors), plus socket.io-client/socket.io-parser and valibot (checks what the relay answers): the ' +
        'relay client is key-free and runs in browsers.',
      severity: 'error',
      from: { path: '^packages/relay-link/src/' },
      to: {
        pathNot: [
          '^packages/relay-link/src/',
          PROTOCOL_VERIFY_WIRE_ERRORS,
          '(^|/node_modules/)socket[.]io-(client|parser)(/|$)',
          '(^|/node_modules/)valibot(/|$)',
        ],
      },
    },
    {
      name: 'relay-link-closure-key-free',
      comment:
        'Packaging: the relay link is shared by devices and the key-free bot host, so nothing with a ' +
        'private key, session state or safety numbers is in its import closure.',
      severity: 'error',
      from: { path: '^packages/relay-link/src/' },
      to: { path: KEY_FILES_AND_FINGERPRINT, reachable: true },
    },

    // ---- @parley/client: devices ----------------------------------------------------------
    {
      name: 'client-allowed-packages',
      comment:
        'Packaging table, @parley/client "may import: engine, protocol, relay-link": a device never links ' +
        'the relay server or the bot SDK.',
      severity: 'error',
      from: { path: '^packages/client/src/' },
      to: { path: WORKSPACE, pathNot: '^packages/(client|engine|protocol|relay-link)/src/' },
    },
    {
      name: 'client-browser-safe-no-node-builtins',
      comment:
        'Packaging: @parley/client ships to browsers (browser entry, Vite bundle), so files outside ' +
        'src/node/ and src/cli/ import no node: module statically; Node-only code is reached by dynamic ' +
        'import() behind a Node check.',
      severity: 'error',
      from: { path: '^packages/client/src/', pathNot: '^packages/client/src/(node|cli)/' },
      to: { dependencyTypes: ['core'], dependencyTypesNot: ['dynamic-import'] },
    },
    {
      name: 'client-browser-safe-no-static-node-dir',
      comment:
        'Packaging: the FileStore and other Node-only code in client src/node/ is reached from the rest of ' +
        'the client by dynamic import() only, so browser bundles never pull in node:fs.',
      severity: 'error',
      from: { path: '^packages/client/src/', pathNot: '^packages/client/src/(node|cli)/' },
      to: { path: '^packages/client/src/node/', dependencyTypesNot: ['dynamic-import'] },
    },

    // ---- @parley/bot: key-free host + enclave ---------------------------------------------
    {
      name: 'bot-host-allowed-imports',
      comment:
        'Packaging table, @parley/bot host "may import: relay-link, protocol\'s wire and verify" (and ' +
        '/errors, /attestation), plus the host\'s own files, the RPC and the shared measurement, ' +
        'attestation and handler-api modules: the host is key-free.',
      severity: 'error',
      from: { path: '^packages/bot/src/host/' },
      to: {
        path: WORKSPACE,
        pathNot: [
          '^packages/bot/src/(host/|rpc/|measurement[.]ts$|attestation[.]ts$|handler-api[.]ts$)',
          '^packages/relay-link/src/index[.]ts$',
          PROTOCOL_VERIFY_WIRE_ERRORS,
          '^packages/protocol/src/attestation[.]ts$',
        ],
      },
    },
    {
      name: 'bot-host-closure-key-free',
      comment:
        'Packaging: the bot host only moves ciphertext and sealed blobs, so its whole import closure (own ' +
        'files, shared modules, relay-link, protocol views) reaches no @parley/engine module, no enclave ' +
        'file and no protocol file with private keys or session state.',
      severity: 'error',
      from: { path: '^packages/bot/src/host/' },
      to: { path: ['^packages/engine/', '^packages/bot/src/enclave/', KEY_FILES], reachable: true },
    },
    {
      name: 'bot-host-not-enclave',
      comment:
        'Packaging: "any import between the bot\'s host and enclave trees" fails. The host starts the ' +
        'worker from a new URL(...) string, which is not an import.',
      severity: 'error',
      from: { path: '^packages/bot/src/host/' },
      to: { path: '^packages/bot/src/enclave/' },
    },
    {
      name: 'bot-enclave-not-host',
      comment: 'Packaging: "any import between the bot\'s host and enclave trees" fails, in this direction too.',
      severity: 'error',
      from: { path: '^packages/bot/src/enclave/' },
      to: { path: '^packages/bot/src/host/' },
    },
    {
      name: 'bot-enclave-allowed-packages',
      comment:
        'Packaging table, @parley/bot enclave "may import: engine, protocol": the enclave talks to the ' +
        'outside world only through the host, over the RPC.',
      severity: 'error',
      from: { path: '^packages/bot/src/enclave/' },
      to: { path: WORKSPACE, pathNot: '^packages/(bot|engine|protocol)/src/' },
    },
    {
      name: 'bot-handler-worker-key-free',
      comment:
        'Issue 10, finding 10: the developer\'s handler runs in the handler worker, a separate isolate that ' +
        'holds no key. Its import closure (what is loaded there before the handler) reaches no @parley/engine ' +
        'module, no protocol file with private keys, session state or safety numbers, and no enclave file but ' +
        'its own message types: the handler has nothing of the enclave\'s to wrap or patch.',
      severity: 'error',
      from: { path: '^packages/bot/src/enclave/handler-worker[.]ts$' },
      to: {
        path: ['^packages/engine/', KEY_FILES_AND_FINGERPRINT, '^packages/bot/src/enclave/'],
        pathNot: '^packages/bot/src/enclave/handler-(worker|protocol|sandbox|egress-api|state)[.]ts$',
        reachable: true,
      },
    },
    {
      name: 'bot-shared-not-enclave',
      comment:
        'Packaging: the shared bot modules (index, attestation, measurement, handler-api, ...) are loaded ' +
        'by the host, so they import no enclave code either.',
      severity: 'error',
      from: { path: '^packages/bot/src/[^/]+$' },
      to: { path: '^packages/bot/src/enclave/' },
    },
    {
      name: 'bot-rpc-standalone',
      comment:
        'Packaging: the RPC between host and enclave is imported by both sides, so it imports no other bot ' +
        'file (it would drag one side into the other).',
      severity: 'error',
      from: { path: '^packages/bot/src/rpc/' },
      to: { path: '^packages/bot/src/', pathNot: '^packages/bot/src/rpc/' },
    },
    {
      name: 'bot-attestation-only-protocol-attestation',
      comment:
        'Packaging: @parley/bot/attestation is imported alone by browser widgets, so it imports nothing ' +
        'Node-only: it re-exports the pure @parley/protocol/attestation and nothing else.',
      severity: 'error',
      from: { path: '^packages/bot/src/attestation[.]ts$' },
      to: { pathNot: '^packages/protocol/src/attestation[.]ts$' },
    },

    // ---- @parley/relay: server ------------------------------------------------------------
    {
      name: 'relay-only-key-free-protocol',
      comment:
        'Packaging table, @parley/relay "may import: protocol\'s wire and verify subpaths only" (and ' +
        '/errors): never engine, client, bot or relay-link.',
      severity: 'error',
      from: { path: '^packages/relay/src/' },
      to: { path: WORKSPACE, pathNot: ['^packages/relay/src/', PROTOCOL_VERIFY_WIRE_ERRORS] },
    },
    {
      name: 'relay-closure-key-free',
      comment:
        'Packaging / threat model: the relay is not trusted with keys, so nothing with a private key, ' +
        'session state or safety numbers is in its import closure.',
      severity: 'error',
      from: { path: '^packages/relay/src/' },
      to: { path: KEY_FILES_AND_FINGERPRINT, reachable: true },
    },

    // ---- @parley/issuer: staff identity service ------------------------------------------------
    {
      name: 'issuer-allowed-packages',
      comment:
        'Issue 12: the issuer holds its own signing key and seals records with the engine\'s one sealing ' +
        'format; it imports @parley/protocol and @parley/engine (sealRecord/openRecord) only: never the ' +
        'client, the bot, the relay or the relay link.',
      severity: 'error',
      from: { path: '^packages/issuer/src/' },
      to: { path: WORKSPACE, pathNot: '^packages/(issuer|protocol|engine)/src/' },
    },
  ],
  options: {
    // Build output is not the trust map (and may be stale); `npx depcruise packages` also reads the
    // packages' tests, bins and examples, which no rule constrains (every rule starts in a src/).
    exclude: { path: '^packages/[^/]+/dist/' },
    // Third-party code is a leaf. The workspace packages are not: pnpm links them into each
    // package's node_modules, and preserveSymlinks: false turns those links into packages/<dir>/...
    doNotFollow: { path: 'node_modules' },
    preserveSymlinks: false,
    // Resolve each import from the importing package's own node_modules (its declared dependencies).
    combinedDependencies: false,
    tsConfig: { fileName: 'tsconfig.json' },
    // Type-only imports are dependencies too (see the header).
    tsPreCompilationDeps: true,
    enhancedResolveOptions: {
      // The workspace "exports" maps point at ./src/*.ts, so @parley/x/sub resolves to its source.
      exportsFields: ['exports'],
      conditionNames: ['import', 'default'],
      extensions: ['.ts', '.js', '.mjs'],
      mainFields: ['module', 'main'],
    },
  },
};
