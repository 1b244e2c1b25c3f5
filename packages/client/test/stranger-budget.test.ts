/**
 * Issue 10, findings 5 and 7, over a real relay with its default bundle budget (10 fetches a
 * minute per device):
 * - strangers' junk prekey messages do not spend the budget this customer's sends need;
 * - a peer whose stored certificate expired is refreshed when it publishes a renewed one, and
 *   its message is kept at the relay meanwhile, never acked unseen.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { generateOrgKey, signOrgCertificate, toHex, type OrgRole } from '@parley/protocol';
import { ConversationEngine } from '@parley/engine';
import { setupCrypto } from '../../engine/test/helpers/engines.js';
import { client, rawDevice, startRelay, until } from './helpers/relay.js';

type Relay = Awaited<ReturnType<typeof startRelay>>;
type Raw = Awaited<ReturnType<typeof rawDevice>>;

describe('a customer that pins an org key, on a relay with the default bundle budget', () => {
  let relay: Relay;
  const org = { seed: new Uint8Array(), publicKey: new Uint8Array() };
  before(async () => {
    await setupCrypto();
    Object.assign(org, generateOrgKey());
    relay = await startRelay({ limits: { bundleFetchesPerMinute: 10 } });
  });
  after(() => relay.close());

  /** A raw device that publishes prekeys, with an org certificate when `certify` is given. */
  async function publish(device: Raw, certify?: { role: OrgRole; label: string; expiresAt: number }): Promise<void> {
    const upload = await device.engine.prekeyUpload(5);
    const certificate = certify
      ? signOrgCertificate(org.seed, { ...certify, signingKey: device.engine.publicIdentity.signingKey, dhKey: device.engine.publicIdentity.dhKey })
      : undefined;
    await device.link.uploadPrekeys({ ...upload, ...(certificate ? { certificate } : {}) });
    await device.engine.markUploaded(upload.oneTimePrekeys.map((k) => k.id));
  }

  /** `from` sends text to `to` through the relay, starting a session from a fetched bundle if needed. */
  async function rawSend(from: Raw, to: string, text: string): Promise<void> {
    const bundle = from.engine.needsBundle(to) ? await from.link.fetchBundle(to) : undefined;
    const out = await from.engine.encrypt(to, new TextEncoder().encode(text), { messageId: ConversationEngine.newMessageId(), type: 'text', ...(bundle ? { bundle } : {}) });
    await from.link.send({ to: out.to, id: out.id, envelope: out.envelope });
  }

  it('12 strangers send junk prekey messages; the customer can still send to a certified agent (finding 5)', async () => {
    const customer = await client(relay, { trust: { orgKey: toHex(org.publicKey) } });
    await customer.client.connect();
    const refusals: string[] = [];
    customer.client.on('error', (e) => refusals.push(`${e.error.code}:${String(e.error.details?.reason)}`));
    const agent = await rawDevice(relay);
    await publish(agent, { role: 'agent', label: 'agent-ann', expiresAt: Date.now() + 3600_000 });

    const strangers: Raw[] = [];
    for (let i = 0; i < 12; i++) {
      const s = await rawDevice(relay);
      strangers.push(s);
      await rawSend(s, customer.client.deviceId, `junk ${i}`);
    }
    await until(() => refusals.length >= 12, 15_000, '12 junk messages refused');
    assert.ok(refusals.every((r) => r.startsWith('UNTRUSTED_IDENTITY')), refusals.join(' '));
    assert.equal(customer.got.length, 0, 'no junk reaches the app');

    await customer.client.send(agent.engine.deviceId, 'hello agent');
    await customer.client.close();
    await agent.close();
    for (const s of strangers) await s.close();
  });

  it('a certificate that expired is refreshed once renewed; the message waits at the relay meanwhile (finding 7)', async () => {
    const customer = await client(relay, { trust: { orgKey: toHex(org.publicKey) } });
    await customer.client.connect();
    const agent = await rawDevice(relay);
    await publish(agent, { role: 'agent', label: 'agent-bob', expiresAt: Date.now() + 1500 });
    await customer.client.send(agent.engine.deviceId, 'hello');
    await new Promise((r) => setTimeout(r, 1600)); // the stored certificate expires
    const errors: string[] = [];
    customer.client.on('error', (e) => errors.push(`${e.error.code}:${String(e.error.details?.reason)}`));

    await rawSend(agent, customer.client.deviceId, 'after expiry');
    await until(() => errors.includes('UNTRUSTED_IDENTITY:expired'), 10_000, 'refused while expired');
    assert.equal(customer.got.length, 0);

    // The org renews the certificate; the agent publishes it. The kept message arrives at the next login.
    await publish(agent, { role: 'agent', label: 'agent-bob', expiresAt: Date.now() + 3600_000 });
    await customer.client.close();
    const store = customer.store!;
    const again = await client(relay, { store, trust: { orgKey: toHex(org.publicKey) } });
    await again.client.connect();
    await until(() => again.got.some((m) => m.text === 'after expiry'), 10_000, 'the kept message after renewal');
    // Sending works again too.
    await again.client.send(agent.engine.deviceId, 'thanks');
    await again.client.close();
    await agent.close();
  });
});
