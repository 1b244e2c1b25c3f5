/**
 * Vite builds used by the demo server, the bundle-size report and the browser tests.
 * Vite's JS API only; nothing is written outside `outDir`.
 */
import { build, createLogger, type Logger, type Rollup } from 'vite';
import { backendAlias, type BrowserBackend } from './backends.js';

/** Options of {@link buildPages}. */
export interface BuildPagesOptions {
  /** Vite root: the folder holding the HTML pages. */
  root: string;
  /** Page name → absolute path of its HTML file. */
  input: Record<string, string>;
  /** Output folder (emptied first). */
  outDir: string;
  /** Minify (default true). */
  minify?: boolean;
  /** Compile-time constants (`define`). */
  define?: Record<string, string>;
  /** `noble` leaves libsodium out (pure-JS pages). Default `sodium`. */
  backend?: BrowserBackend;
  /** Keep files already in `outDir` (a second build into the same folder). */
  keepOutDir?: boolean;
}

/** One emitted file and its size in bytes. */
export interface BuiltFile {
  readonly fileName: string;
  readonly bytes: number;
}

/**
 * Vite's logger minus one expected warning: the SDK reaches `node:*` modules only through lazy
 * `import()`s that never run in a browser (the Node crypto backend, the Node file store), and
 * Vite says it externalised them.
 */
export function quietLogger(): Logger {
  const logger = createLogger('warn');
  const warn = logger.warn.bind(logger);
  logger.warn = (msg, options) => {
    if (/Module "node:[^"]+" has been externalized for browser compatibility/.test(msg)) return;
    warn(msg, options);
  };
  return logger;
}

/** Builds multi-page static output with relative asset URLs; returns the emitted files. */
export async function buildPages(options: BuildPagesOptions): Promise<BuiltFile[]> {
  const result = await build({
    root: options.root,
    base: './',
    configFile: false,
    logLevel: 'warn',
    customLogger: quietLogger(),
    publicDir: false,
    resolve: { alias: backendAlias(options.backend ?? 'sodium') },
    ...(options.define ? { define: options.define } : {}),
    build: {
      outDir: options.outDir,
      emptyOutDir: !options.keepOutDir,
      minify: options.minify ?? true,
      target: 'es2022',
      reportCompressedSize: false,
      chunkSizeWarningLimit: 4096,
      rollupOptions: { input: options.input },
    },
  });
  return filesOf(result);
}

/** The files of a Vite build result. */
export function filesOf(result: Awaited<ReturnType<typeof build>>): BuiltFile[] {
  const outputs = (Array.isArray(result) ? result : [result]) as Rollup.RollupOutput[];
  const files: BuiltFile[] = [];
  for (const out of outputs) {
    if (!out || !('output' in out)) continue;
    for (const item of out.output) {
      const bytes = item.type === 'chunk' ? Buffer.byteLength(item.code) : typeof item.source === 'string' ? Buffer.byteLength(item.source) : item.source.length;
      files.push({ fileName: item.fileName, bytes });
    }
  }
  return files;
}
