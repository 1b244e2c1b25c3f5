/**
 * Bundle size of the client SDK in a browser build, for both crypto backends.
 *
 *   node --import tsx examples/web/bundle-size.ts [--json]
 *
 * Builds `src/sdk-entry.ts` with Vite in library mode (minified, ES2022, every dependency
 * bundled) once with libsodium (WASM) and once for the pure-JS backend (libsodium aliased out,
 * see src/no-sodium.ts), and prints raw and gzip (level 9) sizes. "initial" is what a page loads
 * up front (the entry and its static imports); lazily imported chunks (e.g. the Node backend,
 * never loaded in a browser) are listed apart.
 */
import { gzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { build, type Rollup } from 'vite';
import { backendAlias, type BrowserBackend } from './lib/backends.js';

const entry = fileURLToPath(new URL('./src/sdk-entry.ts', import.meta.url));

/** Size of one backend's bundle. */
export interface BundleSize {
  readonly backend: BrowserBackend;
  /** Bytes the page loads up front. */
  readonly initial: { raw: number; gzip: number };
  /** Lazily loaded chunks (not fetched unless imported at run time). */
  readonly lazy: { file: string; raw: number; gzip: number }[];
  readonly hasWasm: boolean;
}

/** Builds the SDK entry for one backend in memory and measures it. */
export async function measureBundle(backend: BrowserBackend): Promise<BundleSize> {
  const result = await build({
    configFile: false,
    logLevel: 'silent',
    publicDir: false,
    resolve: { alias: backendAlias(backend) },
    define: { 'process.env.NODE_ENV': '"production"' },
    build: {
      write: false,
      minify: true,
      target: 'es2022',
      reportCompressedSize: false,
      lib: { entry, formats: ['es'], fileName: `parley-sdk-${backend}` },
    },
  });
  const outputs = (Array.isArray(result) ? result : [result]) as Rollup.RollupOutput[];
  const chunks = outputs.flatMap((o) => o.output).filter((o): o is Rollup.OutputChunk => o.type === 'chunk');
  const byName = new Map(chunks.map((c) => [c.fileName, c]));
  const initial = new Set<string>();
  const visit = (name: string): void => {
    if (initial.has(name)) return;
    initial.add(name);
    for (const dep of byName.get(name)?.imports ?? []) visit(dep);
  };
  for (const c of chunks) if (c.isEntry) visit(c.fileName);
  // The protocol loads its crypto backend with a dynamic import; a page on this backend loads
  // that chunk (and, for sodium, libsodium's) right after start, so it counts as initial.
  const backendModule = `/protocol/src/crypto/${backend}.ts`;
  for (const c of chunks) if (c.moduleIds.some((id) => id.endsWith(backendModule))) visit(c.fileName);
  const size = (code: string) => ({ raw: Buffer.byteLength(code), gzip: gzipSync(code, { level: 9 }).length });
  const sum = { raw: 0, gzip: 0 };
  const lazy: BundleSize['lazy'] = [];
  let hasWasm = false;
  for (const c of chunks) {
    const s = size(c.code);
    if (initial.has(c.fileName)) {
      if (/WebAssembly\.(instantiate|compile|Module)/.test(c.code)) hasWasm = true;
      sum.raw += s.raw;
      sum.gzip += s.gzip;
    } else lazy.push({ file: c.fileName, ...s });
  }
  return { backend, initial: sum, lazy, hasWasm };
}

const kb = (n: number): string => `${(n / 1024).toFixed(1)} KiB`;

async function main(): Promise<void> {
  const results: BundleSize[] = [];
  for (const backend of ['sodium', 'noble'] as const) results.push(await measureBundle(backend));
  if (process.argv.includes('--json')) {
    console.log(JSON.stringify(results, null, 2));
    return;
  }
  console.log('Client SDK browser bundle (src/sdk-entry.ts, Vite library build, minified)');
  console.log('backend   initial raw   initial gzip   WebAssembly');
  for (const r of results) {
    console.log(`${r.backend.padEnd(9)} ${kb(r.initial.raw).padStart(11)}   ${kb(r.initial.gzip).padStart(12)}   ${r.hasWasm ? 'yes' : 'no'}`);
    for (const l of r.lazy) console.log(`          + lazy ${l.file}: ${kb(l.raw)} (gzip ${kb(l.gzip)}), not loaded by a page on this backend`);
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await main();
