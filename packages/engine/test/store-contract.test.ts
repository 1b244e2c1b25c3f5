/** The KeyValueStore contract (store-contract.ts) for MemoryStore and SealedStore(MemoryStore). */
import { before } from 'node:test';
import { getCrypto } from '@parley/protocol';
import { MemoryStore, SealedStore, STORAGE_KEY_BYTES } from '../src/index.js';
import { setupCrypto } from './helpers/engines.js';
import { storeContract } from './store-contract.js';

before(setupCrypto);

storeContract('MemoryStore', async () => ({ store: new MemoryStore() }), {
  noReopen: 'a MemoryStore keeps nothing beyond its own instance',
});

storeContract('SealedStore(MemoryStore)', async () => ({ store: new SealedStore(new MemoryStore(), getCrypto().randomBytes(STORAGE_KEY_BYTES)) }), {
  noReopen: 'its inner MemoryStore keeps nothing beyond its own instance',
});

// SealedStore over a MemoryStore that outlives it: "reopen" is a new SealedStore with the same
// storage key over the same inner records, so what the wrapper wrote must open again.
storeContract('SealedStore(MemoryStore), reopened over the same records', async () => {
  const inner = new MemoryStore();
  const key = getCrypto().randomBytes(STORAGE_KEY_BYTES);
  return { store: new SealedStore(inner, key), reopen: async () => new SealedStore(inner, key) };
});
