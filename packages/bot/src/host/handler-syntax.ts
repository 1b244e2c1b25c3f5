/**
 * Where a handler's syntax error is. Node reports an ES module's syntax error to `import()`
 * without its location, so when the enclave says the handler failed to load with a SyntaxError,
 * the host asks `node --check` (which parses and never runs the file) for the `file:line`: of
 * the handler, and if that parses, of the JavaScript files of its own that it imports.
 */
import { execFile } from 'node:child_process';
import { isParleyError, ParleyError } from '@parley/protocol/verify';
import { handlerCodeFiles } from '../measurement.js';

/** How long `node --check` may take before the location is left out. */
const CHECK_TIMEOUT_MS = 5_000;
/** At most this many of the handler's imported files are checked. */
const MAX_CHECKED_IMPORTS = 50;

/** The handler's own imported JavaScript files (not its packages'), in measurement order. */
function importedScripts(handlerFile: string): string[] {
  try {
    return handlerCodeFiles(handlerFile)
      .slice(1)
      .filter((f) => !f.label.startsWith('handler/node_modules/') && /\.[mc]?js$/.test(f.path))
      .map((f) => f.path)
      .slice(0, MAX_CHECKED_IMPORTS);
  } catch {
    return [];
  }
}

/** `path:line` of the syntax error in `file`, or undefined (it parses, or the check failed). */
export function locateSyntaxError(file: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--check', file], { timeout: CHECK_TIMEOUT_MS, env: {} }, (error, _stdout, stderr) => {
      if (!error) return resolve(undefined);
      const first = String(stderr).split('\n')[0] ?? '';
      resolve(/^(.+):(\d+)$/.test(first) ? first : undefined);
    });
  });
}

/**
 * `e` with the syntax error's location added, when `e` is the enclave's report of a handler
 * that failed to load with a SyntaxError and no location; otherwise `e` itself.
 */
export async function withSyntaxLocation(e: unknown, handlerFile: string): Promise<unknown> {
  if (!isParleyError(e, 'USAGE') || !e.message.includes('SyntaxError') || e.message.includes('(at ')) return e;
  let where = await locateSyntaxError(handlerFile);
  for (const file of where ? [] : importedScripts(handlerFile)) {
    where = await locateSyntaxError(file);
    if (where) break;
  }
  return where ? new ParleyError('USAGE', `${e.message} (at ${where})`, { cause: e }) : e;
}
