/**
 * This browser's staff device: a `ParleyClient` on a sealed IndexedDB store (identity created
 * on first use). Sign-in certifies its identity key; the client then presents the certificate at
 * every relay login. Signing out forgets the certificate and the device with it: the client is
 * closed and the database deleted, so nothing certified stays in this browser.
 */
import { initCrypto } from '@parley/protocol';
import { ParleyClient } from '@parley/client';
import { IndexedDbStore } from '@parley/client/browser';

/** One database per console installation (origin). */
export const DB_NAME = 'parley-agent-console';

let opened: { client: ParleyClient; store: IndexedDbStore } | undefined;
let opening: Promise<ParleyClient> | undefined;

/** The device's client (created once per page load). */
export function device(orgKey: string): Promise<ParleyClient> {
  opening ??= (async () => {
    await initCrypto();
    const store = await IndexedDbStore.open({ dbName: DB_NAME });
    // Staff talk to customers, who have no certificate: certificates are checked where present.
    const client = await ParleyClient.create({ relayUrl: location.origin, store, trust: { orgKey, requireCertificate: 'none' } });
    opened = { client, store };
    return client;
  })();
  return opening;
}

/** Sign out: close the client and the store, then delete the database (credential and keys). */
export async function forgetDevice(): Promise<void> {
  const o = opened;
  opened = undefined;
  opening = undefined;
  if (o) {
    await o.client.close().catch(() => undefined);
    o.store.close();
  }
  await new Promise<void>((resolve) => {
    const r = indexedDB.deleteDatabase(DB_NAME);
    r.onsuccess = r.onerror = r.onblocked = () => resolve();
  });
}
