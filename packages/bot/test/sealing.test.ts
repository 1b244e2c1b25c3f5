/**
 * Sealed persistence: tampering is detected (STORAGE_INTEGRITY), the host's blob store is
 * atomic, and the host cannot unseal with what it retains (docs/threats.md B5).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { writeHeapSnapshot } from 'node:v8';
import { getCrypto, isParleyError } from '@parley/protocol';
import { openRecord as unseal, sealRecord as seal } from '@parley/engine';
import { deriveSealingKey } from '../src/enclave/seal.js';
import { SealedBlobStore } from '../src/host/blob-store.js';
import { encodings, openSupervisor, setupCrypto, tempDir } from './helpers.js';

await setupCrypto();

test('seal/unseal: every flipped byte, a moved record and another key all fail with STORAGE_INTEGRITY', () => {
  const key = deriveSealingKey(getCrypto().randomBytes(32));
  const value = new TextEncoder().encode('session state');
  const blob = seal(key, 'session/abc/1', value);
  assert.deepEqual(unseal(key, 'session/abc/1', blob), value);
  for (let i = 1; i < blob.length; i++) {
    for (const bit of [0x01, 0x80]) {
      const bad = blob.slice();
      bad[i]! ^= bit;
      assert.throws(() => unseal(key, 'session/abc/1', bad), (e: unknown) => isParleyError(e, 'STORAGE_INTEGRITY'));
    }
  }
  const v2 = blob.slice();
  v2[0] = 2;
  assert.throws(() => unseal(key, 'session/abc/1', v2), (e: unknown) => isParleyError(e, 'UNSUPPORTED_VERSION'));
  assert.throws(() => unseal(key, 'session/abc/2', blob), (e: unknown) => isParleyError(e, 'STORAGE_INTEGRITY'));
  assert.throws(() => unseal(deriveSealingKey(getCrypto().randomBytes(32)), 'session/abc/1', blob), (e: unknown) => isParleyError(e, 'STORAGE_INTEGRITY'));
  assert.throws(() => unseal(key, 'session/abc/1', blob.subarray(0, 30)), (e: unknown) => isParleyError(e, 'STORAGE_INTEGRITY'));
});

/** Rewrites records through the host's own store, as a hostile host could. */
async function hostRewrite(dir: string, edit: (records: Map<string, Uint8Array>) => void): Promise<void> {
  const store = await SealedBlobStore.open(join(dir, 'sealed'));
  const records = new Map((await store.readAll()).map((r) => [r.key, r.blob] as const));
  edit(records);
  await store.writeBatch([...records].map(([key, blob]) => ({ key, blob })), []);
  await store.close();
}

test('a byte flipped in a sealed blob stops the enclave with STORAGE_INTEGRITY', async (t) => {
  const dir = tempDir(t);
  const first = await openSupervisor(dir);
  await first.sup.start();
  await first.sup.call('prekeys', { generate: 2 });
  await first.sup.stop();
  await hostRewrite(dir, (records) => {
    const account = records.get('account')!.slice();
    account[40]! ^= 1;
    records.set('account', account);
  });
  const second = await openSupervisor(dir);
  await assert.rejects(second.sup.start(), (e: unknown) => isParleyError(e, 'STORAGE_INTEGRITY'));
  await second.sup.stop();
});

test('two sealed records swapped by the host are refused', async (t) => {
  const dir = tempDir(t);
  const first = await openSupervisor(dir);
  await first.sup.start();
  await first.sup.stop();
  await hostRewrite(dir, (records) => {
    const account = records.get('account')!;
    records.set('account', records.get('meta')!);
    records.set('meta', account);
  });
  const second = await openSupervisor(dir);
  await assert.rejects(second.sup.start(), (e: unknown) => isParleyError(e, 'STORAGE_INTEGRITY'));
  await second.sup.stop();
});

test('blob store: batches are atomic across a torn write; damage inside the log is STORAGE_INTEGRITY; compaction keeps everything', async (t) => {
  const dir = tempDir(t);
  let store = await SealedBlobStore.open(dir);
  await store.writeBatch([{ key: 'a', blob: new Uint8Array([1]) }, { key: 'session/x/1', blob: new Uint8Array([2]) }], []);
  await store.writeBatch([{ key: 'b', blob: new Uint8Array([3]) }], ['a']);
  await store.close();
  const log = readFileSync(join(dir, 'log'));
  // A crash mid-append of a third batch: half a frame at the end.
  writeFileSync(join(dir, 'log'), Buffer.concat([log, Buffer.from([0, 0, 0, 40, 1, 2, 3, 4, 80, 66])]));
  store = await SealedBlobStore.open(dir);
  const view = async () => (await store.readAll()).map((r) => [r.key, [...r.blob]]);
  assert.deepEqual(await view(), [
    ['b', [3]],
    ['session/x/1', [2]],
  ]);
  assert.equal(readFileSync(join(dir, 'log')).length, log.length, 'the torn frame was cut off');
  // A second open while this one is live is refused (two writers would corrupt the log).
  await assert.rejects(SealedBlobStore.open(dir), (e: unknown) => isParleyError(e, 'USAGE'));
  await store.compact();
  await store.writeBatch([{ key: 'c', blob: new Uint8Array([4]) }], ['b']);
  await store.close();
  store = await SealedBlobStore.open(dir);
  assert.deepEqual(await view(), [
    ['c', [4]],
    ['session/x/1', [2]],
  ]);
  await store.writeBatch([{ key: 'd', blob: new Uint8Array([5]) }], []);
  await store.close();
  // A flipped byte in a frame that is not the last: damage, not a torn write.
  const damaged = readFileSync(join(dir, 'log'));
  damaged[12]! ^= 0xff;
  writeFileSync(join(dir, 'log'), damaged);
  await assert.rejects(SealedBlobStore.open(dir), (e: unknown) => isParleyError(e, 'STORAGE_INTEGRITY'));
  assert.equal(statSync(join(dir, 'snapshot')).mode & 0o077, 0);
});

test('B5: a provided sealing secret is transferred (detached in the host); what the host keeps cannot unseal', async (t) => {
  const dir = tempDir(t);
  let handedOver: ArrayBuffer | undefined;
  const { sup } = await openSupervisor(dir, {
    sealing: {
      provide: () => {
        handedOver = new ArrayBuffer(32);
        new Uint8Array(handedOver).set(getCrypto().randomBytes(32));
        return handedOver;
      },
    },
  });
  t.after(() => sup.stop());
  await sup.start();
  assert.equal(handedOver!.byteLength, 0, 'the transfer detached the host copy');
  await sup.stop();
  const store = await SealedBlobStore.open(join(dir, 'sealed'));
  const blobs = await store.readAll();
  await store.close();
  const account = blobs.find((b) => b.key === 'account')!;
  // Everything the host holds that could be mistaken for key material: the detached buffer,
  // the blobs themselves, the state directory path.
  const candidates = [new Uint8Array(32), ...blobs.map((b) => b.blob.subarray(1, 33)), getCrypto().sha256(Buffer.from(dir))];
  for (const c of candidates) {
    assert.throws(() => unseal(deriveSealingKey(c), 'account', account.blob), (e: unknown) => isParleyError(e, 'STORAGE_INTEGRITY'));
  }
});

test('B5: with a secret file, the host heap, workerData, env and argv never hold the secret or the sealing key', async (t) => {
  const dir = tempDir(t);
  const { sup } = await openSupervisor(dir);
  t.after(() => sup.stop());
  await sup.start();
  await sup.call('prekeys', { generate: 2 });
  const snapshot = writeHeapSnapshot(join(dir, 'host.heapsnapshot'));
  // Only now does the test read the secret (the host never did).
  const secret = new Uint8Array(readFileSync(join(dir, 'sealing.key')));
  assert.equal(statSync(join(dir, 'sealing.key')).mode & 0o777, 0o600);
  const heap = readFileSync(snapshot, 'latin1');
  const control = `control-${Buffer.from(getCrypto().randomBytes(8)).toString('hex')}`;
  assert.ok(!heap.includes(control));
  for (const s of [secret, deriveSealingKey(secret)]) {
    for (const enc of encodings(s)) assert.equal(heap.includes(enc), false, 'secret encoding found in the host heap');
    assert.equal(heap.includes(Buffer.from(s).toString('latin1')), false);
    const env = JSON.stringify(process.env) + JSON.stringify(process.argv) + JSON.stringify(process.execArgv);
    for (const enc of encodings(s)) assert.equal(env.includes(enc), false);
  }
  // The scanner does find a string that is in the host heap (positive control).
  const kept = [control];
  const snapshot2 = writeHeapSnapshot(join(dir, 'host2.heapsnapshot'));
  assert.ok(readFileSync(snapshot2, 'latin1').includes(kept[0]!), 'scanner control');
});

test('blob store: group commit — concurrent batches share one fdatasync, apply in call order, and a failed group fails with everything queued behind it', async (t) => {
  const dir = tempDir(t);
  let store = await SealedBlobStore.open(dir);
  const probe = await open(join(dir, 'probe'), 'w');
  const proto = Object.getPrototypeOf(probe) as { datasync: () => Promise<void>; write: (...a: unknown[]) => Promise<unknown> };
  await probe.close();
  const { datasync, write } = proto;
  let syncs = 0;
  proto.datasync = function (this: unknown) {
    syncs++;
    return datasync.call(this);
  };
  t.after(() => {
    proto.datasync = datasync;
    proto.write = write;
  });
  const view = async () => (await store.readAll()).map((r) => [r.key, [...r.blob]]);
  // 50 batches issued in one turn: one group, one sync; later batches win on the same key.
  await Promise.all(Array.from({ length: 50 }, (_, i) => store.writeBatch([{ key: 'x', blob: new Uint8Array([i]) }, { key: `k${i}`, blob: new Uint8Array([i]) }], i > 0 ? [`k${i - 1}`] : [])));
  assert.equal(syncs, 1, 'one fdatasync for the whole group');
  assert.deepEqual(await view(), [
    ['k49', [49]],
    ['x', [49]],
  ]);
  // A write that tears (half a group on disk, then an error): the group and the batch queued
  // behind it both fail; the next batch cuts the torn bytes off and commits.
  proto.write = async function (this: unknown, buf: unknown, off: unknown, len: unknown, pos: unknown) {
    proto.write = write;
    await write.call(this, buf, off, Math.floor((len as number) / 2), pos);
    throw Object.assign(new Error('EIO: injected'), { code: 'EIO' });
  };
  const first = store.writeBatch([{ key: 'y', blob: new Uint8Array([1]) }], []);
  const second = store.writeBatch([{ key: 'z', blob: new Uint8Array([2]) }], []);
  await assert.rejects(first, /injected/);
  await assert.rejects(second, /injected/);
  await store.writeBatch([{ key: 'w', blob: new Uint8Array([3]) }], []);
  await store.close();
  store = await SealedBlobStore.open(dir);
  assert.deepEqual(await view(), [
    ['k49', [49]],
    ['w', [3]],
    ['x', [49]],
  ]);
  await store.close();
});
