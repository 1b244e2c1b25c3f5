/**
 * The bot's egress policy: the origins its handler may send data to, through `ctx.fetch` only
 * (README "Egress policy and ctx.fetch"; docs/threats.md B7). Pure: shared by the host (option
 * checks, `computeMeasurement`) and the enclave, which measures the policy with its code and
 * enforces it on every request.
 *
 * An entry is a host name (`api.example.com`, HTTPS on 443), a host and port
 * (`api.example.com:8443`, HTTPS), or an origin (`https://api.example.com`,
 * `http://127.0.0.1:8080`: plain HTTP only where an entry says `http://`). Entries are
 * canonicalised to origins (`https://api.example.com`: lower case, IDNA, default port dropped),
 * de-duplicated and sorted, so the same policy always measures the same. No wildcards, paths,
 * queries or credentials.
 */
import { ParleyError } from '@parley/protocol/errors';

/** Most entries in a policy. */
export const MAX_EGRESS_ENTRIES = 64;
/** Longest entry. */
const MAX_ENTRY_LENGTH = 300;

function refuse(entry: string, why: string): never {
  throw new ParleyError('USAGE', `egress entry ${JSON.stringify(entry.slice(0, 80))} ${why}: give a host name (api.example.com), host:port, or an origin (https://api.example.com, http://127.0.0.1:8080)`, {
    details: { reason: 'egressEntry' },
  });
}

/** One entry's canonical origin. @throws ParleyError `USAGE` naming the entry. */
export function canonicalEgressEntry(entry: string): string {
  if (typeof entry !== 'string' || entry.length === 0 || entry.length > MAX_ENTRY_LENGTH) refuse(String(entry), 'is not a non-empty string of at most 300 characters');
  if (/[\s*]/.test(entry)) refuse(entry, 'has spaces or a wildcard');
  const explicit = /^([a-z][a-z0-9+.-]*):\/\//i.exec(entry);
  if (explicit && !/^https?$/i.test(explicit[1]!)) refuse(entry, 'is not http or https');
  let url: URL;
  try {
    url = new URL(explicit ? entry : `https://${entry}`);
  } catch {
    refuse(entry, 'is not a host or origin');
  }
  if (url.username !== '' || url.password !== '') refuse(entry, 'has credentials');
  if ((url.pathname !== '/' && url.pathname !== '') || url.search !== '' || url.hash !== '' || /[/?#]./.test(entry.slice(explicit ? explicit[0].length : 0))) refuse(entry, 'has a path, query or fragment');
  if (url.hostname === '') refuse(entry, 'has no host');
  return url.origin;
}

/**
 * The canonical form of a policy: every entry's origin, de-duplicated, sorted. `undefined` is
 * the empty policy (no network).
 * @throws ParleyError `USAGE` (`details.reason: 'egressEntry'`) naming a bad entry, or for more
 *   than {@link MAX_EGRESS_ENTRIES} entries.
 */
export function canonicalEgress(entries: readonly string[] | undefined): string[] {
  if (entries === undefined) return [];
  if (!Array.isArray(entries)) throw new ParleyError('USAGE', 'egress must be an array of host names or origins', { details: { reason: 'egressEntry' } });
  if (entries.length > MAX_EGRESS_ENTRIES) throw new ParleyError('USAGE', `egress has more than ${MAX_EGRESS_ENTRIES} entries`, { details: { reason: 'egressEntry' } });
  return [...new Set(entries.map(canonicalEgressEntry))].sort();
}

/** The bytes the measurement hashes for a canonical policy (label `egress`; none for the empty policy). */
export function egressPolicyBytes(canonical: readonly string[]): Uint8Array {
  return new TextEncoder().encode(canonical.join('\n'));
}

/** True when `url` (http or https) is at an origin of the canonical policy. */
export function egressAllows(canonical: readonly string[], url: URL): boolean {
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return false;
  return canonical.includes(url.origin);
}
