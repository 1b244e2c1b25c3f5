// Development only: the enclave worker's first module when the bot runs from its TypeScript
// sources (this repository's tests and examples). It registers tsx's loader in this worker,
// then imports the entry point. The published package starts dist/enclave/entry.js directly.
// Nothing secret is touched here; the host passes nothing but this file's URL.
const { register } = await import('tsx/esm/api');
register();
await import(new URL('./entry.ts', import.meta.url).href);
