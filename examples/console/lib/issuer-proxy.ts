/**
 * A route of the console's static server that forwards `/v1/…` to the issuer on 127.0.0.1, so
 * the page reaches the issuer on its own origin (one origin for the page, WebAuthn and the
 * device's proof; CSP `connect-src 'self'`). Adds `x-forwarded-for` with the caller's address
 * so the issuer's per-IP limits see the person, not the proxy.
 */
import { request } from 'node:http';
import type { Route } from '../../web/lib/static-server.js';

/** Forwards requests under `prefix` (default `/v1/`) to `127.0.0.1:port()`. */
export function issuerProxy(port: () => number | undefined, prefix = '/v1/'): Route {
  return (req, res, url) => {
    if (!url.pathname.startsWith(prefix)) return false;
    const target = port();
    if (target === undefined) {
      res.writeHead(503, { 'content-type': 'application/json' }).end('{"code":"TRANSPORT","message":"starting"}');
      return true;
    }
    const headers = { ...req.headers, 'x-forwarded-for': req.socket.remoteAddress ?? '' };
    const upstream = request({ host: '127.0.0.1', port: target, method: req.method, path: req.url, headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    upstream.on('error', () => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'application/json' });
      res.end('{"code":"TRANSPORT","message":"issuer unreachable"}');
    });
    req.pipe(upstream);
    return true;
  };
}
