/**
 * Deletion is real in the bot's sealed state (issue 10, High 2; docs/threats.md B9), and the key
 * is never in the state folder.
 *
 * After a conversation (customers send messages with canaries, the bot echoes them, the customers
 * receipt the replies, every message is consumed), a copy of the state folder is scanned with
 * the key that opens it (`sealed-scan.ts`, which does not use the blob store's reader): every
 * record that opens is the current version of a live record, exactly once; no consumed plaintext
 * (canary) is in any record or file; and no superseded secret (old chain and root keys, used
 * one-time prekeys, all collected by the test-only key tap at every commit) is in any record or
 * file. Before issue 10 the append-only log kept every version until a compaction at 16 MiB, and
 * `sealing.key` sat inside the folder.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MessageChannel, receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import { Account, Session, getCrypto, isParleyError, toHex } from '@parley/protocol';
import { openRecord } from '@parley/engine';
import { unsafeTestingAccountSecrets, unsafeTestingSessionSecrets } from '@parley/protocol/testing';
import { createBot } from '../src/index.js';
import { SealedBlobStore, resolveStateFiles } from '../src/host/blob-store.js';
import { Customer } from './customer.js';
import { startBot, startRelay } from './harness.js';
import { openSupervisor, setupCrypto, sleep, tempDir, waitFor } from './helpers.js';
import { keysThatOpen, occurrences, readTree, scanFolder } from './sealed-scan.js';

await setupCrypto();

const CUSTOMERS = 4;
const PER_CUSTOMER = 12;

async function dump(port: MessagePort): Promise<Uint8Array[]> {
  port.postMessage('dump');
  for (let i = 0; i < 500; i++) {
    const m = receiveMessageOnPort(port)?.message as { secrets: Uint8Array[]; parseFailures: number } | undefined;
    if (m) {
      assert.equal(m.parseFailures, 0);
      return m.secrets;
    }
    await sleep(10);
  }
  throw new Error('no key dump');
}

function secretsOf(key: string, value: Uint8Array): Uint8Array[] {
  if (key === 'account') {
    const a = Account.unpickle(value);
    try {
      return unsafeTestingAccountSecrets(a);
    } finally {
      a.dispose();
    }
  }
  if (!key.startsWith('session/')) return [];
  const s = Session.unpickle(value);
  try {
    return unsafeTestingSessionSecrets(s);
  } finally {
    s.dispose();
  }
}

test('B9: after a conversation, a copy of the state folder and its key give back no consumed plaintext, no superseded record and no superseded key', { timeout: 120_000 }, async (t) => {
  const dir = tempDir(t);
  const relay = await startRelay();
  t.after(() => relay.close());
  const keys = new MessageChannel();
  t.after(() => keys.port1.close());
  const { bot, options } = await startBot(relay, dir, { oneTimePrekeys: 20, unsafeTestingExposeKeys: keys.port2 });
  let closed = false;
  t.after(() => (closed ? undefined : bot.close()));
  const canary = `canary-${toHex(getCrypto().randomBytes(8))}`;
  const customers = await Promise.all(Array.from({ length: CUSTOMERS }, () => Customer.connect(relay.url, { receipts: true })));
  t.after(() => customers.forEach((c) => c.close()));
  await Promise.all(
    customers.map(async (c, i) => {
      for (let k = 0; k < PER_CUSTOMER; k++) await c.send(bot.deviceId, `${canary} ${i}/${k}`);
    }),
  );
  await waitFor(() => customers.every((c) => c.replies.length >= PER_CUSTOMER), 60_000, 'every reply');
  // The receipts for the replies reach the bot, which drops the replies' plaintext it kept for a resend.
  for (let i = 0; i < 5; i++) {
    await bot.idle();
    await sleep(200);
  }
  const secrets = await dump(keys.port1);
  closed = true;
  await bot.close();

  const stateDir = options.stateDir;
  const openers = await keysThatOpen(stateDir, secrets);
  assert.equal(openers.length, 1, 'one key opens the records (the state key)');
  const { found, files } = await scanFolder(stateDir, openers);

  // What the host holds as live records (its own reader), to compare with what the scan found.
  const store = await SealedBlobStore.open(join(stateDir, 'sealed'));
  const live = await store.readAll();
  await store.close();
  const liveKeys = live.map((r) => r.key).filter((k) => k !== 'enclave:key');
  assert.ok(liveKeys.includes('account') && liveKeys.some((k) => k.startsWith('session/')), 'the scan has live records to find');


  const canaryBytes = new TextEncoder().encode(canary);
  const plaintextHits = found.reduce((n, f) => n + occurrences(f.plaintext, canaryBytes), 0);
  const fileHits = files.reduce((n, f) => n + occurrences(f.bytes, canaryBytes), 0);

  // The secrets of the live records (as the host's reader lists them), to tell superseded ones.
  const liveSecrets = new Set(live.filter((r) => !r.key.startsWith('enclave:')).flatMap((r) => secretsOf(r.key, openRecord(openers[0]!, r.key, r.blob))).map(toHex));
  assert.ok(liveSecrets.size > 10, 'the live account and sessions hold keys (positive control)');
  const superseded = secrets.filter((s) => !liveSecrets.has(toHex(s)) && s.length >= 16);
  assert.ok(superseded.length > 50, `the conversation superseded keys (${superseded.length})`);
  let supersededHits = 0;
  for (const s of superseded) {
    for (const f of found) supersededHits += occurrences(f.plaintext, s);
    for (const f of files) supersededHits += occurrences(f.bytes, s);
  }
  // Positive control: a live secret is found in the live records.
  const oneLive = secrets.find((s) => liveSecrets.has(toHex(s)))!;
  assert.ok(found.some((f) => occurrences(f.plaintext, oneLive) > 0));
  t.diagnostic(`scan: ${found.length} records open (${liveKeys.length} live), ${superseded.length} superseded keys looked for; hits: ${JSON.stringify({ plaintextHits, fileHits, supersededHits })}`);
  assert.deepEqual({ plaintextHits, fileHits, supersededHits }, { plaintextHits: 0, fileHits: 0, supersededHits: 0 });
  const byKey = new Map<string, number>();
  for (const f of found) byKey.set(f.key, (byKey.get(f.key) ?? 0) + 1);
  const extra = [...byKey].filter(([k, n]) => n > 1 || !liveKeys.includes(k));
  assert.deepEqual(extra, [], 'no older version and no deleted record opens (key → times found)');
  assert.deepEqual([...byKey.keys()].sort(), [...liveKeys].sort(), 'every live record is found once (the scan works)');
  // The key is not in the folder: the default file is beside it.
  const keyFile = `${stateDir}.sealing.key`;
  assert.ok(existsSync(keyFile), 'the default sealing secret is beside the state folder');
  assert.equal(statSync(keyFile).mode & 0o077, 0);
  // Nothing in the folder is a key file.
  assert.deepEqual(
    (await readTree(stateDir)).map((f) => f.file).filter((f) => /key/.test(f)),
    [],
  );
});

test('B9: the sealing secret is refused inside the state folder, with a message that names the fix', async (t) => {
  const dir = tempDir(t);
  const stateDir = join(dir, 'state');
  mkdirSync(stateDir, { recursive: true });
  const base = { relayUrl: 'http://127.0.0.1:9', apiKey: 'k', handler: new URL('./fixtures/echo-handler.ts', import.meta.url), stateDir };
  const refusal = async (extra: object): Promise<{ message: string; reason: unknown }> => {
    try {
      await createBot({ ...base, ...extra });
    } catch (e) {
      assert.ok(isParleyError(e, 'USAGE'), String(e));
      return { message: e.message, reason: e.details?.reason };
    }
    throw new Error('createBot did not refuse');
  };
  // An explicit file inside the folder (also through a path that only resolves into it).
  for (const file of [join(stateDir, 'seal.key'), join(stateDir, 'sub', '..', 'seal.key')]) {
    const r = await refusal({ sealingSecret: { file } });
    assert.equal(r.reason, 'sealingSecretInStateDir');
    assert.match(r.message, /inside stateDir/);
    assert.match(r.message, new RegExp(`${stateDir}\\.sealing\\.key`.replaceAll('/', '\\/')));
  }
  // The default of earlier versions, left in the folder: refused with the command that moves it.
  writeFileSync(join(stateDir, 'sealing.key'), getCrypto().randomBytes(32), { mode: 0o600 });
  const legacy = await refusal({});
  assert.equal(legacy.reason, 'sealingSecretInStateDir');
  assert.ok(legacy.message.includes(`mv ${join(stateDir, 'sealing.key')} ${stateDir}.sealing.key`), legacy.message);
  // The rollback anchor is refused inside the folder too.
  const anchor = await refusal({ sealingSecret: { file: join(dir, 'k') }, rollbackAnchor: join(stateDir, 'anchor') });
  assert.equal(anchor.reason, 'rollbackAnchorInStateDir');
  // Beside a mount point the default would land on another file system: refused.
  if (existsSync('/proc/self') && statSync('/proc').dev !== statSync('/').dev) {
    await assert.rejects(resolveStateFiles('/proc', {}), (e: unknown) => isParleyError(e, 'USAGE') && e.details?.reason === 'stateDirIsMountPoint');
  }
  // Nothing was created: no bot started.
  assert.deepEqual(readdirSync(stateDir).sort(), ['sealing.key']);
});

test('B9: a missing secret file with existing sealed state is an error that says so, never a new secret', async (t) => {
  const dir = tempDir(t);
  const first = await openSupervisor(dir);
  await first.sup.start();
  await first.sup.stop();
  const second = await openSupervisor(dir, { sealing: { file: join(dir, 'moved.key'), create: true } });
  await assert.rejects(second.sup.start(), (e: unknown) => isParleyError(e, 'USAGE') && e.details?.reason === 'sealingSecretMissing' && e.message.includes('does not exist') && e.message.endsWith(join(dir, 'moved.key')));
  await second.sup.stop();
  assert.equal(existsSync(join(dir, 'moved.key')), false, 'no new secret was made');
});

test('B9: a blob store written before issue 10 is read, and rewritten without what it kept', async (t) => {
  const dir = tempDir(t);
  // The old format: PBB1 frames (u32 length | u32 CRC of the payload | payload), superseded blobs kept.
  const frame = (puts: [string, Uint8Array][], dels: string[]): Buffer => {
    const parts: Buffer[] = [Buffer.from('PBB1'), u32(puts.length)];
    for (const [k, v] of puts) parts.push(u16(k.length), Buffer.from(k), u32(v.length), Buffer.from(v));
    parts.push(u32(dels.length));
    for (const d of dels) parts.push(u16(d.length), Buffer.from(d));
    const payload = Buffer.concat(parts);
    return Buffer.concat([u32(payload.length), u32(crc32(payload)), payload]);
  };
  const old = new Uint8Array(64).fill(7);
  const current = new Uint8Array(64).fill(9);
  const gone = new Uint8Array(64).fill(5);
  writeFileSync(join(dir, 'log'), Buffer.concat([frame([['session/a', old], ['inbox/1', gone]], []), frame([['session/a', current]], ['inbox/1'])]));
  const store = await SealedBlobStore.open(dir);
  assert.deepEqual((await store.readAll()).map((r) => [r.key, r.blob[0]]), [['session/a', 9]]);
  await store.close();
  const bytes = Buffer.concat((await readTree(dir)).map((f) => Buffer.from(f.bytes)));
  assert.equal(occurrences(bytes, old), 0, 'the superseded blob is gone');
  assert.equal(occurrences(bytes, gone), 0, 'the deleted blob is gone');
  assert.equal(occurrences(bytes, Buffer.from('PBB1')), 0);
});

test('B9: blob store crash windows: overwritten blobs are re-zeroed at open, a torn blob cuts its batch, a damaged live blob is STORAGE_INTEGRITY', async (t) => {
  const dir = tempDir(t);
  const old = new Uint8Array(48).fill(0x61);
  const next = new Uint8Array(48).fill(0x62);
  const other = new Uint8Array(48).fill(0x63);
  let store = await SealedBlobStore.open(dir);
  await store.writeBatch([{ key: 'session/a', blob: old }], []);
  const afterFirst = readFileSync(join(dir, 'log'));
  await store.writeBatch([{ key: 'session/a', blob: next }], []);
  await store.close();
  const afterSecond = readFileSync(join(dir, 'log'));
  assert.equal(occurrences(afterSecond, old), 0, 'the superseded blob was overwritten before the ack');
  // A crash between the second batch's sync and the overwrite: the old blob is still there.
  writeFileSync(join(dir, 'log'), Buffer.concat([afterFirst, afterSecond.subarray(afterFirst.length)]));
  store = await SealedBlobStore.open(dir);
  assert.deepEqual((await store.readAll()).map((r) => r.blob[0]), [0x62]);
  assert.equal(occurrences(readFileSync(join(dir, 'log')), old), 0, 'zeroed at open');
  await store.writeBatch([{ key: 'inbox/1', blob: other }], []);
  await store.close();
  // A write torn inside the last batch's blob: that batch never committed.
  const log = readFileSync(join(dir, 'log'));
  const torn = Buffer.from(log);
  torn[torn.length - 10]! ^= 0xff;
  writeFileSync(join(dir, 'log'), torn);
  store = await SealedBlobStore.open(dir);
  assert.deepEqual((await store.readAll()).map((r) => r.key), ['session/a']);
  await store.close();
  // A live blob damaged before the last batch: damage, not a torn write.
  writeFileSync(join(dir, 'log'), log);
  const damaged = Buffer.from(log);
  damaged[damaged.indexOf(Buffer.from(next)) + 3]! ^= 0xff;
  writeFileSync(join(dir, 'log'), damaged);
  await assert.rejects(SealedBlobStore.open(dir), (e: unknown) => isParleyError(e, 'STORAGE_INTEGRITY'));
});

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}
function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}
function crc32(b: Uint8Array): number {
  let c = 0xffffffff;
  for (const x of b) {
    c ^= x;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}
