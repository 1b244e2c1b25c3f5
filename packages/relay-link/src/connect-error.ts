/**
 * Turns what goes wrong while reaching and logging in to a relay into typed errors whose message
 * says the fix: a socket.io `connect_error` (refused, DNS, TLS), a login refusal
 * (`UNAUTHENTICATED` with the relay's `details.reason`), or no login in time.
 *
 * socket.io-client wraps the underlying error: `connect_error` is a `TransportError("websocket
 * error")` whose `description` is the WebSocket `ErrorEvent` (in Node its `error` is the system
 * error, with `code` such as `ECONNREFUSED`). Browsers expose no code: those failures stay
 * unclassified and end as `timeout`.
 */
import { ParleyError, type ErrorDetailsByCode } from '@parley/protocol/verify';

/** Why the relay could not be reached. */
export type TransportReason = NonNullable<ErrorDetailsByCode['TRANSPORT']['reason']>;

/** A classified connection failure: its reason and the system code behind it. */
export interface ConnectFailure {
  /** `undefined` when the failure says nothing definite (retry until the timeout). */
  readonly reason: 'refused' | 'dns' | 'tls' | undefined;
  /** The system or TLS error code (`ECONNREFUSED`, `ENOTFOUND`, `CERT_HAS_EXPIRED`…), or a short phrase. */
  readonly cause: string;
}

const REFUSED = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL']);
const DNS = new Set(['ENOTFOUND', 'EAI_AGAIN', 'EAI_FAIL', 'EAI_NONAME', 'EAI_NODATA']);
const TLS_UNTRUSTED = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_UNTRUSTED',
  'CERT_SIGNATURE_FAILURE',
  'CERT_CHAIN_TOO_LONG',
  'INVALID_CA',
]);
const TLS_EXPIRED = new Set(['CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID']);
const TLS_NAME = new Set(['ERR_TLS_CERT_ALTNAME_INVALID', 'HOSTNAME_MISMATCH']);
const TLS_OTHER = new Set(['EPROTO', 'ERR_SSL_WRONG_VERSION_NUMBER', 'ERR_TLS_HANDSHAKE_TIMEOUT', 'CERT_REVOKED', 'CERT_REJECTED']);

function codeOf(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const code = (value as { code?: unknown }).code;
  return typeof code === 'string' && /^[A-Z0-9_]{2,64}$/.test(code) ? code : undefined;
}

/** The system error code inside a socket.io `connect_error` (description.error, description, context, cause). */
export function systemCodeOf(err: unknown): string | undefined {
  return systemErrorOf(err)?.code;
}

/** The innermost error with a system code, and its message (read, never repeated in ours). */
function systemErrorOf(err: unknown): { code: string; message: string } | undefined {
  const seen = new Set<unknown>();
  const queue: unknown[] = [err];
  while (queue.length > 0) {
    const e = queue.shift();
    if (typeof e !== 'object' || e === null || seen.has(e)) continue;
    seen.add(e);
    const code = codeOf(e);
    if (code) return { code, message: e instanceof Error ? e.message : '' };
    const o = e as { description?: unknown; context?: unknown; cause?: unknown; error?: unknown };
    queue.push(o.description, o.error, o.cause, o.context);
  }
  return undefined;
}

/** Classifies a socket.io `connect_error`. */
export function classifyConnectError(err: unknown): ConnectFailure {
  const system = systemErrorOf(err);
  const code = system?.code;
  if (code) {
    // Node's words when the server hangs up during the TLS handshake (e.g. an http:// server).
    if (code === 'ECONNRESET' && /before secure TLS connection was established/.test(system.message)) return { reason: 'tls', cause: code };
    if (REFUSED.has(code)) return { reason: 'refused', cause: code };
    if (DNS.has(code)) return { reason: 'dns', cause: code };
    if (TLS_UNTRUSTED.has(code) || TLS_EXPIRED.has(code) || TLS_NAME.has(code) || TLS_OTHER.has(code) || code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_')) {
      return { reason: 'tls', cause: code };
    }
    return { reason: undefined, cause: code };
  }
  const message = err instanceof Error ? err.message : '';
  return { reason: undefined, cause: /^[\w .:-]{1,60}$/.test(message) ? message : 'connect error' };
}

/** Scheme, host and port of `url` (never its path, query or user info), for messages. */
export function displayUrl(url: string): string {
  try {
    const u = new URL(url);
    const port = u.port || (u.protocol === 'https:' || u.protocol === 'wss:' ? '443' : u.protocol === 'http:' || u.protocol === 'ws:' ? '80' : '');
    return `${u.protocol}//${u.hostname.includes(':') && !u.hostname.startsWith('[') ? `[${u.hostname}]` : u.hostname}${port ? `:${port}` : ''}`;
  } catch {
    return 'relay';
  }
}

function hostOf(url: string): string {
  try {
    return new URL(url).hostname;
  } catch {
    return url;
  }
}

function tlsMessage(relay: string, cause: string): string {
  if (TLS_EXPIRED.has(cause)) return `certificate of relay ${relay} is expired or not yet valid (${cause}): renew it, or check this machine's clock`;
  if (TLS_NAME.has(cause)) return `certificate of relay ${relay} is for another host name (${cause}): use a relay URL with a name the certificate lists`;
  if (TLS_UNTRUSTED.has(cause)) return `certificate of relay ${relay} is not trusted (${cause}): pass its CA with the \`ca\` option`;
  return `TLS handshake with relay ${relay} failed (${cause}): is it serving HTTPS on that port (an http:// relay needs an http:// URL)?`;
}

/** The typed `TRANSPORT` error of a failed connection attempt (`reason` refused, dns or tls). */
export function connectFailureError(url: string, failure: ConnectFailure & { reason: 'refused' | 'dns' | 'tls' }): ParleyError {
  const relay = displayUrl(url);
  const message =
    failure.reason === 'refused'
      ? `relay ${relay} refused the connection (${failure.cause}): is parley-relay running on that port?`
      : failure.reason === 'dns'
        ? `relay host "${hostOf(url)}" does not resolve (${failure.cause}): check the relay URL and this machine's DNS`
        : tlsMessage(relay, failure.cause);
  return new ParleyError('TRANSPORT', message, { details: { reason: failure.reason, cause: failure.cause } });
}

/** `TRANSPORT` / `timeout`: no login within `timeoutMs`; `last` is the last failure seen, if any. */
export function connectTimeoutError(url: string, timeoutMs: number, last: ConnectFailure | undefined): ParleyError {
  const relay = displayUrl(url);
  const seen = last ? ` (last error: ${last.cause})` : '';
  return new ParleyError(
    'TRANSPORT',
    `could not log in to relay ${relay} within ${timeoutMs} ms${seen}: check the relay URL, the network and the relay's logs`,
    { details: { reason: 'timeout', timeoutMs, ...(last ? { cause: last.cause } : {}) } },
  );
}

/** Login refusal reasons that a new attempt cannot fix: the link stops reconnecting. */
const FINAL_LOGIN_REASONS: ReadonlySet<string> = new Set(['apiKey', 'apiKeyRevoked', 'signature', 'origin', 'clockSkew', 'identity', 'malformed', 'credential', 'revoked']);

/**
 * Whether a login refusal is final. An `auth` answer refusing the login is final unless its
 * reason is `timeout` or `challenge` (a fresh connection gets a fresh challenge); a `relayError`
 * push (the relay dropping a logged-in or logging-in socket) only with a final reason.
 */
export function isFinalRefusal(error: ParleyError, via: 'answer' | 'push'): boolean {
  if (error.code !== 'UNAUTHENTICATED') return false;
  const reason = error.details?.['reason'];
  if (typeof reason !== 'string') return via === 'answer';
  return FINAL_LOGIN_REASONS.has(reason);
}

function loginHint(reason: unknown, details: Readonly<Record<string, unknown>>): string {
  switch (reason) {
    case 'apiKey':
      return 'check the API key (`parley-relay apikey list` shows the active ones)';
    case 'apiKeyRevoked':
      return 'the API key was revoked: issue a new one with `parley-relay apikey create` and restart with it';
    case 'origin':
      return `the relay expects origin ${String(details['expectedOrigin'] ?? '?')} but this side signed ${String(details['signedOrigin'] ?? '?')}: dial the relay's public URL, or set the relay's --origin`;
    case 'clockSkew':
      return "this machine's clock is off: sync it (NTP)";
    case 'identity':
    case 'signature':
    case 'malformed':
      return 'the login answer does not verify: is this SDK version compatible with the relay?';
    case 'credential':
      return `the staff credential was refused (${String(details['credentialReason'] ?? '?')}): sign in again at the issuer (signInStaff), then connect`;
    case 'revoked':
      return 'this staff device or person was revoked: an admin of the issuer must restore access';
    default:
      return 'check the credentials and the relay logs';
  }
}

/** The relay's login refusal, its code and details kept, its message naming the relay and the fix. */
export function loginRefusedError(url: string, refusal: ParleyError): ParleyError {
  const details = refusal.details ?? {};
  const hint = loginHint(details['reason'], details);
  return new ParleyError('UNAUTHENTICATED', `relay ${displayUrl(url)} refused the login (${refusal.message}): ${hint}`, {
    ...(refusal.details ? { details: refusal.details } : {}),
    cause: refusal,
  });
}
