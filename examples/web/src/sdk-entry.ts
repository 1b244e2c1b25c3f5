/**
 * The client SDK's browser surface, as an app would import it: the bundle-size report builds
 * exactly this file, once per backend (`bundle-size.ts`).
 */
export { initCrypto } from '@parley/protocol';
export { ConversationEngine } from '@parley/client/core';
export { IndexedDbStore, acquireWriterLock, writerLockName } from '@parley/client/browser';
