/**
 * The disclosed compliance archive over a real relay (THREATS P2): a bot (a `ParleyClient` the
 * org certified as `bot`) publishes the org-signed archive disclosure with its statements
 * (`setArchiveDisclosure`); the customer's client verifies it against its pinned org key.
 * - disclosed before the first message: `conversation.archive()` is disclosed, with the
 *   retention and the openers the widget shows;
 * - turned on after the conversation started (published, then fetched by the customer after the
 *   first message): not disclosed, the bot is named;
 * - removed from the statements: not disclosed.
 * The archive's chain and the compliance CLI (P3) are tested at the relay
 * (packages/relay/test/archive.test.ts).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateOrgKey, getCrypto, signArchiveDisclosure, signOrgCertificate } from '@parley/protocol';
import { ConversationEngine, MemoryStore } from '@parley/engine';
import { ParleyClient } from '@parley/client';
import { RelayLink } from '@parley/relay-link';
import { customer, setupCrypto, startRelay, until } from './helpers.js';

await setupCrypto();
const org = generateOrgKey();
let relay: Awaited<ReturnType<typeof startRelay>>;
const closers: (() => Promise<unknown>)[] = [];
const archiveKey = getCrypto().x25519Generate().publicKey;
const disclosure = signArchiveDisclosure(org.seed, { label: 'support', archiveKey, retentionDays: 180, openers: ['compliance'], issuedAt: Date.now() - 60_000 });

before(async () => {
  relay = await startRelay({});
});
after(async () => {
  for (const close of closers.reverse()) await close().catch(() => undefined);
  await relay.close();
});

/** A client certified by the org as the `support` bot. */
async function orgBot(): Promise<ParleyClient> {
  const store = new MemoryStore();
  const engine = await ConversationEngine.open({ store });
  const link = new RelayLink({ url: relay.url, credentials: { answer: (c) => engine.relayLoginAnswer(c) } });
  await link.connect({ timeoutMs: 5_000 });
  const certificate = signOrgCertificate(org.seed, { role: 'bot', label: 'support', ...engine.publicIdentity, expiresAt: Date.now() + 3600_000 });
  await link.uploadPrekeys({ ...(await engine.prekeyUpload(0)), certificate });
  await link.close();
  await engine.close();
  const client = await ParleyClient.create({ relayUrl: relay.url, store, trust: { orgKey: org.publicKey, requireCertificate: 'none' } });
  await client.connect();
  closers.push(() => client.close());
  return client;
}

test('P2: the archive is accepted only when disclosed before the first message', async () => {
  const cust = await customer(relay.url, { orgKey: org.publicKey });
  closers.push(() => cust.client.close());

  // Disclosed before the conversation: shown to the customer.
  const disclosed = await orgBot();
  await disclosed.setArchiveDisclosure(disclosure);
  const c1 = await cust.client.startConversation(disclosed.deviceId, { name: 'Carla' });
  await c1.send('hello');
  assert.deepEqual(c1.archive(), { disclosed: true, retentionDays: 180, openers: ['compliance'], undisclosed: [] });

  // Turned on after the conversation started: refused for it.
  const late = await orgBot();
  const c2 = await cust.client.startConversation(late.deviceId, { name: 'Carla' });
  await c2.send('hello');
  await until(() => c2.history().length === 1, 5_000, 'the first message is kept');
  assert.deepEqual(c2.archive(), { disclosed: false, undisclosed: [] });
  await late.setArchiveDisclosure(disclosure);
  await cust.client.refreshPeerStatements(late.deviceId);
  assert.deepEqual(c2.archive(), { disclosed: false, undisclosed: [late.deviceId] });

  // Removed from the statements: refused.
  await disclosed.setArchiveDisclosure(null);
  await cust.client.refreshPeerStatements(disclosed.deviceId);
  assert.equal(c1.archive().disclosed, false);
});
