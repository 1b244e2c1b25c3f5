/**
 * Audit finding 5: while the initiator has not heard back, every message it sends is a prekey
 * message whose header (identity, base key, signed-prekey id, one-time-prekey id) is outside the
 * ratchet's AEAD. An established session must check every one of those bytes: a repeat naming
 * other prekeys than the ones that opened the session is refused, with nothing changed.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { Account, Session, initCrypto } from '../../src/index.js';
import { expectError, str, text } from '../helpers/protocol.js';

before(() => initCrypto('node'));

/** Offsets in a prekey message (wire/message.ts). */
const SPK_ID = 162;
const OPK_FLAGS = 166;
const OPK_ID = 167;

test('a repeated prekey message must name the prekeys that opened the session; every altered id byte is refused', () => {
  const alice = Account.create();
  const bob = Account.create();
  bob.generateOneTimePrekeys(1);
  const a = alice.createOutboundSession(bob.bundle());
  const first = a.encrypt(text('first'));
  const repeat = a.encrypt(text('second, still a prekey message'));
  const { session: b } = bob.createInboundSession(first);
  const digest = b.stateDigest();
  for (let at = SPK_ID; at < OPK_ID + 4; at++) {
    for (const bit of [0x01, 0x80]) {
      if (at === OPK_FLAGS && bit === 0x80) continue; // reserved flag bits are refused by the parser already
      const altered = repeat.slice();
      altered[at]! ^= bit;
      assert.throws(() => b.decrypt(altered), (e: unknown) => e instanceof Error && 'code' in e && ['AUTH_FAILED', 'MALFORMED_MESSAGE'].includes(String(e.code)), `byte ${at} bit ${bit}`);
      assert.equal(b.stateDigest(), digest, `byte ${at} bit ${bit}: state unchanged`);
    }
  }
  // The ids survive a pickle round trip (session pickle v2), and the genuine repeat opens.
  const restored = Session.unpickle(b.pickle());
  const altered = repeat.slice();
  altered[SPK_ID + 3]! ^= 1;
  expectError(() => restored.decrypt(altered), 'AUTH_FAILED', 'altered signed-prekey id after a pickle round trip');
  assert.equal(str(restored.decrypt(repeat)), 'second, still a prekey message');
});
