/**
 * One socket's life: hello with a fresh nonce, the auth deadline, and the single dispatch path
 * every client packet goes through (docs/threats.md R1, R5, R7).
 *
 * No `socket.on(<event>)` handler is ever registered. A packet middleware receives every event
 * packet, checks name, arity, authentication and rate, and only then calls the handler; it
 * never calls `next()`, so socket.io's own dispatch never runs. A handler that throws gets a
 * typed error ack; an unexpected error becomes `INTERNAL` without details.
 */
import { ParleyError, type ParleyErrorCode } from '@parley/protocol/verify';
import { RELAY_PROTOCOL_VERSION, type RelayError } from '@parley/protocol/wire';
import { apiKeyIdOf } from './apikeys.js';
import { deliverArchiveNotices } from './archive/ops.js';
import { newServerNonce } from './auth.js';
import type { RelayContext, RelaySocket } from './context.js';
import { HANDLERS } from './handlers.js';
import { watchBuffer } from './mailbox.js';

type Ack = (result: unknown) => void;

/** Codes that mean the client broke the protocol; `maxViolations` of them drop the socket. */
const VIOLATIONS: ReadonlySet<ParleyErrorCode> = new Set([
  'MALFORMED_MESSAGE', 'UNAUTHENTICATED', 'FORBIDDEN', 'PAYLOAD_TOO_LARGE', 'INVALID_SIGNATURE', 'INVALID_KEY', 'USAGE',
]);
// RATE_LIMITED is deliberately not a violation: rejecting is O(1), and disconnecting a bursty
// but honest client would make it reconnect and re-authenticate, which costs more.

/** Sets up a freshly connected socket. */
export function onConnection(ctx: RelayContext, socket: RelaySocket): void {
  const d = socket.data;
  d.serverNonce = newServerNonce();
  d.nonceUsed = false;
  d.violations = 0;
  d.cursor = 0;
  d.inFlight = new Map();
  d.rescan = false;
  d.slow = false;
  watchBuffer(ctx, socket);
  ctx.metrics.connections.inc();

  d.authTimer = setTimeout(() => {
    if (!socket.connected) return;
    loginFailed(ctx, socket, 'UNAUTHENTICATED', { reason: 'timeout' }, undefined);
    drop(ctx, socket, { code: 'UNAUTHENTICATED', message: 'authentication timed out', details: { reason: 'timeout' } });
  }, ctx.limits.authTimeoutMs);

  socket.on('disconnect', () => {
    clearTimeout(d.authTimer);
    ctx.metrics.connections.dec();
    if (d.deviceId) {
      ctx.metrics.authenticated.dec();
      const sockets = ctx.deviceSockets.get(d.deviceId);
      sockets?.delete(socket);
      if (sockets?.size === 0) ctx.deviceSockets.delete(d.deviceId);
    }
    d.inFlight.clear();
    d.wake?.(); // a waiting drain sees the socket gone and stops
    ctx.log.debug({ event: 'disconnect', deviceId: d.deviceId });
  });
  // socket.io emits 'error' for middleware errors; an unhandled 'error' would throw (CVE-2024-38355).
  socket.on('error', () => undefined);

  socket.use((packet) => {
    const p = dispatch(ctx, socket, packet as unknown[]);
    ctx.inFlight.add(p);
    void p.finally(() => ctx.inFlight.delete(p));
  });

  socket.emit('hello', { protocol: RELAY_PROTOCOL_VERSION, serverNonce: d.serverNonce, authTimeoutMs: ctx.limits.authTimeoutMs });
}

function drop(ctx: RelayContext, socket: RelaySocket, error: RelayError): void {
  if (!socket.connected) return;
  ctx.log.warn({ event: 'drop', deviceId: socket.data.deviceId, code: error.code, reason: error.message });
  socket.emit('relayError', error);
  socket.disconnect(true);
}

async function dispatch(ctx: RelayContext, socket: RelaySocket, packet: unknown[]): Promise<void> {
  const d = socket.data;
  const args = Array.isArray(packet) ? packet.slice(1) : [];
  const event = Array.isArray(packet) ? packet[0] : undefined;
  const ack: Ack | undefined = typeof args.at(-1) === 'function' ? (args.pop() as Ack) : undefined;
  const name = typeof event === 'string' && HANDLERS.has(event) ? event : 'unknown';
  try {
    const handler = typeof event === 'string' ? HANDLERS.get(event) : undefined;
    if (!handler) throw new ParleyError('MALFORMED_MESSAGE', 'unknown event');
    if (!d.deviceId && name !== 'auth') throw new ParleyError('UNAUTHENTICATED', 'authenticate first');
    if (args.length !== 1) throw new ParleyError('MALFORMED_MESSAGE', 'expected exactly one payload and an ack');
    if (d.deviceId && !ctx.eventLimiter.take(d.deviceId)) throw new ParleyError('RATE_LIMITED', 'too many events');
    const { result, after } = await handler(ctx, socket, args[0]);
    ack?.({ ...result, ok: true });
    if (after) await after().catch((e: unknown) => ctx.log.error({ event: name, deviceId: d.deviceId, errorName: errorName(e) }));
    // Archive openings this device has not acknowledged (archive/ops.ts).
    if (name === 'auth' && d.deviceId) await deliverArchiveNotices(ctx, socket).catch((e: unknown) => ctx.log.error({ event: 'archiveOpened', deviceId: d.deviceId, errorName: errorName(e) }));
  } catch (e) {
    const error: RelayError =
      e instanceof ParleyError
        ? e.details === undefined ? { code: e.code, message: e.message } : { code: e.code, message: e.message, details: e.details }
        : { code: 'INTERNAL', message: 'internal error' };
    ctx.metrics.errors.inc({ code: error.code });
    const failedLogin = name === 'auth' && !d.deviceId;
    if (error.code === 'INTERNAL') {
      // Name only: messages of library errors can quote SQL or input.
      ctx.log.error({ event: name, deviceId: d.deviceId, errorName: errorName(e) });
    } else if (failedLogin) {
      loginFailed(ctx, socket, error.code, error.details, args[0]);
    } else {
      ctx.log.info({ event: name, deviceId: d.deviceId, code: error.code });
    }
    ack?.({ ok: false, error });
    if (failedLogin) {
      ctx.metrics.auth.inc({ result: 'failure' });
      // The nonce is spent; this connection can never authenticate now.
      socket.disconnect(true);
      return;
    }
    // A ticket closed since the client saw it is a race, not a protocol violation.
    const benign = error.code === 'USAGE' && error.details?.['reason'] === 'noSuchTicket'; // ct-ok: public error reason
    if (VIOLATIONS.has(error.code) && !benign && ++d.violations >= ctx.limits.maxViolations) {
      drop(ctx, socket, { code: error.code, message: 'too many protocol violations' });
    }
  }
}

/**
 * Logs a refused login for the operator: the reason, the public id of the API key presented (never
 * the key), the remote address, and for an origin mismatch both origins. No payload content.
 */
function loginFailed(ctx: RelayContext, socket: RelaySocket, code: ParleyErrorCode, details: RelayError['details'], payload: unknown): void {
  const reason = typeof details?.['reason'] === 'string' ? details['reason'] : code === 'UNAUTHENTICATED' ? 'unknown' : code;
  ctx.metrics.authFailures.inc({ reason });
  const keyId = apiKeyIdOf(typeof payload === 'object' && payload !== null ? (payload as { apiKey?: unknown }).apiKey : undefined);
  const fields: Record<string, unknown> = { event: 'authFailed', code, reason, address: socket.data.address };
  if (keyId) fields['keyId'] = keyId;
  for (const k of ['expectedOrigin', 'signedOrigin', 'skewMs', 'credentialReason'] as const) if (details?.[k] !== undefined) fields[k] = details[k];
  const hint = reason === 'origin'
    ? `login refused: the device dialled ${String(details?.['signedOrigin'])} but this relay's origin is ${String(details?.['expectedOrigin'])}: ` +
      `dial the relay's origin, or start the relay with --origin ${String(details?.['signedOrigin'])}`
    : `login refused (${reason})`;
  ctx.log.warn(fields, hint);
}

function errorName(e: unknown): string {
  return e instanceof Error ? e.name : typeof e;
}
