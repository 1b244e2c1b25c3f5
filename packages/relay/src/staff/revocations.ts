/**
 * Staff revocation lists on the relay:
 * - `POST /v1/revocations` (body: the raw signed list, `application/octet-stream`, at most
 *   `RELAY_MAX_REVOCATION_LIST_BYTES`): verified against the org key, kept when its sequence is
 *   higher than the stored one of its issuer. 204 stored, 400 refused, 409 stale, 413 too large,
 *   429 rate limited, 404 without an org key.
 * - `GET /v1/revocations`: `{ lists: [base64…] }`, what `fetchRevocations` returns on the socket.
 *
 * A stored list ends the connections it names at once: this node checks its sockets, and on
 * several nodes (Redis) tells the others (`serverSideEmit`) to do the same. The periodic pass of
 * `revocation.ts` checks again, so a node that missed the message catches up within
 * `apiKeyCheckIntervalMs`. A named device gets a `relayError` (`UNAUTHENTICATED`, reason
 * `revoked`) and is disconnected; its next login is refused with the same reason. The same pass
 * ends staff connections whose credential expired (reason `credential`, `credentialReason: 'expired'`).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ParleyError, toBase64 } from '@parley/protocol/verify';
import { RELAY_MAX_REVOCATION_LIST_BYTES } from '@parley/protocol/wire';
import type { RelayContext } from '../context.js';
import { KeyedLimiter } from '../limits.js';
import { StaffAuthority, isRevoked } from './authority.js';

/** One pass over this node's sockets; returns how many were disconnected. Store errors skip the pass (logged). */
export async function dropRevokedStaff(ctx: RelayContext): Promise<number> {
  const authority = ctx.staff;
  if (!authority) return 0;
  let lists;
  try {
    lists = await authority.lists();
  } catch (e) {
    ctx.log.error({ event: 'revocationCheck', errorName: e instanceof Error ? e.name : typeof e });
    return 0;
  }
  const now = ctx.now();
  let dropped = 0;
  for (const socket of ctx.io.of('/').sockets.values()) {
    const d = socket.data;
    if (!d.deviceId || !socket.connected) continue;
    if (isRevoked(lists, d.deviceId, d.staff)) {
      ctx.log.warn({ event: 'staffRevoked', deviceId: d.deviceId, personId: d.staff?.personId, address: d.address }, 'staff device revoked: disconnected');
      socket.emit('relayError', { code: 'UNAUTHENTICATED', message: 'this device was revoked', details: { reason: 'revoked' } });
    } else if (d.staff && now >= d.staff.expiresAt) {
      ctx.log.info({ event: 'staffExpired', deviceId: d.deviceId, personId: d.staff.personId }, 'staff credential expired: disconnected');
      socket.emit('relayError', {
        code: 'UNAUTHENTICATED', message: 'the staff credential expired: sign in again', details: { reason: 'credential', credentialReason: 'expired' },
      });
    } else {
      continue;
    }
    socket.disconnect(true);
    dropped++;
  }
  return dropped;
}

/** Reads a request body of at most `max` bytes; `undefined` when it is longer (the rest is discarded). */
function readBody(req: IncomingMessage, max: number): Promise<Uint8Array | undefined> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > max) {
      req.resume();
      resolve(undefined);
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > max) over = true;
      else chunks.push(c);
    });
    req.on('end', () => resolve(over ? undefined : new Uint8Array(Buffer.concat(chunks))));
    req.on('error', reject);
  });
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
}

/**
 * The `/v1/revocations` routes. Returns a request listener that answers and returns `true` for
 * its paths, `false` for any other (left to the next handler).
 */
export function revocationRoutes(ctx: RelayContext): (req: IncomingMessage, res: ServerResponse) => boolean {
  const per = ctx.limits.revocationPostsPerMinutePerAddress;
  const limiter = new KeyedLimiter(per, per / 60, ctx.now);
  return (req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/v1/revocations') return false; // ct-ok: public path
    if (req.method === 'GET') {
      ctx.store.listRevocationLists().then(
        (lists) => json(res, 200, { lists: lists.map((l) => toBase64(l.list)) }),
        (e: unknown) => {
          ctx.log.error({ event: 'revocations', errorName: e instanceof Error ? e.name : typeof e });
          json(res, 500, { code: 'INTERNAL', message: 'internal error' });
        },
      );
      return true;
    }
    if (req.method !== 'POST') {
      res.writeHead(405, { allow: 'GET, POST' });
      res.end();
      return true;
    }
    void post(ctx, limiter, req, res).catch((e: unknown) => {
      ctx.log.error({ event: 'revocationList', errorName: e instanceof Error ? e.name : typeof e });
      if (!res.headersSent) json(res, 500, { code: 'INTERNAL', message: 'internal error' });
    });
    return true;
  };
}

async function post(ctx: RelayContext, limiter: KeyedLimiter, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const authority = ctx.staff;
  if (!authority) {
    req.resume();
    json(res, 404, { code: 'USAGE', message: 'this relay has no org key (--org-key): it takes no revocation lists' });
    return;
  }
  if (!limiter.take(req.socket.remoteAddress ?? '')) {
    req.resume();
    json(res, 429, { code: 'RATE_LIMITED', message: 'too many revocation lists from this address' });
    return;
  }
  const body = await readBody(req, RELAY_MAX_REVOCATION_LIST_BYTES);
  if (!body) {
    json(res, 413, { code: 'PAYLOAD_TOO_LARGE', message: `a revocation list is at most ${RELAY_MAX_REVOCATION_LIST_BYTES} bytes` });
    return;
  }
  let list;
  try {
    list = authority.verify(body);
  } catch (e) {
    if (!(e instanceof ParleyError)) throw e;
    ctx.log.warn({ event: 'revocationList', result: 'refused', address: req.socket.remoteAddress, reason: e.details?.['reason'] ?? e.code });
    json(res, 400, { code: e.code, message: e.message });
    return;
  }
  const issuer = StaffAuthority.issuerId(list);
  if (!(await ctx.store.putRevocationList(issuer, list.sequence, body))) {
    ctx.log.info({ event: 'revocationList', result: 'stale', issuer, sequence: list.sequence });
    json(res, 409, { code: 'USAGE', message: 'stale revocation list: the relay holds this sequence or a higher one for this issuer' });
    return;
  }
  ctx.log.info({ event: 'revocationList', result: 'stored', issuer, sequence: list.sequence, persons: list.persons.length, devices: list.devices.length });
  // Every node checks its sockets (this one now; the others on the message).
  ctx.notifyNodes?.();
  const dropped = await dropRevokedStaff(ctx);
  if (dropped > 0) ctx.log.info({ event: 'revocationList', dropped });
  res.writeHead(204);
  res.end();
}
