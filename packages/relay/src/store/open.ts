/** Resolves the `store` option of `createRelay` into a {@link RelayStore}. */
import { MemoryStore } from './memory.js';
import { SqliteStore } from './sqlite.js';
import type { RelayStore } from './types.js';

/** `'memory'`, `{ sqlite: path }`, or any object implementing {@link RelayStore}. */
export type StoreOption = 'memory' | { readonly sqlite: string } | RelayStore;

/** Opens the store; `owned` says whether the relay should close it on shutdown. */
export function openStore(option: StoreOption): { store: RelayStore; owned: boolean } {
  if (option === 'memory') return { store: new MemoryStore(), owned: true };
  // The relay holds the file's lock: a second relay on it fails at once.
  if ('sqlite' in option && typeof option.sqlite === 'string') return { store: new SqliteStore(option.sqlite, { lock: true }), owned: true };
  return { store: option as RelayStore, owned: false };
}
