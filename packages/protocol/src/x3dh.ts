/**
 * X3DH key agreement (Signal spec, https://signal.org/docs/specifications/x3dh/) as docs/architecture.md
 * fixes it:
 *   DH1 = DH(IK_A, SPK_B), DH2 = DH(EK_A, IK_B), DH3 = DH(EK_A, SPK_B), DH4 = DH(EK_A, OPK_B)
 *   HKDF-SHA256(salt = 0^32, ikm = 0xFF^32 || DH1 || DH2 || DH3 [|| DH4], info, 96 bytes)
 *     = SK || shared HKa || shared NHKb   (the initial header keys of spec §4)
 *   AD = version || IK_A (Ed25519 || X25519) || IK_B (Ed25519 || X25519)
 */
import { concatBytes, utf8, wipe } from './bytes.js';
import { assertBundleShape, signedPrekeyPayload, type PrekeyBundle } from './bundle.js';
import { getCrypto } from './crypto/index.js';
import { ParleyError } from './errors.js';
import { verifyContextSignature, verifyIdentity, type PublicIdentity } from './identity.js';
import { WIRE_VERSION } from './wire/message.js';

const X3DH_INFO = utf8('Parley v1 X3DH');
const F = new Uint8Array(32).fill(0xff);
const ZERO_SALT = new Uint8Array(32);

/** What X3DH yields for the ratchet. All fields are secret except `ad`. */
export interface X3dhSecrets {
  readonly sk: Uint8Array;
  readonly sharedHka: Uint8Array;
  readonly sharedNhkb: Uint8Array;
  readonly ad: Uint8Array;
}

/** AD = version || initiator identity || responder identity (129 bytes). */
export function associatedData(initiator: PublicIdentity, responder: PublicIdentity): Uint8Array {
  return concatBytes(new Uint8Array([WIRE_VERSION]), initiator.signingKey, initiator.dhKey, responder.signingKey, responder.dhKey);
}

/** Derives the X3DH outputs from the DH values, then wipes them. */
export function deriveX3dh(dhs: Uint8Array[], initiator: PublicIdentity, responder: PublicIdentity): X3dhSecrets {
  const ikm = concatBytes(F, ...dhs);
  const okm = getCrypto().hkdfSha256(ikm, ZERO_SALT, X3DH_INFO, 96);
  wipe(ikm, ...dhs);
  return {
    sk: okm.slice(0, 32),
    sharedHka: okm.slice(32, 64),
    sharedNhkb: okm.slice(64, 96),
    ad: associatedData(initiator, responder),
  };
}

/**
 * Checks a fetched bundle before any DH: its shape (any input, e.g. straight from the relay),
 * key sizes, the identity binding and the signed prekey signature (context `signedPrekey`).
 * @throws ParleyError `MALFORMED_MESSAGE` (a field missing or of the wrong type), `INVALID_KEY`
 *   or `INVALID_SIGNATURE`; never a `TypeError`.
 */
export function verifyBundle(bundle: unknown): asserts bundle is PrekeyBundle {
  assertBundleShape(bundle);
  verifyIdentity(bundle.identity);
  const spk = bundle.signedPrekey;
  if (spk.publicKey.length !== 32 || spk.signature.length !== 64) {
    throw new ParleyError('INVALID_KEY', 'signed prekey has the wrong size');
  }
  if (!verifyContextSignature(bundle.identity.signingKey, 'signedPrekey', signedPrekeyPayload(spk), spk.signature)) {
    throw new ParleyError('INVALID_SIGNATURE', 'signed prekey signature does not verify', { details: { spkId: spk.id } });
  }
  if (bundle.oneTimePrekey && bundle.oneTimePrekey.publicKey.length !== 32) {
    throw new ParleyError('INVALID_KEY', 'one-time prekey has the wrong size');
  }
}
