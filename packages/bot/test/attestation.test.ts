/**
 * Bot attestation (docs/threats.md B3): accepted only when signed by the pinned bot identity, in the
 * `botAttestation` context, fresh, and over the pinned measurement.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { IdentityKeyPair, contextMessage, getCrypto, isParleyError } from '@parley/protocol';
import { attestationPayload, verifyAttestation, type BotAttestation } from '../src/attestation.js';
import { computeMeasurement } from '../src/measurement.js';
import { ECHO_HANDLER, openSupervisor, setupCrypto, tempDir } from './helpers.js';

await setupCrypto();

const invalid = (e: unknown) => isParleyError(e, 'ATTESTATION_INVALID');

function attest(id: IdentityKeyPair, measurement: Uint8Array, issuedAt = Date.now()): BotAttestation {
  const base = { version: 1 as const, deviceId: id.deviceId, measurement, issuedAt };
  return { ...base, signature: id.sign('botAttestation', attestationPayload(base)) };
}

test('the enclave attestation verifies against computeMeasurement, and a refreshed one too', async (t) => {
  const dir = tempDir(t);
  const { sup } = await openSupervisor(dir);
  t.after(() => sup.stop());
  const info = await sup.start();
  const { hex } = await computeMeasurement(ECHO_HANDLER);
  verifyAttestation(info.attestation, hex, info.identity);
  const fresh = await sup.call('attest', {});
  assert.ok(fresh.issuedAt >= info.attestation.issuedAt);
  verifyAttestation(fresh, hex, info.identity);
});

test('B3a: a measurement signed by a key other than the pinned bot identity is refused', () => {
  const bot = IdentityKeyPair.generate();
  const impostor = IdentityKeyPair.generate();
  const m = getCrypto().randomBytes(32);
  // The impostor's own attestation (its own device id).
  assert.throws(() => verifyAttestation(attest(impostor, m), m, bot.publicIdentity), invalid);
  // The impostor claims the bot's device id.
  const base = { version: 1 as const, deviceId: bot.deviceId, measurement: m, issuedAt: Date.now() };
  const forged = { ...base, signature: impostor.sign('botAttestation', attestationPayload(base)) };
  assert.throws(() => verifyAttestation(forged, m, bot.publicIdentity), invalid);
  // Control: the real one passes.
  verifyAttestation(attest(bot, m), m, bot.publicIdentity);
});

test('B3b: an old attestation replayed is refused as stale (and one from the future too)', () => {
  const bot = IdentityKeyPair.generate();
  const m = getCrypto().randomBytes(32);
  const now = Date.now();
  assert.throws(() => verifyAttestation(attest(bot, m, now - 25 * 3600_000), m, bot.publicIdentity, { now }), invalid);
  assert.throws(() => verifyAttestation(attest(bot, m, now - 61_000), m, bot.publicIdentity, { now, maxAgeMs: 60_000 }), invalid);
  assert.throws(() => verifyAttestation(attest(bot, m, now + 3600_000), m, bot.publicIdentity, { now }), invalid);
  verifyAttestation(attest(bot, m, now - 1000), m, bot.publicIdentity, { now, maxAgeMs: 60_000 });
});

test('B3c: a valid signature made in another context (or with none) is refused', () => {
  const bot = IdentityKeyPair.generate();
  const m = getCrypto().randomBytes(32);
  const base = { version: 1 as const, deviceId: bot.deviceId, measurement: m, issuedAt: Date.now() };
  const payload = attestationPayload(base);
  for (const ctx of ['relayAuth', 'signedPrekey', 'identityBinding', 'orgCertificate', 'keyChange'] as const) {
    assert.throws(() => verifyAttestation({ ...base, signature: bot.sign(ctx, payload) }, m, bot.publicIdentity), invalid, ctx);
  }
  // Raw payload with no context prefix (an Ed25519 signature straight over the bytes).
  const raw = getCrypto().ed25519Sign((bot as unknown as { exportPrivateForPickle(): { signingSeed: Uint8Array } }).exportPrivateForPickle().signingSeed, payload);
  assert.throws(() => verifyAttestation({ ...base, signature: raw }, m, bot.publicIdentity), invalid);
  assert.ok(getCrypto().ed25519Verify(bot.publicIdentity.signingKey, contextMessage('botAttestation', payload), bot.sign('botAttestation', payload)));
});

test('B3d: a measurement other than the pinned one is refused; changing the handler changes the measurement', async (t) => {
  const bot = IdentityKeyPair.generate();
  const m = getCrypto().randomBytes(32);
  const other = m.slice();
  other[31]! ^= 1;
  assert.throws(() => verifyAttestation(attest(bot, other), m, bot.publicIdentity), invalid);
  const dir = tempDir(t);
  const altered = join(dir, 'handler.ts');
  writeFileSync(altered, 'export default async function handle() { /* exfiltrate */ }\n');
  const a = await computeMeasurement(ECHO_HANDLER);
  const b = await computeMeasurement(altered);
  assert.notEqual(a.hex, b.hex);
  assert.throws(() => verifyAttestation(attest(bot, b.measurement), a.hex, bot.publicIdentity), invalid);
  // Malformed inputs are typed too.
  assert.throws(() => verifyAttestation({ ...attest(bot, m), signature: new Uint8Array(3) }, m, bot.publicIdentity), invalid);
  assert.throws(() => verifyAttestation({ ...attest(bot, m), version: 2 as 1 }, m, bot.publicIdentity), invalid);
  assert.throws(() => verifyAttestation(attest(bot, m), 'zz', bot.publicIdentity), (e: unknown) => isParleyError(e, 'USAGE'));
});
