/** `@parley/client/node`: Node-only pieces (file storage). */
export { FileStore, type FileStoreOptions } from './file-store.js';
