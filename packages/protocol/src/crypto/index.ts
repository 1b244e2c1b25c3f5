/**
 * Backend selection. The protocol calls {@link getCrypto}; the app (or SDK shell) calls
 * {@link initCrypto} once at start-up. The node backend is loaded only in Node, so browser
 * bundles never pull in node:crypto.
 */
import { ParleyError } from '../errors.js';
import type { BackendName, CryptoProvider } from './provider.js';
import { createNobleProvider } from './noble.js';

export type { BackendName, CryptoProvider, KeyPair } from './provider.js';

let active: CryptoProvider | undefined;
const loaded = new Map<BackendName, Promise<CryptoProvider>>();

/** `node` in Node.js (node:crypto curves + libsodium AEAD), `sodium` elsewhere. */
export function defaultBackend(): BackendName {
  const proc = (globalThis as { process?: { versions?: { node?: string } } }).process;
  return proc?.versions?.node ? 'node' : 'sodium';
}

/** Loads a backend (once) without making it the active one. */
export function loadBackend(name: BackendName): Promise<CryptoProvider> {
  let p = loaded.get(name);
  if (!p) {
    p =
      // Backends load on demand, so a pure-JS page never fetches libsodium's WASM.
      name === 'sodium'
        ? import('./sodium.js').then((m) => m.createSodiumProvider())
        : name === 'noble'
          ? Promise.resolve(createNobleProvider())
          : import('./node.js').then((m) => m.createNodeProvider());
    loaded.set(name, p);
  }
  return p;
}

/**
 * Loads and activates a backend. Call once before using the protocol; calling again switches
 * backends (sessions are backend-independent and move freely between them).
 */
export async function initCrypto(name: BackendName = defaultBackend()): Promise<CryptoProvider> {
  if (!['node', 'sodium', 'noble'].includes(name)) {
    throw new ParleyError('USAGE', `unknown crypto backend "${String(name)}"`);
  }
  active = await loadBackend(name);
  return active;
}

/** The active backend; throws `USAGE` if {@link initCrypto} has not completed. */
export function getCrypto(): CryptoProvider {
  if (!active) throw new ParleyError('USAGE', 'call initCrypto() before using the protocol');
  return active;
}
