/**
 * The archive's operations at the relay, over real sockets, a SQLite file and the
 * `parley-compliance` CLI writing beside the running relay:
 * - `purge` with `archiveRefs`: a device that never appended to a ref is refused (`FORBIDDEN`
 *   `notArchiveMember`, nothing deleted); an appender's purge deletes every member's entries of
 *   the ref (0 rows in the file, the canary sealed bytes gone from the database and its WAL) and
 *   names the held ref (`archiveHeld`), whose entries stay; a retried purge is no error; later
 *   appends to the erased ref are refused (`FORBIDDEN` `archiveErased`, nothing stored), to the
 *   held ref accepted;
 * - opening notices: `parley-compliance open --reason` pushes `archiveOpened { ref, at, reason }`
 *   live to a connected appender and at login to one that was away; an unacknowledged notice comes
 *   again at the next login, an acknowledged one never again;
 * - the retention sweep (`archiveRetentionDays`, injected clock) deletes refs whose newest entry
 *   is older, but not a held one until `parley-compliance release`; a swept ref takes appends again.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import {
  archiveSealAd,
  decodeArchiveEntry,
  encodeArchiveSubmission,
  encodeArchivedMessage,
  makeArchiveSubmission,
  sealToArchiveKey,
  type IdentityKeyPair,
} from '@parley/protocol';
import type { ArchiveOpenedNotice } from '@parley/protocol/wire';
import { parseArchiveRetentionDays } from '../src/cli-options.js';
import { answer, call, complianceCli as cli, newDevice, open, setupCrypto, startRelay, until, upload, type ClientSocket } from './helpers.js';

const DAY = 86_400_000;

test('archive ops: member-only purge, legal hold, opening notices once per device, retention sweep', async (t) => {
  await setupCrypto();
  const dir = mkdtempSync(join(tmpdir(), 'parley-archive-ops-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const dbPath = join(dir, 'relay.db');
  let clock = Date.now();
  const relay = await startRelay({
    store: { sqlite: dbPath }, now: () => clock, archiveRetentionDays: 30, archiveNoticeIntervalMs: 50, limits: { queuePurgeIntervalMs: 100 },
  });
  t.after(() => relay.close());
  const keyPath = join(dir, 'compliance.key');
  const archiveKey = new Uint8Array(Buffer.from((await cli('keygen', '--out', keyPath)).out.trim(), 'hex'));
  const audit = join(dir, 'audit.log');

  /** Logs in with an `archiveOpened` listener in place before the auth answer; `ack` decides whether to acknowledge. */
  const sockets: ClientSocket[] = [];
  t.after(() => sockets.forEach((s) => s.disconnect()));
  const connect = async (who: IdentityKeyPair, ack = true) => {
    const { socket, hello } = await open(relay.url);
    sockets.push(socket);
    const notices: ArchiveOpenedNotice[] = [];
    socket.on('archiveOpened', (n, done) => {
      notices.push(n);
      if (ack) done();
    });
    assert.equal((await call(socket, 'auth', answer(who, hello, relay.origin))).ok, true);
    return { socket, notices };
  };
  const customer = newDevice();
  const bot = newDevice();
  const outsider = newDevice();
  const c = await connect(customer);
  const b = await connect(bot);
  const o = await connect(outsider);
  for (const [s, d] of [[c, customer], [b, bot], [o, outsider]] as const) await call(s.socket, 'uploadPrekeys', upload(d, []));

  const seqs = new Map<string, number>();
  /** Appends and asserts it was accepted, or with `refused` returns the refusal's reason. */
  const append = async (s: ClientSocket, who: IdentityKeyPair, ref: string, body: string, refused = false) => {
    const k = `${who.deviceId}/${ref}`;
    const senderSeq = seqs.get(k) ?? 0;
    seqs.set(k, senderSeq + 1);
    const sealed = sealToArchiveKey(archiveKey, encodeArchivedMessage({ conversation: ref, id: `m-${body}`, from: who.deviceId, at: clock, body }), archiveSealAd(ref, who.publicIdentity.signingKey));
    const submission = encodeArchiveSubmission(makeArchiveSubmission({ ref, senderKey: who.publicIdentity.signingKey, senderSeq, sealed }, (p) => who.sign('archiveEntry', p)));
    const r = await call(s, 'archiveAppend', { ref, submission });
    if (refused) {
      assert.equal(r.error?.code, 'FORBIDDEN');
      return r.error?.details?.reason;
    }
    assert.equal(r.ok, true, JSON.stringify(r.error));
    return undefined;
  };
  // R1: both members; R2: held; R3: the bot alone (swept); R4: opened.
  await append(c.socket, customer, 'R1', 'hello');
  await append(b.socket, bot, 'R1', 'hi there');
  await append(c.socket, customer, 'R2', 'keep me');
  await append(b.socket, bot, 'R3', 'old news');
  await append(c.socket, customer, 'R4', 'question');
  await append(b.socket, bot, 'R4', 'answer');
  const rows = (ref: string): number => {
    const db = new Database(dbPath, { readonly: true });
    try {
      return db.prepare('SELECT COUNT(*) FROM archive_entries WHERE ref = ?').pluck().get(ref) as number;
    } finally {
      db.close();
    }
  };
  const canary = decodeArchiveEntry((await relay.store.archiveEntries('R1'))[1]!).submission.sealed;
  const inFiles = (): boolean => [dbPath, `${dbPath}-wal`].filter(existsSync).some((f) => readFileSync(f).includes(Buffer.from(canary)));
  assert.equal(inFiles(), true, 'the canary is in the relay\'s files before the purge');

  // A device that never appended: refused, nothing deleted.
  const refused = await call(o.socket, 'purge', { targets: [], archiveRefs: ['R1'] });
  assert.equal(refused.error?.code, 'FORBIDDEN');
  assert.equal(refused.error?.details?.reason, 'notArchiveMember');
  assert.equal(rows('R1'), 2);

  // Legal hold on R2 (audited), then the customer's erasure purge of R1 and R2.
  const held = await cli('hold', '--db', dbPath, '--ref', 'R2', '--reason', 'litigation 2026-17', '--audit', audit, '--by', 'dora');
  assert.equal(held.code, 0, held.err);
  assert.match((await cli('holds', '--db', dbPath)).out, /^R2 since .*: litigation 2026-17$/m);
  const purged = await call(c.socket, 'purge', { targets: [], archiveRefs: ['R1', 'R2'] });
  assert.equal(purged.ok, true, JSON.stringify(purged.error));
  assert.equal(purged.archiveEntries, 2, 'both members\' entries of R1');
  assert.deepEqual(purged.archiveHeld, ['R2']);
  assert.equal(rows('R1'), 0);
  assert.equal(rows('R2'), 1);
  assert.equal(inFiles(), false, 'the purged sealed bytes are gone from the file and its WAL');
  // A retried purge: nothing left, no error.
  const again = await call(c.socket, 'purge', { targets: [], archiveRefs: ['R1'] });
  assert.deepEqual([again.ok, again.archiveEntries], [true, 0]);
  // The erasure's tombstone: submissions still queued at either member are refused, nothing stored;
  // the held ref was not erased, so its appends go on.
  assert.equal(await append(b.socket, bot, 'R1', 'queued in the bot outbox', true), 'archiveErased');
  assert.equal(await append(c.socket, customer, 'R1', 'from a slow client', true), 'archiveErased');
  assert.equal(rows('R1'), 0);
  await append(c.socket, customer, 'R2', 'still kept');
  assert.equal(rows('R2'), 2);

  // Opening notices: the bot is away; the customer gets it live.
  b.socket.disconnect();
  const opened = await cli('open', '--db', dbPath, '--key', keyPath, '--ref', 'R4', '--audit', audit, '--opener', 'carol', '--reason', 'complaint 88');
  assert.equal(opened.code, 0, opened.err);
  assert.match(opened.out, /question[\s\S]*answer/);
  await until(() => c.notices.length === 1, 5000);
  assert.deepEqual({ ...c.notices[0] }, { ref: 'R4', at: c.notices[0]!.at, reason: 'complaint 88' });
  assert.ok(Math.abs(c.notices[0]!.at - Date.now()) < 60_000);
  // The bot at its next login, without acknowledging: again at the login after; then never.
  const b2 = await connect(bot, false);
  await until(() => b2.notices.length === 1, 5000);
  b2.socket.disconnect();
  const b3 = await connect(bot);
  await until(() => b3.notices.length === 1, 5000);
  assert.equal(b3.notices[0]!.reason, 'complaint 88');
  await new Promise((r) => setTimeout(r, 300)); // several polls: no second push
  assert.equal(b3.notices.length, 1);
  c.socket.disconnect();
  const c2 = await connect(customer);
  const b4 = await connect(bot);
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual([c.notices.length, c2.notices.length, b4.notices.length], [1, 0, 0], 'acknowledged: never again');
  // The audit log has the hold and the opening, with their reasons.
  const records = readFileSync(audit, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { action: string; ref: string; reason: string });
  assert.deepEqual(records.map((r) => [r.action, r.ref, r.reason]), [['hold', 'R2', 'litigation 2026-17'], ['open', 'R4', 'complaint 88']]);
  assert.equal((await cli('audit-verify', '--audit', audit)).code, 0);

  // Retention: 31 days on, the sweep deletes R3 and R4 but not the held R2, until released.
  clock += 31 * DAY;
  await until(() => rows('R3') === 0 && rows('R4') === 0, 5000);
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(rows('R2'), 2, 'held: kept by the sweep');
  assert.equal((await cli('release', '--db', dbPath, '--ref', 'R2', '--reason', 'case closed', '--audit', audit, '--by', 'dora')).code, 0);
  await until(() => rows('R2') === 0, 5000);
  assert.equal((await cli('release', '--db', dbPath, '--ref', 'R2', '--reason', 'again', '--audit', audit, '--by', 'dora')).code, 1, 'not held any more');
  // The sweep leaves no tombstone: a resumed conversation is archived again.
  await append(b4.socket, bot, 'R3', 'back again');
  assert.equal(rows('R3'), 1);
});

test('--archive-retention-days: whole days ≥ 1', () => {
  assert.equal(parseArchiveRetentionDays('30'), 30);
  for (const bad of ['0', '-1', '1.5', '', 'x']) assert.throws(() => parseArchiveRetentionDays(bad), /--archive-retention-days/);
});
