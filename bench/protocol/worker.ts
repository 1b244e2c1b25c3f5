/**
 * Child process entry: `node --expose-gc --import tsx bench/protocol/worker.ts <impl> <budget-json>`.
 * Measures one implementation, writes progress to stderr and one JSON `ImplResult` to stdout.
 * Adapters are imported lazily so a peer can run even when another one fails to load.
 */
import type { Peer } from './adapter.js';
import { IMPLEMENTATIONS, measure, type Budget, type ImplId } from './measure.js';

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

async function main(): Promise<void> {
  const [id, budgetJson] = process.argv.slice(2);
  if (!id || !(IMPLEMENTATIONS as readonly string[]).includes(id) || !budgetJson) {
    throw new Error(`usage: worker.ts <${IMPLEMENTATIONS.join('|')}> <budget-json>`);
  }
  const budget = JSON.parse(budgetJson) as Budget;
  const peer = await load(id as ImplId);
  process.stderr.write(`[bench] ${peer.name}\n`);
  const result = await measure(peer, budget, (line) => process.stderr.write(`[bench] ${line}\n`));
  process.stdout.write(JSON.stringify(result) + '\n');
}

main().catch((e: unknown) => {
  process.stderr.write(`[bench] failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
