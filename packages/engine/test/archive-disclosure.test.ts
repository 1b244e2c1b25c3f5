/**
 * The archive disclosure gate in the engine (THREATS P2), with a controlled clock: a bot's
 * org-signed disclosure carried in its bundle or statements is verified against the pinned org
 * key and its first verification time remembered (also across a restart and a re-publication);
 * the archive is accepted only when the disclosure was verified before the conversation's first
 * message; a disclosure published after it, removed from the statements, forged, or from
 * another org is refused (`FORBIDDEN`, reason `archiveNotDisclosed`).
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { generateOrgKey, getCrypto, isParleyError, signArchiveDisclosure, signOrgCertificate, toHex } from '@parley/protocol';
import { ConversationEngine, requireArchive } from '../src/index.js';
import { DAY, T0, device, mid, setupCrypto, takeBundle, text } from './helpers/engines.js';

before(setupCrypto);

const notDisclosed = (e: unknown) => isParleyError(e, 'FORBIDDEN') && e.details?.reason === 'archiveNotDisclosed';

describe('archive disclosure (P2)', () => {
  async function setup() {
    const org = generateOrgKey();
    let now = T0;
    const clock = () => now;
    const customer = await device({ trust: { orgKey: org.publicKey }, now: clock });
    const bot = await device({ now: clock });
    const cert = signOrgCertificate(org.seed, { role: 'bot', label: 'support', ...bot.engine.publicIdentity, expiresAt: T0 + 365 * DAY });
    const archiveKey = getCrypto().x25519Generate().publicKey;
    const disclose = (seed = org.seed, label = 'support') =>
      signArchiveDisclosure(seed, { label, archiveKey, retentionDays: 90, openers: ['compliance'], issuedAt: T0 - DAY });
    return { org, customer, bot, cert, archiveKey, disclose, setNow: (t: number) => (now = t) };
  }

  it('disclosed before the first message: accepted, with its key, retention and openers; remembered across a restart', async () => {
    const { org, customer, bot, cert, archiveKey, disclose, setNow } = await setup();
    const peer = bot.engine.deviceId;
    await customer.engine.encrypt(peer, text('hi'), { messageId: mid(), bundle: { ...takeBundle(bot.upload, { certificate: cert }), disclosure: disclose() } });
    assert.equal(customer.engine.peerDisclosure(peer)?.firstVerifiedAt, T0);
    setNow(T0 + 1000);
    const status = customer.engine.archiveStatus([peer], T0 + 500);
    assert.deepEqual(status, { disclosed: true, archiveKey: toHex(archiveKey), retentionDays: 90, openers: ['compliance'], undisclosed: [] });
    assert.deepEqual(requireArchive(status).archiveKey, archiveKey);
    // The same disclosure published again keeps its first verification time.
    await customer.engine.setPeerStatements(peer, { certificate: cert, disclosure: disclose() });
    assert.equal(customer.engine.peerDisclosure(peer)?.firstVerifiedAt, T0);
    const reopened = await ConversationEngine.open({ store: customer.store, trust: { orgKey: org.publicKey }, now: () => T0 + 2000 });
    assert.equal(reopened.archiveStatus([peer], T0 + 500).disclosed, true);
    await reopened.close();
  });

  it('published after the conversation started, removed, forged or from another org: refused', async () => {
    const { customer, bot, cert, disclose, setNow } = await setup();
    const peer = bot.engine.deviceId;
    // The conversation starts without a disclosure: the archive is off (nothing to refuse yet).
    await customer.engine.encrypt(peer, text('hi'), { messageId: mid(), bundle: takeBundle(bot.upload, { certificate: cert }) });
    const firstMessageAt = T0;
    assert.deepEqual(customer.engine.archiveStatus([peer], firstMessageAt), { disclosed: false, undisclosed: [] });
    assert.throws(() => requireArchive(customer.engine.archiveStatus([peer], firstMessageAt)), notDisclosed);
    // The org turns the archive on later: refused for this conversation.
    setNow(T0 + 60_000);
    await customer.engine.setPeerStatements(peer, { certificate: cert, disclosure: disclose() });
    const late = customer.engine.archiveStatus([peer], firstMessageAt);
    assert.deepEqual([late.disclosed, late.undisclosed], [false, [peer]]);
    assert.throws(() => requireArchive(late), notDisclosed);
    // A conversation started after that disclosure may have it.
    assert.equal(customer.engine.archiveStatus([peer], T0 + 120_000).disclosed, true);
    // Removed from the statements: refused, also for the later conversation.
    await customer.engine.setPeerStatements(peer, { certificate: cert });
    assert.equal(customer.engine.peerDisclosure(peer), undefined);
    assert.throws(() => requireArchive(customer.engine.archiveStatus([peer], T0 + 120_000)), notDisclosed);
    // Signed by another org key, for another label, or with a flipped byte: not recorded.
    const bytes = disclose();
    bytes[40] = (bytes[40] ?? 0) ^ 1;
    for (const bad of [disclose(generateOrgKey().seed), disclose(undefined, 'sales'), bytes]) {
      await customer.engine.setPeerStatements(peer, { certificate: cert, disclosure: bad });
      assert.equal(customer.engine.peerDisclosure(peer), undefined);
    }
  });
});
