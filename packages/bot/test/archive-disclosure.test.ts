/**
 * A bot publishes its org-signed archive disclosure (`archiveDisclosure` option, base64 as
 * `parley-org disclose` prints it) with its prekeys: the relay hands out the same bytes in the
 * bot's bundle and identity statements, beside its certificate and attestation.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateOrgKey, getCrypto, initCrypto, signArchiveDisclosure, toBase64 } from '@parley/protocol';
import { startBot, startRelay } from './harness.js';

test('bot: the archive disclosure is published with the prekeys', async (t) => {
  await initCrypto('node');
  const dir = await mkdtemp(join(tmpdir(), 'parley-bot-disclose-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const relay = await startRelay();
  t.after(() => relay.close());
  const org = generateOrgKey();
  const disclosure = signArchiveDisclosure(org.seed, { label: 'support', archiveKey: getCrypto().x25519Generate().publicKey, retentionDays: 30, openers: ['compliance'], issuedAt: Date.now() });
  const { bot } = await startBot(relay, dir, { archiveDisclosure: toBase64(disclosure) });
  t.after(() => bot.close());
  const published = await relay.store.getIdentity(bot.deviceId);
  assert.deepEqual(published?.disclosure, disclosure);
});
