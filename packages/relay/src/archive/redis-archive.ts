/**
 * The compliance archive in Redis (the {@link ArchiveStore} part of `RedisStore`): `P:ar:<ref>`
 * is a list of encoded entries in index order. Lua cannot hash and verify, so an append reads the
 * last entry, chains the submission to it in Node (`chainArchiveEntry`), and pushes it with a
 * script that appends only if the list still has the length it read (compare-and-append); a
 * concurrent append through another node makes it re-read and retry (after a short random wait).
 * Appends to one ref through one node are queued, so they never race each other. The chain
 * never forks.
 */
import { createHash } from 'node:crypto';
import { ParleyError, chainArchiveEntry, type ArchiveSubmission } from '@parley/protocol/verify';

/** A Lua script (its SHA-1 for EVALSHA). */
export interface ArchiveScript {
  readonly source: string;
  readonly sha: string;
}
const script = (source: string): ArchiveScript => ({ source, sha: createHash('sha1').update(source).digest('hex') });

type Reply = null | number | Buffer | Reply[];

// KEYS: ar:<ref>. ARGV: expected length, entry. Returns 1 appended, 0 the list changed meanwhile.
const APPEND = script(`
if redis.call('LLEN', KEYS[1]) ~= tonumber(ARGV[1]) then return 0 end
redis.call('RPUSH', KEYS[1], ARGV[2])
return 1`);

/** Retries of a compare-and-append that lost to concurrent appends on other nodes. */
const MAX_TRIES = 32;

const bytes = (b: Buffer): Uint8Array => new Uint8Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
const arg = (u: Uint8Array): Buffer => Buffer.from(u.buffer, u.byteOffset, u.byteLength);

/** The archive steps over the store's script runner and command sender. */
export function redisArchive(io: {
  run: (s: ArchiveScript, keys: string[], args: (string | Buffer)[]) => Promise<Reply>;
  cmd: (args: (string | Buffer)[]) => Promise<Reply>;
  prefix: string;
}): { append: (s: ArchiveSubmission) => Promise<number>; entries: (ref: string) => Promise<Uint8Array[]> } {
  const key = (ref: string): string => `${io.prefix}ar:${ref}`;
  /** The last queued append per ref on this node. */
  const queues = new Map<string, Promise<unknown>>();
  const appendNow = async (s: ArchiveSubmission): Promise<number> => {
    for (let i = 0; i < MAX_TRIES; i++) {
      const len = Number(await io.cmd(['LLEN', key(s.ref)]));
      const last = len > 0 ? await io.cmd(['LINDEX', key(s.ref), '-1']) : null;
      const entry = chainArchiveEntry(s, Buffer.isBuffer(last) ? bytes(last) : undefined);
      if (Number(await io.run(APPEND, [key(s.ref)], [String(len), arg(entry)])) === 1) return len;
      await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 5 * (i + 1))));
    }
    throw new ParleyError('CONFLICT', 'archive append kept losing to concurrent appends');
  };
  return {
    append(s) {
      const run = (queues.get(s.ref) ?? Promise.resolve()).then(() => appendNow(s));
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
  };
}
