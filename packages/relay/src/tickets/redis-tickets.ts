/**
 * Handoff tickets on Redis (the {@link TicketStore} part of `RedisStore`). Every step that reads
 * and writes is one Lua script, so it is atomic across relay nodes: of 50 agents claiming one
 * ticket at once on two nodes exactly one wins (docs/threats.md H3), and of two nodes'
 * sweepers exactly one reports a waiting period unclaimed.
 *
 * Key layout under the store's prefix `P`:
 * - `P:tk:<id>` hash: the ticket's fields (`id queue customer ref notify openedAt waitingSince
 *   state claimedBy claimedAt`) and `notified` once its waiting period was reported;
 * - `P:tref` hash `<customer>\n<ref>` → id (open tickets; idempotent open);
 * - `P:tc` hash customer → open ticket count;
 * - `P:to` zset id by openedAt (listing); `P:tws` set of waiting ids (gauge);
 * - `P:twd` zset id by waitingSince of waiting tickets not yet reported (the sweeper's index).
 */
import { createHash } from 'node:crypto';
import type { Ticket } from '@parley/protocol/wire';
import type { NewTicket, TicketOpenResult, TicketStep } from '../store/types.js';

/** A Lua script (its SHA-1 for EVALSHA). */
export interface TicketScript {
  readonly source: string;
  readonly sha: string;
}
const script = (source: string): TicketScript => ({ source, sha: createHash('sha1').update(source).digest('hex') });

// KEYS: tk:<id>, tref, tc, to, tws, twd. ARGV: id, queue, customer, ref, notify|'', openedAt, max|'', prefix.
// Returns { 0 } opened, { 1, fields } existing, { 2, open } refused.
const OPEN = script(`
local refKey = ARGV[3] .. '\\n' .. ARGV[4]
local have = redis.call('HGET', KEYS[2], refKey)
if have then
  local t = redis.call('HGETALL', ARGV[8] .. 'tk:' .. have)
  if #t > 0 then return { 1, t } end
end
local n = tonumber(redis.call('HGET', KEYS[3], ARGV[3]) or '0')
if ARGV[7] ~= '' and n >= tonumber(ARGV[7]) then return { 2, n } end
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'queue', ARGV[2], 'customer', ARGV[3], 'ref', ARGV[4], 'openedAt', ARGV[6], 'waitingSince', ARGV[6], 'state', 'waiting')
if ARGV[5] ~= '' then redis.call('HSET', KEYS[1], 'notify', ARGV[5]) end
redis.call('HSET', KEYS[2], refKey, ARGV[1])
redis.call('HINCRBY', KEYS[3], ARGV[3], 1)
redis.call('ZADD', KEYS[4], ARGV[6], ARGV[1])
redis.call('SADD', KEYS[5], ARGV[1])
redis.call('ZADD', KEYS[6], ARGV[6], ARGV[1])
return { 0 }`);

// KEYS: tk:<id>, tws, twd. ARGV: agent, at, id. Returns { 0 } none, { 1, fields } ok, { 2, fields } held by another.
const CLAIM = script(`
local s = redis.call('HMGET', KEYS[1], 'state', 'claimedBy')
if not s[1] then return { 0 } end
if s[1] == 'claimed' then
  if s[2] == ARGV[1] then return { 1, redis.call('HGETALL', KEYS[1]) } end
  return { 2, redis.call('HGETALL', KEYS[1]) }
end
redis.call('HSET', KEYS[1], 'state', 'claimed', 'claimedBy', ARGV[1], 'claimedAt', ARGV[2])
redis.call('SREM', KEYS[2], ARGV[3])
redis.call('ZREM', KEYS[3], ARGV[3])
return { 1, redis.call('HGETALL', KEYS[1]) }`);

// KEYS: tk:<id>, tws, twd. ARGV: by, at, queue|'', id. Returns { 0 } none, { 1, fields } ok, { 2, fields } not a party.
const RELEASE = script(`
local s = redis.call('HMGET', KEYS[1], 'state', 'customer', 'claimedBy')
if not s[1] then return { 0 } end
if s[2] ~= ARGV[1] and s[3] ~= ARGV[1] then return { 2, redis.call('HGETALL', KEYS[1]) } end
redis.call('HSET', KEYS[1], 'state', 'waiting', 'waitingSince', ARGV[2])
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'queue', ARGV[3]) end
redis.call('HDEL', KEYS[1], 'claimedBy', 'claimedAt', 'notified')
redis.call('SADD', KEYS[2], ARGV[4])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[4])
return { 1, redis.call('HGETALL', KEYS[1]) }`);

// KEYS: tk:<id>, tref, tc, to, tws, twd. ARGV: by, id. Returns { 0 } none, { 1, fields } closed, { 2, fields } not a party.
const CLOSE = script(`
local s = redis.call('HMGET', KEYS[1], 'state', 'customer', 'claimedBy', 'ref')
if not s[1] then return { 0 } end
local all = redis.call('HGETALL', KEYS[1])
if s[2] ~= ARGV[1] and s[3] ~= ARGV[1] then return { 2, all } end
redis.call('DEL', KEYS[1])
redis.call('HDEL', KEYS[2], s[2] .. '\\n' .. s[4])
if redis.call('HINCRBY', KEYS[3], s[2], -1) <= 0 then redis.call('HDEL', KEYS[3], s[2]) end
redis.call('ZREM', KEYS[4], ARGV[2])
redis.call('SREM', KEYS[5], ARGV[2])
redis.call('ZREM', KEYS[6], ARGV[2])
return { 1, all }`);

// KEYS: index zset. ARGV: prefix, min, max, limit, queue|''. Returns the field lists.
const READ = script(`
local ids
if ARGV[5] == '' then ids = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[2], ARGV[3], 'LIMIT', 0, tonumber(ARGV[4]))
else ids = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[2], ARGV[3]) end
local out = {}
local limit = tonumber(ARGV[4])
for _, id in ipairs(ids) do
  if #out >= limit then break end
  local t = redis.call('HGETALL', ARGV[1] .. 'tk:' .. id)
  if #t > 0 and (ARGV[5] == '' or redis.call('HGET', ARGV[1] .. 'tk:' .. id, 'queue') == ARGV[5]) then out[#out + 1] = t end
end
return out`);

// KEYS: tk:<id>, twd. ARGV: waitingSince, id. 1 for the one caller that marks the period.
const MARK = script(`
local s = redis.call('HMGET', KEYS[1], 'state', 'waitingSince', 'notified')
if s[1] ~= 'waiting' or s[2] ~= ARGV[1] or s[3] then return 0 end
redis.call('HSET', KEYS[1], 'notified', '1')
redis.call('ZREM', KEYS[2], ARGV[2])
return 1`);

type Reply = null | number | Buffer | Reply[];
const str = (r: Reply | undefined): string => (Buffer.isBuffer(r) ? r.toString('utf8') : r === null || r === undefined ? '' : String(r));

/** A ticket from an HGETALL reply. */
function toTicket(fields: Reply | undefined): Ticket {
  const f = new Map<string, string>();
  const list = Array.isArray(fields) ? fields : [];
  for (let i = 0; i + 1 < list.length; i += 2) f.set(str(list[i]), str(list[i + 1]));
  const n = (k: string): number => Number(f.get(k));
  return {
    id: f.get('id') ?? '', queue: f.get('queue') ?? '', customer: f.get('customer') ?? '', ref: f.get('ref') ?? '',
    ...(f.has('notify') ? { notify: f.get('notify')! } : {}),
    openedAt: n('openedAt'), waitingSince: n('waitingSince'), state: f.get('state') === 'claimed' ? 'claimed' : 'waiting',
    ...(f.has('claimedBy') ? { claimedBy: f.get('claimedBy')! } : {}),
    ...(f.has('claimedAt') ? { claimedAt: n('claimedAt') } : {}),
  };
}

function step(r: Reply): TicketStep {
  const [code, fields] = Array.isArray(r) ? r : [0];
  if (code === 1) return { ok: true, ticket: toTicket(fields) };
  if (code === 2) return { ok: false, ticket: toTicket(fields) };
  return { ok: false };
}

/** How the ticket steps reach Redis (the store's script runner and plain commands). */
export interface TicketRedis {
  run(script: TicketScript, keys: readonly string[], args: readonly string[]): Promise<Reply>;
  cmd(args: readonly string[]): Promise<Reply>;
  /** The key prefix. */
  readonly prefix: string;
}

/** The ticket steps over `r`. */
export function redisTickets(r: TicketRedis) {
  const k = (...parts: string[]): string => r.prefix + parts.join(':');
  return {
    async open(t: NewTicket, maxPerCustomer?: number): Promise<TicketOpenResult> {
      const reply = await r.run(OPEN, [k('tk', t.id), k('tref'), k('tc'), k('to'), k('tws'), k('twd')],
        [t.id, t.queue, t.customer, t.ref, t.notify ?? '', String(t.openedAt), maxPerCustomer === undefined ? '' : String(maxPerCustomer), r.prefix]);
      const [code, extra] = Array.isArray(reply) ? reply : [0];
      if (code === 1) return { ok: true, ticket: toTicket(extra), existing: true };
      if (code === 2) return { ok: false, open: Number(str(extra)) };
      const ticket: Ticket = {
        id: t.id, queue: t.queue, customer: t.customer, ref: t.ref, ...(t.notify !== undefined ? { notify: t.notify } : {}),
        openedAt: t.openedAt, waitingSince: t.openedAt, state: 'waiting',
      };
      return { ok: true, ticket, existing: false };
    },
    async get(id: string): Promise<Ticket | undefined> {
      const reply = await r.cmd(['HGETALL', k('tk', id)]);
      return Array.isArray(reply) && reply.length > 0 ? toTicket(reply) : undefined;
    },
    async list(queue: string | undefined, limit: number): Promise<Ticket[]> {
      const reply = await r.run(READ, [k('to')], [r.prefix, '-inf', '+inf', String(limit), queue ?? '']);
      return (Array.isArray(reply) ? reply : []).map(toTicket);
    },
    async claim(id: string, agent: string, at: number): Promise<TicketStep> {
      return step(await r.run(CLAIM, [k('tk', id), k('tws'), k('twd')], [agent, String(at), id]));
    },
    async release(id: string, by: string, at: number, queue?: string): Promise<TicketStep> {
      return step(await r.run(RELEASE, [k('tk', id), k('tws'), k('twd')], [by, String(at), queue ?? '', id]));
    },
    async close(id: string, by: string): Promise<TicketStep> {
      return step(await r.run(CLOSE, [k('tk', id), k('tref'), k('tc'), k('to'), k('tws'), k('twd')], [by, id]));
    },
    async due(before: number, limit: number): Promise<Ticket[]> {
      const reply = await r.run(READ, [k('twd')], [r.prefix, '-inf', String(before), String(limit), '']);
      return (Array.isArray(reply) ? reply : []).map(toTicket).filter((t) => t.state === 'waiting');
    },
    async mark(id: string, waitingSince: number): Promise<boolean> {
      return Number(str(await r.run(MARK, [k('tk', id), k('twd')], [String(waitingSince), id]))) === 1;
    },
    async waiting(): Promise<number> {
      return Number(str(await r.cmd(['SCARD', k('tws')])));
    },
  };
}
