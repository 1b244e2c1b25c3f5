/**
 * The relay's origin: the `scheme://host[:port]` every device signs in its login (the one it
 * dialled). A relay whose origin is not what clients dial refuses every login with reason
 * `origin`; these helpers validate `--origin` and name the setups that cannot work.
 */
import { RELAY_MAX_ORIGIN_LENGTH } from '@parley/protocol/wire';

/**
 * Checks and normalises an origin given by the operator (as `URL.origin` does: lower-case
 * host, default port dropped). A trailing `/` is accepted.
 * @throws RangeError with a one-line message for anything but an http(s) origin.
 */
export function normalizeOrigin(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new RangeError(`--origin ${value} is not a URL: give the URL clients dial, e.g. https://relay.example.com`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new RangeError(`--origin ${value}: the scheme must be http or https (clients dial the relay over HTTP(S) and WebSocket)`);
  }
  if (url.username !== '' || url.password !== '' || url.pathname !== '/' || url.search !== '' || url.hash !== '' || /[?#]$/.test(value)) {
    throw new RangeError(`--origin ${value}: an origin is scheme://host[:port] only, without credentials, path, query or fragment (try ${url.origin})`);
  }
  if (url.origin.length > RELAY_MAX_ORIGIN_LENGTH) throw new RangeError(`--origin is longer than ${RELAY_MAX_ORIGIN_LENGTH} characters`);
  return url.origin;
}

/** True for the wildcard addresses (every interface): no client can dial them. */
export function isWildcardHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '');
  return h === '0.0.0.0' || h === '::' || h === '0:0:0:0:0:0:0:0';
}

/**
 * Warnings about an origin that cannot be what clients dial, for the log and the terminal.
 * @param host the interface the relay listens on
 * @param origin the relay's origin (given or derived from the listening URL)
 * @param given whether `--origin` was given
 * @param tls whether the relay serves TLS itself
 */
export function originWarnings(host: string, origin: string, given: boolean, tls: boolean): string[] {
  const out: string[] = [];
  if (!given && isWildcardHost(host)) {
    out.push(`WARNING: listening on every interface (${host}) without --origin: this relay's origin is ${origin}, which no client ` +
      `dials, so logins will be refused (reason 'origin'). Start it with --origin set to the URL clients dial, e.g. --origin https://relay.example.com`);
  }
  if (given && tls && origin.startsWith('http://')) {
    out.push(`WARNING: the relay serves TLS but --origin is ${origin}: clients dialling https:// sign an https origin, so their logins will be refused (reason 'origin')`);
  }
  return out;
}
