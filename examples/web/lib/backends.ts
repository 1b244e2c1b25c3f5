/** Per-backend Vite settings shared by the app build, the bundle-size report and the tests. */
import { fileURLToPath } from 'node:url';

/** The two browser backends: libsodium's WASM, or pure JS (noble) for WASM-forbidding CSPs. */
export type BrowserBackend = 'sodium' | 'noble';

const noSodium = fileURLToPath(new URL('../src/no-sodium.ts', import.meta.url));

/**
 * Vite `resolve.alias` for a backend. The noble build replaces libsodium-wrappers with a stub,
 * so a pure-JS page ships no WebAssembly at all.
 */
export function backendAlias(backend: BrowserBackend): { find: RegExp; replacement: string }[] {
  return backend === 'noble' ? [{ find: /^libsodium-wrappers$/, replacement: noSodium }] : [];
}
