import assert from 'node:assert/strict';
import { appendFile, cp, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fromHex, getCrypto, isParleyError, toHex } from '@parley/protocol';
import { ConversationEngine, MemoryStore, SealedStore, deriveStorageKey, sealRecord } from '@parley/engine';
import { FileStore } from '../src/node/index.js';
import { unsafeTestingJournalHooks } from '../src/node/journal.js';
import { scanSealed } from './helpers/disk-scan.js';
import { unsafeTestingRaw } from '../src/testing.js';
import { device, mid, setupCrypto, str, takeBundle, text } from '../../engine/test/helpers/engines.js';

const dirs: string[] = [];
/** A fresh store directory inside its own temp directory (the default key file goes beside it). */
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'parley-client-fs-'));
  dirs.push(d);
  return join(d, 'store');
}

const integrity = (e: unknown) => isParleyError(e, 'STORAGE_INTEGRITY');

/** Rewrites the newest sealed value of `key` in the journal with `mutate`. */
async function tamper(dir: string, key: string, mutate: (b: Buffer) => void): Promise<void> {
  const path = join(dir, 'journal.log');
  const lines = (await readFile(path, 'utf8')).split('\n');
  for (let i = lines.length - 1; i >= 0; i--) {
    if (!lines[i]) continue;
    const line = JSON.parse(lines[i]!) as { s?: [string, string, string][] };
    const entry = line.s?.find(([k, v]) => k === key && !v.includes('*'));
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
  it('persists atomic batches across reopen, with a 0600 key file beside the directory, never in it', async () => {
    const dir = await tempDir();
    const s = await FileStore.open({ dir });
    await s.setMany([['a/1', text('one')], ['a/2', text('two')], ['b', text('bee')]]);
    await s.delMany(['a/2']);
    await s.close();
    const st = await stat(`${dir}.key`);
    assert.equal(st.mode & 0o777, 0o600);
    assert.equal(st.size, 32);
    assert.deepEqual((await readdir(dir)).sort(), ['journal.log', 'lock', 'parley-store.json'], 'no key file in the directory');
    const s2 = await FileStore.open({ dir });
    assert.equal(str((await s2.get('a/1'))!), 'one');
    assert.equal(await s2.get('a/2'), undefined);
    assert.deepEqual((await s2.keys('a/')).sort(), ['a/1']);
    // Plaintext never reaches the disk.
    assert.ok(!(await readFile(join(dir, 'journal.log'), 'utf8')).includes(Buffer.from('bee').toString('base64')));
    await s2.close();
  });

  it('a flipped byte in any record gives STORAGE_INTEGRITY for that record only (the format byte too: the journal hash catches it first)', async () => {
    const dir = await tempDir();
    const s = await FileStore.open({ dir });
    await s.setMany([['x', text('secret x')], ['y', text('secret y')]]);
    await s.close();
    for (let pos = 0; pos < 20; pos += 3) {
      await tamper(dir, 'x', (b) => {
        b[pos % b.length]! ^= 0x40;
      });
      const t = await FileStore.open({ dir });
      await assert.rejects(t.get('x'), integrity);
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
    const path = join(dir, 'journal.log');
    const lines = (await readFile(path, 'utf8')).trim().split('\n');
    const line = JSON.parse(lines[lines.length - 1]!) as { s: [string, string, string][] };
    const [a, b] = line.s;
    line.s = [[a![0], b![1], a![2]], [b![0], a![1], b![2]]];
    lines[lines.length - 1] = JSON.stringify(line);
    await writeFile(path, `${lines.join('\n')}\n`);
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
    const path = join(dir, 'journal.log');
    await appendFile(path, '{"n":4,"s":[["k3","AAAA');
    const t = await FileStore.open({ dir });
    assert.equal(await t.get('k3'), undefined);
    assert.equal(str((await t.get('k2'))!), '2');
    await t.setMany([['k4', text('4')]]);
    await t.close();
    const t2 = await FileStore.open({ dir });
    assert.equal(str((await t2.get('k4'))!), '4');
    await t2.close();
    const lines = (await readFile(path, 'utf8')).split('\n');
    lines[1] = lines[1]!.slice(0, 20);
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

  it('a key file inside the store directory is refused; one outside it works (issue 10 High 2)', async () => {
    const dir = await tempDir();
    await assert.rejects(FileStore.open({ dir, keyFile: join(dir, 'my.key') }), (e) => isParleyError(e, 'USAGE') && /inside the store directory/.test(e.message));
    await assert.rejects(FileStore.open({ dir, keyFile: join(dir, 'sub', 'my.key') }), (e) => isParleyError(e, 'USAGE'));
    // Through a symlink that points into the directory, too.
    await symlink(dir, `${dir}-alias`);
    await assert.rejects(FileStore.open({ dir, keyFile: join(`${dir}-alias`, 'my.key') }), (e) => isParleyError(e, 'USAGE'));
    const keyFile = join(dir, '..', 'keys', 'store.key');
    const s = await FileStore.open({ dir, keyFile });
    await s.setMany([['k', text('v')]]);
    await s.close();
    assert.equal((await stat(keyFile)).mode & 0o777, 0o600);
    const t = await FileStore.open({ dir, keyFile });
    assert.equal(str((await t.get('k'))!), 'v');
    await t.close();
  });

  it('an existing store whose key file is gone is refused, and no new key is made', async () => {
    const dir = await tempDir();
    const s = await FileStore.open({ dir });
    await s.setMany([['k', text('v')]]);
    await s.close();
    await rm(`${dir}.key`);
    await assert.rejects(FileStore.open({ dir }), (e) => isParleyError(e, 'STORAGE_INTEGRITY') && e.message.includes(`${dir}.key`));
    await assert.rejects(stat(`${dir}.key`), /ENOENT/);
  });

  it('a store of format 1 (key file and log inside the directory) is converted: key moved out, records kept, old log wiped', async () => {
    const dir = await tempDir();
    await mkdir(dir, { recursive: true });
    const keyBytes = getCrypto().randomBytes(32);
    const salt = getCrypto().randomBytes(32);
    const key = deriveStorageKey(keyBytes, salt);
    const sealed = (k: string, v: string) => Buffer.from(sealRecord(key, k, text(v))).toString('base64');
    await writeFile(join(dir, 'storage.key'), keyBytes, { mode: 0o600 });
    await writeFile(join(dir, 'parley-store.json'), JSON.stringify({ format: 'parley-file-store', version: 1, salt: toHex(salt), check: Buffer.from(sealRecord(key, '\u0000check', text('parley-file-store'))).toString('base64') }));
    const v1 = [
      { s: [['account', sealed('account', 'identity')], ['session/p/1', sealed('session/p/1', 'old session')]] },
      { s: [['session/p/1', sealed('session/p/1', 'new session')], ['inbox/1', sealed('inbox/1', 'consumed text')]] },
      { d: ['inbox/1'] },
    ];
    await writeFile(join(dir, 'records.log'), v1.map((l) => `${JSON.stringify(l)}\n`).join(''));
    await writeFile(join(dir, 'LOCK'), '999999999');
    const s = await FileStore.open({ dir });
    assert.equal(str((await s.get('session/p/1'))!), 'new session');
    assert.equal(str((await s.get('account'))!), 'identity');
    assert.equal(await s.get('inbox/1'), undefined);
    await s.setMany([['peer/p', text('p')]]);
    await s.close();
    assert.deepEqual((await readdir(dir)).sort(), ['journal.log', 'lock', 'parley-store.json']);
    assert.equal(toHex(new Uint8Array(await readFile(`${dir}.key`))), toHex(keyBytes), 'the same key, moved beside the directory');
    assert.equal(JSON.parse(await readFile(join(dir, 'parley-store.json'), 'utf8')).version, 2);
    const { found } = await scanSealed(dir, key, ['session/p/1', 'inbox/1']);
    assert.deepEqual(found.map((f) => `${f.name}=${str(f.plaintext)}`).sort(), ['account=identity', 'peer/p=p', 'session/p/1=new session']);
    const t = await FileStore.open({ dir });
    assert.equal(str((await t.get('peer/p'))!), 'p');
    await t.close();
  });

  it('a crash after a commit and before its scrubs (or halfway through one) opens the new state and scrubs the rest', async () => {
    const dir = await tempDir();
    const secret = 'crash-state-secret-0123456789abcdef';
    const copies: string[] = [];
    const s = await FileStore.open({ dir, storageSecret: secret });
    await s.setMany([['session/p/1', text('old session')], ['inbox/1', text('to be consumed')]]);
    unsafeTestingJournalHooks.afterCommit = async () => {
      // The disk as a crash right now leaves it (the lock's holder would be dead: no lock).
      const copy = join(dir, '..', `copy-${copies.length}`);
      await cp(dir, copy, { recursive: true, filter: (src) => !src.includes(`${dir}/lock`) });
      copies.push(copy);
    };
    try {
      await s.setMany([['session/p/1', text('new session')]]);
      await s.delMany(['inbox/1']);
    } finally {
      unsafeTestingJournalHooks.afterCommit = undefined;
    }
    await s.close();
    // A compaction cut short leaves its temp file (a copy of records since superseded): wiped at open.
    await writeFile(join(copies[0]!, 'journal.log.4242.0123abcd.tmp'), await readFile(join(copies[0]!, 'journal.log')));
    // A scrub torn by a power cut: half of the old session value overwritten.
    const half = join(dir, '..', 'copy-half');
    await cp(copies[0]!, half, { recursive: true });
    const path = join(half, 'journal.log');
    const lines = (await readFile(path, 'utf8')).split('\n');
    const entry = (JSON.parse(lines[1]!) as { s: [string, string, string][] }).s.find(([k]) => k === 'session/p/1')!;
    lines[1] = lines[1]!.replace(entry[1], '*'.repeat(entry[1].length >> 1) + entry[1].slice(entry[1].length >> 1));
    await writeFile(path, lines.join('\n'));
    for (const [copy, expectInbox] of [[copies[0]!, 'to be consumed'], [copies[1]!, undefined], [half, 'to be consumed']] as const) {
      const c = await FileStore.open({ dir: copy, storageSecret: secret });
      assert.equal(str((await c.get('session/p/1'))!), 'new session', copy);
      assert.equal((await c.get('inbox/1')) && str((await c.get('inbox/1'))!), expectInbox, copy);
      await c.close();
      const meta = JSON.parse(await readFile(join(copy, 'parley-store.json'), 'utf8')) as { salt: string };
      const { found } = await scanSealed(copy, deriveStorageKey(secret, fromHex(meta.salt)), ['session/p/1', 'inbox/1']);
      assert.ok(!found.some((f) => str(f.plaintext) === 'old session'), `the old version is scrubbed at open (${copy})`);
      assert.ok(!(await readdir(copy)).some((n) => n.endsWith('.tmp')), 'no temp file left');
    }
  });

  it('SealedStore over memory: a byte flip is caught', async () => {
    const raw = new MemoryStore();
    const sealed = new SealedStore(raw, new Uint8Array(32).fill(7));
    await sealed.setMany([['k', text('v')]]);
    unsafeTestingRaw(raw).get('k')![10]! ^= 1;
    await assert.rejects(sealed.get('k'), integrity);
  });
});
