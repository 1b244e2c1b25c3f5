/**
 * Stand-in for `libsodium-wrappers` in builds for pages whose Content-Security-Policy forbids
 * WebAssembly (no `'wasm-unsafe-eval'`). Those pages run `initCrypto('noble')`, so libsodium is
 * never used there; aliasing it to this module keeps its ~300 kB of WASM-carrying JavaScript out
 * of the bundle. Asking for it anyway fails loudly instead of loading WASM.
 */
const unavailable = (): Promise<never> =>
  Promise.reject(new Error('libsodium is not part of this build (pure-JS/CSP bundle): use initCrypto("noble")'));

const stub = {
  get ready(): Promise<never> {
    return unavailable();
  },
};

export default stub;
