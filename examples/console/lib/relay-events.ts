/**
 * "What the relay sees" over HTTP, for the widget's and the console's relay panels:
 * `GET /api/relay-events` (Server-Sent Events, one per store operation, without the full
 * envelope) and `GET /api/relay-events.json` (everything kept, envelopes included: the tests'
 * leak scan). Both come from an {@link ObservedStore} wrapped around the relay's store, so they
 * carry exactly what the relay holds: device ids, message ids, sizes and ciphertext.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ObservedStore, RelayEvent } from '../../relay-observer/relay-observer.js';
import type { Route } from '../../web/lib/static-server.js';

/** The SSE feed and the JSON dump of `store`'s events. */
export function relayEventsRoute(store: ObservedStore): Route {
  return (req: IncomingMessage, res: ServerResponse, url: URL) => {
    if (url.pathname === '/api/relay-events.json') {
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(JSON.stringify(store.history()));
      return true;
    }
    if (url.pathname !== '/api/relay-events') return false;
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    // The panel shows metadata and the first bytes; the full envelope stays in the JSON dump.
    const send = (e: RelayEvent): void => {
      const { envelope: _omit, ...shown } = e;
      res.write(`id: ${e.n}\ndata: ${JSON.stringify(shown)}\n\n`);
    };
    const after = Number(req.headers['last-event-id'] ?? 0) || 0;
    for (const e of store.history()) if (e.n > after) send(e);
    const unsubscribe = store.subscribe(send);
    const keepAlive = setInterval(() => res.write(': keep-alive\n\n'), 15_000);
    keepAlive.unref();
    req.on('close', () => {
      clearInterval(keepAlive);
      unsubscribe();
    });
    return true;
  };
}
