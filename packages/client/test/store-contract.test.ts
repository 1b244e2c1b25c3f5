/**
 * The KeyValueStore contract (packages/engine/test/store-contract.ts) for `FileStore`, each case
 * in its own temp directory (removed after the case). `reopen` closes the store and opens the
 * same directory again, so everything read afterwards comes from the log on disk.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before } from 'node:test';
import { FileStore } from '../src/node/index.js';
import { setupCrypto } from '../../engine/test/helpers/engines.js';
import { storeContract } from '../../engine/test/store-contract.js';

before(setupCrypto);

storeContract('FileStore', async () => {
  // The key file goes beside the store folder (`state.key`): both live in one temp dir.
  const root = await mkdtemp(join(tmpdir(), 'parley-store-contract-'));
  const dir = join(root, 'state');
  let current = await FileStore.open({ dir });
  return {
    store: current,
    reopen: async () => {
      await current.close();
      current = await FileStore.open({ dir });
      return current;
    },
    close: async () => {
      await current.close();
      await rm(root, { recursive: true, force: true });
    },
  };
});

storeContract('FileStore with a storageSecret', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'parley-store-contract-'));
  const storageSecret = 'contract-test-secret-0123456789abcdef';
  let current = await FileStore.open({ dir, storageSecret });
  return {
    store: current,
    reopen: async () => {
      await current.close();
      current = await FileStore.open({ dir, storageSecret });
      return current;
    },
    close: async () => {
      await current.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});
