/**
 * The archive part of every store (memory, SQLite, Redis): appends chain in order, concurrent
 * appends to one ref never fork the chain (each index once, the chain verifies), refs are
 * separate, a submission with a bad signature is refused and not stored, the disclosure
 * statement is kept, replaced and removed like the others; an erasure purge's tombstone refuses
 * later appends to the ref (not for a held ref, not after the retention sweep).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import {
  IdentityKeyPair,
  decodeArchiveEntry,
  isParleyError,
  makeArchiveSubmission,
  verifyArchiveChain,
  type ArchiveSubmission,
} from '@parley/protocol';
import { MemoryStore } from '../src/store/memory.js';
import { SqliteStore } from '../src/store/sqlite.js';
import { RedisStore } from '../src/store/redis.js';
import type { RelayStore } from '../src/store/types.js';
import { REDIS_SKIP, RedisServer, redisAvailable } from './redis-server.js';
import { setupCrypto } from './helpers.js';

const rnd = (n: number) => new Uint8Array(randomBytes(n));
const quiet = { warn: () => undefined, error: () => undefined };
let server: RedisServer | undefined;

before(async () => {
  await setupCrypto();
  if (redisAvailable()) server = await RedisServer.start();
});
after(async () => {
  await server?.destroy();
});

function submissions(who: IdentityKeyPair, ref: string, n: number): ArchiveSubmission[] {
  return Array.from({ length: n }, (_, i) => makeArchiveSubmission({ ref, senderKey: who.publicIdentity.signingKey, senderSeq: i, sealed: rnd(80) }, (p) => who.sign('archiveEntry', p)));
}

const stores: [string, () => Promise<RelayStore> | RelayStore][] = [
  ['memory', () => new MemoryStore()],
  ['sqlite', () => new SqliteStore(':memory:')],
  ['redis', () => (server ? RedisStore.connect({ url: server.url, prefix: `a${randomBytes(6).toString('hex')}:`, logger: quiet }) : Promise.reject(new Error(REDIS_SKIP)))],
];

for (const [name, open] of stores) {
  describe(`archive store: ${name}`, { skip: name === 'redis' && !redisAvailable() ? REDIS_SKIP : false }, () => {
    test('concurrent appends from two members chain once; refs are separate; bad signatures refused', async () => {
      const store = await open();
      try {
        const a = IdentityKeyPair.generate();
        const b = IdentityKeyPair.generate();
        const all = [...submissions(a, 'conv-x', 10), ...submissions(b, 'conv-x', 10)];
        const indices = await Promise.all(all.map((s) => store.archiveAppend(s, Date.now())));
        assert.deepEqual([...indices].sort((x, y) => x - y), Array.from({ length: 20 }, (_, i) => i));
        await store.archiveAppend(submissions(a, 'conv-y', 1)[0]!, Date.now());
        const entries = await store.archiveEntries('conv-x');
        assert.equal(entries.length, 20);
        assert.deepEqual(entries.map((e) => decodeArchiveEntry(e).index), Array.from({ length: 20 }, (_, i) => i));
        assert.deepEqual(verifyArchiveChain('conv-x', entries).breaks, []);
        assert.equal((await store.archiveEntries('conv-y')).length, 1);
        const bad = { ...submissions(a, 'conv-x', 1)[0]!, senderSeq: 99 };
        await assert.rejects(store.archiveAppend(bad, Date.now()), (e: unknown) => isParleyError(e, 'INVALID_SIGNATURE'));
        assert.equal((await store.archiveEntries('conv-x')).length, 20);
      } finally {
        await store.close();
      }
    });

    test('appenders, purge (not while held), hold/release, retention sweep, opening notices', async () => {
      const store = await open();
      try {
        const a = IdentityKeyPair.generate();
        const b = IdentityKeyPair.generate();
        const t0 = 1_000_000;
        for (const s of submissions(a, 'r-old', 2)) await store.archiveAppend(s, t0, 'dev-a');
        await store.archiveAppend(submissions(b, 'r-old', 1)[0]!, t0 + 5, 'dev-b');
        for (const s of submissions(a, 'r-new', 2)) await store.archiveAppend(s, t0 + 100, 'dev-a');
        for (const s of submissions(a, 'r-held', 1)) await store.archiveAppend(s, t0, 'dev-a');
        assert.deepEqual(await store.archiveAppenders('r-old'), ['dev-a', 'dev-b']);
        assert.deepEqual(await store.archiveAppenders('r-none'), []);
        // Openings: a notice per appender, until each acknowledges.
        const id1 = await store.archiveRecordOpening({ ref: 'r-old', at: t0 + 10, reason: 'case 1', auditHash: 'ab'.repeat(32) });
        const id2 = await store.archiveRecordOpening({ ref: 'r-new', at: t0 + 11, reason: 'case 2', auditHash: 'cd'.repeat(32) });
        assert.ok(id2 > id1);
        assert.deepEqual((await store.archivePendingOpenings('dev-a')).map((o) => [o.id, o.ref, o.reason]), [[id1, 'r-old', 'case 1'], [id2, 'r-new', 'case 2']]);
        assert.deepEqual((await store.archivePendingOpenings('dev-b')).map((o) => o.id), [id1]);
        assert.deepEqual((await store.archiveOpeningsAfter(id1, 10)).map((o) => [o.id, o.at, o.auditHash]), [[id2, t0 + 11, 'cd'.repeat(32)]]);
        await store.archiveOpeningNoticed(id2, 'dev-a');
        assert.deepEqual((await store.archivePendingOpenings('dev-a')).map((o) => o.id), [id1]);
        // Hold: purge and sweep leave the ref alone; release lifts it.
        await store.archiveHold({ ref: 'r-held', reason: 'litigation 42', at: t0 });
        assert.deepEqual(await store.archiveHolds(), [{ ref: 'r-held', reason: 'litigation 42', at: t0 }]);
        assert.deepEqual(await store.archivePurge('r-held'), { deleted: 0, held: true });
        assert.equal((await store.archiveEntries('r-held')).length, 1);
        // Sweep: refs whose newest entry is older than the cutoff, except held ones.
        assert.deepEqual(await store.archiveSweep(t0 + 50, 10), { refs: 1, entries: 3 });
        assert.deepEqual(await store.archiveEntries('r-old'), []);
        assert.deepEqual(await store.archiveAppenders('r-old'), []);
        assert.deepEqual(await store.archivePendingOpenings('dev-b'), [], 'the purged ref\'s notices go with it');
        assert.equal((await store.archiveEntries('r-held')).length, 1);
        assert.equal((await store.archiveEntries('r-new')).length, 2);
        assert.equal(await store.archiveRelease('r-held'), true);
        assert.equal(await store.archiveRelease('r-held'), false);
        assert.deepEqual(await store.archivePurge('r-held'), { deleted: 1, held: false });
        assert.deepEqual(await store.archivePurge('r-new'), { deleted: 2, held: false });
        assert.deepEqual(await store.archiveHolds(), []);
        // A purged ref starts a fresh chain.
        assert.equal(await store.archiveAppend(submissions(b, 'r-new', 1)[0]!, t0 + 200, 'dev-b'), 0);
        assert.deepEqual(await store.archiveAppenders('r-new'), ['dev-b']);
      } finally {
        await store.close();
      }
    });

    test('an erasure purge tombstones the ref: later appends refused; not a held ref, not the sweep', async () => {
      const store = await open();
      try {
        const a = IdentityKeyPair.generate();
        const t0 = 2_000_000;
        const [s0, s1, s2] = submissions(a, 'r-erased', 3);
        await store.archiveAppend(s0!, t0, 'dev-a');
        assert.deepEqual(await store.archivePurge('r-erased', t0 + 1), { deleted: 1, held: false });
        const erased = (e: unknown) => isParleyError(e, 'FORBIDDEN') && e.details?.reason === 'archiveErased';
        await assert.rejects(store.archiveAppend(s1!, t0 + 2, 'dev-a'), erased, 'a queued submission after the erasure');
        await assert.rejects(store.archiveAppend(s2!, t0 + 3), erased);
        assert.deepEqual(await store.archiveEntries('r-erased'), [], 'nothing stored');
        assert.deepEqual(await store.archiveAppenders('r-erased'), []);
        assert.deepEqual(await store.archivePurge('r-erased', t0 + 4), { deleted: 0, held: false }, 'a retried purge');
        // A held ref: nothing deleted, no tombstone, appends go on.
        const [h0, h1] = submissions(a, 'r-kept', 2);
        await store.archiveAppend(h0!, t0, 'dev-a');
        await store.archiveHold({ ref: 'r-kept', reason: 'litigation 7', at: t0 });
        assert.deepEqual(await store.archivePurge('r-kept', t0 + 1), { deleted: 0, held: true });
        assert.equal(await store.archiveAppend(h1!, t0 + 2, 'dev-a'), 1);
        // The retention sweep (and a purge without erasedAt) leaves no tombstone.
        const [w0, w1] = submissions(a, 'r-swept', 2);
        await store.archiveAppend(w0!, t0, 'dev-a');
        assert.deepEqual(await store.archiveSweep(t0 + 1, 10), { refs: 1, entries: 1 });
        assert.equal(await store.archiveAppend(w1!, t0 + 10, 'dev-a'), 0, 'a resumed conversation is archivable again');
        assert.deepEqual(await store.archivePurge('r-swept'), { deleted: 1, held: false });
        assert.equal(await store.archiveAppend(w0!, t0 + 11, 'dev-a'), 0);
      } finally {
        await store.close();
      }
    });

    test('the disclosure statement: kept, replaced, removed', async () => {
      const store = await open();
      try {
        const up = { identity: { signingKey: rnd(32), dhKey: rnd(32), binding: rnd(64) }, signedPrekey: { id: 1, createdAt: Date.now(), publicKey: rnd(32), signature: rnd(64) }, oneTimePrekeys: [] };
        const d1 = rnd(200);
        const d2 = rnd(150);
        await store.putPrekeys('dev', { ...up, disclosure: d1 });
        assert.deepEqual((await store.getIdentity('dev'))?.disclosure, d1);
        await store.putPrekeys('dev', up);
        assert.deepEqual((await store.takeBundle('dev'))?.disclosure, d1, 'absent keeps it');
        await store.putPrekeys('dev', { ...up, disclosure: d2 });
        assert.deepEqual((await store.getIdentity('dev'))?.disclosure, d2);
        await store.putPrekeys('dev', { ...up, disclosure: new Uint8Array(0) });
        assert.equal((await store.getIdentity('dev'))?.disclosure, undefined);
      } finally {
        await store.close();
      }
    });
  });
}

test('SQLite schema 8 → 10: the appenders of older entries come from the devices\' signing keys; the erased-refs table is added', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'parley-archive-mig-'));
  try {
    const path = join(dir, 'relay.db');
    const a = IdentityKeyPair.generate();
    const store = new SqliteStore(path);
    const up = { identity: a.publicIdentity, signedPrekey: { id: 1, createdAt: Date.now(), publicKey: rnd(32), signature: rnd(64) }, oneTimePrekeys: [] };
    await store.putPrekeys('dev-a', up);
    for (const s of submissions(a, 'r-old', 2)) await store.archiveAppend(s, Date.now()); // as schema 8 did: no device id
    await store.archiveAppend(submissions(IdentityKeyPair.generate(), 'r-gone', 1)[0]!, Date.now()); // a sender without a device row
    await store.close();
    const db = new Database(path);
    db.exec('DELETE FROM archive_appenders');
    db.exec('DROP TABLE archive_erased');
    db.pragma('user_version = 8');
    db.close();
    const reopened = new SqliteStore(path);
    try {
      assert.deepEqual(await reopened.archiveAppenders('r-old'), ['dev-a']);
      assert.deepEqual(await reopened.archiveAppenders('r-gone'), []);
      assert.equal((await reopened.archiveEntries('r-old')).length, 2);
      assert.deepEqual(await reopened.archivePurge('r-old', Date.now()), { deleted: 2, held: false });
      await assert.rejects(reopened.archiveAppend(submissions(a, 'r-old', 1)[0]!, Date.now()), (e: unknown) => isParleyError(e, 'FORBIDDEN'));
    } finally {
      await reopened.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
