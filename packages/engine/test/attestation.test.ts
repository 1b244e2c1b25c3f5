/**
 * Pinned bot measurement (THREATS B3, C18): with `trust.botMeasurement`, the engine encrypts to
 * a certified bot only when its bundle carries an attestation that verifies under the bot's
 * identity, is fresh, and names the pinned measurement. Every refusal is `ATTESTATION_INVALID`
 * (or `UNTRUSTED_IDENTITY` for the certificate) and leaves nothing stored or queued.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { attestationPayload, encodeAttestation, generateOrgKey, getCrypto, signOrgCertificate, toHex, type BotAttestation, type ParleyErrorCode } from '@parley/protocol';
import { ConversationEngine, type TrustOptions } from '../src/index.js';
import { DAY, T0, deliver, device, mid, refused, setupCrypto, takeBundle, text } from './helpers/engines.js';

before(setupCrypto);

describe('pinned bot measurement', () => {
  async function setup(trust: Partial<TrustOptions> = {}, withOrg = true) {
    const org = generateOrgKey();
    const measurement = getCrypto().randomBytes(32);
    let now = T0;
    const clock = () => now;
    const customer = await device({
      trust: { ...(withOrg ? { orgKey: org.publicKey } : {}), botMeasurement: toHex(measurement), ...trust },
      now: clock,
    });
    const bot = await device({ now: clock });
    const other = await device({ now: clock });
    const cert = (d = bot, role: 'bot' | 'agent' = 'bot') =>
      signOrgCertificate(org.seed, { role, label: 'support', ...d.engine.publicIdentity, expiresAt: T0 + 365 * DAY });
    const attest = (d = bot, o: { measurement?: Uint8Array; issuedAt?: number; deviceId?: string } = {}): Uint8Array => {
      const base = { version: 1 as const, measurement: o.measurement ?? measurement, deviceId: o.deviceId ?? d.engine.deviceId, issuedAt: o.issuedAt ?? now };
      const a: BotAttestation = { ...base, signature: d.engine.signBotAttestation(attestationPayload(base)) };
      return encodeAttestation(a);
    };
    return { org, measurement, customer, bot, other, cert, attest, setNow: (t: number) => (now = t) };
  }

  async function assertNothingSent(customer: Awaited<ReturnType<typeof device>>, sizeBefore: number, call: Promise<unknown>, code: ParleyErrorCode, reason?: string) {
    await assert.rejects(call, refused(code, reason));
    assert.equal(customer.store.size, sizeBefore, 'nothing stored');
    assert.equal(customer.engine.pendingOutbox().length, 0, 'nothing queued');
  }

  it('a certified bot with a valid attestation of the pinned measurement is accepted, also after a restart', async () => {
    const { org, measurement, customer, bot, cert, attest } = await setup();
    const out = await customer.engine.encrypt(bot.engine.deviceId, text('hi'), {
      messageId: mid(),
      bundle: { ...takeBundle(bot.upload, { certificate: cert() }), attestation: attest() },
    });
    assert.deepEqual(customer.engine.peerAttestation(bot.engine.deviceId), { measurement: toHex(measurement), issuedAt: T0 });
    assert.equal((await deliver(bot.engine, customer.engine, out)).kind, 'message');
    const reply = await bot.engine.encrypt(customer.engine.deviceId, text('hello'), { messageId: mid() });
    assert.equal((await deliver(customer.engine, bot.engine, reply)).kind, 'message');
    const reopened = await ConversationEngine.open({ store: customer.store, trust: { orgKey: org.publicKey, botMeasurement: measurement }, now: () => T0 });
    await reopened.encrypt(bot.engine.deviceId, text('again'), { messageId: mid() });
  });

  it('refuses a bot without an attestation, with a wrong measurement, a stale one, or another bot\'s', async () => {
    const { customer, bot, other, cert, attest, setNow } = await setup();
    const size = customer.store.size;
    const send = (extra: { attestation?: Uint8Array }) =>
      customer.engine.encrypt(bot.engine.deviceId, text('x'), { messageId: mid(), bundle: { ...takeBundle(bot.upload, { certificate: cert() }), ...extra } });
    await assertNothingSent(customer, size, send({}), 'ATTESTATION_INVALID', 'missing');
    await assertNothingSent(customer, size, send({ attestation: attest(bot, { measurement: getCrypto().randomBytes(32) }) }), 'ATTESTATION_INVALID', 'invalid');
    await assertNothingSent(customer, size, send({ attestation: attest(bot, { issuedAt: T0 - 2 * DAY }) }), 'ATTESTATION_INVALID', 'invalid');
    // Another (even genuine) bot's attestation, replayed beside this bot's bundle.
    await assertNothingSent(customer, size, send({ attestation: attest(other) }), 'ATTESTATION_INVALID', 'invalid');
    // Signed by another key for this bot's device id (B3a).
    await assertNothingSent(customer, size, send({ attestation: attest(other, { deviceId: bot.engine.deviceId }) }), 'ATTESTATION_INVALID', 'invalid');
    // Garbage bytes.
    await assertNothingSent(customer, size, send({ attestation: new Uint8Array(121) }), 'ATTESTATION_INVALID', 'invalid');
    // A fresh valid one is then accepted.
    setNow(T0 + 1000);
    await send({ attestation: attest() });
    assert.equal(customer.engine.pendingOutbox().length, 1);
  });

  it('the certificate is still required: an uncertified bot with a valid attestation is refused', async () => {
    const { customer, bot, other, cert, attest } = await setup();
    const size = customer.store.size;
    await assertNothingSent(customer, size,
      customer.engine.encrypt(bot.engine.deviceId, text('x'), { messageId: mid(), bundle: { ...takeBundle(bot.upload), attestation: attest() } }),
      'UNTRUSTED_IDENTITY', 'missing');
    // A relay pairing this bot's bundle with another bot's certificate and attestation.
    await assertNothingSent(customer, size,
      customer.engine.encrypt(bot.engine.deviceId, text('x'), { messageId: mid(), bundle: { ...takeBundle(bot.upload, { certificate: cert(other) }), attestation: attest(other) } }),
      'UNTRUSTED_IDENTITY', 'identity');
  });

  it('agents need no attestation (requireAttestation "bots"); "all" works without an org key', async () => {
    const a = await setup();
    await a.customer.engine.encrypt(a.bot.engine.deviceId, text('x'), { messageId: mid(), bundle: takeBundle(a.bot.upload, { certificate: a.cert(a.bot, 'agent') }) });
    assert.equal(a.customer.engine.peerAttestation(a.bot.engine.deviceId), undefined);

    const b = await setup({ requireAttestation: 'all' }, false);
    const size = b.customer.store.size;
    await assertNothingSent(b.customer, size, b.customer.engine.encrypt(b.bot.engine.deviceId, text('x'), { messageId: mid(), bundle: takeBundle(b.bot.upload) }), 'ATTESTATION_INVALID', 'missing');
    await b.customer.engine.encrypt(b.bot.engine.deviceId, text('x'), { messageId: mid(), bundle: { ...takeBundle(b.bot.upload), attestation: b.attest() } });
  });

  it('a re-pinned measurement blocks the old session until a matching attestation is supplied (setPeerStatements)', async () => {
    const { org, customer, bot, cert, attest } = await setup();
    await customer.engine.encrypt(bot.engine.deviceId, text('x'), { messageId: mid(), bundle: { ...takeBundle(bot.upload, { certificate: cert() }), attestation: attest() } });
    const next = getCrypto().randomBytes(32);
    const repinned = await ConversationEngine.open({ store: customer.store, trust: { orgKey: org.publicKey, botMeasurement: next }, now: () => T0 });
    await assert.rejects(repinned.encrypt(bot.engine.deviceId, text('y'), { messageId: mid() }), refused('ATTESTATION_INVALID', 'measurement'));
    await assert.rejects(repinned.setPeerStatements(bot.engine.deviceId, { attestation: attest(bot) }), refused('ATTESTATION_INVALID', 'invalid'));
    await repinned.setPeerStatements(bot.engine.deviceId, { attestation: attest(bot, { measurement: next }) });
    await repinned.encrypt(bot.engine.deviceId, text('y'), { messageId: mid() });
  });

  it('the stored attestation is re-checked on every send and receive: stale → expired; a fresh one of the pinned code resumes; a changed measurement is refused (issue 10, finding 6)', async () => {
    const { measurement, customer, bot, cert, attest, setNow } = await setup();
    await deliver(bot.engine, customer.engine, await customer.engine.encrypt(bot.engine.deviceId, text('hi'), {
      messageId: mid(),
      bundle: { ...takeBundle(bot.upload, { certificate: cert() }), attestation: attest() },
    }));
    const reply = await bot.engine.encrypt(customer.engine.deviceId, text('hello'), { messageId: mid() });
    setNow(T0 + DAY + 1); // past the default 24 h: the bot has not re-attested
    const size = customer.store.size;
    const queued = customer.engine.pendingOutbox().length;
    await assert.rejects(customer.engine.encrypt(bot.engine.deviceId, text('still there?'), { messageId: mid() }), refused('ATTESTATION_INVALID', 'expired'));
    assert.equal(customer.store.size, size, 'nothing stored');
    assert.equal(customer.engine.pendingOutbox().length, queued, 'nothing queued');
    await assert.rejects(deliver(customer.engine, bot.engine, reply), refused('ATTESTATION_INVALID', 'expired'));
    assert.equal(customer.engine.inbox().length, 0, 'nothing from a bot whose attestation is stale');

    // The bot restarted with other code and attests that: refused, the stale one stays refused.
    await assert.rejects(
      customer.engine.setPeerStatements(bot.engine.deviceId, { certificate: cert(), attestation: attest(bot, { measurement: getCrypto().randomBytes(32) }) }),
      refused('ATTESTATION_INVALID', 'invalid'),
    );
    await assert.rejects(customer.engine.encrypt(bot.engine.deviceId, text('x'), { messageId: mid() }), refused('ATTESTATION_INVALID', 'expired'));
    // It re-attests the pinned code: the conversation resumes, the held reply opens.
    await customer.engine.setPeerStatements(bot.engine.deviceId, { certificate: cert(), attestation: attest() });
    assert.deepEqual(customer.engine.peerAttestation(bot.engine.deviceId), { measurement: toHex(measurement), issuedAt: T0 + DAY + 1 });
    assert.equal((await deliver(customer.engine, bot.engine, reply)).kind, 'message');
    await customer.engine.encrypt(bot.engine.deviceId, text('thanks'), { messageId: mid() });
  });

  it('bad options are USAGE errors', async () => {
    await assert.rejects(ConversationEngine.open({ store: (await device()).store, trust: { botMeasurement: 'abc' } }), refused('USAGE'));
    await assert.rejects(ConversationEngine.open({ store: (await device()).store, trust: { requireAttestation: 'all' } }), refused('USAGE'));
  });
});
