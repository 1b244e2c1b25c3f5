/**
 * The flags every bench runner shares, parsed with Node's built-in `util.parseArgs`:
 * `--quick`, `--json <file>`, `--only <comma list>` (validated against the runner's ids and
 * returned in report order), plus runner-specific string options.
 */
import { parseArgs } from 'node:util';

export interface BenchArgs<Id extends string> {
  readonly quick: boolean;
  readonly json: string | undefined;
  readonly only: Id[];
  /** Runner-specific `--name value` options, as given. */
  readonly extra: Readonly<Record<string, string | undefined>>;
}

export function parseBenchArgs<Id extends string>(argv: string[], ids: readonly Id[], usage: string, extraOptions: readonly string[] = []): BenchArgs<Id> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      options: {
        quick: { type: 'boolean', default: false },
        json: { type: 'string' },
        only: { type: 'string' },
        ...Object.fromEntries(extraOptions.map((name) => [name, { type: 'string' as const }])),
      },
    }));
  } catch (e) {
    throw new Error(`${(e as Error).message}; usage: ${usage}`);
  }
  let only = [...ids];
  if (values.only !== undefined) {
    const list = String(values.only).split(',').filter(Boolean);
    const bad = list.filter((x) => !(ids as readonly string[]).includes(x));
    if (bad.length || !list.length) throw new Error(`--only takes a comma list of ${ids.join(', ')}`);
    only = ids.filter((id) => list.includes(id)); // report order, not argument order
  }
  const named = values as Record<string, string | boolean | undefined>;
  const extra = Object.fromEntries(extraOptions.map((name) => [name, typeof named[name] === 'string' ? (named[name] as string) : undefined]));
  return { quick: values.quick === true, json: values.json as string | undefined, only, extra };
}

/**
 * An integer flag's value: `dflt` when absent; `bad()` (which prints the usage and exits) when it
 * is not an integer in `lo..hi`.
 */
export function intFlag(value: string | undefined, dflt: number, lo: number, hi: number, bad: () => never): number {
  if (value === undefined) return dflt;
  const n = Number(value);
  if (!Number.isInteger(n) || n < lo || n > hi) bad();
  return n;
}

/**
 * This process's arguments without the `--` that `pnpm <script> -- --flag` passes on (a strict
 * `parseArgs` would take it as the end of the options and refuse what follows).
 */
export function scriptArgs(argv: readonly string[] = process.argv.slice(2)): string[] {
  return argv[0] === '--' ? argv.slice(1) : [...argv];
}
