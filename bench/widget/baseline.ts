/**
 * The baseline page of `bench/widget.ts`: the least a page of the widget's kind must do before
 * it could send. Crypto backend, one X3DH (our protocol's, against the support bot's published
 * bundle, which the bench fetched from the relay and left beside the page as
 * `bench-bundle.json`) and a bare socket.io connection to the same relay, up to its `hello`
 * (no login, no store, no history, no statements checked). Each step leaves a User Timing mark
 * `parley:<step>`; `document.body.dataset.phase` becomes `ready` (or `error`) at the end.
 */
import { Account, fromHex, initCrypto, type BackendName, type PrekeyBundle } from '@parley/protocol';
import { io } from 'socket.io-client';

function mark(step: string): void {
  performance.mark(`parley:${step}`);
}

/** JSON with byte fields as `{ "$hex": "…" }` back to `Uint8Array`s. */
function revive(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(revive);
  if (value !== null && typeof value === 'object') {
    const o = value as Record<string, unknown>;
    if (typeof o.$hex === 'string') return fromHex(o.$hex);
    return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, revive(v)]));
  }
  return value;
}

export async function runBaseline(backend: BackendName): Promise<void> {
  mark('start');
  try {
    await initCrypto(backend);
    mark('crypto');
    const res = await fetch('./bench-bundle.json', { cache: 'no-store' });
    if (!res.ok) throw new Error(`bundle: HTTP ${res.status}`);
    const bundle = revive(await res.json()) as PrekeyBundle;
    mark('bundle');
    // X3DH as the initiator: our identity, then the bundle's signatures verified and the DHs.
    const account = Account.create();
    const session = account.createOutboundSession(bundle);
    mark('x3dh');
    const socket = io(location.origin, { transports: ['websocket'], reconnection: false });
    await new Promise<void>((resolve, reject) => {
      socket.once('hello', () => resolve());
      socket.once('connect_error', (e) => reject(e));
    });
    mark('connected');
    (window as unknown as { baseline: unknown }).baseline = { socket, session };
    mark('ready');
    document.body.dataset.phase = 'ready';
  } catch (e) {
    document.body.dataset.phase = 'error';
    document.body.dataset.error = e instanceof Error ? e.message : String(e);
  }
}
