// The enclave worker's first module. The enclave ships as TypeScript sources (the monorepo has
// no build step), so register tsx's loader in this worker before importing the entry point.
// Nothing secret is touched here; the host passes nothing but this file's URL.
try {
  const { register } = await import('tsx/esm/api');
  register();
} catch {
  // No tsx: a build that ships compiled .js entry files needs no loader.
}
await import(new URL('./entry.ts', import.meta.url).href);
