/**
 * The compliance archive at the relay, over real sockets and a SQLite file (THREATS P3):
 * - an archive disclosure travels with the statements (`uploadPrekeys` → `fetchBundle` /
 *   `fetchIdentity`), byte for byte, and an empty one removes it;
 * - `archiveAppend` from two members chains one conversation's entries in relay order; a
 *   submission in another device's name is `FORBIDDEN` (`notSender`), a bad signature
 *   `INVALID_SIGNATURE`, and neither is stored;
 * - `parley-compliance verify` says OK, then names the exact break after one entry is deleted,
 *   two are swapped or one is replaced directly in the relay's SQLite file (exit 1);
 * - `open` prints the transcript and appends a hash-chained audit record; `audit-verify` names an
 *   edited record.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import {
  archiveSealAd,
  encodeArchiveSubmission,
  encodeArchivedMessage,
  makeArchiveSubmission,
  sealToArchiveKey,
  signArchiveDisclosure,
  type IdentityKeyPair,
} from '@parley/protocol';
import { call, complianceCli as cli, login, newDevice, setupCrypto, startRelay, upload } from './helpers.js';

test('archive: disclosure statement, chained appends, the CLI names each break and audits every opening', async (t) => {
  await setupCrypto();
  const dir = mkdtempSync(join(tmpdir(), 'parley-archive-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const dbPath = join(dir, 'relay.db');
  const relay = await startRelay({ store: { sqlite: dbPath } });
  t.after(() => relay.close());

  const keyPath = join(dir, 'compliance.key');
  const kg = await cli('keygen', '--out', keyPath);
  assert.equal(kg.code, 0, kg.err);
  const archiveKey = Buffer.from(kg.out.trim(), 'hex');
  assert.equal(JSON.parse(readFileSync(keyPath, 'utf8')).publicKey, kg.out.trim());

  const bot = newDevice();
  const customer = newDevice();
  const b = await login(relay, bot);
  t.after(() => b.socket.disconnect());
  const c = await login(relay, customer);
  t.after(() => c.socket.disconnect());

  // The disclosure travels with the statements.
  const disclosure = signArchiveDisclosure(new Uint8Array(32).fill(3), {
    label: 'support', archiveKey: new Uint8Array(archiveKey), retentionDays: 365, openers: ['compliance'], issuedAt: Date.now(),
  });
  await call(b.socket, 'uploadPrekeys', { ...upload(bot, [1, 2]), disclosure });
  await call(c.socket, 'uploadPrekeys', upload(customer, [1]));
  assert.deepEqual([...(await call(c.socket, 'fetchBundle', { deviceId: bot.deviceId })).disclosure], [...disclosure]);
  assert.deepEqual([...(await call(c.socket, 'fetchIdentity', { deviceId: bot.deviceId })).disclosure], [...disclosure]);
  // Removed with an empty one, published again.
  await call(b.socket, 'uploadPrekeys', { ...upload(bot, []), disclosure: new Uint8Array(0) });
  assert.equal('disclosure' in (await call(c.socket, 'fetchIdentity', { deviceId: bot.deviceId })), false);
  await call(b.socket, 'uploadPrekeys', { ...upload(bot, []), disclosure });

  // Appends from both members, one chain in relay order.
  const ref = 'conv-1';
  const seq = new Map<IdentityKeyPair, number>();
  const submission = (who: IdentityKeyPair, body: string) => {
    const s = seq.get(who) ?? 0;
    seq.set(who, s + 1);
    const sealed = sealToArchiveKey(new Uint8Array(archiveKey), encodeArchivedMessage({ conversation: 'c1', id: `m${body}`, from: who.deviceId, at: Date.now(), body }), archiveSealAd(ref, who.publicIdentity.signingKey));
    return encodeArchiveSubmission(makeArchiveSubmission({ ref, senderKey: who.publicIdentity.signingKey, senderSeq: s, sealed }, (p) => who.sign('archiveEntry', p)));
  };
  const bodies = ['hello', 'hi, how can I help', 'my order is late', 'let me check', 'thanks'];
  for (const [i, body] of bodies.entries()) {
    const r = await call((i % 2 === 0 ? c : b).socket, 'archiveAppend', { ref, submission: submission(i % 2 === 0 ? customer : bot, body) });
    assert.equal(r.index, i);
  }
  // In another device's name, or with a bad signature: refused, nothing stored.
  const forged = await call(b.socket, 'archiveAppend', { ref, submission: submission(customer, 'forged') });
  assert.equal(forged.error?.code, 'FORBIDDEN');
  assert.equal(forged.error?.details?.reason, 'notSender');
  const bad = submission(bot, 'tampered');
  bad[bad.length - 1] = (bad[bad.length - 1] ?? 0) ^ 1;
  assert.equal((await call(b.socket, 'archiveAppend', { ref, submission: bad })).error?.code, 'INVALID_SIGNATURE');
  assert.equal((await relay.store.archiveEntries(ref)).length, bodies.length);
  const ro = new Database(dbPath, { readonly: true });
  assert.equal(ro.prepare('SELECT COUNT(*) FROM archive_entries').pluck().get(), bodies.length);
  ro.close();
  assert.equal(readFileSync(dbPath).includes(Buffer.from('my order is late')), false, 'the relay file holds no plaintext');

  // verify: OK.
  const ok = await cli('verify', '--db', dbPath);
  assert.equal(ok.code, 0, ok.out + ok.err);
  assert.match(ok.out, /conv-1: OK \(5 entries\)/);

  // open: the transcript, and an audit record.
  const audit = join(dir, 'audit.log');
  const opened = await cli('open', '--db', dbPath, '--key', keyPath, '--ref', ref, '--audit', audit, '--opener', 'carol', '--reason', 'case 1');
  assert.equal(opened.code, 0, opened.err);
  for (const body of bodies) assert.ok(opened.out.includes(body), body);
  const exported = await cli('export', '--db', dbPath, '--key', keyPath, '--ref', ref, '--audit', audit, '--opener', 'carol', '--reason', 'case 1', '--format', 'json');
  assert.equal(exported.code, 0, exported.err);
  assert.deepEqual(JSON.parse(exported.out).messages.map((m: { body: string }) => m.body), bodies);
  const records = readFileSync(audit, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(records.map((r) => [r.n, r.action, r.ref, r.opener, r.entries]), [[0, 'open', ref, 'carol', 5], [1, 'export', ref, 'carol', 5]]);
  assert.equal(records[1].prev, records[0].hash);
  assert.equal((await cli('audit-verify', '--audit', audit)).code, 0);
  // An edited audit record is named.
  writeFileSync(audit, readFileSync(audit, 'utf8').replace('"opener":"carol"', '"opener":"mallory"'));
  const av = await cli('audit-verify', '--audit', audit);
  assert.equal(av.code, 1);
  assert.match(av.out, /record 0 \(line 1\) replaced/);

  // Tampering with the relay's file, each on a fresh copy (the relay is stopped first).
  await relay.close();
  const tamper = async (name: string, sql: (db: Database.Database) => void): Promise<string> => {
    const copy = join(dir, `${name}.db`);
    copyFileSync(dbPath, copy);
    const db = new Database(copy);
    sql(db);
    db.close();
    const r = await cli('verify', '--db', copy, '--ref', ref);
    assert.equal(r.code, 1, `${name}: exit 1`);
    return r.out;
  };
  // The WAL holds the recent writes: fold it into the main file before copying.
  const main_ = new Database(dbPath);
  main_.pragma('wal_checkpoint(TRUNCATE)');
  main_.close();
  assert.match(await tamper('deleted', (db) => db.prepare('DELETE FROM archive_entries WHERE ref = ? AND idx = 2').run(ref)), /BROKEN: entry 2 deleted$/m);
  assert.match(await tamper('reordered', (db) => {
    const e = db.prepare('SELECT idx, entry FROM archive_entries WHERE ref = ? AND idx IN (1, 3) ORDER BY idx').all(ref) as { idx: number; entry: Buffer }[];
    const put = db.prepare('UPDATE archive_entries SET entry = ? WHERE ref = ? AND idx = ?');
    put.run(e[1]!.entry, ref, 1);
    put.run(e[0]!.entry, ref, 3);
  }), /BROKEN: entries 1 and 3 reordered$/m);
  assert.match(await tamper('replaced', (db) => {
    const e = db.prepare('SELECT entry FROM archive_entries WHERE ref = ? AND idx = 3').pluck().get(ref) as Buffer;
    e[e.length - 80] = (e[e.length - 80] ?? 0) ^ 1;
    db.prepare('UPDATE archive_entries SET entry = ? WHERE ref = ? AND idx = 3').run(e, ref);
  }), /BROKEN: entry 3 replaced \(signature\)$/m);
});
