/**
 * Device identity: an Ed25519 signing key and an X25519 key-agreement key (no key reuse
 * across algorithms, as in Olm), the X25519 key signed by the Ed25519 key, and a device id
 * derived from both public keys so an id can't be claimed without the keys.
 */
import { toHex, wipe } from './bytes.js';
import { contextMessage, type SignatureContext } from './contexts.js';
import { getCrypto } from './crypto/index.js';
import { deviceIdOf, type PublicIdentity } from './identity-public.js';

export * from './identity-public.js';

/** Copies of an identity's private keys: `@parley/protocol/testing` only (set by the class below). */
export let identitySecrets: (id: IdentityKeyPair) => Uint8Array[];

/**
 * A device's private identity. Private fields, redacted `toJSON`/inspect, and `dispose()`
 * zero-fills (JS may still hold copies the GC has not reclaimed).
 */
export class IdentityKeyPair {
  readonly #signingSeed: Uint8Array;
  readonly #dhPrivate: Uint8Array;
  readonly publicIdentity: PublicIdentity;
  readonly deviceId: string;

  private constructor(signingSeed: Uint8Array, dhPrivate: Uint8Array, publicIdentity: PublicIdentity) {
    this.#signingSeed = signingSeed;
    this.#dhPrivate = dhPrivate;
    this.publicIdentity = publicIdentity;
    this.deviceId = deviceIdOf(publicIdentity);
  }

  /** Generates a fresh identity. */
  static generate(): IdentityKeyPair {
    const c = getCrypto();
    const sign = c.ed25519Generate();
    const dh = c.x25519Generate();
    try {
      return IdentityKeyPair.fromPrivate(sign.privateKey, dh.privateKey);
    } finally {
      // fromPrivate keeps its own copies: the generated arrays are wiped, not left to the GC.
      wipe(sign.privateKey, dh.privateKey);
    }
  }

  /** Rebuilds an identity from its private parts (used by unpickling). */
  static fromPrivate(signingSeed: Uint8Array, dhPrivate: Uint8Array): IdentityKeyPair {
    const c = getCrypto();
    const signingKey = c.ed25519PublicKey(signingSeed);
    const dhKey = c.x25519PublicKey(dhPrivate);
    const binding = c.ed25519Sign(signingSeed, contextMessage('identityBinding', dhKey));
    return new IdentityKeyPair(signingSeed.slice(), dhPrivate.slice(), { signingKey, dhKey, binding });
  }

  /** Signs `payload` under a fixed context; raw bytes are never signed. */
  sign(context: SignatureContext, payload: Uint8Array): Uint8Array {
    return getCrypto().ed25519Sign(this.#signingSeed, contextMessage(context, payload));
  }

  /** X25519 with the identity's DH key. */
  agree(publicKey: Uint8Array): Uint8Array {
    return getCrypto().x25519(this.#dhPrivate, publicKey);
  }

  /** @internal Private parts for pickling only. */
  exportPrivateForPickle(): { signingSeed: Uint8Array; dhPrivate: Uint8Array } {
    return { signingSeed: this.#signingSeed, dhPrivate: this.#dhPrivate };
  }

  static {
    identitySecrets = (id) => [id.#signingSeed.slice(), id.#dhPrivate.slice()];
  }

  /**
   * Zero-fills the private keys. The object is unusable afterwards. The crypto backends keep no
   * copy in libsodium's WASM memory; copies JavaScript cannot reach (the GC's, OpenSSL's) are
   * listed in the package README, "Zeroization".
   */
  dispose(): void {
    wipe(this.#signingSeed, this.#dhPrivate);
  }

  toJSON(): { deviceId: string; signingKey: string; dhKey: string } {
    return { deviceId: this.deviceId, signingKey: toHex(this.publicIdentity.signingKey), dhKey: toHex(this.publicIdentity.dhKey) };
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `IdentityKeyPair { deviceId: '${this.deviceId}', private keys: [redacted] }`;
  }
}
