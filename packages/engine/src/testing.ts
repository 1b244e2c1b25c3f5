/**
 * `@parley/engine/testing`: hooks for tests that tamper with or copy stored records. They bypass
 * every check; never use them in production code.
 */
export { unsafeTestingRaw } from './store.js';
