/**
 * The KeyValueStore contract (packages/engine/test/store-contract.ts) for the enclave's
 * `SealedKeyValueStore`, outside a worker: its `persist` callback plays the host. It acks each
 * batch a moment later (as the host does after its durable write) and only then records it, so
 * a `setMany` that resolved before its ack would lose data on `reopen`, which opens a new store
 * from the recorded (acked) batches only, applied in order: puts replace, dels remove.
 */
import { before } from 'node:test';
import { getCrypto } from '@parley/protocol';
import { SealedKeyValueStore, type PersistFn } from '../src/enclave/sealed-store.js';
import type { SealedRecord } from '../src/rpc/messages.js';
import { storeContract } from '../../engine/test/store-contract.js';
import { setupCrypto } from './helpers.js';

before(setupCrypto);

storeContract('SealedKeyValueStore (enclave)', async () => {
  const sealingKey = getCrypto().randomBytes(32);
  /** The host's durable state: batches it acked, in ack order. */
  const acked: { puts: SealedRecord[]; dels: string[] }[] = [];
  const persist: PersistFn = (puts, dels) =>
    new Promise((resolve) =>
      setTimeout(() => {
        acked.push({ puts: puts.map((r) => ({ key: r.key, blob: r.blob.slice() })), dels: [...dels] });
        resolve();
      }, 1),
    );
  const durableRecords = (): SealedRecord[] => {
    const state = new Map<string, SealedRecord>();
    for (const batch of acked) {
      for (const r of batch.puts) state.set(r.key, r);
      for (const k of batch.dels) state.delete(k);
    }
    return [...state.values()];
  };
  return {
    store: SealedKeyValueStore.open(sealingKey, [], persist),
    reopen: async () => SealedKeyValueStore.open(sealingKey, durableRecords(), persist),
  };
});
