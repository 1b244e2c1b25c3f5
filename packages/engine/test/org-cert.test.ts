import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { contextMessage, getCrypto, isParleyError } from '@parley/protocol';
import {
  decodeOrgCertificate,
  generateOrgKey,
  orgCertificatePayload,
  signOrgCertificate,
  verifyOrgCertificate,
} from '@parley/protocol';
import { ConversationEngine, MemoryStore, type TrustEvent } from '../src/index.js';
import { DAY, T0, deliver, device, mid, refused, setupCrypto, str, takeBundle, text } from './helpers/engines.js';

before(setupCrypto);

describe('org certificates', () => {
  async function setup(opts: { onCertifiedChange?: 'accept' | 'block' } = {}) {
    const org = generateOrgKey();
    let now = T0;
    const clock = () => now;
    const events: TrustEvent[] = [];
    const customer = await device({
      trust: { orgKey: org.publicKey, ...opts },
      now: clock,
      onTrustEvent: (e) => events.push(e),
    });
    const bot = await device({ now: clock });
    const cert = (identity = bot.engine.publicIdentity, o: { label?: string; expiresAt?: number; seed?: Uint8Array } = {}) =>
      signOrgCertificate(o.seed ?? org.seed, {
        role: 'bot',
        label: o.label ?? 'support',
        signingKey: identity.signingKey,
        dhKey: identity.dhKey,
        expiresAt: o.expiresAt ?? T0 + 365 * DAY,
      });
    return { org, customer, bot, cert, events, setNow: (t: number) => (now = t) };
  }

  it('a bot with a valid certificate from the pinned org key is accepted', async () => {
    const { org, customer, bot, cert } = await setup();
    const out = await customer.engine.encrypt(bot.engine.deviceId, text('hello support'), {
      messageId: mid(),
      bundle: takeBundle(bot.upload, { certificate: cert() }),
    });
    assert.deepEqual(customer.engine.peerCertificate(bot.engine.deviceId), { role: 'bot', label: 'support', expiresAt: T0 + 365 * DAY });
    assert.equal(customer.engine.resolveLabel('org:bot:support'), bot.engine.deviceId);
    const got = await deliver(bot.engine, customer.engine, out);
    assert.ok(got.kind === 'message' && str(got.payload) === 'hello support');
    // The bot's reply is accepted (the certificate is remembered, also across restarts).
    const reply = await bot.engine.encrypt(customer.engine.deviceId, text('how can I help'), { messageId: mid() });
    const r = await deliver(customer.engine, bot.engine, reply);
    assert.ok(r.kind === 'message');
    const reopened = await ConversationEngine.open({ store: customer.store, trust: { orgKey: org.publicKey }, now: () => T0 });
    assert.equal(reopened.peerCertificate(bot.engine.deviceId)?.label, 'support');
    await reopened.encrypt(bot.engine.deviceId, text('still there?'), { messageId: mid() });
  });

  it('refuses a bundle without a certificate, and nothing is sent or stored', async () => {
    const { customer, bot } = await setup();
    const before = customer.store.size;
    await assert.rejects(
      customer.engine.encrypt(bot.engine.deviceId, text('x'), { messageId: mid(), bundle: takeBundle(bot.upload) }),
      refused('UNTRUSTED_IDENTITY', 'missing'),
    );
    assert.equal(customer.store.size, before);
    assert.equal(customer.engine.pendingOutbox().length, 0);
  });

  it('refuses a certificate signed by another org key', async () => {
    const { customer, bot, cert } = await setup();
    const other = generateOrgKey();
    await assert.rejects(
      customer.engine.encrypt(bot.engine.deviceId, text('x'), { messageId: mid(), bundle: takeBundle(bot.upload, { certificate: cert(undefined, { seed: other.seed }) }) }),
      refused('UNTRUSTED_IDENTITY', 'signature'),
    );
  });

  it('refuses an expired certificate, and stops sending once a stored one expires', async () => {
    const { customer, bot, cert, setNow } = await setup();
    await assert.rejects(
      customer.engine.encrypt(bot.engine.deviceId, text('x'), { messageId: mid(), bundle: takeBundle(bot.upload, { certificate: cert(undefined, { expiresAt: T0 - 1 }) }) }),
      refused('UNTRUSTED_IDENTITY', 'expired'),
    );
    await customer.engine.encrypt(bot.engine.deviceId, text('x'), { messageId: mid(), bundle: takeBundle(bot.upload, { certificate: cert(undefined, { expiresAt: T0 + DAY }) }) });
    setNow(T0 + DAY);
    await assert.rejects(customer.engine.encrypt(bot.engine.deviceId, text('y'), { messageId: mid() }), refused('UNTRUSTED_IDENTITY', 'expired'));
  });

  it('refuses a certificate for another identity (a relay serving bot B\'s cert with device A)', async () => {
    const { customer, bot, cert } = await setup();
    const impostor = await device();
    await assert.rejects(
      customer.engine.encrypt(impostor.engine.deviceId, text('x'), {
        messageId: mid(),
        bundle: takeBundle(impostor.upload, { certificate: cert(bot.engine.publicIdentity) }),
      }),
      refused('UNTRUSTED_IDENTITY', 'identity'),
    );
  });

  it('refuses an org signature made under another context', async () => {
    const { org, customer, bot } = await setup();
    const fields = { role: 'bot' as const, label: 'support', ...bot.engine.publicIdentity, expiresAt: T0 + DAY };
    const payload = orgCertificatePayload(fields);
    for (const ctx of ['signedPrekey', 'relayAuth', 'botAttestation', 'keyChange'] as const) {
      const sig = getCrypto().ed25519Sign(org.seed, contextMessage(ctx, payload));
      const forged = new Uint8Array([...payload, ...sig]);
      assert.throws(
        () => verifyOrgCertificate(forged, { orgKey: org.publicKey, identity: bot.engine.publicIdentity, now: T0 }),
        refused('UNTRUSTED_IDENTITY', 'signature'),
      );
    }
    // Raw payload signed without any context.
    const raw = new Uint8Array([...payload, ...getCrypto().ed25519Sign(org.seed, payload)]);
    await assert.rejects(
      customer.engine.encrypt(bot.engine.deviceId, text('x'), { messageId: mid(), bundle: takeBundle(bot.upload, { certificate: raw }) }),
      refused('UNTRUSTED_IDENTITY', 'signature'),
    );
  });

  it('every single-bit flip of a certificate is refused', async () => {
    const { org, bot, cert } = await setup();
    const good = cert();
    for (let i = 0; i < good.length * 8; i++) {
      const bad = good.slice();
      bad[i >> 3]! ^= 1 << (i & 7);
      assert.throws(() => verifyOrgCertificate(bad, { orgKey: org.publicKey, identity: bot.engine.publicIdentity, now: T0 }), (e) =>
        isParleyError(e, 'UNTRUSTED_IDENTITY'),
      );
    }
    assert.equal(decodeOrgCertificate(good).label, 'support');
  });

  it('refuses messages from an uncertified peer when certificates are required', async () => {
    const { customer, bot, cert } = await setup();
    const stranger = await device();
    const out = await stranger.engine.encrypt(customer.engine.deviceId, text('I am support, honest'), { messageId: mid(), bundle: takeBundle(customer.upload) });
    const before = customer.store.size;
    await assert.rejects(deliver(customer.engine, stranger.engine, out), refused('UNTRUSTED_IDENTITY', 'missing'));
    assert.equal(customer.store.size, before);
    // A certified bot may open the conversation once its certificate is known.
    await customer.engine.setPeerCertificate(bot.engine.deviceId, cert(), bot.engine.publicIdentity);
    const hello = await bot.engine.encrypt(customer.engine.deviceId, text('hello from support'), { messageId: mid(), bundle: takeBundle(customer.upload) });
    const r = await deliver(customer.engine, bot.engine, hello);
    assert.ok(r.kind === 'message' && str(r.payload) === 'hello from support');
  });

  it('a certified label moving to a new certified device: accepted and reported, or blocked by policy', async () => {
    const a = await setup();
    await a.customer.engine.encrypt(a.bot.engine.deviceId, text('x'), { messageId: mid(), bundle: takeBundle(a.bot.upload, { certificate: a.cert() }) });
    const bot2 = await device();
    await a.customer.engine.encrypt(bot2.engine.deviceId, text('y'), {
      messageId: mid(),
      bundle: takeBundle(bot2.upload, { certificate: a.cert(bot2.engine.publicIdentity) }),
    });
    assert.equal(a.events.length, 1);
    assert.deepEqual(a.events[0], { type: 'identityChanged', peer: bot2.engine.deviceId, label: 'org:bot:support', previous: a.bot.engine.deviceId, blocked: false });
    assert.equal(a.customer.engine.resolveLabel('org:bot:support'), bot2.engine.deviceId);

    const b = await setup({ onCertifiedChange: 'block' });
    await b.customer.engine.encrypt(b.bot.engine.deviceId, text('x'), { messageId: mid(), bundle: takeBundle(b.bot.upload, { certificate: b.cert() }) });
    const bot3 = await device();
    await assert.rejects(
      b.customer.engine.encrypt(bot3.engine.deviceId, text('y'), { messageId: mid(), bundle: takeBundle(bot3.upload, { certificate: b.cert(bot3.engine.publicIdentity) }) }),
      refused('IDENTITY_CHANGED'),
    );
    assert.equal(b.events.at(-1)?.blocked, true);
    assert.equal(await b.customer.engine.acceptIdentityChange(bot3.engine.deviceId), true);
    await b.customer.engine.encrypt(bot3.engine.deviceId, text('y'), { messageId: mid(), bundle: takeBundle(bot3.upload, { certificate: b.cert(bot3.engine.publicIdentity) }) });
    assert.equal(b.customer.engine.resolveLabel('org:bot:support'), bot3.engine.deviceId);
  });

  it('bindLabel cannot take a certified label slot (issue 10, Info)', async () => {
    const alice = await device();
    const mallory = await device();
    await assert.rejects(alice.engine.bindLabel('org:bot:support', mallory.engine.deviceId), refused('USAGE'));
    assert.equal(alice.engine.resolveLabel('org:bot:support'), undefined);
    await alice.engine.bindLabel('support-desk', mallory.engine.deviceId);
    assert.equal(alice.engine.resolveLabel('support-desk'), mallory.engine.deviceId);
  });

  it('rejects bad trust options', async () => {
    await assert.rejects(ConversationEngine.open({ store: new MemoryStore(), trust: { orgKey: 'zz' } }), refused('USAGE'));
    await assert.rejects(ConversationEngine.open({ store: new MemoryStore(), trust: { requireCertificate: 'all' } }), refused('USAGE'));
  });
});
