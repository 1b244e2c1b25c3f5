/**
 * `parley-relay` command line: `serve`, and `apikey create|revoke|list` on the same SQLite file
 * (or, with `--redis`, the same Redis).
 * Every `serve` flag has an environment variable; precedence is flag, then environment, then
 * default. Operator mistakes end with one line on stderr and exit code 1, never a stack trace.
 */
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { pino } from 'pino';
import { createApiKey } from './apikeys.js';
import { OperatorError, loadTls, startupMessage, type ListenFlags } from './cli-errors.js';
import { limitEnvName, parseArchiveRetentionDays, parseTicketUnclaimedMs, plainHttpWarning, resolveLimits } from './cli-options.js';
import { DEFAULT_LIMITS, type RelayLimits } from './options.js';
import { originWarnings } from './origin.js';
import { createRelay } from './relay.js';
import { SqliteStore } from './store/sqlite.js';
import { openRedisStore } from './cluster/redis-adapter.js';
import type { RelayStore } from './store/types.js';

const DEFAULT_DB = 'parley-relay.db';
/** The fixed default port (README "Operating the relay"). */
export const DEFAULT_PORT = 8080;
const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/** Ends the process with one line on stderr (a stack only with PARLEY_RELAY_DEBUG set). */
function fail(e: unknown, flags: ListenFlags = { port: DEFAULT_PORT }): never {
  process.stderr.write(`parley-relay: ${startupMessage(e, flags)}\n`);
  if (process.env['PARLEY_RELAY_DEBUG'] && e instanceof Error) process.stderr.write(`${e.stack ?? ''}\n`);
  process.exit(1);
}

/** `--redis` (and friends) as createRelay's `redis` option; undefined without `--redis`. */
function redisOption(o: { redis?: string; redisPrefix?: string; allowNonDurableRedis?: boolean }) {
  if (!o.redis) return undefined;
  return { url: o.redis, ...(o.redisPrefix ? { prefix: o.redisPrefix } : {}), allowNonDurable: o.allowNonDurableRedis === true };
}
const redisUrl = () => new Option('--redis <url>', 'scale-out: keep state in Redis and link relay nodes through it (instead of --db)').env('PARLEY_RELAY_REDIS');
const redisPrefix = () => new Option('--redis-prefix <prefix>', 'prefix of Redis keys and channels (default parley:)').env('PARLEY_RELAY_REDIS_PREFIX');
const allowNonDurable = () => new Option('--allow-non-durable-redis', 'start even if Redis is not appendonly yes + appendfsync always (acked messages can be lost)')
  .env('PARLEY_RELAY_ALLOW_NON_DURABLE_REDIS');
type CliStoreFlags = { db: string; create?: boolean; redis?: string; redisPrefix?: string; allowNonDurableRedis?: boolean };
/**
 * The store the apikey commands work on: Redis with --redis, else the SQLite file, which must
 * exist unless `--create` (a typo in --db must not make a new, empty database).
 */
async function cliStore(o: CliStoreFlags): Promise<RelayStore> {
  const r = redisOption(o);
  if (r) return openRedisStore(r);
  if (!o.create && !existsSync(o.db)) {
    throw new OperatorError(`no database at ${o.db}: give the relay's --db (or PARLEY_RELAY_DB), or add --create to start a new one`);
  }
  return new SqliteStore(o.db);
}

/** Writes the ready file atomically (a reader never sees half of it). */
function writeReadyFile(path: string, content: object): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(content)}\n`, { mode: 0o644 });
  renameSync(tmp, path);
}

const port = (flag: string) => (v: string): number => {
  const n = Number(v);
  if (v.trim() === '' || !Number.isInteger(n) || n < 0 || n > 65535) throw new OperatorError(`invalid ${flag} ${v}: expected 0..65535`);
  return n;
};

const limitsHelp = (Object.keys(DEFAULT_LIMITS) as (keyof RelayLimits)[])
  .map((name) => `  ${name.padEnd(34)} ${limitEnvName(name).padEnd(52)} ${DEFAULT_LIMITS[name]}`)
  .join('\n');

const program = new Command('parley-relay')
  .description('Parley relay: authenticated prekey directory and mailbox for end-to-end encrypted envelopes.')
  .version(VERSION, '-V, --version', 'print the version');

program
  .command('serve')
  .description('run the relay')
  .addOption(new Option('--host <host>', 'interface to listen on (0.0.0.0: every interface; then give --origin)').env('PARLEY_RELAY_HOST').default('127.0.0.1'))
  .addOption(new Option('--port <port>', 'port (0 = any free port; the ready line and --ready-file give it)').env('PARLEY_RELAY_PORT').default(String(DEFAULT_PORT)))
  .addOption(new Option('--db <path>', 'SQLite database file (its folder must exist; created with mode 0600)').env('PARLEY_RELAY_DB').default(DEFAULT_DB))
  .addOption(redisUrl())
  .addOption(redisPrefix())
  .addOption(allowNonDurable())
  .addOption(new Option('--origin <origin>', 'the URL clients dial, scheme://host[:port] (default: the listening URL); behind a proxy, the proxy\'s')
    .env('PARLEY_RELAY_ORIGIN'))
  .addOption(new Option('--tls-cert <file>', 'PEM certificate: serve HTTPS/WSS').env('PARLEY_RELAY_TLS_CERT'))
  .addOption(new Option('--tls-key <file>', 'PEM private key for --tls-cert').env('PARLEY_RELAY_TLS_KEY'))
  .addOption(new Option('--log-level <level>', 'pino level').env('PARLEY_RELAY_LOG_LEVEL').default('info')
    .choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']))
  .addOption(new Option('--limit <name=value>', 'override a relay limit, e.g. maxSocketsPerDevice=4 (repeatable; env: PARLEY_RELAY_<NAME>, ' +
    'or PARLEY_RELAY_LIMITS=name=value,…; names below)')
    .default([] as string[]).argParser((v: string, prev: string[]) => [...prev, v]))
  .addOption(new Option('--metrics-port <port>', 'serve /metrics on a separate admin listener on this port (the public one then has none)')
    .env('PARLEY_RELAY_METRICS_PORT'))
  .addOption(new Option('--metrics-host <host>', 'interface of the admin listener').env('PARLEY_RELAY_METRICS_HOST').default('127.0.0.1'))
  .addOption(new Option('--metrics-token <token>', 'require Authorization: Bearer <token> for /metrics (prefer the env variable: flags show in ps)')
    .env('PARLEY_RELAY_METRICS_TOKEN'))
  .addOption(new Option('--ready-file <path>', 'once listening, write {"url","origin","port","metricsUrl","pid"} as JSON there (removed on exit)')
    .env('PARLEY_RELAY_READY_FILE'))
  .addOption(new Option('--org-key <hex>', 'the org root public key (64 hex chars): read staff roles from login credentials, ' +
    'take revocation lists on /v1/revocations, enforce the role table (README "Roles")').env('PARLEY_RELAY_ORG_KEY'))
  .addOption(new Option('--customers-may-message-customers <yes|no>', 'may customer devices message each other? (default: no with --org-key, yes without)')
    .env('PARLEY_RELAY_CUSTOMERS_MAY_MESSAGE_CUSTOMERS').choices(['yes', 'no', 'true', 'false']))
  .addOption(new Option('--ticket-unclaimed-ms <ms>', 'a handoff ticket waiting this long unclaimed is reported to its customer and bot (default 120000)')
    .env('PARLEY_RELAY_TICKET_UNCLAIMED_MS'))
  .addOption(new Option('--archive-retention-days <days>', 'delete compliance archive refs whose newest entry is older than this, except refs under a legal hold (default: off)')
    .env('PARLEY_RELAY_ARCHIVE_RETENTION_DAYS'))
  .addHelpText('after', `\nLimits (--limit name=value, or the environment variable; flag > variable > PARLEY_RELAY_LIMITS > default):\n${limitsHelp}\n` +
    `\nOnce listening, stdout gets one line:  parley-relay listening on <url> (origin <origin>)\n`)
  .action(async (o: {
    host: string; port: string; db: string; redis?: string; redisPrefix?: string; allowNonDurableRedis?: boolean; origin?: string;
    tlsCert?: string; tlsKey?: string; logLevel: string; limit: string[]; metricsPort?: string; metricsHost: string; metricsToken?: string;
    readyFile?: string; orgKey?: string; customersMayMessageCustomers?: string; ticketUnclaimedMs?: string;
    archiveRetentionDays?: string;
  }) => {
    const flags = { port: port('--port')(o.port), ...(o.metricsPort === undefined ? {} : { metricsPort: port('--metrics-port')(o.metricsPort) }) };
    try {
      if (Boolean(o.tlsCert) !== Boolean(o.tlsKey)) throw new OperatorError('--tls-cert and --tls-key go together');
      const limits = resolveLimits(o.limit, process.env);
      if (o.orgKey !== undefined && !/^[0-9a-fA-F]{64}$/.test(o.orgKey.trim())) {
        throw new OperatorError(`invalid --org-key: expected the org root public key as 64 hex characters (parley-org keygen prints it)`);
      }
      const mayMessage = o.customersMayMessageCustomers === undefined ? undefined : ['yes', 'true'].includes(o.customersMayMessageCustomers);
      const ticketUnclaimedMs = o.ticketUnclaimedMs === undefined ? undefined : parseTicketUnclaimedMs(o.ticketUnclaimedMs);
      const archiveRetentionDays = o.archiveRetentionDays === undefined ? undefined : parseArchiveRetentionDays(o.archiveRetentionDays);
      const tls = o.tlsCert && o.tlsKey ? loadTls(o.tlsCert, o.tlsKey) : undefined;
      const logger = pino({ level: o.logLevel });
      const warn = (event: string, message: string) => {
        process.stderr.write(`${message}\n`);
        logger.warn({ event }, message);
      };
      if (tls && tls.validTo.getTime() < Date.now()) warn('tlsExpired', `WARNING: --tls-cert expired on ${tls.validTo.toISOString()}: clients will refuse it`);
      const plain = plainHttpWarning(o.host, Boolean(tls), o.origin);
      if (plain) warn('plainHttp', plain);
      const relay = await createRelay({
        host: o.host,
        port: flags.port,
        ...(redisOption(o) ? { redis: redisOption(o)! } : { store: { sqlite: o.db } }),
        logger,
        limits,
        ...(o.origin ? { origin: o.origin } : {}),
        ...(o.orgKey ? { orgKey: o.orgKey.trim() } : {}),
        ...(mayMessage === undefined ? {} : { customersMayMessageCustomers: mayMessage }),
        ...(ticketUnclaimedMs === undefined ? {} : { ticketUnclaimedMs }),
        ...(archiveRetentionDays === undefined ? {} : { archiveRetentionDays }),
        ...(tls ? { tls: { cert: tls.cert, key: tls.key } } : {}),
        ...(flags.metricsPort !== undefined || o.metricsToken !== undefined
          ? {
            metrics: {
              ...(flags.metricsPort === undefined ? {} : { port: flags.metricsPort, host: o.metricsHost }),
              ...(o.metricsToken === undefined ? {} : { token: o.metricsToken }),
            },
          }
          : {}),
      });
      // createRelay logged these too; the terminal gets them as well.
      for (const w of originWarnings(o.host, relay.origin, o.origin !== undefined, Boolean(tls))) process.stderr.write(`${w}\n`);
      if (o.readyFile) {
        writeReadyFile(o.readyFile, { url: relay.url, origin: relay.origin, port: relay.port, metricsUrl: relay.metricsUrl, pid: process.pid });
      }
      // The documented ready line (README "Operating the relay"): keep its format stable.
      process.stdout.write(`parley-relay listening on ${relay.url} (origin ${relay.origin})\n`);
      const stop = () => void relay.close().then(() => {
        if (o.readyFile) rmSync(o.readyFile, { force: true });
        process.exit(0);
      });
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    } catch (e) {
      fail(e, flags);
    }
  });

const apikey = program.command('apikey').description('manage bot API keys (stored hashed); works while the relay runs');
const dbOption = () => new Option('--db <path>', 'SQLite database file (must exist, unless --create)').env('PARLEY_RELAY_DB').default(DEFAULT_DB);
const createOption = () => new Option('--create', 'create the SQLite database if it does not exist');

apikey
  .command('create')
  .description('create a key; it is printed once and never stored')
  .addOption(dbOption())
  .addOption(createOption())
  .addOption(redisUrl())
  .addOption(redisPrefix())
  .addOption(allowNonDurable())
  .option('--label <label>', 'a note for humans', '')
  .action(async (o: CliStoreFlags & { label: string }) => {
    const store = await cliStore(o);
    const { id, key } = await createApiKey(store, o.label);
    await store.close();
    process.stdout.write(`id:  ${id}\nkey: ${key}\n(store the key now: the relay keeps only its hash)\n`);
  });

apikey
  .command('revoke')
  .description('revoke a key by id; a running relay disconnects bots using it (within apiKeyCheckIntervalMs)')
  .addOption(dbOption())
  .addOption(redisUrl())
  .addOption(redisPrefix())
  .addOption(allowNonDurable())
  .argument('<id>')
  .action(async (id: string, o: CliStoreFlags) => {
    const store = await cliStore(o);
    const ok = await store.revokeApiKey(id, Date.now());
    await store.close();
    if (!ok) throw new OperatorError(`no active key with id ${id}`);
    process.stdout.write(`revoked ${id}\n`);
  });

apikey
  .command('list')
  .description('list key ids, labels and state (never the keys)')
  .addOption(dbOption())
  .addOption(redisUrl())
  .addOption(redisPrefix())
  .addOption(allowNonDurable())
  .action(async (o: CliStoreFlags) => {
    const store = await cliStore(o);
    for (const r of await store.listApiKeys()) {
      const state = r.revokedAt === undefined ? 'active' : `revoked ${new Date(r.revokedAt).toISOString()}`;
      process.stdout.write(`${r.id}\t${new Date(r.createdAt).toISOString()}\t${state}\t${r.label}\n`);
    }
    await store.close();
  });

try {
  await program.parseAsync(process.argv);
} catch (e) {
  fail(e);
}
