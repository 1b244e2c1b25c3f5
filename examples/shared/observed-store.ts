/**
 * "What the relay sees", observed at the only place the relay keeps anything: its store.
 * Wraps any RelayStore and reports each envelope the relay persists (`stored`) and deletes once
 * the recipient acked it (`delivered`), with exactly the bytes the relay holds: routing ids,
 * sizes and ciphertext. Demo tooling; a production relay has no such tap.
 */
import type { NewMessage, RelayStore, StoredMessage } from '@parley/relay';

/** One observation, in the relay's own terms. */
export interface RelayObservation {
  readonly kind: 'stored' | 'delivered';
  readonly seq: number;
  readonly from: string;
  readonly to: string;
  readonly id: string;
  readonly size: number;
  readonly envelope: Uint8Array;
  readonly at: number;
}

/** A RelayStore that reports what passes through it; every other method goes straight through. */
export function observeStore(inner: RelayStore, onObservation: (o: RelayObservation) => void): RelayStore {
  // Envelopes still held, so a deletion can be reported with what was deleted.
  const pending = new Map<string, StoredMessage>();
  const key = (to: string, seq: number) => `${to}/${seq}`;
  const overrides: Pick<RelayStore, 'enqueue' | 'deleteMessages'> = {
    async enqueue(message: NewMessage) {
      const result = await inner.enqueue(message);
      if (!result.duplicate) {
        pending.set(key(message.to, result.seq), { ...message, seq: result.seq });
        onObservation({ kind: 'stored', seq: result.seq, from: message.from, to: message.to, id: message.id, size: message.envelope.length, envelope: message.envelope, at: Date.now() });
      }
      return result;
    },
    async deleteMessages(to, seqs) {
      const deleted = await inner.deleteMessages(to, seqs);
      for (const seq of seqs) {
        const m = pending.get(key(to, seq));
        if (!m) continue;
        pending.delete(key(to, seq));
        onObservation({ kind: 'delivered', seq, from: m.from, to, id: m.id, size: m.envelope.length, envelope: m.envelope, at: Date.now() });
      }
      return deleted;
    },
  };
  return new Proxy(inner, {
    get(target, prop) {
      if (prop === 'enqueue' || prop === 'deleteMessages') return overrides[prop];
      const value: unknown = Reflect.get(target, prop, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}
