/**
 * The sealed state is bound to the enclave's measurement (issue 10, Medium 6; docs/threats.md
 * B11): an enclave running other code (here: another handler) cannot open it and refuses to
 * start with a typed error that names the migration; `migrateFrom` re-wraps the state key for
 * the new code, logged as `sealing.migrated`, and the old wrapping is gone from the folder. A
 * state written before issue 10 (not bound) needs `migrateFrom: 'unbound'`; its records are
 * re-sealed a commit at a time, and an interrupted re-seal resumes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { concatBytes, fromHex, getCrypto, isParleyError, utf8 } from '@parley/protocol';
import { ConversationEngine, MemoryStore, openRecord, sealRecord } from '@parley/engine';
import { unsafeTestingRaw } from '@parley/engine/testing';
import { SealedKeyValueStore, type PersistFn } from '../src/enclave/sealed-store.js';
import { deriveSealingKey } from '../src/enclave/seal.js';
import { handlerUrl } from '../src/measurement.js';
import type { SealedRecord } from '../src/rpc/messages.js';
import { Customer } from './customer.js';
import { startBot, startRelay } from './harness.js';
import { ECHO_HANDLER, openSupervisor, setupCrypto, tempDir, waitFor } from './helpers.js';
import { occurrences, readTree } from './sealed-scan.js';

await setupCrypto();

test('B11: changed code cannot open the sealed state without an explicit, logged migration', { timeout: 120_000 }, async (t) => {
  const dir = tempDir(t);
  const relay = await startRelay();
  t.after(() => relay.close());
  const handlerA = join(dir, 'handler-a.ts');
  const handlerB = join(dir, 'handler-b.ts');
  copyFileSync(ECHO_HANDLER, handlerA);
  writeFileSync(handlerB, `${readFileSync(ECHO_HANDLER, 'utf8')}\n// version 2\n`);

  const a = await startBot(relay, dir, { handler: handlerA });
  const customer = await Customer.connect(relay.url);
  t.after(() => customer.close());
  await customer.send(a.bot.deviceId, 'before');
  await waitFor(() => customer.replies.length === 1, 20_000, 'a reply from A');
  const deviceId = a.bot.deviceId;
  const measurementA = a.bot.measurement;
  await a.bot.close();

  const refused = async (extra: object): Promise<{ reason: unknown; message: string }> => {
    try {
      const started = await startBot(relay, dir, { handler: handlerB, ...extra });
      await started.bot.close();
    } catch (e) {
      assert.ok(isParleyError(e, 'USAGE'), String(e));
      return { reason: e.details?.reason, message: e.message };
    }
    throw new Error('the bot started with changed code');
  };
  // Other code, no migration: refused, naming the measurement to migrate from.
  const changed = await refused({});
  assert.equal(changed.reason, 'measurementChanged');
  assert.ok(changed.message.includes(`migrateFrom: '${measurementA}'`), changed.message);
  // A migration from a measurement the state is not sealed to: refused.
  const wrong = await refused({ migrateFrom: 'ab'.repeat(32) });
  assert.equal(wrong.reason, 'migrateFromMismatch');
  assert.ok(wrong.message.includes(measurementA));

  // The deliberate migration: same identity, same sessions, logged.
  const b = await startBot(relay, dir, { handler: handlerB, migrateFrom: measurementA });
  assert.equal(b.bot.deviceId, deviceId);
  assert.notEqual(b.bot.measurement, measurementA);
  const migrated = b.logger.lines.map((l) => JSON.parse(l) as { event?: string; from?: string; to?: string; level: string }).find((l) => l.event === 'sealing.migrated');
  assert.deepEqual(migrated && { level: migrated.level, from: migrated.from, to: migrated.to }, { level: 'warn', from: measurementA, to: b.bot.measurement });
  await customer.send(deviceId, 'after');
  await waitFor(() => customer.replies.length === 2, 20_000, 'a reply from B in the same session');
  assert.deepEqual(customer.replies.map((r) => r.text), ['echo:before', 'echo:after']);
  const measurementB = b.bot.measurement;
  await b.bot.close();

  // The wrapping for A is gone from the folder (overwritten), the one for B is there once.
  const files = Buffer.concat((await readTree(join(dir, 'bot'))).map((f) => Buffer.from(f.bytes)));
  assert.equal(occurrences(files, concatBytes(utf8('PEK2'), fromHex(measurementA))), 0, 'no key wrapping for the old code is left');
  assert.equal(occurrences(files, concatBytes(utf8('PEK2'), fromHex(measurementB))), 1);

  // B starts again without the option; A (older code) is refused now.
  const again = await startBot(relay, dir, { handler: handlerB });
  assert.equal(again.bot.deviceId, deviceId);
  await again.bot.close();
  try {
    await startBot(relay, dir, { handler: handlerA }).then((s) => s.bot.close());
    assert.fail('the old code opened the migrated state');
  } catch (e) {
    assert.ok(isParleyError(e, 'USAGE') && e.details?.reason === 'measurementChanged', String(e));
  }
});

/** A state as the enclave kept it before issue 10: records sealed under the v1 key. */
async function legacyState(secret: Uint8Array, filler: number): Promise<{ records: SealedRecord[]; deviceId: string }> {
  const store = new MemoryStore();
  const engine = await ConversationEngine.open({ store, trust: { requireCertificate: 'none' } });
  const v1 = deriveSealingKey(secret);
  const raw = [...unsafeTestingRaw(store)];
  for (let i = 0; i < filler; i++) raw.push([`filler/${i}`, getCrypto().randomBytes(40)]);
  return { records: raw.map(([key, value]) => ({ key, blob: sealRecord(v1, key, value) })), deviceId: engine.deviceId };
}

test('B11: a state from before the binding needs migrateFrom "unbound"; its re-seal goes a commit at a time and resumes after a crash', async () => {
  const secret = getCrypto().randomBytes(32);
  const measurement = getCrypto().randomBytes(32);
  const { records } = await legacyState(secret, 1200);
  const v1 = deriveSealingKey(secret);
  assert.throws(
    () => SealedKeyValueStore.open(secret, records, async () => undefined, { measurement }),
    (e: unknown) => isParleyError(e, 'USAGE') && e.details?.reason === 'unboundState' && /migrateFrom: 'unbound'/.test(e.message),
  );
  // The host acks two batches, then the process dies.
  const durable = new Map(records.map((r) => [r.key, r.blob] as const));
  let acks = 0;
  const dying: PersistFn = async (puts, dels) => {
    if (acks++ >= 2) throw new Error('crashed');
    for (const p of puts) durable.set(p.key, p.blob);
    for (const d of dels) durable.delete(d);
  };
  const first = SealedKeyValueStore.open(secret, records, dying, { measurement, migrateFrom: 'unbound' });
  assert.equal(first.opening.migratedFrom, 'unbound');
  await assert.rejects(first.finishOpen());
  const midway = [...durable].map(([key, blob]) => ({ key, blob }));
  assert.ok(midway.some((r) => r.key !== 'enclave:key' && r.key !== 'enclave:version' && canOpen(v1, r)), 'some records are still sealed under the v1 key');
  // The next start: the state is bound now (no option needed) and the re-seal finishes.
  const persist: PersistFn = async (puts, dels) => {
    for (const p of puts) durable.set(p.key, p.blob);
    for (const d of dels) durable.delete(d);
  };
  const second = SealedKeyValueStore.open(secret, midway, persist, { measurement });
  await second.finishOpen();
  const done = [...durable].map(([key, blob]) => ({ key, blob }));
  assert.equal(done.filter((r) => canOpen(v1, r)).length, 0, 'no record is sealed under the v1 key');
  const third = SealedKeyValueStore.open(secret, done, persist, { measurement });
  assert.equal((await third.keys('filler/')).length, 1200);
  assert.ok(await third.get('account'));
});

test('B11: an unbound state through the enclave: refused, then migrated with the same identity', async (t) => {
  const dir = tempDir(t);
  const secret = getCrypto().randomBytes(32);
  const keyFile = join(dir, 'legacy.key');
  writeFileSync(keyFile, secret, { mode: 0o600 });
  const { records, deviceId } = await legacyState(secret, 0);
  // The blob store of the time: a PBS1 snapshot.
  const parts: Buffer[] = [Buffer.from('PBS1'), u32(records.length)];
  for (const r of records) parts.push(u16(r.key.length), Buffer.from(r.key), u32(r.blob.length), Buffer.from(r.blob));
  const { mkdirSync } = await import('node:fs');
  mkdirSync(join(dir, 'sealed'));
  writeFileSync(join(dir, 'sealed', 'snapshot'), Buffer.concat(parts));

  const plain = await openSupervisor(dir, { sealing: { file: keyFile } });
  await assert.rejects(plain.sup.start(), (e: unknown) => isParleyError(e, 'USAGE') && e.details?.reason === 'unboundState');
  await plain.sup.stop();
  const migrating = await openSupervisor(dir, { sealing: { file: keyFile }, migrateFrom: 'unbound', handlerUrl: handlerUrl(ECHO_HANDLER) });
  const info = await migrating.sup.start();
  assert.equal(info.deviceId, deviceId);
  assert.equal(info.sealing?.migratedFrom, 'unbound');
  assert.match(migrating.logger.text(), /"event":"sealing.migrated","from":"unbound"/);
  await migrating.sup.stop();
});

function canOpen(key: Uint8Array, r: SealedRecord): boolean {
  try {
    openRecord(key, r.key, r.blob);
    return true;
  } catch {
    return false;
  }
}

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
