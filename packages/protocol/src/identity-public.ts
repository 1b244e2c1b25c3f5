/**
 * Public device identity: types, device ids and signature checks. No private-key code lives
 * here, so the relay (through `@parley/protocol/verify`) can use it.
 */
import { concatBytes, toHex } from './bytes.js';
import { contextMessage, type SignatureContext } from './contexts.js';
import { getCrypto } from './crypto/index.js';
import { ParleyError } from './errors.js';

/** The public half of a device identity, as published and as bound into every session. */
export interface PublicIdentity {
  /** Ed25519 public key (32 bytes). */
  readonly signingKey: Uint8Array;
  /** X25519 public key (32 bytes). */
  readonly dhKey: Uint8Array;
  /** Ed25519 signature, context `identityBinding`, over `dhKey`. */
  readonly binding: Uint8Array;
}

/** Bytes of a device id: SHA-256("parley/v1/device-id" || signingKey || dhKey), first 16 bytes. */
export const DEVICE_ID_BYTES = 16;

/** Device id (32 lower-case hex chars) of a public identity. */
export function deviceIdOf(identity: Pick<PublicIdentity, 'signingKey' | 'dhKey'>): string {
  const c = getCrypto();
  const digest = c.sha256(concatBytes(new TextEncoder().encode('parley/v1/device-id'), identity.signingKey, identity.dhKey));
  return toHex(digest.subarray(0, DEVICE_ID_BYTES));
}

/** Verifies a signature made by `signingKey` for `context`. */
export function verifyContextSignature(
  signingKey: Uint8Array,
  context: SignatureContext,
  payload: Uint8Array,
  signature: Uint8Array,
): boolean {
  return getCrypto().ed25519Verify(signingKey, contextMessage(context, payload), signature);
}

/**
 * Checks the identity's binding signature and key sizes.
 * @throws ParleyError `INVALID_KEY` for wrong sizes, `INVALID_SIGNATURE` for a bad binding.
 */
export function verifyIdentity(identity: PublicIdentity): void {
  if (identity.signingKey.length !== 32 || identity.dhKey.length !== 32 || identity.binding.length !== 64) {
    throw new ParleyError('INVALID_KEY', 'identity keys have the wrong size');
  }
  if (!verifyContextSignature(identity.signingKey, 'identityBinding', identity.dhKey, identity.binding)) {
    throw new ParleyError('INVALID_SIGNATURE', 'identity binding signature does not verify');
  }
}

/** True when two public identities are the same keys. */
export function sameIdentity(a: PublicIdentity, b: PublicIdentity): boolean {
  return toHex(a.signingKey) === toHex(b.signingKey) && toHex(a.dhKey) === toHex(b.dhKey);
}

