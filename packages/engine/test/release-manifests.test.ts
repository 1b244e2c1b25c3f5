/**
 * `trust.releaseManifests` in the engine, with a controlled clock: a measurement allowed by an
 * org-signed release manifest is accepted and its version remembered (also after a restart); the
 * manifest's window is re-checked on every send and receive (past `validUntil`: `manifest` /
 * `expired`, cured by a renewed manifest); a re-pinned org key invalidates it; a malformed list
 * is refused; and the options are checked.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import {
  attestationPayload,
  encodeAttestation,
  encodeReleaseManifestList,
  generateOrgKey,
  getCrypto,
  isParleyError,
  signOrgCertificate,
  signReleaseManifest,
  toHex,
  type BotAttestation,
} from '@parley/protocol';
import { ConversationEngine } from '../src/index.js';
import { DAY, T0, deliver, device, mid, refused, setupCrypto, takeBundle, text } from './helpers/engines.js';

before(setupCrypto);

describe('release manifests (trust.releaseManifests)', () => {
  async function setup() {
    const org = generateOrgKey();
    const measurement = getCrypto().randomBytes(32);
    let now = T0;
    const clock = () => now;
    const customer = await device({ trust: { orgKey: org.publicKey, releaseManifests: true }, now: clock });
    const bot = await device({ now: clock });
    const cert = signOrgCertificate(org.seed, { role: 'bot', label: 'support', ...bot.engine.publicIdentity, expiresAt: T0 + 365 * DAY });
    const attest = (): Uint8Array => {
      const base = { version: 1 as const, measurement, deviceId: bot.engine.deviceId, issuedAt: now };
      const a: BotAttestation = { ...base, signature: bot.engine.signBotAttestation(attestationPayload(base)) };
      return encodeAttestation(a);
    };
    const manifests = (...list: { version: string; from?: number; until?: number }[]) =>
      encodeReleaseManifestList(list.map((m) => signReleaseManifest(org.seed, {
        label: 'support', measurement, releaseVersion: m.version, validFrom: m.from ?? T0 - DAY, ...(m.until !== undefined ? { validUntil: m.until } : {}),
      })));
    return { org, measurement, customer, bot, cert, attest, manifests, setNow: (t: number) => (now = t) };
  }

  it('accepted with its version; the window is re-checked on send and receive; a renewed manifest resumes', async () => {
    const { org, measurement, customer, bot, cert, attest, manifests, setNow } = await setup();
    const out = await customer.engine.encrypt(bot.engine.deviceId, text('hi'), {
      messageId: mid(),
      bundle: { ...takeBundle(bot.upload, { certificate: cert }), attestation: attest(), manifests: manifests({ version: '1.0.0', until: T0 + 2 * 3600_000 }) },
    });
    assert.deepEqual(customer.engine.peerAttestation(bot.engine.deviceId), { measurement: toHex(measurement), issuedAt: T0, releaseVersion: '1.0.0' });
    assert.equal((await deliver(bot.engine, customer.engine, out)).kind, 'message');
    // Remembered across a restart with the same trust settings.
    const reopened = await ConversationEngine.open({ store: customer.store, trust: { orgKey: org.publicKey, releaseManifests: true }, now: () => T0 });
    assert.equal(reopened.peerAttestation(bot.engine.deviceId)?.releaseVersion, '1.0.0');
    await reopened.close();

    const reply = await bot.engine.encrypt(customer.engine.deviceId, text('hello'), { messageId: mid() });
    setNow(T0 + 2 * 3600_000); // validUntil is exclusive
    const size = customer.store.size;
    const expired = (e: unknown) => isParleyError(e, 'ATTESTATION_INVALID') && e.details?.reason === 'manifest' && e.details?.refusal === 'expired';
    await assert.rejects(customer.engine.encrypt(bot.engine.deviceId, text('x'), { messageId: mid() }), expired);
    assert.equal(customer.store.size, size, 'nothing stored');
    await assert.rejects(deliver(customer.engine, bot.engine, reply), expired);
    // The same statements again: still refused (by the manifest check at verification now).
    await assert.rejects(
      customer.engine.setPeerStatements(bot.engine.deviceId, { certificate: cert, attestation: attest(), manifests: manifests({ version: '1.0.0', until: T0 + 2 * 3600_000 }) }),
      expired,
    );
    // A renewed manifest (and an old one beside it): the latest valid one is used, the reply opens.
    await customer.engine.setPeerStatements(bot.engine.deviceId, {
      certificate: cert, attestation: attest(), manifests: manifests({ version: '1.0.0', until: T0 + 3600_000 }, { version: '1.0.1', from: T0 }),
    });
    assert.equal(customer.engine.peerAttestation(bot.engine.deviceId)?.releaseVersion, '1.0.1');
    assert.equal((await deliver(customer.engine, bot.engine, reply)).kind, 'message');
  });

  it('a re-pinned org key invalidates what another key allowed; a malformed list and a missing one are refused', async () => {
    const { customer, bot, cert, attest, manifests } = await setup();
    await customer.engine.encrypt(bot.engine.deviceId, text('hi'), {
      messageId: mid(),
      bundle: { ...takeBundle(bot.upload, { certificate: cert }), attestation: attest(), manifests: manifests({ version: '1.0.0' }) },
    });
    const otherOrg = generateOrgKey();
    const repinned = await ConversationEngine.open({ store: customer.store, trust: { orgKey: otherOrg.publicKey, releaseManifests: true, requireCertificate: 'none' }, now: () => T0 });
    await assert.rejects(repinned.encrypt(bot.engine.deviceId, text('y'), { messageId: mid() }), refused('ATTESTATION_INVALID', 'measurement'));
    await repinned.close();

    const fresh = await setup();
    const bundle = { ...takeBundle(fresh.bot.upload, { certificate: fresh.cert }), attestation: fresh.attest() };
    const send = (m?: Uint8Array) => fresh.customer.engine.encrypt(fresh.bot.engine.deviceId, text('x'), { messageId: mid(), bundle: { ...bundle, ...(m ? { manifests: m } : {}) } });
    await assert.rejects(send(), refused('ATTESTATION_INVALID', 'measurement'));
    await assert.rejects(send(new Uint8Array([1, 0, 5, 1])), (e: unknown) => isParleyError(e, 'ATTESTATION_INVALID') && e.details?.refusal === 'malformed');
    assert.equal(fresh.customer.engine.pendingOutbox().length, 0, 'nothing queued');
  });

  it('bad options are USAGE errors', async () => {
    await assert.rejects(ConversationEngine.open({ store: (await device()).store, trust: { releaseManifests: true } }), refused('USAGE'));
    await assert.rejects(ConversationEngine.open({ store: (await device()).store, trust: { botMeasurement: ['ab'.repeat(32), 'abc'] } }), refused('USAGE'));
  });
});
