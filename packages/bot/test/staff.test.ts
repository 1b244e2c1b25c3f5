/**
 * The bot verifies staff (issue 12), over real sockets on 127.0.0.1: a relay with the org key, a
 * real bot with `orgKey` (its measurement covers the key), an agent `ParleyClient` whose staff
 * credential (org root → issuer → device) is built here, and a customer `ParleyClient`.
 *
 * - The handler sees the agent as staff (`message.staff`: person, name, roles, expiry) and the
 *   customer as no one in particular.
 * - The issuer's revocation list naming the agent's person is POSTed to the relay; the bot fetches
 *   it at its next refresh (`revocationRefreshMs`). The agent's device then logs in again without
 *   its credential (the relay sees a plain customer, which may write to the bot) and writes on its
 *   existing session: the enclave refuses the message (`UNTRUSTED_IDENTITY` reason `revoked`),
 *   the host acks and drops it, the handler never runs. The customer is still answered.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  encodeStaffCredential, generateIssuerKey, generateOrgKey, signIssuerCertificate, signRevocationList, signStaffCertificate, toHex,
} from '@parley/protocol';
import { MemoryStore } from '@parley/engine';
import { ParleyClient, type IncomingMessage } from '../../client/src/index.js';
import { createRelay, createApiKey, type Relay } from '../../relay/src/index.js';
import { computeMeasurement, type BotOptions } from '../src/index.js';
import { createBotForTesting, type TestingBot } from '../src/testing.js';
import { TEST_RELAY_LIMITS } from './harness.js';
import { captureLogger, setupCrypto, tempDir, waitFor } from './helpers.js';

const HOUR = 3_600_000;
const REFRESH_MS = 1_000;
const HANDLER = new URL('./fixtures/staff-handler.mjs', import.meta.url);
const FAST = { reconnectDelayMs: 50, maxReconnectDelayMs: 400 };

await setupCrypto();
const org = generateOrgKey();
const issuer = generateIssuerKey();
const issuerCertificate = signIssuerCertificate(org.seed, {
  issuerKey: issuer.publicKey, name: 'Acme support', policy: { roles: ['agent', 'supervisor'], maxLifetimeMs: 12 * HOUR }, expiresAt: Date.now() + 30 * 24 * HOUR,
});

let relay: Relay;
let bot: TestingBot;
const logger = captureLogger();
/** Revocation calls the host made into the enclave: how many lists each carried, once answered. */
const handedIn: number[] = [];
const closers: (() => Promise<unknown>)[] = [];

before(async () => {
  relay = await createRelay({ logLevel: 'silent', limits: TEST_RELAY_LIMITS, orgKey: org.publicKey });
  const { key } = await createApiKey(relay.store, 'staff test bot');
  const calls = new Map<number, number>();
  const options: BotOptions = {
    relayUrl: relay.url, apiKey: key, handler: HANDLER, stateDir: tempDir(), logger, oneTimePrekeys: 10,
    orgKey: toHex(org.publicKey), revocationRefreshMs: REFRESH_MS,
  };
  bot = await createBotForTesting(options, {
    unsafeTestingTap: (direction, raw) => {
      const m = raw as { type?: string; callId?: number; method?: string; params?: { lists?: unknown[] }; ok?: boolean };
      if (direction === 'toEnclave' && m.type === 'call' && m.method === 'revocations') calls.set(m.callId!, m.params?.lists?.length ?? 0);
      if (direction === 'fromEnclave' && m.type === 'result' && calls.has(m.callId!) && m.ok) handedIn.push(calls.get(m.callId!)!);
    },
  });
});
after(async () => {
  for (const close of closers.reverse()) await close().catch(() => undefined);
  await bot?.close();
  await relay?.close();
});

async function client(store = new MemoryStore()): Promise<{ client: ParleyClient; store: MemoryStore; got: IncomingMessage[] }> {
  const c = await ParleyClient.create({ relayUrl: relay.url, store, trust: { orgKey: org.publicKey, requireCertificate: 'none' }, transport: FAST });
  closers.push(() => c.close());
  const got: IncomingMessage[] = [];
  c.on('message', (m) => void got.push(m));
  return { client: c, store, got };
}

type Seen = { text: string | null; staff: { personId: string; displayName: string; roles: string[]; expiresAt: number } | null };
const seen = (m: IncomingMessage | undefined): Seen => m?.json as Seen;

test('the org key is part of the measurement', async () => {
  assert.equal(bot.measurement, (await computeMeasurement(HANDLER, { orgKey: org.publicKey })).hex);
  assert.notEqual(bot.measurement, (await computeMeasurement(HANDLER)).hex);
});

test('the handler sees a verified agent as staff; once the person is revoked and the bot refreshed, the agent is refused and customers are still answered', async () => {
  // The agent's device, certified by the issuer (agent + supervisor, 1 h).
  const agent = await client();
  const issuedAt = Date.now() - 1_000;
  const expiresAt = issuedAt + HOUR;
  const credential = encodeStaffCredential(issuerCertificate, signStaffCertificate(issuer.seed, {
    ...agent.client.publicIdentity, personId: 'p-ada', displayName: 'Ada Lovelace', roles: ['agent', 'supervisor'], issuedAt, expiresAt, serial: new Uint8Array(randomBytes(16)),
  }));
  await agent.client.setStaffCredential(credential);
  await agent.client.connect();
  const customer = await client();
  await customer.client.connect();

  await agent.client.send(bot.deviceId, 'hello from the desk');
  await customer.client.send(bot.deviceId, 'hello, I need help');
  await waitFor(() => agent.got.length === 1 && customer.got.length === 1, 10_000, 'both answered');
  assert.deepEqual(seen(agent.got[0]), { text: 'hello from the desk', staff: { personId: 'p-ada', displayName: 'Ada Lovelace', roles: ['agent', 'supervisor'], expiresAt } });
  assert.deepEqual(seen(customer.got[0]), { text: 'hello, I need help', staff: null });

  // The issuer revokes the person; the relay takes the list (and drops the agent's connection).
  const before = handedIn.length;
  const list = signRevocationList(issuer.seed, { issuerCertificate, sequence: 1, issuedAt: Date.now(), persons: ['p-ada'], devices: [] });
  const res = await fetch(`${relay.url}/v1/revocations`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: Buffer.from(list) });
  assert.equal(res.status, 204);
  await agent.client.close();
  // The bot's next refresh hands the list to the enclave (bounded by revocationRefreshMs).
  await waitFor(() => handedIn.slice(before).some((n) => n === 1), 3 * REFRESH_MS + 2_000, 'the bot refreshed its revocation lists');

  // The same device, without its credential: a plain customer for the relay, refused by the bot.
  const again = await client(agent.store);
  await again.client.connect();
  await again.client.send(bot.deviceId, 'still staff?');
  await waitFor(() => logger.lines.some((l) => l.includes('"deliver.rejected"') && l.includes(agent.client.deviceId)), 10_000, 'the bot refused the revoked agent');
  const rejected = JSON.parse(logger.lines.find((l) => l.includes('"deliver.rejected"'))!) as { error: { code: string; details?: { reason?: string } } };
  assert.equal(rejected.error.code, 'UNTRUSTED_IDENTITY');
  assert.equal(rejected.error.details?.reason, 'revoked');

  // A customer is still answered; the agent's message never reached the handler.
  await customer.client.send(bot.deviceId, 'are you there?');
  await waitFor(() => customer.got.length === 2, 10_000, 'the customer answered');
  assert.deepEqual(seen(customer.got[1]), { text: 'are you there?', staff: null });
  await bot.idle();
  assert.equal(again.got.length, 0);
});
