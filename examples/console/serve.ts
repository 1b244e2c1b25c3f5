/**
 * The agent console, with everything it talks to, in one command:
 *
 *   node --import tsx examples/console/serve.ts [--port N] [--data-dir DIR] [--no-build]
 *   pnpm console
 *
 * - makes (in the data dir) an organisation key and an issuer key, and certifies the issuer
 *   with the org key for every staff role, 12 h at most (in production: `parley-org keygen` and
 *   `parley-org certify-issuer` on an offline machine, `parley-issuer keygen` on the issuer);
 * - starts the relay with the org key (`orgKey`), so it reads staff roles from the certificate a
 *   device presents at login;
 * - starts the issuer (`@parley/issuer`) with the console's origin as its public origin (the
 *   WebAuthn origin and the origin the device's proof names) and the relay as the place it
 *   publishes revocation lists;
 * - builds the console with Vite, the org key pinned in the bundle, and serves it on
 *   `http://localhost:<port>` (WebAuthn needs a domain: `localhost`, not `127.0.0.1`), forwarding
 *   `/v1/` to the issuer and `/socket.io/` to the relay, so the page talks to one origin;
 * - enrols one admin and prints the console URL and the admin's one-time invitation link.
 *
 * Demo-grade on purpose: the org key sits next to the relay in the data dir.
 */
import { mkdtempSync, rmSync, mkdirSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { initCrypto, toHex, fromHex, generateOrgKey, generateIssuerKey, signIssuerCertificate, STAFF_ROLES } from '@parley/protocol';
import { createRelay, SqliteStore, type Relay } from '@parley/relay';
import { buildPages } from '../web/lib/build.js';
import { startStaticServer, type StaticServer } from '../web/lib/static-server.js';
import { ObservedStore } from '../relay-observer/relay-observer.js';
import { issuerProxy } from './lib/issuer-proxy.js';
import { startIssuerService, type ConsoleIssuer } from './lib/issuer.js';
import { relayEventsRoute } from './lib/relay-events.js';
import type { CreateIssuerOptions } from '@parley/issuer';

const here = fileURLToPath(new URL('.', import.meta.url));
export const DIST_DIR = join(here, 'dist');
/** The longest staff certificate the demo issuer may sign (its policy). */
export const MAX_LIFETIME_MS = 12 * 3600 * 1000;

/**
 * CSP of the console: scripts from this origin only (libsodium needs `'wasm-unsafe-eval'`),
 * connections to this origin only (the issuer and the relay are forwarded).
 */
export const CSP: string =
  "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

export interface ConsoleOptions {
  /** Web port; 0 picks a free one. Default 0. */
  port?: number;
  /** Keys, relay and issuer databases. Default: a fresh temp dir, removed on close. */
  dataDir?: string;
  /** Build the pages (default true); `false` serves an existing `distDir`. */
  build?: boolean;
  /** Output folder of the build. Default `examples/console/dist`. */
  distDir?: string;
  /** Username and display name of the first admin (default `admin`, `Console Admin`). */
  admin?: { username: string; displayName: string };
  /** Extra issuer options (tests: a higher per-address rate limit, since everyone comes through this server). */
  issuer?: Partial<CreateIssuerOptions>;
}

export interface ConsoleDemo {
  /** The console's origin, `http://localhost:<port>`. */
  readonly url: string;
  readonly relay: Relay;
  readonly issuer: ConsoleIssuer;
  readonly web: StaticServer;
  /** Org public key (hex): pin it in customers' clients (`trust.orgKey`). */
  readonly orgKey: string;
  /** The first admin's one-time invitation link. */
  readonly adminInvitationLink: string;
  readonly distDir: string;
  /** A second origin serving the same pages and forwarding to the same issuer (tests: a look-alike site). */
  startMirror(): Promise<StaticServer>;
  close(): Promise<void>;
}

/**
 * The issuer's certificate from the org key: every staff role, certificates of
 * {@link MAX_LIFETIME_MS} at most, valid for a year (in production: `parley-org certify-issuer`).
 */
export function issuerCertificateFor(orgSeed: Uint8Array, issuerPublicKey: Uint8Array, name = 'console demo issuer'): Uint8Array {
  return signIssuerCertificate(orgSeed, {
    issuerKey: issuerPublicKey,
    name,
    policy: { roles: STAFF_ROLES, maxLifetimeMs: MAX_LIFETIME_MS },
    expiresAt: Date.now() + 365 * 24 * 3600 * 1000,
  });
}

/** Builds the console into `outDir` with `orgKey` (hex) pinned in the bundle. */
export async function buildConsole(outDir: string, orgKey: string): Promise<void> {
  await buildPages({ root: here, input: { index: join(here, 'index.html') }, outDir, define: { __PARLEY_ORG_KEY__: JSON.stringify(orgKey) }, backend: 'sodium' });
}

function keysIn(dataDir: string): { org: { seed: Uint8Array; publicKey: Uint8Array }; issuer: { seed: Uint8Array; publicKey: Uint8Array } } {
  const file = join(dataDir, 'demo-keys.json');
  if (existsSync(file)) {
    const j = JSON.parse(readFileSync(file, 'utf8')) as Record<string, string>;
    return { org: { seed: fromHex(j.orgSeed!), publicKey: fromHex(j.orgKey!) }, issuer: { seed: fromHex(j.issuerSeed!), publicKey: fromHex(j.issuerKey!) } };
  }
  const org = generateOrgKey();
  const issuer = generateIssuerKey();
  writeFileSync(file, JSON.stringify({ orgSeed: toHex(org.seed), orgKey: toHex(org.publicKey), issuerSeed: toHex(issuer.seed), issuerKey: toHex(issuer.publicKey) }), { mode: 0o600 });
  return { org, issuer };
}

export async function startConsole(options: ConsoleOptions = {}): Promise<ConsoleDemo> {
  await initCrypto();
  const tempData = options.dataDir === undefined;
  const dataDir = options.dataDir ? resolve(options.dataDir) : mkdtempSync(join(tmpdir(), 'parley-console-'));
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const distDir = options.distDir ?? DIST_DIR;
  const { org, issuer: issuerKey } = keysIn(dataDir);
  const issuerCertificate = issuerCertificateFor(org.seed, issuerKey.publicKey);
  if (options.build !== false) await buildConsole(distDir, toHex(org.publicKey));

  let issuerPort: number | undefined;
  // What the relay holds, for the console's "what the relay sees" panel (`/api/relay-events`).
  const store = new ObservedStore(new SqliteStore(join(dataDir, 'relay.db')));
  const serve = (port: number): Promise<StaticServer> =>
    startStaticServer({
      dir: distDir,
      port,
      routes: [issuerProxy(() => issuerPort), relayEventsRoute(store)],
      proxy: { prefix: '/socket.io/' },
      headers: { 'referrer-policy': 'no-referrer' },
      pageHeaders: { '/index.html': { 'content-security-policy': CSP } },
    });
  const web = await serve(options.port ?? 0);
  const url = `http://localhost:${web.port}`;
  let relay: Relay | undefined;
  let issuer: ConsoleIssuer | undefined;
  const mirrors: StaticServer[] = [];
  try {
    relay = await createRelay({ store, origin: url, orgKey: toHex(org.publicKey), logLevel: 'warn' });
    web.setProxyPort(relay.port);
    issuer = await startIssuerService({
      dataDir,
      issuerSeed: issuerKey.seed,
      issuerPublicKey: issuerKey.publicKey,
      certificate: issuerCertificate,
      origin: url,
      relayUrl: relay.url,
      ...(options.issuer ? { options: options.issuer } : {}),
    });
    issuerPort = issuer.port;
  } catch (e) {
    await issuer?.close().catch(() => undefined);
    await relay?.close().catch(() => undefined);
    await web.close();
    if (tempData) rmSync(dataDir, { recursive: true, force: true });
    throw e;
  }
  const admin = options.admin ?? { username: 'admin', displayName: 'Console Admin' };
  const invitation = await issuer.addStaff({ ...admin, roles: ['admin', 'agent'] });

  let closing: Promise<void> | undefined;
  const startedRelay = relay;
  const startedIssuer = issuer;
  return {
    url,
    relay: startedRelay,
    issuer: startedIssuer,
    web,
    orgKey: toHex(org.publicKey),
    adminInvitationLink: `${url}/#/enrol/${encodeURIComponent(invitation)}`,
    distDir,
    async startMirror() {
      const mirror = await serve(0);
      mirror.setProxyPort(startedRelay.port);
      mirrors.push(mirror);
      return mirror;
    },
    close() {
      closing ??= (async () => {
        for (const m of mirrors) await m.close();
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

/**
 * Serves the console in front of a relay and an issuer already running on this machine (the
 * README walkthrough: `parley-relay serve` and `parley-issuer serve` started by hand).
 */
export async function serveConsoleFor(o: { relayUrl: string; issuerUrl: string; orgKey: string; port?: number; distDir?: string; build?: boolean }): Promise<StaticServer> {
  const port = (u: string, what: string): number => {
    const url = new URL(u);
    if (!['127.0.0.1', 'localhost'].includes(url.hostname)) throw new Error(`${what} must run on this machine (127.0.0.1 or localhost): ${u}`);
    return Number(url.port || (url.protocol === 'https:' ? 443 : 80));
  };
  const relayPort = port(o.relayUrl, '--relay');
  const issuerPort = port(o.issuerUrl, '--issuer');
  const distDir = o.distDir ?? DIST_DIR;
  if (o.build !== false) await buildConsole(distDir, toHex(fromHex(o.orgKey)));
  return startStaticServer({
    dir: distDir,
    port: o.port ?? 0,
    routes: [issuerProxy(() => issuerPort)],
    proxy: { prefix: '/socket.io/', port: relayPort },
    headers: { 'referrer-policy': 'no-referrer' },
    pageHeaders: { '/index.html': { 'content-security-policy': CSP } },
  });
}

interface Args {
  port: number;
  dataDir?: string;
  build: boolean;
  relay?: string;
  issuer?: string;
  orgKey?: string;
}

function parseArgs(argv: string[]): Args {
  const out: Args = { port: 5190, build: true };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--no-build') out.build = false;
    else if (a === '--relay') out.relay = argv[++i];
    else if (a === '--issuer') out.issuer = argv[++i];
    else if (a === '--org-key') out.orgKey = argv[++i];
    else if (a === '--port') out.port = Number(argv[++i]);
    else if (a === '--data-dir') out.dataDir = argv[++i];
    else if (a === '--help' || a === '-h') {
      console.log('usage: node --import tsx examples/console/serve.ts [--port N] [--data-dir DIR] [--no-build]');
      console.log('       node --import tsx examples/console/serve.ts --relay URL --issuer URL --org-key HEX [--port N] [--no-build]');
      process.exit(0);
    } else {
      console.error(`unknown argument: ${a}`);
      process.exit(2);
    }
  }
  if (!Number.isInteger(out.port) || out.port < 0 || out.port > 65535) {
    console.error('--port must be 0..65535');
    process.exit(2);
  }
  const attach = [out.relay, out.issuer, out.orgKey].filter((x) => x !== undefined).length;
  if (attach !== 0 && attach !== 3) {
    console.error('--relay, --issuer and --org-key go together');
    process.exit(2);
  }
  return out;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (args.relay && args.issuer && args.orgKey) {
    await initCrypto();
    const web = await serveConsoleFor({ relayUrl: args.relay, issuerUrl: args.issuer, orgKey: args.orgKey, port: args.port, build: args.build });
    console.log(`  Agent console:      http://localhost:${web.port}/  (issuer ${args.issuer}, relay ${args.relay})`);
    console.log('Open the invitation link with this origin: http://localhost:' + web.port + '/#/enrol/<invitation>. Press Ctrl-C to stop.');
    const stop = (): void => void web.close().then(() => process.exit(0));
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
    return;
  }
  console.log(args.build ? 'Building the console with Vite and starting relay + issuer…' : 'Starting relay + issuer…');
  const demo = await startConsole({ port: args.port, ...(args.dataDir ? { dataDir: args.dataDir } : {}), build: args.build });
  console.log('');
  console.log(`  Agent console:      ${demo.url}/`);
  console.log(`  Admin invitation:   ${demo.adminInvitationLink}`);
  console.log(`  Relay:              ${demo.relay.url} (org key ${demo.orgKey})`);
  console.log('');
  console.log('Open the invitation link, set a password and a passkey, then sign in as "admin".');
  console.log('Press Ctrl-C to stop.');
  let stopping = false;
  const onSignal = (): void => {
    if (stopping) process.exit(130);
    stopping = true;
    console.log('\nstopping…');
    void demo.close().then(() => process.exit(0));
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
