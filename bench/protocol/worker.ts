/**
 * Child process for one implementation, started by `bench/run.ts` with
 * `fork(worker.ts, [id], { execArgv: ['--expose-gc', '--import', 'tsx'] })`.
 *
 * Protocol over the IPC channel (runner → worker, each answered once, in order):
 *   { op: 'sample', kind, seconds }   → { ok: true, value: Sample }
 *   { op: 'footprint', idleSessions } → { ok: true, value: Footprint }
 *   { op: 'exit' }                    → (exits)
 * On start the worker loads and sets up its adapter and sends
 *   { ok: true, value: { name, notes } }  or  { ok: false, error }.
 * Adapters are imported lazily, so a peer still runs when another fails to load.
 */
import type { Peer } from './adapter.js';
import { CASE_KEYS, IMPLEMENTATIONS, Measurer, type CaseKey, type ImplId } from './measure.js';

export type Request =
  | { readonly op: 'sample'; readonly kind: CaseKey; readonly seconds: number }
  | { readonly op: 'footprint'; readonly idleSessions: number }
  | { readonly op: 'exit' };

export type Reply = { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly error: string };

async function load(id: ImplId): Promise<Peer> {
  switch (id) {
    case 'libsignal':
      return (await import('./peers/libsignal.js')).createLibsignalPeer();
    case 'olm':
      return (await import('./peers/olm.js')).createOlmPeer();
    case 'parley-node':
    case 'parley-sodium':
    case 'parley-noble': {
      const { createParleyPeer } = await import('./parley.js');
      return createParleyPeer(id.slice('parley-'.length) as 'node' | 'sodium' | 'noble');
    }
  }
}

const message = (e: unknown): string => (e instanceof Error ? e.message : String(e));

function send(reply: Reply): void {
  process.send!(reply);
}

async function main(): Promise<void> {
  const id = process.argv[2];
  if (!process.send) throw new Error('worker.ts runs under bench/run.ts (needs an IPC channel)');
  if (!id || !(IMPLEMENTATIONS as readonly string[]).includes(id)) {
    throw new Error(`usage: worker.ts <${IMPLEMENTATIONS.join('|')}>`);
  }
  let measurer: Measurer;
  try {
    const peer = await load(id as ImplId);
    await peer.setup();
    measurer = new Measurer(peer);
    send({ ok: true, value: { name: peer.name, notes: peer.notes } });
  } catch (e) {
    send({ ok: false, error: message(e) });
    process.disconnect();
    return;
  }
  // Requests are handled strictly one at a time: the runner waits for each reply.
  process.on('message', (req: Request) => {
    void (async () => {
      try {
        if (req.op === 'exit') {
          process.disconnect();
          return;
        }
        if (req.op === 'sample' && CASE_KEYS.includes(req.kind)) {
          send({ ok: true, value: await measurer.sample(req.kind, req.seconds) });
        } else if (req.op === 'footprint') {
          send({ ok: true, value: await measurer.footprint(req.idleSessions) });
        } else {
          send({ ok: false, error: `bad request ${JSON.stringify(req)}` });
        }
      } catch (e) {
        send({ ok: false, error: message(e) });
      }
    })();
  });
}

main().catch((e: unknown) => {
  process.stderr.write(`[bench] worker ${process.argv[2]} failed: ${message(e)}\n`);
  process.exit(1);
});
