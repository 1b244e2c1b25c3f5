/**
 * Release manifests end to end, over real sockets on 127.0.0.1 (bot README "Release manifests"):
 * the org signs offline, with `parley-org manifest`, that the bot label `support` may run the
 * measurement `parley-bot measure` prints; the bot publishes it with its prekeys; a customer that
 * pins only the org key (`trust: { orgKey, releaseManifests: true }`) accepts the bot and sees the
 * release version. A new deploy (another handler, so another measurement) is refused until the
 * org signs a manifest for it; manifests for another label, by another org key or expired are
 * refused too, and every refusal leaves nothing stored at the relay. Pinning measurements
 * directly (several at once) still works.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeReleaseManifest, decodeReleaseManifestList, isParleyError, releaseManifestFromBase64 } from '@parley/protocol';
import { createApiKey } from '@parley/relay';
import { main as botCli } from '../../packages/bot/src/cli/bot.js';
import { CountingStore, FAQ_HANDLER, botLogger, customer, orgKey, parleyOrg, refused, setupCrypto, startBot, startRelay, tempDir, until } from './helpers.js';

await setupCrypto();
const DAY = 24 * 3600 * 1000;
const FAQ_PATH = fileURLToPath(FAQ_HANDLER);

/** `parley-bot`, run in-process exactly as its bin runs it. */
async function parleyBot(...args: string[]): Promise<string> {
  let out = '';
  let err = '';
  const code = await botCli(['node', 'parley-bot', ...args], { out: (s) => void (out += s), err: (s) => void (err += s) });
  if (code !== 0) throw new Error(`parley-bot ${args[0]} failed (${code}): ${err}`);
  return out.trim();
}

test('a client pinning only the org key accepts a bot through a release manifest, and refuses unsigned or foreign code', async (t) => {
  const dir = tempDir();
  const store = new CountingStore();
  const relay = await startRelay({ store });
  t.after(async () => {
    await relay.close();
    await store.close();
  });
  const org = await orgKey(dir);
  const orgKeyFile = join(dir, 'org.key');
  const manifest = (measurement: string, release: string, ...extra: string[]) =>
    parleyOrg('manifest', '--org-key', orgKeyFile, '--label', 'support', '--measurement', measurement, '--release', release, ...extra);

  // The deployed bot (FAQ handler), certified as "support".
  const v1 = await startBot(relay.url, (await createApiKey(relay.store, 'v1')).key, join(dir, 'v1'));
  t.after(() => v1.close());
  await v1.setCertificate(await org.certify(v1.identityHex));

  // `parley-bot measure` prints what the enclave attests to, without writing code.
  const measured = await parleyBot('measure', FAQ_PATH);
  assert.equal(measured, v1.measurement);
  const listed = JSON.parse(await parleyBot('measure', FAQ_PATH, '--json')) as { measurement: string; files: { label: string }[] };
  assert.equal(listed.measurement, v1.measurement);
  assert.ok(listed.files.some((f) => f.label === 'handler'));

  // `parley-org manifest` round trip: JSON fields, base64 that decodes to them, inspect verifies it.
  const signed = JSON.parse(await manifest(measured, '2.4.0', '--json')) as Record<string, string>;
  assert.deepEqual(
    { label: signed.label, measurement: signed.measurement, releaseVersion: signed.releaseVersion, orgKey: signed.orgKey, validUntil: signed.validUntil },
    { label: 'support', measurement: measured, releaseVersion: '2.4.0', orgKey: org.publicKeyHex, validUntil: undefined },
  );
  assert.equal(decodeReleaseManifest(releaseManifestFromBase64(signed.manifest!)).releaseVersion, '2.4.0');
  const inspected = JSON.parse(await parleyOrg('inspect', signed.manifest!, '--org-key-public', org.publicKeyHex)) as { type: string; valid: boolean };
  assert.deepEqual([inspected.type, inspected.valid], ['release-manifest', true]);
  await assert.rejects(parleyOrg('inspect', signed.manifest!, '--org-key-public', 'ab'.repeat(32)), /not valid \(orgKey/);

  // The bot publishes the manifest for its code; one for other code is left out, with a warning naming it.
  const otherCode = await manifest('cd'.repeat(32), '9.0.0');
  assert.equal(await v1.setManifests([JSON.stringify(signed), otherCode]), 1);
  const published = decodeReleaseManifestList((await relay.store.getIdentity(v1.deviceId))!.manifests!);
  assert.deepEqual(published.map((m) => decodeReleaseManifest(m).releaseVersion), ['2.4.0']);

  // The customer pins the org key only.
  const alice = await customer(relay.url, { orgKey: org.publicKeyHex, releaseManifests: true });
  t.after(() => alice.client.close());
  await alice.client.send(v1.deviceId, 'hours');
  await until(() => alice.got.length >= 1, 15_000, 'a reply from v1');
  assert.equal(alice.got[0]!.text, 'We are open 9:00-17:00 CET, Monday to Friday.');
  assert.deepEqual(alice.client.peerAttestation(v1.deviceId), { measurement: measured, issuedAt: v1.attestation().issuedAt, releaseVersion: '2.4.0' });

  // A new deploy: another handler, so another measurement, certified as "support" too.
  const handler2 = join(dir, 'handler-v2.mjs');
  writeFileSync(handler2, 'export default async function handle(message, ctx) { await ctx.reply(`v2:${message.text}`); }\n');
  const v2 = await startBot(relay.url, (await createApiKey(relay.store, 'v2')).key, join(dir, 'v2'), { handler: handler2 });
  t.after(() => v2.close());
  await v2.setCertificate(await org.certify(v2.identityHex));
  const m2 = await parleyBot('measure', handler2);
  assert.equal(m2, v2.measurement);
  assert.notEqual(m2, measured);

  const before = store.storedFrom(alice.client.deviceId);
  const refusedNow = async (reason: string, refusal?: string) => {
    await assert.rejects(alice.client.send(v2.deviceId, 'hello v2'), refused('ATTESTATION_INVALID', reason));
    await assert.rejects(alice.client.send(v2.deviceId, 'hello v2'), (e: unknown) => isParleyError(e, 'ATTESTATION_INVALID') && e.details?.refusal === refusal);
    assert.equal(store.storedFrom(alice.client.deviceId), before, 'nothing reached the relay');
  };
  // No manifest for it: refused (only v1's manifest exists, for other code).
  await refusedNow('measurement', undefined);
  // A manifest the bot made up for another label, then one signed by another org key.
  await v2.setManifests([await parleyOrg('manifest', '--org-key', orgKeyFile, '--label', 'sales', '--measurement', m2, '--release', '3.0.0')]);
  await refusedNow('manifest', 'label');
  const rogueKey = join(dir, 'rogue.key');
  await parleyOrg('keygen', '--out', rogueKey);
  await v2.setManifests([await parleyOrg('manifest', '--org-key', rogueKey, '--label', 'support', '--measurement', m2, '--release', '3.0.0')]);
  await refusedNow('manifest', 'orgKey');
  // Expired.
  const past = Date.now() - 10 * DAY;
  await v2.setManifests([await manifest(m2, '3.0.0', '--from', String(past), '--until', String(past + DAY))]);
  await refusedNow('manifest', 'expired');

  // The org signs the new measurement: accepted, with its version, no client release needed.
  await v2.setManifests([await manifest(m2, '3.0.0')]);
  await alice.client.send(v2.deviceId, 'hello v2');
  await until(() => alice.got.some((m) => m.from === v2.deviceId), 15_000, 'a reply from v2');
  assert.equal(alice.got.find((m) => m.from === v2.deviceId)!.text, 'v2:hello v2');
  assert.equal(alice.client.peerAttestation(v2.deviceId)?.releaseVersion, '3.0.0');
  assert.deepEqual(alice.errors, []);

  // Directly pinned measurements still work, several at once, with no manifests needed.
  await v1.setManifests([]);
  await v2.setManifests([]);
  assert.equal((await relay.store.getIdentity(v2.deviceId))!.manifests, undefined, 'an empty list removes the relay\'s copy');
  const bob = await customer(relay.url, { orgKey: org.publicKeyHex, botMeasurement: [measured, m2] });
  t.after(() => bob.client.close());
  await bob.client.send(v1.deviceId, 'refund');
  await bob.client.send(v2.deviceId, 'hi');
  await until(() => bob.got.length >= 2, 15_000, 'replies from both bots');
  assert.deepEqual(bob.got.map((m) => m.text).sort(), ['Refunds are processed within 5 working days.', 'v2:hi']);
  assert.equal(bob.client.peerAttestation(v2.deviceId)?.releaseVersion, undefined);
  // ... and only those: a client pinning just the first refuses the second (no manifests on).
  const carol = await customer(relay.url, { orgKey: org.publicKeyHex, botMeasurement: measured });
  t.after(() => carol.client.close());
  await assert.rejects(carol.client.send(v2.deviceId, 'hi'), refused('ATTESTATION_INVALID'));
});

test('the bot publishes only the manifests for its own measurement (egress policy included) and warns about the others', async (t) => {
  const dir = tempDir();
  const relay = await startRelay();
  t.after(() => relay.close());
  await orgKey(dir);
  const orgKeyFile = join(dir, 'org.key');
  // The egress policy is part of the measurement: `--egress` gives what a bot with that policy attests.
  const measured = await parleyBot('measure', FAQ_PATH, '--egress', 'api.example.com,https://b.example.com');
  assert.notEqual(measured, await parleyBot('measure', FAQ_PATH));
  const mine = await parleyOrg('manifest', '--org-key', orgKeyFile, '--label', 'support', '--measurement', measured, '--release', '1.0.0');
  const other = 'ef'.repeat(32);
  const theirs = await parleyOrg('manifest', '--org-key', orgKeyFile, '--label', 'support', '--measurement', other, '--release', '0.9.0');
  const logger = botLogger();
  const bot = await startBot(relay.url, (await createApiKey(relay.store, 'bot')).key, join(dir, 'bot'), { manifests: [theirs, mine], logger, egress: ['https://b.example.com', 'api.example.com'] });
  assert.equal(bot.measurement, measured);
  t.after(() => bot.close());
  assert.equal(bot.manifests().length, 1);
  const published = decodeReleaseManifestList((await relay.store.getIdentity(bot.deviceId))!.manifests!);
  assert.deepEqual(published.map((m) => decodeReleaseManifest(m).releaseVersion), ['1.0.0']);
  const warning = logger.lines.map((l) => JSON.parse(l) as { event?: string; msg?: string }).find((l) => l.event === 'manifest.otherMeasurement');
  assert.ok(warning?.msg?.includes(other), 'the warning names the measurement the manifest is for');
  // A malformed one is a USAGE error.
  await assert.rejects(bot.setManifests(['bm90IGEgbWFuaWZlc3Q=']), refused('USAGE'));
});
