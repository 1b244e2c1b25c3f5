/**
 * Deleted secrets leave the disk (issue 10, High 2; docs/threats.md ST7): after a real conversation
 * between two clients on FileStores through a relay, every message consumed and receipted, a scan
 * of each state directory WITH the storage key (helpers/disk-scan.ts: every file, every
 * base64-encoded sealed record, every record name) finds
 * - no plaintext of any message (all were consumed by the receiver and receipted to the sender),
 * - no record in any version but its current one (no superseded session pickle, account, peer
 *   record; nothing of a deleted inbox or outbox entry),
 * - none of the secrets of a superseded session state or account (chain, root and header keys,
 *   used one-time prekeys): raw in any file, or inside any record it can decrypt.
 * The scan runs while the clients are still open (a copy taken at that moment) and after close.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Account, Session, fromHex, toHex } from '@parley/protocol';
import { unsafeTestingAccountSecrets, unsafeTestingSessionSecrets } from '@parley/protocol/testing';
import { deriveStorageKey, type KeyValueStore } from '@parley/engine';
import { FileStore } from '../src/node/index.js';
import { setupCrypto } from '../../engine/test/helpers/engines.js';
import { client, startRelay, until } from './helpers/relay.js';
import { contains, scanSealed, type Found } from './helpers/disk-scan.js';

const dirs: string[] = [];
before(setupCrypto);
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

/** Remembers every version of every record written through it. */
class Recorder implements KeyValueStore {
  readonly versions = new Map<string, Uint8Array[]>();
  constructor(readonly inner: KeyValueStore) {}
  get(k: string) {
    return this.inner.get(k);
  }
  keys(p: string) {
    return this.inner.keys(p);
  }
  setMany(entries: [string, Uint8Array][]) {
    for (const [k, v] of entries) {
      const list = this.versions.get(k) ?? [];
      list.push(v.slice());
      this.versions.set(k, list);
    }
    return this.inner.setMany(entries);
  }
  delMany(keys: string[]) {
    return this.inner.delMany(keys);
  }
}

function secretsOf(name: string, value: Uint8Array): Uint8Array[] {
  if (name === 'account') {
    const a = Account.unpickle(value);
    try {
      return unsafeTestingAccountSecrets(a);
    } finally {
      a.dispose();
    }
  }
  if (name.startsWith('session/')) {
    const s = Session.unpickle(value);
    try {
      return unsafeTestingSessionSecrets(s);
    } finally {
      s.dispose();
    }
  }
  return [];
}

async function storageKeyOf(dir: string, secret: string): Promise<Uint8Array> {
  const meta = JSON.parse(await readFile(join(dir, 'parley-store.json'), 'utf8')) as { salt: string };
  return deriveStorageKey(secret, fromHex(meta.salt));
}

/** Every decrypted record must be the record's current value; returns the offending names. */
async function staleRecords(found: Found[], current: (name: string) => Promise<Uint8Array | undefined>): Promise<string[]> {
  const bad = new Set<string>();
  for (const f of found) {
    if (f.name === '\u0000check') continue;
    const now = await current(f.name);
    if (!now || toHex(now) !== toHex(f.plaintext)) bad.add(`${f.file}: ${f.name} (${now ? 'superseded version' : 'deleted record'})`);
  }
  return [...bad].sort();
}

function canaryHits(found: Found[], files: { file: string; bytes: Buffer }[], canaries: string[]): string[] {
  const hits: string[] = [];
  for (const c of canaries) {
    const b = Buffer.from(c);
    for (const f of files) if (f.bytes.includes(b)) hits.push(`${c} in ${f.file} (clear)`);
    for (const f of found) if (contains(f.plaintext, b)) hits.push(`${c} in ${f.file} record ${f.name}`);
  }
  return hits;
}

function secretHits(found: Found[], files: { file: string; bytes: Buffer }[], secrets: Map<string, string>): string[] {
  const hits: string[] = [];
  for (const [hex, what] of secrets) {
    const b = Buffer.from(hex, 'hex');
    for (const f of files) if (f.bytes.includes(b)) hits.push(`${what} in ${f.file} (clear)`);
    for (const f of found) if (contains(f.plaintext, b)) hits.push(`${what} in ${f.file} record ${f.name}`);
  }
  return hits;
}

describe('FileStore erasure after a real conversation (issue 10 High 2, THREATS ST7)', () => {
  it('a scan of each state directory with its key finds no consumed plaintext, no superseded record and no deleted secret', async () => {
    const root = await mkdtemp(join(tmpdir(), 'parley-erasure-'));
    dirs.push(root);
    const aliceDir = join(root, 'alice');
    const bobDir = join(root, 'bob');
    const aliceSecret = 'alice-storage-secret-0123456789abcdef';
    const bobSecret = 'bob-storage-secret-0123456789abcdef01';
    const relay = await startRelay();
    const bobFs = await FileStore.open({ dir: bobDir, storageSecret: bobSecret });
    const bobStore = new Recorder(bobFs);
    // Alice: the client opens its own store (storagePath); Bob: a FileStore seen through a recorder.
    const alice = await client(relay, { storagePath: aliceDir, storageSecret: aliceSecret });
    const bob = await client(relay, { store: bobStore });
    const canaries: string[] = [];
    const canary = (who: string, i: number) => {
      const c = `canary-${who}-${i}-${Math.random().toString(36).slice(2, 10)}`;
      canaries.push(c);
      return c;
    };
    let closed = false;
    try {
      await alice.client.connect();
      await bob.client.connect();
      const aliceSent: string[] = [];
      const bobSent: string[] = [];
      for (let i = 0; i < 16; i++) {
        aliceSent.push((await alice.client.send(bob.client.deviceId, `${canary('a', i)} hello bob`)).id);
        if (i % 4 === 3) {
          await until(() => bob.got.length === aliceSent.length, 10_000, 'bob receives');
          bobSent.push((await bob.client.send(alice.client.deviceId, { reply: canary('b', i) })).id);
        }
      }
      await until(() => bob.got.length === aliceSent.length && alice.got.length === bobSent.length, 15_000, 'everything received');
      await until(() => aliceSent.every((id) => alice.delivered.includes(id)) && bobSent.every((id) => bob.delivered.includes(id)), 15_000, 'every receipt');
      await bob.client.idle();
      await alice.client.idle();
      assert.equal(alice.client.pendingCount + bob.client.pendingCount, 0);

      // Secrets the stores held once and no longer hold (Bob: every version written was recorded).
      const current = new Set<string>();
      for (const name of bobStore.versions.keys()) {
        const now = await bobFs.get(name);
        if (now) for (const s of secretsOf(name, now)) current.add(toHex(s));
      }
      const deleted = new Map<string, string>();
      let usedPrekeySecrets = 0;
      let supersededSessionSecrets = 0;
      for (const [name, versions] of bobStore.versions) {
        for (const v of versions) {
          for (const s of secretsOf(name, v)) {
            const hex = toHex(s);
            if (current.has(hex) || deleted.has(hex)) continue;
            deleted.set(hex, `${name === 'account' ? 'a deleted account key (used one-time prekey)' : `a superseded secret of ${name}`}`);
            if (name === 'account') usedPrekeySecrets++;
            else supersededSessionSecrets++;
          }
        }
      }
      assert.ok(usedPrekeySecrets >= 1, 'Bob used at least one one-time prekey');
      assert.ok(supersededSessionSecrets >= 16, `superseded session secrets to look for (${supersededSessionSecrets})`);

      const check = async (phase: string, who: string, dir: string, secret: string, names: Iterable<string>, currentOf?: (n: string) => Promise<Uint8Array | undefined>, secrets?: Map<string, string>) => {
        const { found, files } = await scanSealed(dir, await storageKeyOf(dir, secret), names);
        assert.ok(found.some((f) => f.name === 'account'), `${phase} ${who}: the scan decrypts the live records`);
        assert.deepEqual(canaryHits(found, files, canaries), [], `${phase} ${who}: consumed plaintext on disk`);
        if (currentOf) assert.deepEqual(await staleRecords(found, currentOf), [], `${phase} ${who}: superseded or deleted records on disk`);
        if (secrets) assert.deepEqual(secretHits(found, files, secrets).slice(0, 10), [], `${phase} ${who}: deleted secrets on disk`);
      };

      // A copy of the directories taken now, while both clients run (Alice's current values are
      // readable only through her client's store, so her records are compared after close).
      await check('open', 'bob', bobDir, bobSecret, bobStore.versions.keys(), (n) => bobFs.get(n), deleted);
      await check('open', 'alice', aliceDir, aliceSecret, []);

      await alice.client.close();
      await bob.client.close();
      await bobFs.close();
      closed = true;
      const a = await FileStore.open({ dir: aliceDir, storageSecret: aliceSecret });
      const b = await FileStore.open({ dir: bobDir, storageSecret: bobSecret });
      try {
        await check('closed', 'bob', bobDir, bobSecret, bobStore.versions.keys(), (n) => b.get(n), deleted);
        await check('closed', 'alice', aliceDir, aliceSecret, [], (n) => a.get(n));
      } finally {
        await a.close();
        await b.close();
      }
    } finally {
      if (!closed) {
        await alice.client.close();
        await bob.client.close();
        await bobFs.close();
      }
      await relay.close();
    }
  });
});
