/**
 * Pure helpers of the CLI (`cli.ts`): limits from flags and the environment, and the plain-HTTP
 * warning. Tested in test/cli.test.ts and test/operator.test.ts.
 */
import { DEFAULT_LIMITS, type RelayLimits } from './options.js';

/**
 * Parses `--limit name=value` entries (each may hold several, comma-separated, as
 * `PARLEY_RELAY_LIMITS` does) into limit overrides.
 * @throws Error naming the entry when the name is not a limit or the value not a number.
 */
export function parseLimits(entries: readonly string[]): Partial<RelayLimits> {
  const out: Partial<Record<keyof RelayLimits, number>> = {};
  for (const entry of entries.flatMap((e) => e.split(',')).map((e) => e.trim()).filter((e) => e !== '')) {
    const eq = entry.indexOf('=');
    const name = eq < 0 ? entry : entry.slice(0, eq).trim();
    if (eq < 0 || !Object.hasOwn(DEFAULT_LIMITS, name)) {
      throw new Error(`--limit ${entry}: expected name=value with one of ${Object.keys(DEFAULT_LIMITS).join(', ')}`);
    }
    const value = Number(entry.slice(eq + 1).trim());
    if (entry.slice(eq + 1).trim() === '' || !Number.isFinite(value) || value < 0) throw new Error(`--limit ${entry}: the value must be a number ≥ 0`);
    out[name as keyof RelayLimits] = value;
  }
  return out;
}

/** The environment variable of one limit: `maxSocketsPerDevice` → `PARLEY_RELAY_MAX_SOCKETS_PER_DEVICE`. */
export function limitEnvName(name: keyof RelayLimits): string {
  return `PARLEY_RELAY_${name.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;
}

/**
 * The limits a process is started with, by precedence: `--limit` flags, then one variable per
 * limit (`PARLEY_RELAY_<NAME>`, see {@link limitEnvName}), then `PARLEY_RELAY_LIMITS`
 * (comma-separated `name=value`), then {@link DEFAULT_LIMITS}.
 * @throws Error naming the flag or variable with a bad name or value.
 */
export function resolveLimits(flags: readonly string[], env: NodeJS.ProcessEnv): Partial<RelayLimits> {
  const fromList = env['PARLEY_RELAY_LIMITS'] ? parseLimits([env['PARLEY_RELAY_LIMITS']]) : {};
  const fromVars: Partial<Record<keyof RelayLimits, number>> = {};
  for (const name of Object.keys(DEFAULT_LIMITS) as (keyof RelayLimits)[]) {
    const raw = env[limitEnvName(name)]?.trim();
    if (raw === undefined || raw === '') continue;
    const value = Number(raw);
    if (!Number.isFinite(value) || value < 0) throw new Error(`${limitEnvName(name)}=${raw}: the value must be a number ≥ 0`);
    fromVars[name] = value;
  }
  return { ...fromList, ...fromVars, ...parseLimits(flags) };
}

/**
 * `--ticket-unclaimed-ms` (env `PARLEY_RELAY_TICKET_UNCLAIMED_MS`): a whole number of ms ≥ 1.
 * @throws Error naming the flag when it is not.
 */
export function parseTicketUnclaimedMs(raw: string): number {
  const value = Number(raw.trim());
  if (raw.trim() === '' || !Number.isSafeInteger(value) || value < 1) {
    throw new Error(`--ticket-unclaimed-ms ${raw}: expected a whole number of milliseconds ≥ 1 (PARLEY_RELAY_TICKET_UNCLAIMED_MS)`);
  }
  return value;
}

/**
 * `--archive-retention-days` (env `PARLEY_RELAY_ARCHIVE_RETENTION_DAYS`): a whole number of days ≥ 1.
 * @throws Error naming the flag when it is not.
 */
export function parseArchiveRetentionDays(raw: string): number {
  const value = Number(raw.trim());
  if (raw.trim() === '' || !Number.isSafeInteger(value) || value < 1) {
    throw new Error(`--archive-retention-days ${raw}: expected a whole number of days ≥ 1 (PARLEY_RELAY_ARCHIVE_RETENTION_DAYS)`);
  }
  return value;
}

/** True for loopback interfaces (127.0.0.0/8, ::1, localhost). `0.0.0.0` and `::` are every interface. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h) || /^::ffff:127\.\d+\.\d+\.\d+$/.test(h);
}

/**
 * The warning for a relay serving plain HTTP beyond loopback (no `--tls-cert`), unless the
 * origin clients sign is `https://` (a TLS-terminating proxy in front). `undefined` otherwise.
 */
export function plainHttpWarning(host: string, tls: boolean, origin?: string): string | undefined {
  if (tls || isLoopback(host) || origin?.startsWith('https://')) return undefined;
  return `WARNING: serving plain HTTP on ${host}, beyond loopback: logins, envelopes and metadata cross the network ` +
    'unencrypted. Give --tls-cert and --tls-key, or put a TLS-terminating proxy in front and set --origin https://….';
}
