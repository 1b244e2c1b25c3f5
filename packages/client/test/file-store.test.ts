import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile, appendFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isParleyError } from '@parley/protocol';
import { ConversationEngine, MemoryStore, SealedStore } from '@parley/engine';
import { FileStore } from '../src/node/index.js';
import { unsafeTestingRaw } from '../src/testing.js';
import { device, mid, setupCrypto, str, takeBundle, text } from '../../engine/test/helpers/engines.js';

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'parley-client-fs-'));
  dirs.push(d);
  return d;
}

const integrity = (e: unknown) => isParleyError(e, 'STORAGE_INTEGRITY');

/** Rewrites the newest sealed value of `key` in the log with `mutate`. */
async function tamper(dir: string, key: string, mutate: (b: Buffer) => void): Promise<void> {
  const path = join(dir, 'records.log');
  const lines = (await readFile(path, 'utf8')).split('\n');
  for (let i = lines.length - 1; i >= 0; i--) {
    if (!lines[i]) continue;
    const line = JSON.parse(lines[i]!) as { s?: [string, string][] };
    const entry = line.s?.find(([k]) => k === key);
    if (!entry) continue;
    const b = Buffer.from(entry[1], 'base64');
    mutate(b);
    entry[1] = b.toString('base64');
    lines[i] = JSON.stringify(line);
    await writeFile(path, lines.join('\n'));
    return;
  }
  throw new Error(`key ${key} not in log`);
}

before(setupCrypto);
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe('FileStore', () => {
  it('persists atomic batches across reopen, with a 0600 key file', async () => {
    const dir = await tempDir();
    const s = await FileStore.open({ dir });
    await s.setMany([['a/1', text('one')], ['a/2', text('two')], ['b', text('bee')]]);
    await s.delMany(['a/2']);
    await s.close();
    const st = await stat(join(dir, 'storage.key'));
    assert.equal(st.mode & 0o777, 0o600);
    const s2 = await FileStore.open({ dir });
    assert.equal(str((await s2.get('a/1'))!), 'one');
    assert.equal(await s2.get('a/2'), undefined);
    assert.deepEqual((await s2.keys('a/')).sort(), ['a/1']);
    // Plaintext never reaches the disk.
    assert.ok(!(await readFile(join(dir, 'records.log'), 'utf8')).includes(Buffer.from('bee').toString('base64')));
    await s2.close();
  });

  it('a flipped byte in any record gives STORAGE_INTEGRITY (UNSUPPORTED_VERSION for the format byte) for that record only', async () => {
    const dir = await tempDir();
    const s = await FileStore.open({ dir });
    await s.setMany([['x', text('secret x')], ['y', text('secret y')]]);
    await s.close();
    for (let pos = 0; pos < 20; pos += 3) {
      await tamper(dir, 'x', (b) => {
        b[pos % b.length]! ^= 0x40;
      });
      const t = await FileStore.open({ dir });
      await assert.rejects(t.get('x'), pos === 0 ? (e: unknown) => isParleyError(e, 'UNSUPPORTED_VERSION') : integrity);
      assert.equal(str((await t.get('y'))!), 'secret y');
      await t.close();
      await tamper(dir, 'x', (b) => {
        b[pos % b.length]! ^= 0x40;
      }); // undo
    }
  });

  it('records swapped between keys are refused (the key is the AD)', async () => {
    const dir = await tempDir();
    const s = await FileStore.open({ dir });
    await s.setMany([['session/a', text('A')], ['session/b', text('B')]]);
    await s.close();
    const path = join(dir, 'records.log');
    const line = JSON.parse((await readFile(path, 'utf8')).trim()) as { s: [string, string][] };
    const [a, b] = line.s;
    line.s = [[a![0], b![1]], [b![0], a![1]]];
    await writeFile(path, `${JSON.stringify(line)}\n`);
    const t = await FileStore.open({ dir });
    await assert.rejects(t.get('session/a'), integrity);
    await assert.rejects(t.get('session/b'), integrity);
    await t.close();
  });

  it('the wrong storage secret is refused at open', async () => {
    const dir = await tempDir();
    const s = await FileStore.open({ dir, storageSecret: 'correct horse battery staple, but long' });
    await s.setMany([['k', text('v')]]);
    await s.close();
    await assert.rejects(FileStore.open({ dir, storageSecret: 'another secret that is long enough' }), integrity);
    const ok = await FileStore.open({ dir, storageSecret: 'correct horse battery staple, but long' });
    assert.equal(str((await ok.get('k'))!), 'v');
    await ok.close();
  });

  it('a torn last transaction is dropped; a damaged earlier one is an integrity error', async () => {
    const dir = await tempDir();
    const s = await FileStore.open({ dir });
    await s.setMany([['k1', text('1')]]);
    await s.setMany([['k2', text('2')]]);
    await s.close();
    const path = join(dir, 'records.log');
    await appendFile(path, '{"s":[["k3","AAAA');
    const t = await FileStore.open({ dir });
    assert.equal(await t.get('k3'), undefined);
    assert.equal(str((await t.get('k2'))!), '2');
    await t.setMany([['k4', text('4')]]);
    await t.close();
    const t2 = await FileStore.open({ dir });
    assert.equal(str((await t2.get('k4'))!), '4');
    await t2.close();
    const lines = (await readFile(path, 'utf8')).split('\n');
    lines[0] = '{"s":[["k1"';
    await writeFile(path, lines.join('\n'));
    await assert.rejects(FileStore.open({ dir }), integrity);
  });

  it('refuses a second open of the same directory', async () => {
    const dir = await tempDir();
    const s = await FileStore.open({ dir });
    await assert.rejects(FileStore.open({ dir }), (e) => isParleyError(e, 'USAGE'));
    await s.close();
  });

  it('an engine on a FileStore survives restarts; a tampered session record is STORAGE_INTEGRITY', async () => {
    const dir = await tempDir();
    const bob = await device();
    let store = await FileStore.open({ dir });
    let alice = await ConversationEngine.open({ store });
    const m1 = await alice.encrypt(bob.engine.deviceId, text('1'), { messageId: mid(), bundle: takeBundle(bob.upload) });
    await alice.close();
    await store.close();
    store = await FileStore.open({ dir });
    alice = await ConversationEngine.open({ store });
    const m2 = await alice.encrypt(bob.engine.deviceId, text('2'), { messageId: mid() });
    assert.equal(alice.pendingOutbox().length, 2);
    for (const m of [m1, m2]) {
      const r = await bob.engine.receive({ from: alice.deviceId, id: m.id, envelope: m.envelope });
      assert.ok(r.kind === 'message');
    }
    const sessionKey = (await store.keys('session/'))[0]!;
    await alice.close();
    await store.close();

    await tamper(dir, sessionKey, (b) => {
      b[b.length - 5]! ^= 1;
    });
    store = await FileStore.open({ dir });
    alice = await ConversationEngine.open({ store });
    await assert.rejects(alice.encrypt(bob.engine.deviceId, text('3'), { messageId: mid() }), integrity);
    await store.close();

    await tamper(dir, 'account', (b) => {
      b[30]! ^= 1;
    });
    store = await FileStore.open({ dir });
    await assert.rejects(ConversationEngine.open({ store }), integrity);
    await store.close();
  });

  it('SealedStore over memory: a byte flip is caught', async () => {
    const raw = new MemoryStore();
    const sealed = new SealedStore(raw, new Uint8Array(32).fill(7));
    await sealed.setMany([['k', text('v')]]);
    unsafeTestingRaw(raw).get('k')![10]! ^= 1;
    await assert.rejects(sealed.get('k'), integrity);
  });
});
