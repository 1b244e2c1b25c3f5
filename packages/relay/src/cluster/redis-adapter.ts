/**
 * Scale-out: several relay nodes serve one population through one Redis. The store
 * ({@link RedisStore}) holds everything durable; socket.io's own Redis adapter
 * (`@socket.io/redis-adapter`, Redis pub/sub) carries room broadcasts between nodes, so
 * `io.to(deviceRoom(id)).emit(...)` on node A reaches the device's socket on node B.
 *
 * Pub/sub is fire-and-forget: a message published while a node's subscriber connection is down
 * (a Redis restart, a network cut) never reaches that node. Nothing is lost, the envelope is in
 * the store, but it would sit there until the recipient reconnects. So when the subscriber
 * connection comes back (node-redis resubscribes before it reports `ready`), the node calls
 * `onResync`, and the relay drains the store again for every authenticated socket it holds
 * (duplicates possible, losses not: clients dedupe by `(from, id)`). `onResync` is retried
 * until it succeeds, since the store's own connection may come back a little later.
 *
 * The publisher keeps node-redis's offline queue (bounded): a broadcast for an envelope that
 * was stored while only the publisher's connection was down goes out once it is back, and a
 * subscriber that reconnects later than that finds the envelope in the store when it resyncs.
 *
 * A node alone on its Redis publishes nothing: every node's subscriber is on the adapter's
 * request channel and on a response channel of its own (one SUBSCRIBE, so a resubscription
 * restores both at once), so `PUBSUB NUMSUB <request> <own response>`, sent by the store right
 * behind a message's write, says how many other nodes could hold a socket of the recipient
 * ({@link nodeChannels}); with none, the push is local only (no PUBLISH, no barrier).
 */
import type { Server } from 'socket.io';
import { createAdapter } from '@socket.io/redis-adapter';
import { createClient } from 'redis';
import { RedisStore, type RedisStoreOptions } from '../store/redis.js';

/** The `redis` option of `createRelay` (and `--redis` of the CLI): a URL or the full settings. */
export type RedisOption = string | {
  readonly url: string;
  /** Prefix of store keys and of the adapter's channels. Default `parley:`. */
  readonly prefix?: string;
  /** See {@link RedisStoreOptions.allowNonDurable}. Default false. */
  readonly allowNonDurable?: boolean;
};

type Log = { info(obj: object, msg?: string): void; warn(obj: object, msg?: string): void; error(obj: object, msg?: string): void };
type Client = ReturnType<typeof createClient>;

/** Normalises the option. */
export function redisSettings(option: RedisOption): { url: string; prefix: string; allowNonDurable: boolean } {
  const o = typeof option === 'string' ? { url: option } : option;
  if (typeof o.url !== 'string' || !/^rediss?:\/\//.test(o.url)) throw new TypeError('redis: expected a redis:// or rediss:// URL');
  return { url: o.url, prefix: o.prefix ?? 'parley:', allowNonDurable: o.allowNonDurable ?? false };
}

/** Opens the Redis store for a relay node (durability checked, see {@link RedisStore.connect}). */
export function openRedisStore(option: RedisOption, logger?: Log, extra: Partial<RedisStoreOptions> = {}): Promise<RedisStore> {
  const s = redisSettings(option);
  return RedisStore.connect({ ...extra, url: s.url, prefix: s.prefix, allowNonDurable: s.allowNonDurable, ...(logger ? { logger } : {}) });
}

/** The channels that count this relay's nodes, by socket.io server (set by {@link attachRedisAdapter}). */
const CHANNELS = new WeakMap<Server, { readonly all: string; readonly self: string }>();

/**
 * The broadcast channels of a clustered server: `all` (every node's subscriber, the adapter's
 * request channel) and `self` (this node's alone). `undefined` without the Redis adapter.
 * Subscribers of `all` minus those of `self` = the other nodes (`EnqueueOptions.countNodes`).
 */
export function nodeChannels(io: Server): { readonly all: string; readonly self: string } | undefined {
  return CHANNELS.get(io);
}

/** What {@link attachRedisAdapter} returns. */
export interface RedisAdapterHandle {
  /**
   * Resolves once every broadcast emitted before the call has reached Redis (a PING on the
   * publisher's connection, answered in order after the PUBLISHes; concurrent calls share
   * one). Never rejects; gives up after 2 s (Redis away: the resync covers that case).
   */
  barrier(): Promise<void>;
  /** Closes the pub/sub connections. Call after `io.close()`. */
  close(): Promise<void>;
}

/** Makes the promise-returning pub/sub methods the adapter calls without `.catch` safe to fail. */
function guard(client: Client, names: readonly string[], onError: (e: unknown) => void): void {
  const target = client as unknown as Record<string, unknown>;
  for (const name of names) {
    const fn = target[name];
    if (typeof fn !== 'function') continue;
    target[name] = (...args: unknown[]) => {
      const r = (fn as (...a: unknown[]) => unknown).apply(client, args);
      if (r instanceof Promise) r.catch(onError);
      return r;
    };
  }
}

/**
 * Connects a publisher and a subscriber to Redis and installs the socket.io Redis adapter on
 * `io`. Resolves once the subscriptions are active.
 * @param onResync called each time the subscriber reconnects after a loss (not on first connect).
 */
export async function attachRedisAdapter(
  io: Server,
  option: RedisOption,
  opts: { logger?: Log; onResync?: () => Promise<void> | void; connectTimeoutMs?: number } = {},
): Promise<RedisAdapterHandle> {
  const { url, prefix } = redisSettings(option);
  const log: Log = opts.logger ?? { info: () => undefined, warn: (o, m) => console.warn(m ?? '', o), error: (o, m) => console.error(m ?? '', o) };
  const socket = { reconnectStrategy: (retries: number) => Math.min(50 * 2 ** Math.min(retries, 6), 2000), connectTimeout: 5000 };
  // Both keep node-redis's offline queue: the subscriber so its (re)subscriptions are not
  // dropped, the publisher so broadcasts wait for the connection (bounded; beyond the bound a
  // broadcast is dropped and the recipient's node finds the envelope when it resyncs or the
  // recipient reconnects).
  const pub: Client = createClient({ url, socket, commandsQueueMaxLength: 50_000 });
  const sub: Client = pub.duplicate();
  let lastError = 0;
  const onError = (role: string) => (e: unknown) => {
    const now = Date.now();
    if (now - lastError < 1000) return;
    lastError = now;
    log.error({ event: 'redis', role, errorName: e instanceof Error ? e.name : typeof e, message: e instanceof Error ? e.message : '' }, 'redis adapter connection error');
  };
  pub.on('error', onError('adapter-pub'));
  sub.on('error', onError('adapter-sub'));
  guard(pub, ['publish', 'sPublish', 'sendCommand'], onError('adapter-pub'));
  guard(sub, ['subscribe', 'pSubscribe', 'unsubscribe', 'pUnsubscribe', 'sSubscribe', 'sUnsubscribe'], onError('adapter-sub'));

  const timeoutMs = opts.connectTimeoutMs ?? 10_000;
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      Promise.all([pub.connect(), sub.connect()]),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`could not connect to Redis within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } catch (e) {
    pub.destroy();
    sub.destroy();
    throw e;
  } finally {
    clearTimeout(timer);
  }

  const key = `${prefix}io`;
  io.adapter(createAdapter(pub, sub, { key }));
  // Commands on one connection run in order: once this resolves, the adapter's own
  // subscriptions (sent while installing it) are active on Redis too.
  await sub.subscribe(`${key}-ready`, () => undefined);
  const adapter = io.of('/').adapter as unknown as { requestChannel?: unknown; specificResponseChannel?: unknown };
  if (typeof adapter.requestChannel === 'string' && typeof adapter.specificResponseChannel === 'string') {
    CHANNELS.set(io, { all: adapter.requestChannel, self: adapter.specificResponseChannel });
  }

  // The first 'ready' fired inside connect(); every later one is a reconnect.
  let closed = false;
  let resyncing: Promise<void> | undefined;
  let again = false;
  const resync = async () => {
    for (let attempt = 0; !closed; attempt++) {
      again = false;
      try {
        await opts.onResync?.();
        if (!again) return;
      } catch (e) {
        onError('resync')(e);
        await new Promise((r) => setTimeout(r, Math.min(100 * 2 ** Math.min(attempt, 5), 2000)).unref());
      }
    }
  };
  sub.on('ready', () => {
    log.warn({ event: 'redis', role: 'adapter-sub', resync: true }, 'redis subscriber reconnected: re-draining local sockets');
    if (resyncing) {
      again = true;
      return;
    }
    resyncing = resync().finally(() => {
      resyncing = undefined;
    });
  });

  // One PING per tick, shared by every caller in that tick: it is written after their PUBLISHes.
  let shared: Promise<void> | undefined;
  const barrier = (): Promise<void> => {
    shared ??= new Promise<void>((resolve) => {
      process.nextTick(() => {
        shared = undefined;
        pub.sendCommand(['PING'], { timeout: 2000 }).then(() => resolve(), () => resolve());
      });
    });
    return shared;
  };

  return {
    barrier,
    async close() {
      closed = true;
      const end = async (c: Client) => {
        if (!c.isOpen) return;
        if (c.isReady) await c.close().catch(() => c.destroy());
        else c.destroy();
      };
      await Promise.all([end(sub), end(pub)]);
    },
  };
}
