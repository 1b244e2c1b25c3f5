/**
 * `@parley/client/browser`: what a web page needs on top of the core SDK. A sealed IndexedDB
 * {@link KeyValueStore} whose wrapping key is a non-extractable WebCrypto key (not extractable
 * through JavaScript; still on disk in clear in the browser profile: see `IndexedDbStore`), and a
 * Web Locks helper so only one tab at a time drives a conversation.
 *
 * @example
 * import { IndexedDbStore, acquireWriterLock, writerLockName } from '@parley/client/browser';
 * const store = await IndexedDbStore.open({ dbName: 'support-widget' });
 * const lock = await acquireWriterLock(writerLockName(store.dbName), { onWaiting: () => banner('Open in another tab') });
 */
export {
  IndexedDbStore,
  WRAPPING_KEY_ID,
  DEFAULT_DB_NAME,
  DEFAULT_STORE_NAME,
  type IndexedDbStoreOptions,
} from './idb-store.js';
export { acquireWriterLock, withWriterLock, writerLockName, isWriterLockHeld, type WriterLock, type AcquireOptions } from './lock.js';
export type { KeyValueStore } from '@parley/engine';
