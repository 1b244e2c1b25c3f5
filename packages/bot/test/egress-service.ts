/** Shared by egress.test.ts and process-mode.test.ts: the egress test handler and a local service it may call. */
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';

export const EGRESS_HANDLER = new URL('./fixtures/egress-handler.ts', import.meta.url);

/** A local service the handler may call: `/hello`, redirects in and out of the policy, a 5 MiB body. */
export async function startService(): Promise<{ origin: string; port: number; seen: IncomingMessage[]; close(): Promise<void> }> {
  const seen: IncomingMessage[] = [];
  const server = createServer((req, res) => {
    seen.push(req);
    const port = (server.address() as AddressInfo).port;
    if (req.url === '/hello') return void res.end(req.method === 'POST' ? 'posted' : 'hello');
    if (req.url === '/redirect-in') return void res.writeHead(302, { location: '/hello' }).end();
    if (req.url === '/redirect-out') return void res.writeHead(302, { location: `http://localhost:${port}/hello` }).end();
    if (req.url === '/big') return void res.end(Buffer.alloc(5 * 1024 * 1024, 0x61));
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return { origin: `http://127.0.0.1:${port}`, port, seen, close: () => new Promise((r) => server.close(() => r())) };
}
