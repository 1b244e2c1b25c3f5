/**
 * The demo: a relay, the support bot in its enclave, the staff issuer, the web widget and the
 * agent console, in one command.
 *
 *   node --import tsx examples/web/serve.ts [--port N] [--data-dir DIR] [--headless] [--no-build]
 *
 * - builds the widget with Vite (`dist/`: index.html with libsodium's WASM, csp-noble.html with
 *   the pure-JS backend and no libsodium at all) and the agent console (`dist/console/`);
 * - starts the relay (embedded SQLite store, the demo org key pinned so it reads staff roles
 *   from the credentials agents present) behind this server's own origin (`/socket.io/` is
 *   forwarded), so the pages keep a strict `connect-src 'self'` and the relay origin clients
 *   sign is the page's origin;
 * - starts the support bot (`bot/support-handler.ts`, run inside the enclave worker, with the
 *   org key pinned in its measurement so it can verify agents) and has it publish, through the
 *   relay beside its prekeys, an organisation certificate signed by a demo organisation key (its
 *   enclave attestation it publishes on its own);
 * - starts the staff issuer (`@parley/issuer`, certified by the same org key; `/v1/` is
 *   forwarded) and enrols one demo agent with a password and an authenticator app (TOTP), whose
 *   current code the console's demo banner shows;
 * - serves `dist/`, `/api/config` (untrusted routing info: the bot's device id, the "support
 *   address"; the widget's SDK checks whoever answers there against the pins compiled into the
 *   page), `/api/relay-events` (Server-Sent Events: what the relay stored and forwarded) and
 *   `/console/api/demo-agent` (the demo banner);
 * - everything on `http://localhost:<port>` (WebAuthn needs a domain; the widget at `/`, the
 *   console at `/console/`), prints both URLs and stops cleanly on Ctrl-C (SIGINT) or SIGTERM.
 *
 * `--headless` runs a scripted conversation through the real page in Debian's Chromium
 * (playwright-core), prints the transcript and exits 0 (or 1 on failure): the CI smoke test.
 *
 * Everything is demo-grade on purpose: the organisation key lives next to the relay and is
 * regenerated with the data dir; in production the org key is offline (`parley-org`), the
 * relay and the bot run on different hosts, and the widget's pins ship with the site.
 */
import { mkdtempSync, rmSync, mkdirSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { initCrypto, toHex, fromHex, generateIssuerKey } from '@parley/protocol';
import { createRelay, createApiKey, SqliteStore, type Relay, type RelayOptions } from '@parley/relay';
import { createBot, computeMeasurement, type Bot } from '@parley/bot';
import { generateOrgKey, getCrypto, signArchiveDisclosure, signOrgCertificate } from '@parley/protocol';
import { buildPages } from './lib/build.js';
import { ObservedStore } from '../relay-observer/relay-observer.js';
import { startStaticServer, type Route, type StaticServer } from './lib/static-server.js';
import { CSP as CONSOLE_CSP, buildConsole, issuerCertificateFor } from '../console/serve.js';
import { issuerProxy } from '../console/lib/issuer-proxy.js';
import { startIssuerService, type ConsoleIssuer } from '../console/lib/issuer.js';
import { relayEventsRoute } from '../console/lib/relay-events.js';
import { demoAgentIn, demoAgentRoute, type TotpStaff } from '../console/lib/demo-agent.js';

const here = fileURLToPath(new URL('.', import.meta.url));
export const HANDLER_PATH = join(here, 'bot', 'support-handler.ts');
export const DIST_DIR = join(here, 'dist');
/** The certified label of the support bot (the widget asks for this label). */
export const BOT_LABEL = 'support';
/** Org certificates issued by the demo last this long. */
const CERT_LIFETIME_MS = 30 * 24 * 3600 * 1000;

/**
 * CSP of the WASM page: scripts from this origin only, plus `'wasm-unsafe-eval'` so libsodium
 * can compile its WebAssembly (no `'unsafe-eval'`, no inline script).
 */
export const CSP_SODIUM =
  "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
/** CSP of the pure-JS page: the same without `'wasm-unsafe-eval'`, so WebAssembly cannot run. */
export const CSP_NOBLE = CSP_SODIUM.replace(" 'wasm-unsafe-eval'", '');

/** Options of {@link startDemo}. */
export interface DemoOptions {
  /** Web port; 0 picks a free one. Default 0. */
  port?: number;
  /** Relay database, bot state and org key. Default: a fresh temp dir, removed on close. */
  dataDir?: string;
  /** Build the pages (default true). `false` serves an existing `dist/`. */
  build?: boolean;
  /** Output folder of the build. Default `examples/web/dist`. */
  distDir?: string;
  /** Also build the pure-JS page `csp-noble.html` (default true; tests that do not open it skip a build). */
  noblePage?: boolean;
  /** Log level of the relay (default `warn`). */
  logLevel?: string;
  /** More relay options (tests: a pino `logger` that keeps its lines, `ticketUnclaimedMs`). */
  relay?: Partial<RelayOptions>;
  /** Extra issuer options (tests: a higher per-address rate limit, since everyone comes through this server). */
  issuer?: Parameters<typeof startIssuerService>[0]['options'];
  /**
   * Turn the compliance archive on for the support bot: the demo org signs an archive disclosure
   * (a fresh compliance key, this retention, openers `compliance`) that the bot publishes with its
   * prekeys, so customers' clients see it before the first message. The compliance key pair is
   * kept in `dataDir` (`compliance-key.json`, the `parley-compliance keygen` format), so
   * `parley-compliance open` can open the demo's archive. Off by default (`npx pnpm demo` turns it on).
   */
  archive?: { readonly retentionDays: number };
}

/** A running demo. */
export interface Demo {
  /** The widget's origin, `http://localhost:<port>` (the page is `${url}/`). */
  readonly url: string;
  /** The agent console, `${url}/console/`. */
  readonly consoleUrl: string;
  readonly relay: Relay;
  /** The staff issuer (reached by the console through `/v1/`). */
  readonly issuer: ConsoleIssuer;
  /** The demo agent, enrolled with a password and TOTP (its current code: `totpCode(agent.secret)`). */
  readonly agent: TotpStaff;
  /** Relay database, bot state, keys. */
  readonly dataDir: string;
  readonly bot: Bot;
  readonly store: ObservedStore;
  readonly web: StaticServer;
  readonly orgKey: string;
  readonly measurement: string;
  /** Stops the bot, the relay and the web server; removes a temp data dir. Idempotent. */
  close(): Promise<void>;
}

/** Loads or creates the demo organisation key (32-byte seed, hex) in `dataDir`. */
function orgKeyIn(dataDir: string): { seed: Uint8Array; publicKey: Uint8Array } {
  const file = join(dataDir, 'org-key.json');
  if (existsSync(file)) {
    const j = JSON.parse(readFileSync(file, 'utf8')) as { seed: string; publicKey: string };
    return { seed: Uint8Array.from(Buffer.from(j.seed, 'hex')), publicKey: Uint8Array.from(Buffer.from(j.publicKey, 'hex')) };
  }
  const org = generateOrgKey();
  writeFileSync(file, JSON.stringify({ seed: toHex(org.seed), publicKey: toHex(org.publicKey) }), { mode: 0o600 });
  return org;
}

/** The compliance key file of the demo's archive in `dataDir` (`parley-compliance keygen` format). */
export const COMPLIANCE_KEY_FILE = 'compliance-key.json';

/** Loads or creates the demo's compliance archive key pair; returns its public key. */
function complianceKeyIn(dataDir: string): Uint8Array {
  const file = join(dataDir, COMPLIANCE_KEY_FILE);
  if (existsSync(file)) return fromHex((JSON.parse(readFileSync(file, 'utf8')) as { publicKey: string }).publicKey);
  const kp = getCrypto().x25519Generate();
  writeFileSync(file, `${JSON.stringify({ format: 'parley-compliance-key', version: 1, privateKey: toHex(kp.privateKey), publicKey: toHex(kp.publicKey) })}\n`, { mode: 0o600 });
  kp.privateKey.fill(0);
  return kp.publicKey;
}

/** Loads or creates the demo issuer key in `dataDir` (certified by the org key at every start). */
function issuerKeyIn(dataDir: string): { seed: Uint8Array; publicKey: Uint8Array } {
  const file = join(dataDir, 'issuer-key.json');
  if (existsSync(file)) {
    const j = JSON.parse(readFileSync(file, 'utf8')) as { seed: string; publicKey: string };
    return { seed: fromHex(j.seed), publicKey: fromHex(j.publicKey) };
  }
  const key = generateIssuerKey();
  writeFileSync(file, JSON.stringify({ seed: toHex(key.seed), publicKey: toHex(key.publicKey) }), { mode: 0o600 });
  return key;
}

/** Starts relay, bot, issuer and web server (widget and console). */
export async function startDemo(options: DemoOptions = {}): Promise<Demo> {
  await initCrypto();
  const tempData = options.dataDir === undefined;
  const dataDir = options.dataDir ? resolve(options.dataDir) : mkdtempSync(join(tmpdir(), 'parley-demo-'));
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const distDir = options.distDir ?? DIST_DIR;
  const org = orgKeyIn(dataDir);
  const orgKey = toHex(org.publicKey);
  const issuerKey = issuerKeyIn(dataDir);
  // The bot pins the org key (to verify agents' credentials), so the key is part of what it measures.
  const measurement = (await computeMeasurement(HANDLER_PATH, { orgKey })).hex;

  if (options.build !== false) {
    // The pins ship inside the bundle, as a real site would ship them.
    const define = {
      __PARLEY_ORG_KEY__: JSON.stringify(orgKey),
      __PARLEY_MEASUREMENT__: JSON.stringify(measurement),
      __PARLEY_BOT_LABEL__: JSON.stringify(BOT_LABEL),
    };
    await buildPages({ root: here, input: { index: join(here, 'index.html') }, outDir: distDir, define, backend: 'sodium' });
    if (options.noblePage !== false) await buildPages({ root: here, input: { 'csp-noble': join(here, 'csp-noble.html') }, outDir: distDir, define, backend: 'noble', keepOutDir: true });
    await buildConsole(join(distDir, 'console'), orgKey);
  }

  const store = new ObservedStore(new SqliteStore(join(dataDir, 'relay.db')));
  let bot: Bot | undefined;
  let shuttingDown = false;
  // The bot's warnings on stderr, except the expected "relay disconnected" while shutting down,
  // and "no org certificate" at start: the demo certifies the enclave's identity right after.
  const botLogger = {
    info: () => undefined,
    warn: (obj: object, msg?: string) => {
      const startsUncertified = 'option' in obj && obj.option === 'certificate';
      if (!shuttingDown && !startsUncertified) process.stderr.write(`${JSON.stringify({ level: 'warn', ...obj, msg })}\n`);
    },
    error: (obj: object, msg?: string) => process.stderr.write(`${JSON.stringify({ level: 'error', ...obj, msg })}\n`),
  };
  let relay: Relay | undefined;
  // Routing info only: which device answers as "support". Nothing here is trusted: the widget's
  // ParleyClient refuses to send to a device without a certificate from the pinned org key and an
  // attestation of the pinned measurement, both fetched from the relay with the bot's prekeys.
  const config: Route = (_req, res, url) => {
    if (url.pathname !== '/api/config') return false;
    if (!bot) {
      res.writeHead(503, { 'content-type': 'application/json' }).end('{"error":"starting"}');
      return true;
    }
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(JSON.stringify({ botDeviceId: bot.deviceId }));
    return true;
  };

  let issuerPort: number | undefined;
  let agentRoute: Route = () => false;
  const web = await startStaticServer({
    dir: distDir,
    port: options.port ?? 0,
    routes: [config, relayEventsRoute(store), issuerProxy(() => issuerPort), (req, res, url) => agentRoute(req, res, url)],
    proxy: { prefix: '/socket.io/' },
    headers: { 'referrer-policy': 'no-referrer' },
    pageHeaders: {
      '/index.html': { 'content-security-policy': CSP_SODIUM },
      '/csp-noble.html': { 'content-security-policy': CSP_NOBLE },
      '/console/index.html': { 'content-security-policy': CONSOLE_CSP },
    },
  });
  // One origin for the widget, the console, the relay and the issuer; `localhost`, since
  // WebAuthn (agents' passkeys) needs a domain.
  const url = `http://localhost:${web.port}`;
  let issuer: ConsoleIssuer | undefined;
  let agent: TotpStaff;
  try {
    relay = await createRelay({
      store,
      origin: url,
      orgKey,
      logLevel: options.logLevel ?? 'warn',
      ...options.relay,
      // One demo origin: every tab and the bot come from 127.0.0.1.
      limits: { connectBurst: 200, connectsPerSecondPerAddress: 50, maxConnectionsPerAddress: 200, ...options.relay?.limits },
    });
    web.setProxyPort(relay.port);
    issuer = await startIssuerService({
      dataDir,
      issuerSeed: issuerKey.seed,
      issuerPublicKey: issuerKey.publicKey,
      certificate: issuerCertificateFor(org.seed, issuerKey.publicKey, 'demo issuer'),
      origin: url,
      relayUrl: relay.url,
      ...(options.issuer ? { options: options.issuer } : {}),
    });
    issuerPort = issuer.port;
    agent = await demoAgentIn(dataDir, issuer);
    agentRoute = demoAgentRoute(agent, '/console/api/demo-agent');
    const { key } = await createApiKey(store, 'demo support bot');
    const archiveDisclosure = options.archive
      ? signArchiveDisclosure(org.seed, { label: BOT_LABEL, archiveKey: complianceKeyIn(dataDir), retentionDays: options.archive.retentionDays, openers: ['compliance'], issuedAt: Date.now() })
      : undefined;
    const started = await createBot({ relayUrl: url, apiKey: key, handler: HANDLER_PATH, stateDir: join(dataDir, 'bot'), logger: botLogger, orgKey, ...(archiveDisclosure ? { archiveDisclosure } : {}) });
    try {
      // The org certifies the identity the enclave made (normally offline: `parley-org certify`);
      // the bot publishes the certificate with its prekeys, next to its own attestation.
      const { signingKey, dhKey } = started.identity;
      await started.setCertificate(signOrgCertificate(org.seed, { role: 'bot', label: BOT_LABEL, signingKey, dhKey, expiresAt: Date.now() + CERT_LIFETIME_MS }));
    } catch (e) {
      await started.close().catch(() => undefined);
      throw e;
    }
    bot = started;
  } catch (e) {
    await issuer?.close().catch(() => undefined);
    await relay?.close();
    await web.close();
    if (tempData) rmSync(dataDir, { recursive: true, force: true });
    throw e;
  }

  let closing: Promise<void> | undefined;
  const startedBot = bot;
  const startedRelay = relay;
  const startedIssuer = issuer;
  return {
    url,
    consoleUrl: `${url}/console/`,
    relay: startedRelay,
    issuer: startedIssuer,
    agent,
    dataDir,
    bot: startedBot,
    store,
    web,
    orgKey,
    measurement,
    close() {
      closing ??= (async () => {
        shuttingDown = true;
        await startedBot.close().catch(() => undefined);
        await web.close();
        await startedIssuer.close().catch(() => undefined);
        await startedRelay.close().catch(() => undefined);
        await store.close().catch(() => undefined);
        if (tempData) rmSync(dataDir, { recursive: true, force: true });
      })();
      return closing;
    },
  };
}

const USAGE = 'usage: node --import tsx examples/web/serve.ts [--port N] [--data-dir DIR] [--archive-days N (0: off; default 365)] [--headless] [--no-build]';

/** The demo's command line (node:util `parseArgs`; a bad flag or value exits 2 with the usage). */
function demoArgs(argv: string[]): { port: number; dataDir?: string; headless: boolean; build: boolean; archiveDays: number } {
  const fail = (message: string): never => {
    console.error(`${message}\n${USAGE}`);
    process.exit(2);
  };
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      options: {
        port: { type: 'string' },
        'data-dir': { type: 'string' },
        'archive-days': { type: 'string', default: '365' },
        headless: { type: 'boolean', default: false },
        'no-build': { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (e) {
    return fail(e instanceof Error ? e.message : String(e));
  }
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const port = Number(values.port ?? (values.headless ? 0 : 5180));
  if (!Number.isInteger(port) || port < 0 || port > 65535) fail('--port must be 0..65535');
  const archiveDays = Number(values['archive-days']);
  if (!Number.isInteger(archiveDays) || archiveDays < 0 || archiveDays > 3650) fail('--archive-days must be 0..3650 (0 turns the archive off)');
  return { port, ...(values['data-dir'] !== undefined ? { dataDir: values['data-dir'] } : {}), headless: values.headless, build: !values['no-build'], archiveDays };
}

async function main(): Promise<void> {
  // `pnpm demo -- --flag` passes the `--` on.
  const args = demoArgs(process.argv.slice(2).filter((a, i) => i > 0 || a !== '--'));
  console.log(args.build ? 'Building the widget and the agent console with Vite, starting relay + bot + issuer…' : 'Starting relay + bot + issuer…');
  const demo = await startDemo({
    port: args.port,
    ...(args.dataDir ? { dataDir: args.dataDir } : {}),
    build: args.build,
    ...(args.archiveDays > 0 ? { archive: { retentionDays: args.archiveDays } } : {}),
  });

  let stopping = false;
  const stop = async (code: number): Promise<void> => {
    if (stopping) return;
    stopping = true;
    await demo.close();
    process.exit(code);
  };

  if (args.headless) {
    const { runScriptedConversation } = await import('./headless.js');
    let code = 0;
    try {
      await runScriptedConversation(demo.url, { log: (line) => console.log(line) });
      console.log('headless demo: OK');
    } catch (e) {
      console.error(`headless demo failed: ${e instanceof Error ? e.message : String(e)}`);
      code = 1;
    }
    await stop(code);
    return;
  }

  console.log('');
  console.log(`  Customer widget:    ${demo.url}/`);
  console.log(`  Agent console:      ${demo.consoleUrl}`);
  console.log(`  Pure-JS + CSP page: ${demo.url}/csp-noble.html`);
  console.log(`  Demo agent:         username "${demo.agent.username}", password "${demo.agent.password}",`);
  console.log(`                      authenticator code: shown on the console's sign-in page (TOTP secret ${demo.agent.secret})`);
  console.log(`  Bot device:         ${demo.bot.deviceId}`);
  console.log(`  Bot measurement:    ${demo.measurement}`);
  console.log(`  Org key (pinned):   ${demo.orgKey}`);
  if (args.archiveDays > 0) {
    console.log(`  Compliance archive: on for the bot, ${args.archiveDays} days (the widget shows the disclosure; --archive-days 0 turns it off).`);
    console.log('                      Open a conversation as the compliance officer (the widget is told of the opening):');
    console.log(`                      node --import tsx packages/relay/src/compliance/bin.ts open --db ${join(demo.dataDir, 'relay.db')} \\`);
    console.log(`                        --key ${join(demo.dataDir, COMPLIANCE_KEY_FILE)} --audit ${join(demo.dataDir, 'compliance-audit.log')} \\`);
    console.log('                        --opener "Demo compliance" --reason "demo: a complaint review" --conversation <id from the widget\'s Export>');
  }
  console.log('');
  console.log('Open the widget and the console side by side: sign in as the demo agent, then type "agent"');
  console.log('(or press "Talk to a person") in the widget. Press Ctrl-C to stop.');
  const onSignal = (): void => {
    if (stopping) {
      console.log('\nforced exit');
      process.exit(130);
    }
    console.log('\nstopping…');
    void stop(0);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e: unknown) => {
    console.error(e instanceof Error ? (e.stack ?? e.message) : e);
    process.exit(1);
  });
}
