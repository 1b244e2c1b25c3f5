/**
 * The plain HTTP side of the relay: `/healthz` and `/metrics` (socket.io takes `/socket.io/`).
 * `/metrics` can be left off the public listener (served on an admin listener instead) and can
 * require a bearer token.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import { scrape } from './metrics.js';

/** Options of {@link httpHandler}. */
export interface HttpHandlerOptions {
  /** Serve `/metrics` on this listener. Default `true`. */
  readonly metrics?: boolean;
  /** Require `Authorization: Bearer <token>` for `/metrics`. */
  readonly token?: string;
  /** More routes, tried first: answers and returns `true` for its paths (e.g. `/v1/revocations`). */
  readonly routes?: (req: IncomingMessage, res: ServerResponse) => boolean;
}

const sha256 = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

/** True when the request carries the bearer token (compared in constant time, over hashes). */
export function hasBearer(req: IncomingMessage, token: string): boolean {
  const header = req.headers.authorization ?? '';
  const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
  // Hashes have a fixed length, so neither the comparison nor its length leaks the token.
  return timingSafeEqual(sha256(m?.[1] ?? ''), sha256(token)) && m !== null;
}

/** Builds the request listener. Anything else is 404 with no body worth reading. */
export function httpHandler(registry: Registry, healthy: () => boolean, options: HttpHandlerOptions = {}) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    if (options.routes?.(req, res)) return;
    const path = (req.url ?? '').split('?')[0];
    if (req.method === 'GET' && path === '/healthz') {
      const ok = healthy();
      res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ status: ok ? 'ok' : 'closing' }));
      return;
    }
    if (req.method === 'GET' && path === '/metrics' && options.metrics !== false) {
      if (options.token !== undefined && !hasBearer(req, options.token)) {
        res.writeHead(401, { 'www-authenticate': 'Bearer realm="parley-relay metrics"', 'content-type': 'text/plain' });
        res.end('unauthorized');
        return;
      }
      scrape(registry).then(
        (text) => {
          res.writeHead(200, { 'content-type': registry.contentType });
          res.end(text);
        },
        () => {
          res.writeHead(500);
          res.end();
        },
      );
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found');
  };
}
