/**
 * A device's long-lived keys: identity, signed prekeys, one-time prekeys, and the sessions
 * it starts or accepts (X3DH). Like vodozemac's `Account`, it makes `Session`s.
 */
import { ByteReader, ByteWriter } from './codec.js';
import { toHex, wipe } from './bytes.js';
import { signedPrekeyPayload, type OneTimePrekeyPublic, type PrekeyBundle, type PrekeyUpload, type SignedPrekeyPublic } from './bundle.js';
import type { SignatureContext } from './contexts.js';
import { getCrypto, type KeyPair } from './crypto/index.js';
import { ParleyError } from './errors.js';
import { IdentityKeyPair, identitySecrets, verifyIdentity, type PublicIdentity } from './identity.js';
import { MAX_REMEMBERED_BASE_KEYS } from './limits.js';
import { readKeyPair, writeKeyPair } from './pickle.js';
import { initInitiator, initResponder, ratchetDecrypt } from './ratchet.js';
import { Session } from './session.js';
import { MESSAGE_TYPE, WIRE_VERSION, parseMessage } from './wire/message.js';
import { concatBytes } from './bytes.js';
import { deriveX3dh, verifyBundle } from './x3dh.js';

const ACCOUNT_PICKLE_MAGIC = 0x50414343; // "PACC"
const ACCOUNT_PICKLE_VERSION = 1;
/** Signed prekeys kept after rotation, so prekey messages in flight still open. */
const SIGNED_PREKEYS_KEPT = 2;

interface SignedPrekeyRecord {
  readonly id: number;
  readonly createdAt: number;
  readonly keyPair: KeyPair;
  readonly signature: Uint8Array;
}

interface OneTimePrekeyRecord {
  readonly keyPair: KeyPair;
  published: boolean;
}

/** The result of accepting a session from a prekey message. */
export interface InboundSessionResult {
  readonly session: Session;
  readonly plaintext: Uint8Array;
}

/** Copies of every private key of an account: `@parley/protocol/testing` only (set by the class below). */
export let accountSecrets: (account: Account) => Uint8Array[];

/** A device account: identity keys plus prekeys. Persist it (`pickle`) after every change. */
export class Account {
  readonly #identity: IdentityKeyPair;
  #signedPrekeys: SignedPrekeyRecord[];
  readonly #oneTimePrekeys: Map<number, OneTimePrekeyRecord>;
  #nextPrekeyId: number;
  #usedBaseKeys: string[];

  private constructor(
    identity: IdentityKeyPair,
    signedPrekeys: SignedPrekeyRecord[],
    oneTimePrekeys: Map<number, OneTimePrekeyRecord>,
    nextPrekeyId: number,
    usedBaseKeys: string[],
  ) {
    this.#identity = identity;
    this.#signedPrekeys = signedPrekeys;
    this.#oneTimePrekeys = oneTimePrekeys;
    this.#nextPrekeyId = nextPrekeyId;
    this.#usedBaseKeys = usedBaseKeys;
  }

  /**
   * Creates a new device: fresh identity keys and a first signed prekey.
   * @example
   * await initCrypto();
   * const account = Account.create();
   * account.generateOneTimePrekeys(50);
   */
  static create(options: { now?: number } = {}): Account {
    const account = new Account(IdentityKeyPair.generate(), [], new Map(), 1, []);
    account.rotateSignedPrekey(options.now);
    return account;
  }

  /** This device's id (hash of its identity keys). */
  get deviceId(): string {
    return this.#identity.deviceId;
  }

  /** This device's public identity. */
  get publicIdentity(): PublicIdentity {
    return this.#identity.publicIdentity;
  }

  /** The current signed prekey (public part). */
  get signedPrekey(): SignedPrekeyPublic {
    const spk = this.#signedPrekeys[this.#signedPrekeys.length - 1]!;
    return { id: spk.id, createdAt: spk.createdAt, publicKey: spk.keyPair.publicKey, signature: spk.signature };
  }

  /** Number of one-time prekeys whose private half this account still holds. */
  get oneTimePrekeyCount(): number {
    return this.#oneTimePrekeys.size;
  }

  #nextId(): number {
    const id = this.#nextPrekeyId;
    this.#nextPrekeyId = id >= 0xffffffff ? 1 : id + 1;
    return id;
  }

  /** Makes a new signed prekey current; the previous one is kept for messages in flight. */
  rotateSignedPrekey(now: number = Date.now()): SignedPrekeyPublic {
    const keyPair = getCrypto().x25519Generate();
    const id = this.#nextId();
    const createdAt = Math.floor(now);
    const signature = this.#identity.sign('signedPrekey', signedPrekeyPayload({ id, createdAt, publicKey: keyPair.publicKey }));
    this.#signedPrekeys.push({ id, createdAt, keyPair, signature });
    while (this.#signedPrekeys.length > SIGNED_PREKEYS_KEPT) wipe(this.#signedPrekeys.shift()!.keyPair.privateKey);
    return this.signedPrekey;
  }

  /** Generates `count` one-time prekeys (not yet published). */
  generateOneTimePrekeys(count: number): OneTimePrekeyPublic[] {
    if (!Number.isInteger(count) || count < 0 || count > 10_000) {
      throw new ParleyError('USAGE', 'count must be an integer from 0 to 10000', { details: { count } });
    }
    const out: OneTimePrekeyPublic[] = [];
    for (let i = 0; i < count; i++) {
      const keyPair = getCrypto().x25519Generate();
      const id = this.#nextId();
      this.#oneTimePrekeys.set(id, { keyPair, published: false });
      out.push({ id, publicKey: keyPair.publicKey });
    }
    return out;
  }

  /** Identity, current signed prekey and every one-time prekey not yet marked published. */
  prekeyUpload(): PrekeyUpload {
    const oneTimePrekeys: OneTimePrekeyPublic[] = [];
    for (const [id, rec] of this.#oneTimePrekeys) if (!rec.published) oneTimePrekeys.push({ id, publicKey: rec.keyPair.publicKey });
    return { identity: this.publicIdentity, signedPrekey: this.signedPrekey, oneTimePrekeys };
  }

  /** Marks one-time prekeys as uploaded, so the next upload doesn't repeat them. */
  markPrekeysPublished(ids: readonly number[]): void {
    for (const id of ids) {
      const rec = this.#oneTimePrekeys.get(id);
      if (rec) rec.published = true;
    }
  }

  /**
   * A bundle for local use (tests, benchmarks, direct exchange): the current signed prekey and
   * the given (or the first) one-time prekey. Relays build bundles from uploads instead.
   */
  bundle(oneTimePrekeyId?: number): PrekeyBundle {
    const id = oneTimePrekeyId ?? this.#oneTimePrekeys.keys().next().value;
    const rec = id === undefined ? undefined : this.#oneTimePrekeys.get(id);
    const base = { identity: this.publicIdentity, signedPrekey: this.signedPrekey };
    return rec && id !== undefined ? { ...base, oneTimePrekey: { id, publicKey: rec.keyPair.publicKey } } : base;
  }

  /** Signs `payload` with the identity key under a fixed context (relay login, attestation…). */
  sign(context: SignatureContext, payload: Uint8Array): Uint8Array {
    return this.#identity.sign(context, payload);
  }

  /**
   * Starts a session from a peer's bundle (X3DH as initiator).
   * @throws ParleyError `INVALID_SIGNATURE` (bad identity or prekey signature), `INVALID_KEY`
   *   (wrong sizes, or a low-order key making a DH output all zero).
   */
  createOutboundSession(bundle: PrekeyBundle): Session {
    verifyBundle(bundle);
    const c = getCrypto();
    const ek = c.x25519Generate();
    const spk = bundle.signedPrekey.publicKey;
    try {
      const dhs = [this.#identity.agree(spk), c.x25519(ek.privateKey, bundle.identity.dhKey), c.x25519(ek.privateKey, spk)];
      if (bundle.oneTimePrekey) dhs.push(c.x25519(ek.privateKey, bundle.oneTimePrekey.publicKey));
      const secrets = deriveX3dh(dhs, this.publicIdentity, bundle.identity);
      const state = initInitiator(secrets.sk, spk, secrets.sharedHka, secrets.sharedNhkb);
      return new Session({
        state,
        role: 'initiator',
        localIdentity: this.publicIdentity,
        remoteIdentity: bundle.identity,
        baseKey: ek.publicKey,
        ad: secrets.ad,
        prekeyIds: { signedPrekeyId: bundle.signedPrekey.id, oneTimePrekeyId: bundle.oneTimePrekey?.id ?? null },
      });
    } finally {
      wipe(ek.privateKey);
    }
  }

  /**
   * Accepts a session from a prekey message (X3DH as responder) and decrypts it. The account
   * changes (one-time prekey consumed, base key remembered) only if decryption succeeds.
   * @throws ParleyError `MALFORMED_MESSAGE` (not a prekey message), `INVALID_SIGNATURE`,
   *   `INVALID_PREKEY` (unknown or used prekey), `DUPLICATE_MESSAGE` (base key seen before),
   *   `INVALID_KEY`, `AUTH_FAILED`.
   */
  createInboundSession(wire: Uint8Array): InboundSessionResult {
    const parsed = parseMessage(wire);
    if (parsed.type !== MESSAGE_TYPE.prekey) throw new ParleyError('MALFORMED_MESSAGE', 'not a prekey message');
    verifyIdentity(parsed.identity);
    const spk = this.#signedPrekeys.find((s) => s.id === parsed.signedPrekeyId);
    if (!spk) throw new ParleyError('INVALID_PREKEY', 'unknown signed prekey', { details: { spkId: parsed.signedPrekeyId } });
    const opk = parsed.oneTimePrekeyId === null ? undefined : this.#oneTimePrekeys.get(parsed.oneTimePrekeyId);
    if (parsed.oneTimePrekeyId !== null && !opk) {
      throw new ParleyError('INVALID_PREKEY', 'unknown or already used one-time prekey', { details: { opkId: parsed.oneTimePrekeyId } });
    }
    // X25519 ignores bit 255 and reduces u mod p (RFC 7748 §5), so a non-canonical base key is
    // a second encoding of another key: accepting it would let a replayed prekey message with
    // that bit flipped pass the byte-wise replay check below (THREATS C6). Honest keys are
    // always canonical.
    if (!isCanonicalX25519(parsed.baseKey)) throw new ParleyError('INVALID_KEY', 'base key is not a canonical X25519 public key');
    const baseKeyHex = toHex(parsed.baseKey);
    if (this.#usedBaseKeys.includes(baseKeyHex)) throw new ParleyError('DUPLICATE_MESSAGE', 'prekey message base key was already used');

    const c = getCrypto();
    const dhs = [
      c.x25519(spk.keyPair.privateKey, parsed.identity.dhKey),
      this.#identity.agree(parsed.baseKey),
      c.x25519(spk.keyPair.privateKey, parsed.baseKey),
    ];
    if (opk) dhs.push(c.x25519(opk.keyPair.privateKey, parsed.baseKey));
    const secrets = deriveX3dh(dhs, parsed.identity, this.publicIdentity);
    const initial = initResponder(secrets.sk, spk.keyPair, secrets.sharedHka, secrets.sharedNhkb);
    const headerAd = concatBytes(secrets.ad, new Uint8Array([WIRE_VERSION, MESSAGE_TYPE.message]));
    const { state, plaintext } = ratchetDecrypt(initial, parsed.message, { ad: secrets.ad, headerAd });

    // Commit only now that the message authenticated.
    if (opk && parsed.oneTimePrekeyId !== null) {
      this.#oneTimePrekeys.delete(parsed.oneTimePrekeyId);
      wipe(opk.keyPair.privateKey);
    }
    this.#usedBaseKeys.push(baseKeyHex);
    if (this.#usedBaseKeys.length > MAX_REMEMBERED_BASE_KEYS) this.#usedBaseKeys.shift();
    const session = new Session({
      state,
      role: 'responder',
      localIdentity: this.publicIdentity,
      remoteIdentity: parsed.identity,
      baseKey: parsed.baseKey,
      ad: secrets.ad,
      prekeyIds: { signedPrekeyId: parsed.signedPrekeyId, oneTimePrekeyId: parsed.oneTimePrekeyId },
    });
    return { session, plaintext };
  }

  /** Versioned binary form of the whole account. Secret: seal it before it leaves memory. */
  pickle(): Uint8Array {
    const { signingSeed, dhPrivate } = this.#identity.exportPrivateForPickle();
    const w = new ByteWriter(4096).u32(ACCOUNT_PICKLE_MAGIC).u8(ACCOUNT_PICKLE_VERSION);
    w.fixed(signingSeed).fixed(dhPrivate).u32(this.#nextPrekeyId);
    w.u8(this.#signedPrekeys.length);
    for (const spk of this.#signedPrekeys) {
      w.u32(spk.id).u64(spk.createdAt).fixed(spk.signature);
      writeKeyPair(w, spk.keyPair);
    }
    w.u32(this.#oneTimePrekeys.size);
    for (const [id, rec] of this.#oneTimePrekeys) {
      w.u32(id).u8(rec.published ? 1 : 0);
      writeKeyPair(w, rec.keyPair);
    }
    w.u32(this.#usedBaseKeys.length);
    for (const hex of this.#usedBaseKeys) w.fixed(fromHex32(hex));
    return w.finish().slice();
  }

  /**
   * Rebuilds an account from {@link Account.pickle} output.
   * @throws ParleyError `STORAGE_INTEGRITY` for corrupt input, `UNSUPPORTED_VERSION` for newer pickles.
   */
  static unpickle(bytes: Uint8Array): Account {
    const r = new ByteReader(bytes, 'STORAGE_INTEGRITY');
    if (r.u32() !== ACCOUNT_PICKLE_MAGIC) r.fail('not an account pickle');
    const version = r.u8();
    if (version !== ACCOUNT_PICKLE_VERSION) {
      throw new ParleyError('UNSUPPORTED_VERSION', 'unsupported account pickle version', { details: { version } });
    }
    const identity = IdentityKeyPair.fromPrivate(r.fixed(32), r.fixed(32));
    const nextPrekeyId = r.u32();
    const spkCount = r.u8();
    if (spkCount < 1 || spkCount > SIGNED_PREKEYS_KEPT) r.fail('invalid signed prekey count');
    const spks: SignedPrekeyRecord[] = [];
    for (let i = 0; i < spkCount; i++) {
      const id = r.u32();
      const createdAt = r.u64();
      const signature = r.fixed(64);
      spks.push({ id, createdAt, signature, keyPair: readKeyPair(r) });
    }
    const opkCount = r.u32();
    if (opkCount > 100_000) r.fail('too many one-time prekeys');
    const opks = new Map<number, OneTimePrekeyRecord>();
    for (let i = 0; i < opkCount; i++) {
      const id = r.u32();
      const published = r.u8() === 1;
      opks.set(id, { published, keyPair: readKeyPair(r) });
    }
    const baseKeyCount = r.u32();
    if (baseKeyCount > MAX_REMEMBERED_BASE_KEYS) r.fail('too many remembered base keys');
    const used: string[] = [];
    for (let i = 0; i < baseKeyCount; i++) used.push(toHex(r.fixed(32)));
    r.end();
    return new Account(identity, spks, opks, nextPrekeyId, used);
  }

  static {
    accountSecrets = (a) => [
      ...identitySecrets(a.#identity),
      ...a.#signedPrekeys.map((spk) => spk.keyPair.privateKey.slice()),
      ...[...a.#oneTimePrekeys.values()].map((rec) => rec.keyPair.privateKey.slice()),
    ];
  }

  /** Zero-fills every private key this account holds. */
  dispose(): void {
    this.#identity.dispose();
    for (const spk of this.#signedPrekeys) wipe(spk.keyPair.privateKey);
    for (const rec of this.#oneTimePrekeys.values()) wipe(rec.keyPair.privateKey);
  }

  toJSON(): { deviceId: string } {
    return { deviceId: this.deviceId };
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `Account { deviceId: '${this.deviceId}', private keys: [redacted] }`;
  }
}

/** True for the canonical encoding of an X25519 u-coordinate: bit 255 clear and u < 2^255 - 19. */
function isCanonicalX25519(u: Uint8Array): boolean {
  if ((u[31]! & 0x80) !== 0) return false;
  if (u[31] !== 0x7f || u[0]! < 0xed) return true;
  for (let i = 1; i < 31; i++) if (u[i] !== 0xff) return true;
  return false;
}

function fromHex32(hex: string): Uint8Array {
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}
