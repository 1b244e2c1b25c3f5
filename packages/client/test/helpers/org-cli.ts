/** Runs `parley-org` in-process (its `main`), collecting its exit code and output. */
import { main } from '../../src/cli/org.js';

/** A runner of `parley-org` with these arguments; `now` fixes the CLI's clock when given. */
export function orgCli(now?: () => number): (...args: string[]) => Promise<{ code: number; out: string; err: string }> {
  return async (...args) => {
    let out = '';
    let err = '';
    const code = await main(['node', 'parley-org', ...args], { out: (s) => void (out += s), err: (s) => void (err += s), ...(now ? { now } : {}) });
    return { code, out, err };
  };
}
