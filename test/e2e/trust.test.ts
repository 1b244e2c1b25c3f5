/**
 * The trust loop end to end (DESIGN "Who may speak for the organisation", THREATS C18, R10c, B3),
 * over real sockets on 127.0.0.1: a customer `ParleyClient` pins the org key and the bot's
 * measurement; the bot (`createBot`, keys and handler in its enclave) publishes its org
 * certificate (made with `parley-org certify`) and its attestation with its prekeys; the relay
 * carries both without reading them.
 *
 * Every refusal is checked at the relay too: the store counted 0 envelopes from the customer,
 * and the customer's outbox is empty (nothing was encrypted for the refused peer).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { encodeAttestation, getCrypto, toHex } from '@parley/protocol';
import { createApiKey } from '@parley/relay';
import { orgCertificateFromBase64 } from '@parley/protocol';
import { computeMeasurement } from '@parley/bot';
import { CountingStore, FAQ_HANDLER, customer, orgKey, refused, setupCrypto, startBot, startRelay, tempDir, until } from './helpers.js';

await setupCrypto();
const PINNED = (await computeMeasurement(FAQ_HANDLER)).hex;
const HOURS = 'We are open 9:00-17:00 CET, Monday to Friday.';

test('customer ⇄ bot: certificate made after the first start (parley-org certify), pinned measurement, FAQ answers', async (t) => {
  const dir = tempDir();
  const store = new CountingStore();
  const relay = await startRelay({ store });
  t.after(async () => {
    await relay.close();
    await store.close();
  });
  const { key } = await createApiKey(relay.store, 'support bot');
  const org = await orgKey(dir);

  // 1. First start: the enclave creates the bot's identity. No certificate can exist yet.
  const first = await startBot(relay.url, key, join(dir, 'bot'));
  const botId = first.deviceId;
  const identityHex = first.identityHex;
  assert.equal(identityHex, toHex(first.identity.signingKey) + toHex(first.identity.dhKey));
  await first.close();
  // 2. Offline, on the machine with the org key.
  const certificate = await org.certify(identityHex);
  // 3. Restart with it: same identity (sealed state), now certified.
  const bot = await startBot(relay.url, key, join(dir, 'bot'), { certificate });
  t.after(() => bot.close());
  assert.equal(bot.deviceId, botId);
  assert.equal(bot.measurement, PINNED);

  // The relay holds both statements, byte for byte, beside the prekeys.
  const published = await relay.store.getIdentity(botId);
  assert.deepEqual([...published!.certificate!], [...orgCertificateFromBase64(certificate)]);
  assert.deepEqual([...published!.attestation!], [...encodeAttestation(bot.attestation())]);

  const alice = await customer(relay.url, { orgKey: org.publicKeyHex, botMeasurement: PINNED });
  t.after(() => alice.client.close());
  await alice.client.send(botId, 'hours');
  await alice.client.send(botId, { order: 42 });
  await alice.client.send(botId, 'where is my parcel?');
  await until(() => alice.got.length >= 3, 15_000, 'three replies');
  assert.deepEqual(alice.got.map((m) => m.text), [HOURS, 'echo:{"order":42}', 'echo:where is my parcel?']);
  assert.deepEqual(alice.client.peerCertificate(botId), { role: 'bot', label: 'support', expiresAt: alice.client.peerCertificate(botId)!.expiresAt });
  assert.equal(alice.client.peerAttestation(botId)?.measurement, PINNED);
  assert.equal(alice.duplicates(), 0);
  assert.deepEqual(alice.errors, []);
  assert.ok(store.storedFrom(alice.client.deviceId) >= 3);

  // A re-signed attestation is published with the prekeys.
  const before = bot.attestation();
  await new Promise((r) => setTimeout(r, 5));
  const fresh = await bot.refreshAttestation();
  assert.ok(fresh.issuedAt > before.issuedAt);
  assert.deepEqual([...(await relay.store.getIdentity(botId))!.attestation!], [...encodeAttestation(fresh)]);
});

test('refused, with nothing sent: uncertified bot, wrong measurement, and a relay that swaps keys, certificates or attestations', async (t) => {
  const dir = tempDir();
  const store = new CountingStore();
  const relay = await startRelay({ store });
  t.after(async () => {
    await relay.close();
    await store.close();
  });
  const org = await orgKey(dir);
  // The genuine bot: certified with setCertificate (no restart needed).
  const bot = await startBot(relay.url, (await createApiKey(relay.store, 'bot')).key, join(dir, 'bot'));
  t.after(() => bot.close());
  await bot.setCertificate(await org.certify(bot.identityHex));
  // An impostor: another bot identity running the very same code, so its attestation of the
  // pinned measurement is genuine, but the org never certified it.
  const impostor = await startBot(relay.url, (await createApiKey(relay.store, 'impostor')).key, join(dir, 'impostor'));
  t.after(() => impostor.close());
  const genuine = (await relay.store.getIdentity(bot.deviceId))!;
  const impostorStatements = (await relay.store.getIdentity(impostor.deviceId))!;
  assert.ok(genuine.certificate && genuine.attestation && impostorStatements.attestation && !impostorStatements.certificate);

  const trust = { orgKey: org.publicKeyHex, botMeasurement: PINNED };
  const cases: { name: string; peer: string; pin?: string; code: 'UNTRUSTED_IDENTITY' | 'ATTESTATION_INVALID'; reason?: string; relay?: () => Promise<void> }[] = [
    { name: 'uncertified bot', peer: impostor.deviceId, code: 'UNTRUSTED_IDENTITY', reason: 'missing' },
    { name: 'wrong pinned measurement', peer: bot.deviceId, pin: toHex(getCrypto().randomBytes(32)), code: 'ATTESTATION_INVALID', reason: 'invalid' },
    {
      // C18: the relay presents the impostor as "support", with the genuine bot's certificate.
      name: 'second identity with the first bot\'s certificate',
      peer: impostor.deviceId,
      code: 'UNTRUSTED_IDENTITY',
      reason: 'identity',
      relay: async () => {
        const taken = (await store.takeHonestBundle(impostor.deviceId))!;
        await store.putPrekeys(impostor.deviceId, { identity: taken.bundle.identity, signedPrekey: taken.bundle.signedPrekey, oneTimePrekeys: [], certificate: genuine.certificate! });
      },
    },
    {
      // R10c: asked for the genuine bot, the relay serves the impostor's keys with the genuine statements.
      name: 'swapped identity keys under the bot\'s device id',
      peer: bot.deviceId,
      code: 'UNTRUSTED_IDENTITY',
      relay: async () => {
        const fake = (await store.takeHonestBundle(impostor.deviceId))!;
        store.rewriteBundle = (id, taken) => (id === bot.deviceId ? { ...fake, certificate: genuine.certificate!, attestation: genuine.attestation! } : taken);
      },
    },
    {
      // B3: the genuine bundle and certificate, with the impostor's (validly signed) attestation.
      name: 'another bot\'s attestation',
      peer: bot.deviceId,
      code: 'ATTESTATION_INVALID',
      reason: 'invalid',
      relay: async () => {
        store.rewriteBundle = (id, taken) => (id === bot.deviceId && taken ? { ...taken, attestation: impostorStatements.attestation! } : taken);
      },
    },
    {
      name: 'attestation stripped',
      peer: bot.deviceId,
      code: 'ATTESTATION_INVALID',
      reason: 'missing',
      relay: async () => {
        store.rewriteBundle = (id, taken) => {
          if (id !== bot.deviceId || !taken) return taken;
          const { attestation: _dropped, ...rest } = taken;
          return rest;
        };
      },
    },
  ];

  for (const c of cases) {
    store.rewriteBundle = undefined;
    await c.relay?.();
    const victim = await customer(relay.url, { ...trust, ...(c.pin ? { botMeasurement: c.pin } : {}) });
    try {
      await assert.rejects(victim.client.send(c.peer, 'my card number is 4111 1111 1111 1111'), refused(c.code, c.reason), c.name);
      assert.equal(victim.client.pendingCount, 0, `${c.name}: nothing in the outbox`);
      assert.equal(store.storedFrom(victim.client.deviceId), 0, `${c.name}: the relay stored nothing from the customer`);
      assert.equal(victim.got.length, 0);
    } finally {
      await victim.client.close();
    }
  }

  // Control: the same relay, honest again, and the same pins: the genuine bot answers.
  store.rewriteBundle = undefined;
  const ok = await customer(relay.url, trust);
  t.after(() => ok.client.close());
  await ok.client.send(bot.deviceId, 'hours');
  await until(() => ok.got.length >= 1, 15_000, 'reply');
  assert.equal(ok.got[0]!.text, HOURS);
  assert.equal(ok.got[0]!.from, bot.deviceId);
});

test('offline delivery: the customer writes while the bot is down; the bot starts later and answers', async (t) => {
  const dir = tempDir();
  const store = new CountingStore();
  const relay = await startRelay({ store });
  t.after(async () => {
    await relay.close();
    await store.close();
  });
  const { key } = await createApiKey(relay.store, 'bot');
  const org = await orgKey(dir);
  const first = await startBot(relay.url, key, join(dir, 'bot'));
  const botId = first.deviceId;
  const certificate = await org.certify(first.identityHex);
  await first.setCertificate(certificate);
  await first.close();

  // The bot is down: its prekeys, certificate and attestation are on the relay, and that is enough.
  const alice = await customer(relay.url, { orgKey: org.publicKeyHex, botMeasurement: PINNED });
  t.after(() => alice.client.close());
  for (const text of ['hours', 'refund', 'anyone there?']) await alice.client.send(botId, text);
  assert.equal(alice.client.pendingCount, 0, 'acked by the relay');
  assert.equal(await relay.store.countPending(botId), 3, 'queued for the offline bot');
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(alice.got.length, 0);

  const bot = await startBot(relay.url, key, join(dir, 'bot'), { certificate });
  t.after(() => bot.close());
  await until(() => alice.got.length >= 3, 15_000, 'three replies');
  assert.deepEqual(alice.got.map((m) => m.text), [HOURS, 'Refunds are processed within 5 working days.', 'echo:anyone there?']);
  assert.equal(alice.duplicates(), 0);
  // The bot acks its backlog (and the customer's receipts that follow) once handled.
  for (let i = 0; i < 500 && (await relay.store.countPending(botId)) > 0; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(await relay.store.countPending(botId), 0, 'the bot acked its backlog');
});
