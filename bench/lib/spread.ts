/**
 * Figures that hold up when rerun: a bench repeats its whole measurement `--runs N` times
 * (default 3, each complete and from fresh processes) and reports every figure as the spread of
 * the per-run figures, min / median / max, and a target as met only when the worst run meets it.
 */

/** Complete runs per bench invocation unless `--runs` says otherwise. */
export const DEFAULT_RUNS = 3;

/** The smallest, middle and largest of a figure's per-run values. */
export interface Spread {
  readonly min: number;
  readonly median: number;
  readonly max: number;
  /** How many runs produced the figure. */
  readonly n: number;
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** The spread of `xs`, or undefined when there is no value (a failed case). */
export function spreadOf(xs: readonly number[]): Spread | undefined {
  const finite = xs.filter(Number.isFinite);
  if (finite.length === 0) return undefined;
  return { min: Math.min(...finite), median: median(finite), max: Math.max(...finite), n: finite.length };
}

/**
 * Parses `--runs`: a whole number from 1 to 20.
 * @throws Error with the usage line otherwise.
 */
export function parseRuns(value: string | undefined, usage: string): number {
  if (value === undefined) return DEFAULT_RUNS;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 20) throw new Error(`--runs takes a whole number from 1 to 20; usage: ${usage}`);
  return n;
}

export const fmtNum = (x: number): string =>
  Number.isFinite(x) ? x.toLocaleString('en-US', { maximumSignificantDigits: 3 }) : '—';

/** `median (min–max)`, each through `fmt`; a single run shows only its value. */
export function fmtSpread(s: Spread | undefined, fmt: (x: number) => string = fmtNum): string {
  if (!s) return '—';
  if (s.n === 1) return fmt(s.median);
  return `${fmt(s.median)} (${fmt(s.min)}–${fmt(s.max)})`;
}

/** A ratio as `1.23×`. */
export const fmtRatio = (x: number): string => (Number.isFinite(x) ? `${x.toFixed(2)}×` : '—');

/** A markdown table; the first row is the header. */
export function table(rows: readonly (readonly string[])[]): string {
  const [head, ...body] = rows;
  return [`| ${head!.join(' | ')} |`, `|${head!.map(() => '---').join('|')}|`, ...body.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}
