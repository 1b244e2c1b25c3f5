/**
 * {@link RelayStore} on Redis (node-redis v5), for several relay nodes serving one population
 * (docs/architecture.md "Relay protocol" 5). Every operation that reads and writes is one Lua script, so
 * it is atomic across nodes: `takeBundle` hands each OPK to one requester only, `enqueue` is
 * idempotent on `(from, id)` even when two nodes receive the same retry at once.
 *
 * Durability: "acked means stored" holds only when Redis runs with `appendonly yes` and
 * `appendfsync always` (Redis then fsyncs the AOF before it replies, so `enqueue` resolves after
 * the write reached the disk). `everysec` loses up to one second of acked messages on a crash
 * of the Redis host, RDB snapshots alone lose everything since the last snapshot, and any
 * `maxmemory-policy` other than `noeviction` lets Redis silently drop queued messages. `connect`
 * checks these settings and refuses to start ({@link RedisDurabilityError}) unless
 * `allowNonDurable` is set, in which case it logs a loud warning instead.
 *
 * Scope: one Redis primary (standalone, or behind Sentinel with the same persistence settings).
 * The scripts build some keys from stored data, so Redis Cluster is not supported.
 *
 * Key layout, under a configurable prefix `P` (default `parley:`):
 * - `P:dev:<device>` hash: identity and signed prekey; `cert`, `att` and `mf` (opaque statements) when published.
 * - `P:opk:<device>` list of available OPK ids (upload order); `P:opkpub:<device>` hash id → key;
 *   `P:opkseen:<device>` set of every OPK id ever accepted (a used id is never re-added).
 * - `P:seq` counter (global, so seqs increase per recipient); `P:depth` pending count.
 * - `P:q:<to>` zset of pending seqs; `P:m:<to>` hash seq → envelope; `P:h:<to>` hash seq →
 *   JSON header `{f, i, r, d}`; `P:s:<from>` hash `<to>\n<id>` (`d`) → seq (dedupe while pending;
 *   headers written before `d` existed dedupe on the id alone; its length is the sender's
 *   pending count for the quotas); `P:pc:<to>` hash sender → pending count (quota per pair);
 *   `P:exp` zset `<to>:<seq>` scored by receivedAt (expiry; messages queued before it existed
 *   are not in it: skipped on read once expired, deleted on ack only).
 * - `P:ak` hash id → JSON record; `P:akh` hash sha256 → id; `P:akr` hash id → revokedAt.
 * - `P:rvs` hash issuer → sequence and `P:rvl` hash issuer → signed list (staff revocation lists).
 * - `P:role` hash device → comma-separated roles at its last login.
 * - handoff tickets: `P:tk:<id>`, `P:tref`, `P:tc`, `P:to`, `P:tws`, `P:twd` (tickets/redis-tickets.ts).
 * - the compliance archive: `P:ar:<ref>` list of entries, `P:arw:<ref>`, `P:arl`, `P:arh`, `P:are`,
 *   `P:aro*`, `P:arp:<device>` (appenders, holds, erased refs, openings: archive/redis-archive.ts); an archive
 *   disclosure is the `disc` field of `P:dev:<device>`.
 */
import { createHash } from 'node:crypto';
import { createClient, ErrorReply, RESP_TYPES } from 'redis';
import type { ArchiveSubmission, PrekeyBundle } from '@parley/protocol/verify';
import type { Ticket } from '@parley/protocol/wire';
import { quotaError } from './quota.js';
import { redisTickets } from '../tickets/redis-tickets.js';
import { redisArchive } from '../archive/redis-archive.js';
import type {
  ApiKeyRecord, DeviceStatements, EnqueueOptions, EnqueueResult, FindApiKeyOptions, MailboxQuota, NewMessage, PrekeyPublication, QuotaScope, RelayStore, StoredIdentity, StoredMessage,
  StoredRevocationList, TakeBundleOptions, NewTicket, TicketOpenResult, TicketStep, ArchiveHold, ArchiveOpening,
} from './types.js';

/** Connection and safety settings of {@link RedisStore}. */
export interface RedisStoreOptions {
  /** `redis://[user:pass@]host:port[/db]` or `rediss://…` for TLS. */
  readonly url: string;
  /** Key prefix, so several relays (or tests) can share one Redis. Default `parley:`. */
  readonly prefix?: string;
  /**
   * Start even when Redis is not configured for "acked means stored" (AOF off, `appendfsync`
   * weaker than `always`, an evicting `maxmemory-policy`, or settings that cannot be read).
   * Logs a warning instead of throwing. Default false.
   */
  readonly allowNonDurable?: boolean;
  /** Where warnings go. Default `console`. */
  readonly logger?: { warn(obj: object, msg?: string): void; error(obj: object, msg?: string): void };
  /** Give up the first connection after this long. Default 10 s. */
  readonly connectTimeoutMs?: number;
  /** Each command fails after this long (the relay answers `INTERNAL`, the client retries). Default 5 s. */
  readonly commandTimeoutMs?: number;
}

/** Thrown by {@link RedisStore.connect} when Redis would not keep acked messages. */
export class RedisDurabilityError extends Error {
  readonly code = 'REDIS_NOT_DURABLE';
  constructor(readonly problems: readonly string[]) {
    super(`Redis is not configured for durable storage: ${problems.join('; ')}. ` +
      'Run Redis with `appendonly yes`, `appendfsync always` and `maxmemory-policy noeviction`, ' +
      'or set allowNonDurable (allowNonDurableRedis) to accept losing acked messages.');
    this.name = 'RedisDurabilityError';
  }
}

type Client = ReturnType<typeof createClient>;
type Arg = string | Buffer;
type Reply = null | number | Buffer | Reply[];

/** A Lua script run by EVALSHA, loaded on first NOSCRIPT (e.g. after a Redis restart). */
class Script {
  readonly sha: string;
  constructor(readonly source: string) {
    // Redis identifies scripts by SHA-1 of their source.
    this.sha = createHash('sha1').update(source).digest('hex');
  }
}
// ARGV[8]/[10]/[12]: 'k' keep, 's' set to ARGV[9]/[11]/[13], 'd' delete the certificate/attestation/manifests.
const PUT_PREKEYS = new Script(`
redis.call('HSET', KEYS[1], 'sk', ARGV[1], 'dh', ARGV[2], 'bind', ARGV[3], 'spkId', ARGV[4], 'spkAt', ARGV[5], 'spkPub', ARGV[6], 'spkSig', ARGV[7])
if ARGV[8] == 's' then redis.call('HSET', KEYS[1], 'cert', ARGV[9]) elseif ARGV[8] == 'd' then redis.call('HDEL', KEYS[1], 'cert') end
if ARGV[10] == 's' then redis.call('HSET', KEYS[1], 'att', ARGV[11]) elseif ARGV[10] == 'd' then redis.call('HDEL', KEYS[1], 'att') end
if ARGV[12] == 's' then redis.call('HSET', KEYS[1], 'mf', ARGV[13]) elseif ARGV[12] == 'd' then redis.call('HDEL', KEYS[1], 'mf') end
for i = 14, #ARGV, 2 do
  if redis.call('SADD', KEYS[4], ARGV[i]) == 1 then
    redis.call('RPUSH', KEYS[2], ARGV[i])
    redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1])
  end
end
return redis.call('LLEN', KEYS[2])`);

// ARGV[1]: '1' consume an OPK, '0' build the bundle without one.
const TAKE_BUNDLE = new Script(`
local d = redis.call('HMGET', KEYS[1], 'sk', 'dh', 'bind', 'spkId', 'spkAt', 'spkPub', 'spkSig', 'cert', 'att', 'mf')
if not d[1] then return false end
local id = false
if ARGV[1] ~= '0' then id = redis.call('LPOP', KEYS[2]) end
local pub = ''
if id then
  pub = redis.call('HGET', KEYS[3], id) or ''
  redis.call('HDEL', KEYS[3], id)
else
  id = ''
end
return { d[1], d[2], d[3], d[4], d[5], d[6], d[7], id, pub, redis.call('LLEN', KEYS[2]), d[8] or '', d[9] or '', d[10] or '' }`);

// KEYS: s:<from>, q:<to>, m:<to>, h:<to>, seq, depth, pc:<to>, exp.
// ARGV: dedupe field, header, envelope, from, receivedAt, to, then 'q' and the six quotas (or '-').
// The quota rule is exceededQuota() of quota.ts: keep them in step.
const ENQUEUE = new Script(`
local s = redis.call('HGET', KEYS[1], ARGV[1])
if s then return { tonumber(s), 1 } end
if ARGV[7] == 'q' then
  local perPair, perRecipient, reserve = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])
  local reservePerSender, perSender, total = tonumber(ARGV[11]), tonumber(ARGV[12]), tonumber(ARGV[13])
  local t = tonumber(redis.call('GET', KEYS[6]) or '0')
  if t >= total then return { 0, 2, 'total', t, total } end
  local snd = redis.call('HLEN', KEYS[1])
  if snd >= perSender then return { 0, 2, 'sender', snd, perSender } end
  local pair = tonumber(redis.call('HGET', KEYS[7], ARGV[4]) or '0')
  if pair >= perPair then return { 0, 2, 'pair', pair, perPair } end
  local rcp = redis.call('ZCARD', KEYS[2])
  if rcp >= perRecipient then return { 0, 2, 'recipient', rcp, perRecipient } end
  if rcp >= perRecipient - reserve and pair >= reservePerSender then return { 0, 2, 'reserved', rcp, perRecipient - reserve } end
end
local seq = redis.call('INCR', KEYS[5])
redis.call('HSET', KEYS[1], ARGV[1], seq)
redis.call('ZADD', KEYS[2], seq, seq)
redis.call('HSET', KEYS[3], seq, ARGV[3])
redis.call('HSET', KEYS[4], seq, ARGV[2])
redis.call('INCR', KEYS[6])
redis.call('HINCRBY', KEYS[7], ARGV[4], 1)
redis.call('ZADD', KEYS[8], ARGV[5], ARGV[6] .. ':' .. seq)
return { seq, 0 }`);

// Skips (and reads past) messages received before ARGV[3]: a short answer means no more.
const LIST_PENDING = new Script(`
local out = {}
local after = ARGV[1]
local want = tonumber(ARGV[2])
local since = tonumber(ARGV[3])
local got = 0
while got < want do
  local seqs = redis.call('ZRANGE', KEYS[1], '(' .. after, '+inf', 'BYSCORE', 'LIMIT', 0, want - got)
  if #seqs == 0 then break end
  for _, s in ipairs(seqs) do
    after = s
    local h = redis.call('HGET', KEYS[3], s)
    if h and (since <= 0 or (tonumber(cjson.decode(h).r) or 0) >= since) then
      out[#out + 1] = s
      out[#out + 1] = h
      out[#out + 1] = redis.call('HGET', KEYS[2], s) or ''
      got = got + 1
    end
  end
end
return out`);

/**
 * Deletes one pending message of recipient `to` (its queue entry, envelope, header, expiry
 * entry, dedupe entry and pair count); 1 if it was pending. Shared by DELETE and PURGE.
 */
const REMOVE_ONE = `
local function remove(p, to, s)
  if redis.call('ZREM', p .. 'q:' .. to, s) == 0 then return 0 end
  local hk = p .. 'h:' .. to
  local h = redis.call('HGET', hk, s)
  redis.call('HDEL', p .. 'm:' .. to, s)
  redis.call('HDEL', hk, s)
  redis.call('ZREM', p .. 'exp', to .. ':' .. s)
  if h then
    local m = cjson.decode(h)
    local sent = p .. 's:' .. m.f
    local field = m.d or m.i
    if redis.call('HGET', sent, field) == s then redis.call('HDEL', sent, field) end
    local pc = p .. 'pc:' .. to
    if redis.call('HINCRBY', pc, m.f, -1) <= 0 then redis.call('HDEL', pc, m.f) end
  end
  return 1
end
`;

// KEYS: depth. ARGV: prefix, to, seqs… (keys built from the prefix: see the scope note above).
const DELETE = new Script(`${REMOVE_ONE}
local n = 0
for i = 3, #ARGV do n = n + remove(ARGV[1], ARGV[2], ARGV[i]) end
if n > 0 then redis.call('DECRBY', KEYS[1], n) end
return n`);

// KEYS: exp, depth. ARGV: prefix, before, limit. Returns { deleted, expiry entries read }.
const PURGE = new Script(`${REMOVE_ONE}
local members = redis.call('ZRANGE', KEYS[1], '-inf', '(' .. ARGV[2], 'BYSCORE', 'LIMIT', 0, tonumber(ARGV[3]))
local n = 0
for _, member in ipairs(members) do
  redis.call('ZREM', KEYS[1], member)
  local to, s = string.match(member, '^(.*):(%d+)$')
  if to then n = n + remove(ARGV[1], to, s) end
end
if n > 0 then redis.call('DECRBY', KEYS[2], n) end
return { n, #members }`);

const PUT_API_KEY = new Script(`
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 or redis.call('HEXISTS', KEYS[2], ARGV[2]) == 1 then
  return redis.error_reply('DUPLICATE duplicate api key')
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
if ARGV[4] ~= '' then redis.call('HSET', KEYS[3], ARGV[1], ARGV[4]) end
return 1`);

// ARGV[2] '1': a revoked record too, as { json, revokedAt }; else { json } for an active one only.
const FIND_API_KEY = new Script(`
local id = redis.call('HGET', KEYS[2], ARGV[1])
if not id then return false end
local revoked = redis.call('HGET', KEYS[3], id)
if revoked and ARGV[2] ~= '1' then return false end
local json = redis.call('HGET', KEYS[1], id)
if not json then return false end
if revoked then return { json, revoked } end
return { json }`);

const REVOKE_API_KEY = new Script(`
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 or redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1`);

// KEYS: rvs, rvl. ARGV: issuer, sequence, list. Kept only when the sequence grows.
const PUT_REVOCATIONS = new Script(`
local have = redis.call('HGET', KEYS[1], ARGV[1])
if have and tonumber(have) >= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
return 1`);

const LIST_REVOCATIONS = new Script(`
return { redis.call('HGETALL', KEYS[1]), redis.call('HGETALL', KEYS[2]) }`);

const LIST_API_KEYS = new Script(`
return { redis.call('HGETALL', KEYS[1]), redis.call('HGETALL', KEYS[2]) }`);

const BUFFERS = { typeMapping: { [RESP_TYPES.BLOB_STRING]: Buffer } } as const;

const bytes = (b: Buffer): Uint8Array => new Uint8Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
const arg = (u: Uint8Array): Buffer => Buffer.from(u.buffer, u.byteOffset, u.byteLength);
const str = (r: Reply | undefined): string => (Buffer.isBuffer(r) ? r.toString('utf8') : r === null || r === undefined ? '' : String(r));
const num = (r: Reply | undefined): number => (typeof r === 'number' ? r : Number(str(r)));

/** The statements present in three replies (an empty or nil reply means none). */
function statementsOf(cert: Reply | undefined, att: Reply | undefined, mf: Reply | undefined): DeviceStatements {
  return {
    ...(Buffer.isBuffer(cert) && cert.length > 0 ? { certificate: bytes(cert) } : {}),
    ...(Buffer.isBuffer(att) && att.length > 0 ? { attestation: bytes(att) } : {}),
    ...(Buffer.isBuffer(mf) && mf.length > 0 ? { manifests: bytes(mf) } : {}),
  };
}

/** Reads the persistence settings and lists what breaks "acked means stored". */
async function durabilityProblems(client: Client): Promise<string[]> {
  let config: Record<string, string>;
  try {
    const reply = (await client.sendCommand(['CONFIG', 'GET', '*'])) as unknown;
    config = {};
    if (Array.isArray(reply)) {
      for (let i = 0; i + 1 < reply.length; i += 2) config[String(reply[i])] = String(reply[i + 1]);
    } else if (reply && typeof reply === 'object') {
      for (const [k, v] of Object.entries(reply as Record<string, unknown>)) config[k] = String(v);
    }
  } catch {
    return ['CONFIG GET is not allowed, so the persistence settings cannot be checked'];
  }
  const problems: string[] = [];
  if (config['appendonly'] !== 'yes') problems.push(`appendonly is "${config['appendonly'] ?? '?'}" (acked messages are lost on a crash)`);
  else if (config['appendfsync'] !== 'always') {
    problems.push(`appendfsync is "${config['appendfsync'] ?? '?'}" (${config['appendfsync'] === 'everysec' ? 'up to 1 s' : 'an unbounded window'} of acked messages can be lost on a crash)`);
  }
  const maxmemory = Number(config['maxmemory'] ?? '0');
  const policy = config['maxmemory-policy'] ?? '?';
  if (maxmemory > 0 && policy !== 'noeviction') problems.push(`maxmemory-policy is "${policy}" (Redis may evict queued messages and prekeys)`);
  return problems;
}

/** The Redis store. Create it with {@link RedisStore.connect}. */
export class RedisStore implements RelayStore {
  readonly #client: Client;
  readonly #p: string;
  readonly #timeout: number;
  readonly #tickets;
  readonly #archive;
  #closed = false;
  /**
   * Commands awaiting their reply, oldest first, each with the time it gives up. One timer checks
   * them all (node-redis's own per-command timeout costs an AbortSignal and a listener each).
   */
  readonly #waiting = new Set<{ readonly deadline: number; readonly fail: (e: Error) => void }>();
  readonly #watchdog: NodeJS.Timeout;

  private constructor(client: Client, prefix: string, commandTimeoutMs: number) {
    this.#client = client;
    this.#p = prefix;
    this.#timeout = commandTimeoutMs;
    this.#watchdog = setInterval(() => this.#expire(), Math.max(20, Math.min(1000, commandTimeoutMs / 10)));
    this.#watchdog.unref();
    this.#tickets = redisTickets({ run: (s, keys, args) => this.#run(s, keys, args), cmd: (args) => this.#cmd(args), prefix });
    this.#archive = redisArchive({ run: (s, keys, args) => this.#run(s, keys, args), cmd: (args) => this.#cmd(args), prefix });
  }

  /**
   * Connects, checks the durability settings, and returns the store.
   * @throws {RedisDurabilityError} when Redis would lose acked messages and `allowNonDurable` is not set.
   * @throws when Redis cannot be reached within `connectTimeoutMs`.
   */
  static async connect(options: RedisStoreOptions): Promise<RedisStore> {
    const log = options.logger ?? { warn: (o: object, m?: string) => console.warn(m ?? '', o), error: (o: object, m?: string) => console.error(m ?? '', o) };
    const client: Client = createClient({
      url: options.url,
      // Fail fast while Redis is away: the relay answers INTERNAL and the sender retries, rather
      // than the node buffering an unbounded backlog of commands in memory.
      disableOfflineQueue: true,
      socket: { reconnectStrategy: (retries: number) => Math.min(50 * 2 ** Math.min(retries, 6), 2000), connectTimeout: 5000 },
    });
    let lastError = 0;
    client.on('error', (e: unknown) => {
      // node-redis emits an error per failed reconnect attempt; log at most one per second.
      const now = Date.now();
      if (now - lastError < 1000) return;
      lastError = now;
      log.error({ event: 'redis', role: 'store', errorName: e instanceof Error ? e.name : typeof e, message: e instanceof Error ? e.message : '' }, 'redis store connection error');
    });
    const timeoutMs = options.connectTimeoutMs ?? 10_000;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        client.connect(),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`could not connect to Redis within ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
      const problems = await durabilityProblems(client);
      if (problems.length > 0) {
        if (!options.allowNonDurable) throw new RedisDurabilityError(problems);
        log.warn({ event: 'redis', durable: false, problems }, 'REDIS IS NOT DURABLE: acked messages can be lost (allowNonDurable is set)');
      }
    } catch (e) {
      client.destroy();
      throw e;
    } finally {
      clearTimeout(timer);
    }
    return new RedisStore(client, options.prefix ?? 'parley:', options.commandTimeoutMs ?? 5000);
  }

  #key(...parts: string[]): string {
    return this.#p + parts.join(':');
  }

  /**
   * Sends one command now (commands on the connection run in the order sent); rejects once
   * `commandTimeoutMs` passed without a reply (the reply, if it comes, is then ignored).
   */
  #send(args: readonly Arg[]): Promise<Reply> {
    if (this.#closed) return Promise.reject(new Error('store is closed'));
    const sent = this.#client.sendCommand(args, BUFFERS) as Promise<Reply>;
    return new Promise<Reply>((resolve, reject) => {
      const entry = { deadline: Date.now() + this.#timeout, fail: reject };
      this.#waiting.add(entry);
      sent.then((r) => {
        this.#waiting.delete(entry);
        resolve(r);
      }, (e: unknown) => {
        this.#waiting.delete(entry);
        reject(e);
      });
    });
  }

  /** Fails the commands past their deadline (same timeout for all: the oldest come first). */
  #expire(): void {
    const now = Date.now();
    for (const entry of this.#waiting) {
      if (entry.deadline > now) return;
      this.#waiting.delete(entry);
      const e = new Error(`redis command timed out after ${this.#timeout} ms`);
      e.name = 'TimeoutError';
      entry.fail(e);
    }
  }

  async #run(script: Script, keys: readonly string[], args: readonly Arg[]): Promise<Reply> {
    const tail = [String(keys.length), ...keys, ...args];
    try {
      return await this.#send(['EVALSHA', script.sha, ...tail]);
    } catch (e) {
      if (!(e instanceof ErrorReply && e.message.startsWith('NOSCRIPT'))) throw e;
      return await this.#send(['EVAL', script.source, ...tail]);
    }
  }

  /**
   * Runs a script, then `next` right behind it on the same connection (no extra round trip; Redis
   * runs `next` after the script). `next`'s reply is `undefined` when it failed.
   */
  async #runThen(script: Script, keys: readonly string[], args: readonly Arg[], next: readonly Arg[]): Promise<[Reply, Reply | undefined]> {
    const tail = [String(keys.length), ...keys, ...args];
    const first = this.#send(['EVALSHA', script.sha, ...tail]);
    const second = this.#send(next).catch(() => undefined);
    try {
      return [await first, await second];
    } catch (e) {
      if (!(e instanceof ErrorReply && e.message.startsWith('NOSCRIPT'))) throw e;
      // Loaded now (after a Redis restart): `next` goes again, after this run.
      const r = await this.#send(['EVAL', script.source, ...tail]);
      return [r, await this.#send(next).catch(() => undefined)];
    }
  }

  #cmd(args: readonly Arg[]): Promise<Reply> {
    return this.#send(args);
  }

  #deviceKeys(deviceId: string): [string, string, string, string] {
    return [this.#key('dev', deviceId), this.#key('opk', deviceId), this.#key('opkpub', deviceId), this.#key('opkseen', deviceId)];
  }

  async putPrekeys(deviceId: string, upload: PrekeyPublication): Promise<number> {
    const { identity: i, signedPrekey: spk } = upload;
    const args: Arg[] = [arg(i.signingKey), arg(i.dhKey), arg(i.binding), String(spk.id), String(spk.createdAt), arg(spk.publicKey), arg(spk.signature)];
    // Absent: keep; empty: delete; otherwise set.
    for (const b of [upload.certificate, upload.attestation, upload.manifests]) {
      if (b === undefined) args.push('k', '');
      else if (b.length === 0) args.push('d', '');
      else args.push('s', arg(b));
    }
    for (const opk of upload.oneTimePrekeys) args.push(String(opk.id), arg(opk.publicKey));
    const n = num(await this.#run(PUT_PREKEYS, this.#deviceKeys(deviceId), args));
    // The archive disclosure: a field of the device hash, written after it (absent keeps it).
    if (upload.disclosure !== undefined) {
      if (upload.disclosure.length === 0) await this.#cmd(['HDEL', this.#key('dev', deviceId), 'disc']);
      else await this.#cmd(['HSET', this.#key('dev', deviceId), 'disc', arg(upload.disclosure)]);
    }
    return n;
  }

  async takeBundle(deviceId: string, options: TakeBundleOptions = {}): Promise<({ bundle: PrekeyBundle; remaining: number } & DeviceStatements) | undefined> {
    const [dev, list, pub] = this.#deviceKeys(deviceId);
    const r = await this.#run(TAKE_BUNDLE, [dev, list, pub], [options.oneTimePrekey === false ? '0' : '1']);
    if (!Array.isArray(r)) return undefined;
    const b = (k: number): Uint8Array => bytes(r[k] as Buffer);
    const base = {
      identity: { signingKey: b(0), dhKey: b(1), binding: b(2) },
      signedPrekey: { id: num(r[3]), createdAt: num(r[4]), publicKey: b(5), signature: b(6) },
    };
    const opkId = str(r[7]);
    const bundle: PrekeyBundle = opkId !== '' && str(r[8]) !== ''
      ? { ...base, oneTimePrekey: { id: Number(opkId), publicKey: b(8) } }
      : base;
    const disc = await this.#cmd(['HGET', dev, 'disc']);
    return { bundle, remaining: num(r[9]), ...statementsOf(r[10], r[11], r[12]), ...(Buffer.isBuffer(disc) && disc.length > 0 ? { disclosure: bytes(disc) } : {}) };
  }

  async getIdentity(deviceId: string): Promise<StoredIdentity | undefined> {
    const r = await this.#cmd(['HMGET', this.#key('dev', deviceId), 'sk', 'dh', 'bind', 'cert', 'att', 'mf', 'disc']);
    if (!Array.isArray(r) || !Buffer.isBuffer(r[0])) return undefined;
    const b = (k: number): Uint8Array => bytes(r[k] as Buffer);
    const disc = r[6];
    return {
      identity: { signingKey: b(0), dhKey: b(1), binding: b(2) }, ...statementsOf(r[3], r[4], r[5]),
      ...(Buffer.isBuffer(disc) && disc.length > 0 ? { disclosure: bytes(disc) } : {}),
    };
  }

  async countOneTimePrekeys(deviceId: string): Promise<number> {
    return num(await this.#cmd(['LLEN', this.#key('opk', deviceId)]));
  }

  async enqueue(m: NewMessage, quota?: MailboxQuota, options: EnqueueOptions = {}): Promise<EnqueueResult> {
    // Dedupe per (sender, recipient, id): the same id may go to several recipients (fan-out).
    const field = `${m.to}\n${m.id}`;
    const header = JSON.stringify({ f: m.from, i: m.id, r: m.receivedAt, d: field });
    const keys = [this.#key('s', m.from), this.#key('q', m.to), this.#key('m', m.to), this.#key('h', m.to), this.#key('seq'), this.#key('depth'),
      this.#key('pc', m.to), this.#key('exp')];
    const limits = quota
      ? ['q', quota.perPair, quota.perRecipient, quota.reserve, quota.reservePerSender, quota.perSender, quota.total].map(String)
      : ['-'];
    const args = [field, header, arg(m.envelope), m.from, String(m.receivedAt), m.to, ...limits];
    const nodes = options.countNodes;
    let r: Reply[];
    let otherNodes: number | undefined;
    if (nodes) {
      // After the write: a node subscribing later has no socket in a device room yet, and its
      // drains read this message from the store (relay README "Scaling out").
      const [written, counts] = await this.#runThen(ENQUEUE, keys, args, ['PUBSUB', 'NUMSUB', nodes.all, nodes.self]);
      r = written as Reply[];
      if (Array.isArray(counts) && counts.length === 4) otherNodes = Math.max(0, num(counts[1]) - num(counts[3]));
    } else {
      r = (await this.#run(ENQUEUE, keys, args)) as Reply[];
    }
    if (num(r[1]) === 2) {
      const scope = str(r[2]);
      throw quotaError(scope === 'reserved'
        ? { quota: 'recipient', have: num(r[3]), max: num(r[4]), reserved: true }
        : { quota: scope as QuotaScope, have: num(r[3]), max: num(r[4]) });
    }
    return { seq: num(r[0]), duplicate: num(r[1]) === 1, ...(otherNodes === undefined ? {} : { otherNodes }) };
  }

  async listPending(to: string, afterSeq: number, limit: number, minReceivedAt = 0): Promise<StoredMessage[]> {
    const n = Math.max(0, Math.floor(limit));
    if (n === 0) return [];
    const r = (await this.#run(LIST_PENDING, [this.#key('q', to), this.#key('m', to), this.#key('h', to)],
      [String(afterSeq), String(n), String(minReceivedAt)])) as Reply[];
    const out: StoredMessage[] = [];
    for (let k = 0; k + 2 < r.length; k += 3) {
      const header = str(r[k + 1]);
      if (header === '') continue;
      const h = JSON.parse(header) as { f: string; i: string; r: number };
      out.push({ seq: num(r[k]), to, from: h.f, id: h.i, envelope: bytes(r[k + 2] as Buffer), receivedAt: h.r });
    }
    return out;
  }

  async deleteMessages(to: string, seqs: readonly number[]): Promise<number> {
    if (seqs.length === 0) return 0;
    return num(await this.#run(DELETE, [this.#key('depth')], [this.#p, to, ...seqs.map((s) => String(s))]));
  }

  async purgeExpired(before: number, limit: number): Promise<number> {
    const n = Math.max(0, Math.floor(limit));
    if (n === 0) return 0;
    const r = (await this.#run(PURGE, [this.#key('exp'), this.#key('depth')], [this.#p, String(before), String(n)])) as Reply[];
    return num(r[0]);
  }

  async countPending(to: string): Promise<number> {
    return num(await this.#cmd(['ZCARD', this.#key('q', to)]));
  }

  async queueDepth(): Promise<number> {
    const r = await this.#cmd(['GET', this.#key('depth')]);
    return r === null ? 0 : num(r);
  }

  async putApiKey(record: ApiKeyRecord): Promise<void> {
    const json = JSON.stringify({ id: record.id, hash: record.hash, label: record.label, createdAt: record.createdAt });
    try {
      await this.#run(PUT_API_KEY, [this.#key('ak'), this.#key('akh'), this.#key('akr')],
        [record.id, record.hash, json, record.revokedAt === undefined ? '' : String(record.revokedAt)]);
    } catch (e) {
      if (e instanceof ErrorReply && e.message.startsWith('DUPLICATE')) throw new Error('duplicate api key');
      throw e;
    }
  }

  async findApiKey(hash: string, options: FindApiKeyOptions = {}): Promise<ApiKeyRecord | undefined> {
    const r = await this.#run(FIND_API_KEY, [this.#key('ak'), this.#key('akh'), this.#key('akr')], [hash, options.includeRevoked ? '1' : '0']);
    if (!Array.isArray(r) || !Buffer.isBuffer(r[0])) return undefined;
    const record = JSON.parse(r[0].toString('utf8')) as ApiKeyRecord;
    return r[1] === undefined || r[1] === null || str(r[1]) === '' ? record : { ...record, revokedAt: num(r[1]) };
  }

  async revokeApiKey(id: string, at: number): Promise<boolean> {
    return num(await this.#run(REVOKE_API_KEY, [this.#key('ak'), this.#key('akr')], [id, String(at)])) === 1;
  }

  async listApiKeys(): Promise<ApiKeyRecord[]> {
    const r = (await this.#run(LIST_API_KEYS, [this.#key('ak'), this.#key('akr')], [])) as Reply[][];
    const revoked = new Map<string, number>();
    const rv = r[1] ?? [];
    for (let k = 0; k + 1 < rv.length; k += 2) revoked.set(str(rv[k]), num(rv[k + 1]));
    const records: ApiKeyRecord[] = [];
    const all = r[0] ?? [];
    for (let k = 0; k + 1 < all.length; k += 2) {
      const rec = JSON.parse(str(all[k + 1])) as ApiKeyRecord;
      const at = revoked.get(rec.id);
      records.push(at === undefined ? rec : { ...rec, revokedAt: at });
    }
    return records.sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  async putRevocationList(issuer: string, sequence: number, list: Uint8Array): Promise<boolean> {
    return num(await this.#run(PUT_REVOCATIONS, [this.#key('rvs'), this.#key('rvl')], [issuer, String(sequence), arg(list)])) === 1;
  }

  async listRevocationLists(): Promise<StoredRevocationList[]> {
    const r = (await this.#run(LIST_REVOCATIONS, [this.#key('rvs'), this.#key('rvl')], [])) as Reply[][];
    const lists = new Map<string, Buffer>();
    const rl = r[1] ?? [];
    for (let k = 0; k + 1 < rl.length; k += 2) lists.set(str(rl[k]), rl[k + 1] as Buffer);
    const out: StoredRevocationList[] = [];
    const rs = r[0] ?? [];
    for (let k = 0; k + 1 < rs.length; k += 2) {
      const issuer = str(rs[k]);
      const list = lists.get(issuer);
      if (list) out.push({ issuer, sequence: num(rs[k + 1]), list: bytes(list) });
    }
    return out.sort((a, b) => (a.issuer < b.issuer ? -1 : 1));
  }

  async setDeviceRoles(deviceId: string, roles: readonly string[]): Promise<void> {
    await this.#cmd(['HSET', this.#key('role'), deviceId, roles.join(',')]);
  }

  async getDeviceRoles(deviceId: string): Promise<string[] | undefined> {
    const r = await this.#cmd(['HGET', this.#key('role'), deviceId]);
    if (r === null || r === undefined) return undefined;
    const roles = str(r);
    return roles === '' ? [] : roles.split(',');
  }

  // The compliance archive (archive/redis-archive.ts): compare-and-append, so chains never fork.
  async archiveAppend(submission: ArchiveSubmission, at: number, deviceId?: string): Promise<number> {
    return this.#archive.append(submission, at, deviceId);
  }
  async archiveEntries(ref: string): Promise<Uint8Array[]> {
    return this.#archive.entries(ref);
  }
  archiveAppenders(ref: string): Promise<string[]> {
    return this.#archive.appenders(ref);
  }
  archivePurge(ref: string, erasedAt?: number): Promise<{ deleted: number; held: boolean }> {
    return this.#archive.purge(ref, erasedAt);
  }
  archiveHold(hold: ArchiveHold): Promise<void> {
    return this.#archive.hold(hold);
  }
  archiveRelease(ref: string): Promise<boolean> {
    return this.#archive.release(ref);
  }
  archiveHolds(): Promise<ArchiveHold[]> {
    return this.#archive.holds();
  }
  archiveSweep(before: number, limit: number): Promise<{ refs: number; entries: number }> {
    return this.#archive.sweep(before, limit);
  }
  archiveRecordOpening(opening: Omit<ArchiveOpening, 'id'>): Promise<number> {
    return this.#archive.recordOpening(opening);
  }
  archiveOpeningsAfter(afterId: number, limit: number): Promise<ArchiveOpening[]> {
    return this.#archive.openingsAfter(afterId, limit);
  }
  archivePendingOpenings(deviceId: string): Promise<ArchiveOpening[]> {
    return this.#archive.pendingOpenings(deviceId);
  }
  archiveOpeningNoticed(id: number, deviceId: string): Promise<void> {
    return this.#archive.noticed(id, deviceId);
  }

  // Handoff tickets (tickets/redis-tickets.ts): each step one Lua script, atomic across nodes.
  openTicket(ticket: NewTicket, maxPerCustomer?: number): Promise<TicketOpenResult> {
    return this.#tickets.open(ticket, maxPerCustomer);
  }

  getTicket(id: string): Promise<Ticket | undefined> {
    return this.#tickets.get(id);
  }

  listTickets(queue?: string, limit = 1_000_000): Promise<Ticket[]> {
    return this.#tickets.list(queue, Math.max(0, limit));
  }

  claimTicket(id: string, agent: string, at: number): Promise<TicketStep> {
    return this.#tickets.claim(id, agent, at);
  }

  releaseTicket(id: string, by: string, at: number, queue?: string): Promise<TicketStep> {
    return this.#tickets.release(id, by, at, queue);
  }

  closeTicket(id: string, by: string): Promise<TicketStep> {
    return this.#tickets.close(id, by);
  }

  dueUnclaimed(before: number, limit: number): Promise<Ticket[]> {
    return this.#tickets.due(before, Math.max(0, limit));
  }

  markUnclaimedNotified(id: string, waitingSince: number): Promise<boolean> {
    return this.#tickets.mark(id, waitingSince);
  }

  countWaitingTickets(): Promise<number> {
    return this.#tickets.waiting();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#watchdog);
    // close() waits for replies in flight; if Redis is gone it would wait for a reconnect.
    if (this.#client.isReady) await this.#client.close().catch(() => this.#client.destroy());
    else this.#client.destroy();
  }
}
