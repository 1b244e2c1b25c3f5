/**
 * Signed prekey rotation and cleanup through `prekeyUpload` (docs/threats.md C6): rotation by
 * age and when the account says its base-key memory is filling up; retired SPKs open first
 * messages during their grace and are deleted after it, with the base keys they remembered.
 * The engine's `now` option is the fake clock.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { Account, limits } from '@parley/protocol';
import { ConversationEngine, SIGNED_PREKEY_MAX_AGE_MS } from '../src/index.js';
import { deliver, device, mid, refused, setupCrypto, str, takeBundle, text } from './helpers/engines.js';

before(setupCrypto);

describe('prekeyUpload: signed prekey rotation and cleanup (C6)', () => {
  it('rotates past the maximum age; the retired SPK opens first messages in its grace; after it the SPK is deleted and refused (retired), also after a restart', async () => {
    // Starts at the real time: the account's grace check at receive time reads its own clock.
    let t = Date.now();
    const now = (): number => t;
    const bob = await device({ now });
    const alice = await device({ now });
    const carol = await device({ now });
    const first = bob.upload.signedPrekey;
    // Both fetch Bob's bundle now; Alice's message arrives within the grace, Carol's after it.
    const fromAlice = await alice.engine.encrypt(bob.engine.deviceId, text('in grace'), { messageId: mid(), bundle: takeBundle(bob.upload) });
    const fromCarol = await carol.engine.encrypt(bob.engine.deviceId, text('too late'), {
      messageId: mid(),
      bundle: { identity: bob.upload.identity, signedPrekey: first }, // no one-time prekey left
    });

    t += SIGNED_PREKEY_MAX_AGE_MS;
    assert.equal((await bob.engine.prekeyUpload(0)).signedPrekey.id, first.id, 'not older than the maximum age yet');
    t += 1;
    const second = (await bob.engine.prekeyUpload(0)).signedPrekey;
    assert.notEqual(second.id, first.id);
    assert.equal(second.createdAt, t);
    assert.equal((await bob.engine.prekeyUpload(0)).signedPrekey.id, second.id, 'rotated once');

    const got = await deliver(bob.engine, alice.engine, fromAlice);
    assert.ok(got.kind === 'message');
    assert.equal(str(got.payload), 'in grace');

    // The grace of the first SPK ends (the second is past its age too, and rotates).
    t += limits.SIGNED_PREKEY_GRACE_MS;
    const third = (await bob.engine.prekeyUpload(0)).signedPrekey;
    assert.notEqual(third.id, second.id);
    await assert.rejects(deliver(bob.engine, carol.engine, fromCarol), refused('INVALID_PREKEY', 'retired'));

    // The deletion was persisted: a restarted engine refuses the same way and keeps its SPK.
    await bob.engine.close();
    const restarted = await ConversationEngine.open({ store: bob.store, now });
    assert.equal((await restarted.prekeyUpload(0)).signedPrekey.id, third.id);
    await assert.rejects(deliver(restarted, carol.engine, fromCarol), refused('INVALID_PREKEY', 'retired'));
    await restarted.close();
  });

  it(`rotates a young SPK early once the account says rotation is due (${limits.SIGNED_PREKEY_ROTATE_AT_BASE_KEYS} remembered base keys)`, async () => {
    let t = Date.now();
    const now = (): number => t;
    const bob = await device({ now });
    const spk = bob.upload.signedPrekey;
    await bob.engine.close();

    // Fill the current SPK's memory directly on the stored account: through the engine this
    // would need thousands of peer devices.
    const account = Account.unpickle((await bob.store.get('account'))!);
    const alice = Account.create();
    const bundle = { identity: account.publicIdentity, signedPrekey: account.signedPrekey };
    for (let i = 0; i < limits.SIGNED_PREKEY_ROTATE_AT_BASE_KEYS; i++) account.createInboundSession(alice.createOutboundSession(bundle).encrypt(text(`${i}`)));
    assert.equal(account.signedPrekeyRotationDue, true);
    await bob.store.setMany([['account', account.pickle()]]);

    const engine = await ConversationEngine.open({ store: bob.store, now });
    t += 60_000; // a minute old: far below the maximum age
    const rotated = (await engine.prekeyUpload(0)).signedPrekey;
    assert.notEqual(rotated.id, spk.id);
    assert.equal(rotated.createdAt, t);
    assert.equal((await engine.prekeyUpload(0)).signedPrekey.id, rotated.id, 'the new SPK is not due');
    await engine.close();
    assert.equal(Account.unpickle((await bob.store.get('account'))!).signedPrekeyRotationDue, false);
  });
});
