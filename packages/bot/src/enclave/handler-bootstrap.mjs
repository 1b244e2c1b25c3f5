// Development only: the handler worker's first module when the bot runs from its TypeScript
// sources (this repository's tests and examples). It registers tsx's loader in this worker,
// then imports the handler worker's entry point. The published package starts
// dist/enclave/handler-worker.js directly. Nothing secret is touched here.
// In the enclave process (process mode) this thread already has the TypeScript loader of
// process-bootstrap.mjs (tsx would need a child process there, which is refused).
if (!globalThis[Symbol.for('parley.enclave.tsLoader')]) {
  const { register } = await import('tsx/esm/api');
  register();
}
await import(new URL('./handler-worker.ts', import.meta.url).href);
