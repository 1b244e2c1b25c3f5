/**
 * Test page: the KeyValueStore contract cases (packages/engine/test/store-contract-cases.ts,
 * bundled as is) against `IndexedDbStore`. test/browser/store-contract.test.ts calls
 * `window.storeContract.run(name)` once per case and reports each as its own node:test case.
 */
import { IndexedDbStore } from '@parley/client/browser';
import { runContractCase, storeContractCases, type StoreFactory } from '../../../packages/engine/test/store-contract-cases.js';

let dbCounter = 0;

/** A fresh database per case; `reopen` closes the connection and opens the database again; `close` deletes it. */
const factory: StoreFactory = async () => {
  const dbName = `parley-contract-${++dbCounter}-${crypto.randomUUID()}`;
  let current = await IndexedDbStore.open({ dbName });
  return {
    store: current,
    reopen: async () => {
      current.close();
      current = await IndexedDbStore.open({ dbName });
      return current;
    },
    close: async () => {
      current.close();
      await IndexedDbStore.destroy(dbName);
    },
  };
};

export interface CaseResult {
  readonly ok: boolean;
  readonly error?: string;
  readonly ms: number;
}

const api = {
  names: storeContractCases.map((c) => c.name),
  async run(name: string): Promise<CaseResult> {
    const c = storeContractCases.find((x) => x.name === name);
    if (!c) return { ok: false, error: `no case named ${JSON.stringify(name)} in the page bundle`, ms: 0 };
    const t0 = performance.now();
    try {
      await runContractCase(c, factory);
      return { ok: true, ms: performance.now() - t0 };
    } catch (e) {
      const err = e as { name?: string; code?: string; message?: string; stack?: string };
      const head = `${err.name ?? 'Error'}${err.code ? ` [${err.code}]` : ''}: ${err.message ?? String(e)}`;
      return { ok: false, error: err.stack?.includes(err.message ?? '\u0000') ? `${head}\n${err.stack.split('\n').slice(1, 6).join('\n')}` : head, ms: performance.now() - t0 };
    }
  },
};
(window as unknown as { storeContract: typeof api }).storeContract = api;
document.getElementById('status')!.textContent = 'ready';
