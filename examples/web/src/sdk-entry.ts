/**
 * The client SDK's browser surface, as an app imports it: the bundle-size report builds exactly
 * this file, once per backend (`bundle-size.ts`).
 */
export { initCrypto } from '@parley/protocol';
export { ParleyClient } from '@parley/client';
export { IndexedDbStore, acquireWriterLock, writerLockName } from '@parley/client/browser';
