/**
 * `@parley/client/testing`: hooks for tests (never for production code): the live records of a
 * `MemoryStore`, and an `IndexedDbStore`'s wrapping key (to prove it cannot be exported).
 */
export { unsafeTestingRaw } from '@parley/engine/testing';
export { unsafeTestingWrappingKey } from './browser/idb-store.js';
