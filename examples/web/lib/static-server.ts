/**
 * A small static file server for built pages (127.0.0.1 only), with per-page headers so one
 * page can be served under a strict Content-Security-Policy. Extra routes (JSON, SSE) plug in
 * through `routes`.
 */
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { readFile, stat } from 'node:fs/promises';
import { extname, join, normalize, relative, resolve, sep } from 'node:path';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
  '.ico': 'image/x-icon',
  '.map': 'application/json',
};

/** A route handler; return true when it handled the request. */
export type Route = (req: IncomingMessage, res: ServerResponse, url: URL) => boolean | Promise<boolean>;

export interface StaticServerOptions {
  /** Folder to serve. */
  dir: string;
  /** Port; 0 picks a free one. */
  port?: number;
  /** Headers per request path (e.g. `/csp-noble.html` → CSP). Applied to HTML responses. */
  pageHeaders?: Record<string, Record<string, string>>;
  /** Headers on every response. */
  headers?: Record<string, string>;
  /** Routes tried before files. */
  routes?: Route[];
  /**
   * Forward requests under `prefix` (HTTP and WebSocket upgrades) to a server on 127.0.0.1:`port`,
   * so the page reaches it on its own origin (CSP `connect-src 'self'`). The port may be set
   * after start through the returned `setProxyPort`.
   */
  proxy?: { prefix: string; port?: number };
}

export interface StaticServer {
  readonly url: string;
  readonly port: number;
  readonly server: Server;
  /** Sets the proxy target port (see {@link StaticServerOptions.proxy}). */
  setProxyPort(port: number): void;
  close(): Promise<void>;
}

/** Starts the server on 127.0.0.1. */
export async function startStaticServer(options: StaticServerOptions): Promise<StaticServer> {
  const root = resolve(options.dir);
  let proxyPort = options.proxy?.port;
  const proxied = (url: string | undefined): boolean => !!options.proxy && proxyPort !== undefined && (url ?? '').startsWith(options.proxy.prefix);
  const server = createServer((req, res) => {
    if (proxied(req.url)) {
      const upstream = httpRequest(
        { host: '127.0.0.1', port: proxyPort, method: req.method, path: req.url, headers: req.headers },
        (up) => {
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.pipe(res);
        },
      );
      upstream.on('error', () => {
        if (!res.headersSent) res.writeHead(502);
        res.end();
      });
      req.pipe(upstream);
      return;
    }
    void handle(req, res).catch(() => {
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    for (const route of options.routes ?? []) {
      if (await route(req, res, url)) return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405).end();
      return;
    }
    let path: string;
    try {
      path = decodeURIComponent(url.pathname);
    } catch {
      res.writeHead(400).end();
      return;
    }
    if (path.endsWith('/')) path += 'index.html';
    const file = normalize(join(root, path));
    if (file !== root && !file.startsWith(root + sep)) {
      res.writeHead(403).end();
      return;
    }
    const info = await stat(file).catch(() => undefined);
    if (!info?.isFile()) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    const body = await readFile(file);
    const type = TYPES[extname(file)] ?? 'application/octet-stream';
    res.writeHead(200, {
      'content-type': type,
      'content-length': body.length,
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
      ...options.headers,
      // By the file served, not the spelling of the URL: `/%2Findex.html`, `//index.html` and
      // `/./index.html` are the same page and get the same CSP (issue 10, finding 15).
      ...(type.startsWith('text/html') ? options.pageHeaders?.[`/${relative(root, file).split(sep).join('/')}`] : undefined),
    });
    res.end(req.method === 'HEAD' ? undefined : body);
  }

  const upgraded = new Set<{ destroy(): void }>();
  // WebSocket upgrades: replay the request head to the target and splice the two sockets.
  server.on('upgrade', (req, socket, head) => {
    if (!proxied(req.url)) {
      socket.destroy();
      return;
    }
    const up = connect(proxyPort!, '127.0.0.1', () => {
      const lines = [`${req.method} ${req.url} HTTP/${req.httpVersion}`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
      up.write(`${lines.join('\r\n')}\r\n\r\n`);
      if (head.length > 0) up.write(head);
      up.pipe(socket);
      socket.pipe(up);
    });
    upgraded.add(socket);
    upgraded.add(up);
    socket.once('close', () => upgraded.delete(socket));
    up.once('close', () => upgraded.delete(up));
    up.on('error', () => socket.destroy());
    socket.on('error', () => up.destroy());
    up.on('close', () => socket.destroy());
    socket.on('close', () => up.destroy());
  });

  await new Promise<void>((resolvePromise, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject);
      resolvePromise();
    });
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    server,
    setProxyPort: (p: number) => {
      proxyPort = p;
    },
    close: () =>
      new Promise<void>((resolveClose) => {
        server.close(() => resolveClose());
        server.closeAllConnections();
        for (const s of upgraded) s.destroy();
      }),
  };
}
