/**
 * The compliance archive in Redis (the {@link ArchiveStore} part of `RedisStore`): `P:ar:<ref>`
 * is a list of encoded entries in index order. Lua cannot hash and verify, so an append reads the
 * last entry, chains the submission to it in Node (`chainArchiveEntry`), and pushes it with a
 * script that appends only if the list still has the length it read (compare-and-append); a
 * concurrent append through another node makes it re-read and retry (after a short random wait).
 * Appends to one ref through one node are queued, so they never race each other. The chain
 * never forks.
 *
 * The archive's operations (each step one script, so atomic across nodes):
 * - `P:arw:<ref>` set of the devices that appended; `P:arl` zset ref → newest append (ms), for
 *   the retention sweep;
 * - `P:arh` hash ref → JSON `{reason, at}`: legal holds (a purge checks it in the same script);
 * - `P:are` hash ref → time (ms): refs erased by a member's erasure purge (tombstones, set by the
 *   purge script unless held); the append script refuses a ref found there;
 * - openings: `P:aroid` counter, `P:aro` hash id → JSON `{ref, at, reason, auditHash}`, `P:aroz`
 *   zset id → id (in order, for the live push), `P:aror:<ref>` set of the ref's opening ids,
 *   `P:arp:<device>` set of the opening ids the device has not acknowledged.
 */
import { createHash } from 'node:crypto';
import { ParleyError, chainArchiveEntry, type ArchiveSubmission } from '@parley/protocol/verify';
import type { ArchiveHold, ArchiveOpening } from '../store/types.js';
import { archiveErasedError } from './erased.js';

/** A Lua script (its SHA-1 for EVALSHA). */
export interface ArchiveScript {
  readonly source: string;
  readonly sha: string;
}
const script = (source: string): ArchiveScript => ({ source, sha: createHash('sha1').update(source).digest('hex') });

type Reply = null | number | Buffer | Reply[];

// KEYS: ar:<ref>, arw:<ref>, arl, are. ARGV: expected length, entry, at, device ('' none), ref.
// Returns 1 appended, 0 the list changed meanwhile, -1 the ref was erased.
const APPEND = script(`
if redis.call('HEXISTS', KEYS[4], ARGV[5]) == 1 then return -1 end
if redis.call('LLEN', KEYS[1]) ~= tonumber(ARGV[1]) then return 0 end
redis.call('RPUSH', KEYS[1], ARGV[2])
if ARGV[4] ~= '' then redis.call('SADD', KEYS[2], ARGV[4]) end
local cur = tonumber(redis.call('ZSCORE', KEYS[3], ARGV[5]) or '0')
if tonumber(ARGV[3]) > cur then redis.call('ZADD', KEYS[3], ARGV[3], ARGV[5]) end
return 1`);

// KEYS: arh, ar:<ref>, arw:<ref>, arl, aror:<ref>, aro, aroz, are. ARGV: ref, prefix, erased at ('' not an erasure).
// Returns -1 when held, else the number of entries deleted (and an erasure leaves its tombstone).
const PURGE = script(`
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return -1 end
local n = redis.call('LLEN', KEYS[2])
local ids = redis.call('SMEMBERS', KEYS[5])
if #ids > 0 then
  for _, dev in ipairs(redis.call('SMEMBERS', KEYS[3])) do redis.call('SREM', ARGV[2] .. 'arp:' .. dev, unpack(ids)) end
  redis.call('HDEL', KEYS[6], unpack(ids))
  redis.call('ZREM', KEYS[7], unpack(ids))
end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[5])
redis.call('ZREM', KEYS[4], ARGV[1])
if ARGV[3] ~= '' then redis.call('HSET', KEYS[8], ARGV[1], ARGV[3]) end
return n`);

// KEYS: aroid, aro, aroz, aror:<ref>, arw:<ref>. ARGV: JSON opening (without id), prefix.
// Returns the new opening's id.
const OPENING = script(`
local id = redis.call('INCR', KEYS[1])
redis.call('HSET', KEYS[2], id, ARGV[1])
redis.call('ZADD', KEYS[3], id, id)
redis.call('SADD', KEYS[4], id)
for _, dev in ipairs(redis.call('SMEMBERS', KEYS[5])) do redis.call('SADD', ARGV[2] .. 'arp:' .. dev, id) end
return id`);

/** Retries of a compare-and-append that lost to concurrent appends on other nodes. */
const MAX_TRIES = 32;

const bytes = (b: Buffer): Uint8Array => new Uint8Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
const arg = (u: Uint8Array): Buffer => Buffer.from(u.buffer, u.byteOffset, u.byteLength);

/** The archive steps over the store's script runner and command sender. */
export function redisArchive(io: {
  run: (s: ArchiveScript, keys: string[], args: (string | Buffer)[]) => Promise<Reply>;
  cmd: (args: (string | Buffer)[]) => Promise<Reply>;
  prefix: string;
}): {
  append: (s: ArchiveSubmission, at: number, deviceId?: string) => Promise<number>;
  entries: (ref: string) => Promise<Uint8Array[]>;
  appenders: (ref: string) => Promise<string[]>;
  purge: (ref: string, erasedAt?: number) => Promise<{ deleted: number; held: boolean }>;
  hold: (h: ArchiveHold) => Promise<void>;
  release: (ref: string) => Promise<boolean>;
  holds: () => Promise<ArchiveHold[]>;
  sweep: (before: number, limit: number) => Promise<{ refs: number; entries: number }>;
  recordOpening: (o: Omit<ArchiveOpening, 'id'>) => Promise<number>;
  openingsAfter: (afterId: number, limit: number) => Promise<ArchiveOpening[]>;
  pendingOpenings: (deviceId: string) => Promise<ArchiveOpening[]>;
  noticed: (id: number, deviceId: string) => Promise<void>;
} {
  const key = (ref: string): string => `${io.prefix}ar:${ref}`;
  const k = (...parts: string[]): string => io.prefix + parts.join(':');
  const text = (r: Reply | undefined): string => (Buffer.isBuffer(r) ? r.toString('utf8') : r === null || r === undefined ? '' : String(r));
  const list = (r: Reply): Reply[] => (Array.isArray(r) ? r : []);
  const purge = async (ref: string, erasedAt?: number): Promise<{ deleted: number; held: boolean }> => {
    const keys = [k('arh'), key(ref), k('arw', ref), k('arl'), k('aror', ref), k('aro'), k('aroz'), k('are')];
    const n = Number(await io.run(PURGE, keys, [ref, io.prefix, erasedAt === undefined ? '' : String(erasedAt)]));
    return n < 0 ? { deleted: 0, held: true } : { deleted: n, held: false };
  };
  const openings = async (ids: string[]): Promise<ArchiveOpening[]> => {
    if (ids.length === 0) return [];
    const rows = list(await io.cmd(['HMGET', k('aro'), ...ids]));
    const out: ArchiveOpening[] = [];
    rows.forEach((r, i) => {
      if (!Buffer.isBuffer(r)) return;
      const o = JSON.parse(r.toString('utf8')) as Omit<ArchiveOpening, 'id'>;
      out.push({ id: Number(ids[i]), ref: o.ref, at: o.at, reason: o.reason, auditHash: o.auditHash });
    });
    return out.sort((a, b) => a.id - b.id);
  };
  /** The last queued append per ref on this node. */
  const queues = new Map<string, Promise<unknown>>();
  const appendNow = async (s: ArchiveSubmission, at: number, deviceId?: string): Promise<number> => {
    for (let i = 0; i < MAX_TRIES; i++) {
      const len = Number(await io.cmd(['LLEN', key(s.ref)]));
      const last = len > 0 ? await io.cmd(['LINDEX', key(s.ref), '-1']) : null;
      const entry = chainArchiveEntry(s, Buffer.isBuffer(last) ? bytes(last) : undefined);
      const done = Number(await io.run(APPEND, [key(s.ref), k('arw', s.ref), k('arl'), k('are')], [String(len), arg(entry), String(at), deviceId ?? '', s.ref]));
      if (done === 1) return len;
      if (done < 0) throw archiveErasedError();
      await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 5 * (i + 1))));
    }
    throw new ParleyError('CONFLICT', 'archive append kept losing to concurrent appends');
  };
  return {
    append(s, at, deviceId) {
      const run = (queues.get(s.ref) ?? Promise.resolve()).then(() => appendNow(s, at, deviceId));
      const settled = run.catch(() => undefined);
      queues.set(s.ref, settled);
      void settled.then(() => {
        if (queues.get(s.ref) === settled) queues.delete(s.ref);
      });
      return run;
    },
    async entries(ref) {
      const r = await io.cmd(['LRANGE', key(ref), '0', '-1']);
      return Array.isArray(r) ? r.filter(Buffer.isBuffer).map(bytes) : [];
    },
    async appenders(ref) {
      return list(await io.cmd(['SMEMBERS', k('arw', ref)])).map(text).sort();
    },
    purge,
    async hold(h) {
      await io.cmd(['HSET', k('arh'), h.ref, JSON.stringify({ reason: h.reason, at: h.at })]);
    },
    async release(ref) {
      return Number(await io.cmd(['HDEL', k('arh'), ref])) > 0;
    },
    async holds() {
      const r = list(await io.cmd(['HGETALL', k('arh')]));
      const out: ArchiveHold[] = [];
      for (let i = 0; i + 1 < r.length; i += 2) {
        const h = JSON.parse(text(r[i + 1])) as { reason: string; at: number };
        out.push({ ref: text(r[i]), reason: h.reason, at: h.at });
      }
      return out.sort((a, b) => (a.ref < b.ref ? -1 : 1));
    },
    async sweep(before, limit) {
      const held = new Set((await this.holds()).map((h) => h.ref));
      const due = list(await io.cmd(['ZRANGEBYSCORE', k('arl'), '-inf', `(${before}`])).map(text).filter((ref) => !held.has(ref)).slice(0, limit);
      let refs = 0;
      let entries = 0;
      for (const ref of due) {
        const r = await purge(ref);
        if (r.held) continue;
        refs++;
        entries += r.deleted;
      }
      return { refs, entries };
    },
    async recordOpening(o) {
      const json = JSON.stringify({ ref: o.ref, at: o.at, reason: o.reason, auditHash: o.auditHash });
      return Number(await io.run(OPENING, [k('aroid'), k('aro'), k('aroz'), k('aror', o.ref), k('arw', o.ref)], [json, io.prefix]));
    },
    async openingsAfter(afterId, limit) {
      return openings(list(await io.cmd(['ZRANGEBYSCORE', k('aroz'), `(${afterId}`, '+inf', 'LIMIT', '0', String(limit)])).map(text));
    },
    async pendingOpenings(deviceId) {
      return openings(list(await io.cmd(['SMEMBERS', k('arp', deviceId)])).map(text));
    },
    async noticed(id, deviceId) {
      await io.cmd(['SREM', k('arp', deviceId), String(id)]);
    },
  };
}
