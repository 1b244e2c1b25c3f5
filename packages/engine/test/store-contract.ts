/**
 * The one `KeyValueStore` contract suite, registered with node:test:
 * `storeContract('FileStore', async () => ({ store, reopen, close }))` adds one `it` per case of
 * {@link storeContractCases} (store-contract-cases.ts, which the browser test also bundles into
 * a page to run the same cases against `IndexedDbStore`). Each case gets a fresh store.
 *
 * Registered for: MemoryStore and SealedStore (packages/engine/test/store-contract.test.ts),
 * FileStore (packages/client/test/store-contract.test.ts), the enclave's SealedKeyValueStore
 * (packages/bot/test/store-contract.test.ts), IndexedDbStore in Chromium
 * (test/browser/store-contract.test.ts).
 */
import { describe, it } from 'node:test';
import { runContractCase, storeContractCases, type ContractCase, type StoreFactory } from './store-contract-cases.js';

export { storeContractCases, runContractCase, type StoreFactory, type StoreHandle, type ContractCase } from './store-contract-cases.js';

/** Options of {@link storeContract}. */
export interface StoreContractOptions {
  /**
   * Why the store has no `reopen` (it keeps nothing across instances). The durability cases do
   * not apply then and are not registered; without it a missing `reopen` fails them.
   */
  readonly noReopen?: string;
  /** Skip the whole suite with this reason (e.g. no browser installed). */
  readonly skip?: string | false;
}

/** Registers `describe('KeyValueStore contract [name]')` with one `it` per contract case. */
export function storeContract(name: string, factory: StoreFactory, options: StoreContractOptions = {}): void {
  registerContractCases(name, (c) => runContractCase(c, factory), options);
}

/**
 * The node:test side of the suite, for any runner: `runCase` runs one case and rejects when it
 * fails (in this process for {@link storeContract}; in a browser page for the IndexedDB test).
 */
export function registerContractCases(name: string, runCase: (c: ContractCase) => Promise<void>, options: StoreContractOptions = {}): void {
  describe(`KeyValueStore contract [${name}]`, { skip: options.skip ?? false }, () => {
    for (const c of storeContractCases) {
      if (c.needsReopen && options.noReopen) continue;
      it(c.name, () => runCase(c));
    }
  });
}
