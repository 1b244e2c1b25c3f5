/**
 * `parley-relay` command line: `serve`, and `apikey create|revoke|list` on the same SQLite file
 * (or, with `--redis`, the same Redis).
 * Every `serve` flag has an environment variable (flags win).
 */
import { readFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { pino } from 'pino';
import { createApiKey } from './apikeys.js';
import { parseLimits, plainHttpWarning } from './cli-options.js';
import { createRelay } from './relay.js';
import { SqliteStore } from './store/sqlite.js';
import { openRedisStore } from './cluster/redis-adapter.js';
import type { RelayStore } from './store/types.js';

const DEFAULT_DB = 'parley-relay.db';

/** `--redis` (and friends) as createRelay's `redis` option; undefined without `--redis`. */
function redisOption(o: { redis?: string; redisPrefix?: string; allowNonDurableRedis?: boolean }) {
  if (!o.redis) return undefined;
  return { url: o.redis, ...(o.redisPrefix ? { prefix: o.redisPrefix } : {}), allowNonDurable: o.allowNonDurableRedis === true };
}
const redisUrl = () => new Option('--redis <url>', 'scale-out: keep state in Redis and link relay nodes through it (instead of --db)').env('PARLEY_RELAY_REDIS');
const redisPrefix = () => new Option('--redis-prefix <prefix>', 'prefix of Redis keys and channels (default parley:)').env('PARLEY_RELAY_REDIS_PREFIX');
const allowNonDurable = () => new Option('--allow-non-durable-redis', 'start even if Redis is not appendonly yes + appendfsync always (acked messages can be lost)')
  .env('PARLEY_RELAY_ALLOW_NON_DURABLE_REDIS');
type CliStoreFlags = { db: string; redis?: string; redisPrefix?: string; allowNonDurableRedis?: boolean };
/** The store the apikey commands work on: Redis with --redis, else the SQLite file. */
async function cliStore(o: CliStoreFlags): Promise<RelayStore> {
  const r = redisOption(o);
  return r ? openRedisStore(r) : new SqliteStore(o.db);
}

const program = new Command('parley-relay').description('Parley relay: authenticated prekey directory and mailbox for end-to-end encrypted envelopes.');

program
  .command('serve')
  .description('run the relay')
  .addOption(new Option('--host <host>', 'interface to listen on').env('PARLEY_RELAY_HOST').default('127.0.0.1'))
  .addOption(new Option('--port <port>', 'port (0 = any free port)').env('PARLEY_RELAY_PORT').default('0'))
  .addOption(new Option('--db <path>', 'SQLite database file').env('PARLEY_RELAY_DB').default(DEFAULT_DB))
  .addOption(redisUrl())
  .addOption(redisPrefix())
  .addOption(allowNonDurable())
  .addOption(new Option('--origin <origin>', 'origin clients sign (default: the listening URL)').env('PARLEY_RELAY_ORIGIN'))
  .addOption(new Option('--tls-cert <file>', 'PEM certificate: serve HTTPS/WSS').env('PARLEY_RELAY_TLS_CERT'))
  .addOption(new Option('--tls-key <file>', 'PEM private key for --tls-cert').env('PARLEY_RELAY_TLS_KEY'))
  .addOption(new Option('--log-level <level>', 'pino level').env('PARLEY_RELAY_LOG_LEVEL').default('info')
    .choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']))
  .addOption(new Option('--limit <name=value>', 'override a relay limit, e.g. maxSocketsPerDevice=4 (repeatable; env: comma-separated; names in the README)')
    .env('PARLEY_RELAY_LIMITS').default([] as string[]).argParser((v: string, prev: string[]) => [...prev, v]))
  .action(async (o: {
    host: string; port: string; db: string; redis?: string; redisPrefix?: string; allowNonDurableRedis?: boolean; origin?: string;
    tlsCert?: string; tlsKey?: string; logLevel: string; limit: string[];
  }) => {
    const port = Number(o.port);
    if (!Number.isInteger(port) || port < 0 || port > 65535) program.error(`invalid --port ${o.port}`);
    if (Boolean(o.tlsCert) !== Boolean(o.tlsKey)) program.error('--tls-cert and --tls-key go together');
    let limits: ReturnType<typeof parseLimits> = {};
    try {
      limits = parseLimits(o.limit);
    } catch (e) {
      program.error((e as Error).message);
    }
    const logger = pino({ level: o.logLevel });
    const warning = plainHttpWarning(o.host, Boolean(o.tlsCert), o.origin);
    if (warning) {
      process.stderr.write(`${warning}\n`);
      logger.warn({ event: 'plainHttp', host: o.host }, warning);
    }
    const relay = await createRelay({
      host: o.host,
      port,
      ...(redisOption(o) ? { redis: redisOption(o)! } : { store: { sqlite: o.db } }),
      logger,
      limits,
      ...(o.origin ? { origin: o.origin } : {}),
      ...(o.tlsCert && o.tlsKey ? { tls: { cert: readFileSync(o.tlsCert), key: readFileSync(o.tlsKey) } } : {}),
    }).catch((e: unknown) => {
      if (e instanceof RangeError) program.error(e.message); // a bad --limit value
      throw e;
    });
    process.stdout.write(`parley-relay listening on ${relay.url} (origin ${relay.origin})\n`);
    const stop = () => void relay.close().then(() => process.exit(0));
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });

const apikey = program.command('apikey').description('manage bot API keys (stored hashed)');
const dbOption = () => new Option('--db <path>', 'SQLite database file').env('PARLEY_RELAY_DB').default(DEFAULT_DB);

apikey
  .command('create')
  .description('create a key; it is printed once and never stored')
  .addOption(dbOption())
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
  .description('revoke a key by id')
  .addOption(dbOption())
  .addOption(redisUrl())
  .addOption(redisPrefix())
  .addOption(allowNonDurable())
  .argument('<id>')
  .action(async (id: string, o: CliStoreFlags) => {
    const store = await cliStore(o);
    const ok = await store.revokeApiKey(id, Date.now());
    await store.close();
    if (!ok) program.error(`no active key with id ${id}`);
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

await program.parseAsync(process.argv);
