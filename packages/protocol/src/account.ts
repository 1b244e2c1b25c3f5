/**
 * A device's long-lived keys: identity, signed prekeys, one-time prekeys, and the sessions
 * it starts or accepts (X3DH). Like vodozemac's `Account`, it makes `Session`s.
 */
import { ByteReader, ByteWriter } from './codec.js';
import { fromHex, toHex, wipe } from './bytes.js';
import { signedPrekeyPayload, type OneTimePrekeyPublic, type PrekeyBundle, type PrekeyUpload, type SignedPrekeyPublic } from './bundle.js';
import type { SignatureContext } from './contexts.js';
import { getCrypto, type KeyPair } from './crypto/index.js';
import { ParleyError } from './errors.js';
import { IdentityKeyPair, identitySecrets, verifyIdentity, type PublicIdentity } from './identity.js';
import { MAX_BASE_KEYS_PER_SIGNED_PREKEY, MAX_SIGNED_PREKEYS, SIGNED_PREKEY_GRACE_MS, SIGNED_PREKEY_ROTATE_AT_BASE_KEYS } from './limits.js';
import { readKeyPair, writeKeyPair } from './pickle.js';
import { initInitiator, initResponder, ratchetDecrypt } from './ratchet.js';
import { Session } from './session.js';
import { MESSAGE_TYPE, WIRE_VERSION, parseMessage } from './wire/message.js';
import { concatBytes } from './bytes.js';
import { deriveX3dh, verifyBundle } from './x3dh.js';

const ACCOUNT_PICKLE_MAGIC = 0x50414343; // "PACC"
/**
 * v2: each signed prekey carries its retirement time and the base keys of every session it
 * accepted (C6). v1 (read only) kept at most 2 signed prekeys and one sliding list of the last
 * 1,000 base keys for the whole account.
 */
const ACCOUNT_PICKLE_VERSION = 2;
/** v1 limits, for reading v1 pickles only. */
const V1_SIGNED_PREKEYS_KEPT = 2;
const V1_MAX_REMEMBERED_BASE_KEYS = 1000;
/**
 * Bytes of SHA-256(base key) remembered per accepted first message, instead of the 32-byte key:
 * half the pickle. The set only has to recognise an exact repeat. A collision can only refuse a
 * legitimate first message, never accept a replay; honest base keys are fresh random keys, so
 * the chance among 10,000 is about 2^-101, and a peer who grinds two of its own keys to the same
 * digest (2^64 work) only gets its own second message refused.
 */
const BASE_KEY_DIGEST_BYTES = 16;
/** Per-SPK flag bits in the v2 pickle. */
const SPK_RETIRED = 1;
/**
 * Set on SPKs read from a v1 pickle whose base-key list was full: v1 may have forgotten base keys
 * of sessions they accepted, so the current one is rotated at the next prekey publish.
 */
const SPK_MEMORY_INCOMPLETE = 2;

interface SignedPrekeyRecord {
  readonly id: number;
  readonly createdAt: number;
  readonly keyPair: KeyPair;
  readonly signature: Uint8Array;
  /** When `rotateSignedPrekey` replaced it; `null` for the current SPK. */
  retiredAt: number | null;
  /** See {@link SPK_MEMORY_INCOMPLETE}. */
  readonly memoryIncomplete: boolean;
  /**
   * Hex of the {@link BASE_KEY_DIGEST_BYTES}-byte digests of the base keys of every first message
   * this SPK accepted, in acceptance order. Kept for the SPK's whole life, deleted with it.
   */
  readonly baseKeys: Set<string>;
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

  private constructor(
    identity: IdentityKeyPair,
    signedPrekeys: SignedPrekeyRecord[],
    oneTimePrekeys: Map<number, OneTimePrekeyRecord>,
    nextPrekeyId: number,
  ) {
    this.#identity = identity;
    this.#signedPrekeys = signedPrekeys;
    this.#oneTimePrekeys = oneTimePrekeys;
    this.#nextPrekeyId = nextPrekeyId;
  }

  /**
   * Creates a new device: fresh identity keys and a first signed prekey.
   * @example
   * await initCrypto();
   * const account = Account.create();
   * account.generateOneTimePrekeys(50);
   */
  static create(options: { now?: number } = {}): Account {
    const account = new Account(IdentityKeyPair.generate(), [], new Map(), 1);
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

  /**
   * True when the current signed prekey should be replaced now: it has remembered
   * `limits.SIGNED_PREKEY_ROTATE_AT_BASE_KEYS` base keys (half its cap; when full it refuses new
   * first messages), or it was read from a v1 pickle that may have forgotten some. The engine
   * rotates when this is true or the SPK is older than its maximum age.
   */
  get signedPrekeyRotationDue(): boolean {
    const spk = this.#signedPrekeys[this.#signedPrekeys.length - 1]!;
    return spk.memoryIncomplete || spk.baseKeys.size >= SIGNED_PREKEY_ROTATE_AT_BASE_KEYS;
  }

  /**
   * Makes a new signed prekey current. The previous one is retired at `now`: it still accepts
   * first messages for `limits.SIGNED_PREKEY_GRACE_MS` (messages in flight), then
   * {@link deleteExpiredSignedPrekeys} deletes it. At most `limits.MAX_SIGNED_PREKEYS` are kept:
   * beyond that the oldest retired one is deleted early.
   */
  rotateSignedPrekey(now: number = Date.now()): SignedPrekeyPublic {
    const keyPair = getCrypto().x25519Generate();
    const id = this.#nextId();
    const createdAt = Math.floor(now);
    const signature = this.#identity.sign('signedPrekey', signedPrekeyPayload({ id, createdAt, publicKey: keyPair.publicKey }));
    const previous = this.#signedPrekeys[this.#signedPrekeys.length - 1];
    if (previous) previous.retiredAt = createdAt;
    this.#signedPrekeys.push({ id, createdAt, keyPair, signature, retiredAt: null, memoryIncomplete: false, baseKeys: new Set() });
    // Deleting an SPK (with its base keys) can only refuse its late first messages: never a replay.
    while (this.#signedPrekeys.length > MAX_SIGNED_PREKEYS) wipe(this.#signedPrekeys.shift()!.keyPair.privateKey);
    return this.signedPrekey;
  }

  /**
   * Deletes the retired signed prekeys whose grace (`limits.SIGNED_PREKEY_GRACE_MS` after their
   * retirement) ended by `now`: private key wiped, base keys dropped. Their first messages are
   * refused from then on (`INVALID_PREKEY`, reason `retired`), so none can be replayed. The
   * current SPK is never deleted. Returns how many were deleted (persist the account if any).
   */
  deleteExpiredSignedPrekeys(now: number = Date.now()): number {
    const keep: SignedPrekeyRecord[] = [];
    for (const spk of this.#signedPrekeys) {
      if (spk.retiredAt !== null && graceEnded(spk.retiredAt, now)) wipe(spk.keyPair.privateKey);
      else keep.push(spk);
    }
    const deleted = this.#signedPrekeys.length - keep.length;
    this.#signedPrekeys = keep;
    return deleted;
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
   * changes (one-time prekey consumed, base key remembered under its signed prekey) only if
   * decryption succeeds. `now` (default `Date.now()`) decides whether a retired signed prekey
   * is still in its grace, whether or not {@link deleteExpiredSignedPrekeys} ran since.
   * @throws ParleyError `MALFORMED_MESSAGE` (not a prekey message), `INVALID_SIGNATURE`,
   *   `INVALID_PREKEY` (a one-time prekey unknown or used; a signed prekey `details.reason`
   *   `retired` (grace over, or deleted), `unknown`, or `full` (it remembers
   *   `limits.MAX_BASE_KEYS_PER_SIGNED_PREKEY` base keys): the sender should fetch a fresh
   *   bundle), `DUPLICATE_MESSAGE` (base key seen before under that signed prekey),
   *   `INVALID_KEY`, `AUTH_FAILED`.
   */
  createInboundSession(wire: Uint8Array, options: { now?: number } = {}): InboundSessionResult {
    const now = options.now ?? Date.now();
    const parsed = parseMessage(wire);
    if (parsed.type !== MESSAGE_TYPE.prekey) throw new ParleyError('MALFORMED_MESSAGE', 'not a prekey message');
    verifyIdentity(parsed.identity);
    const spkId = parsed.signedPrekeyId;
    const spk = this.#signedPrekeys.find((s) => s.id === spkId);
    if (!spk) {
      // Ids only grow (shared with one-time prekeys), so an id below the oldest kept SPK's was
      // issued here before: for an honest sender, an SPK since deleted.
      const retired = spkId < this.#signedPrekeys[0]!.id;
      const reason = retired ? 'retired' : 'unknown';
      const what = retired ? 'signed prekey was retired and deleted' : 'unknown signed prekey';
      throw new ParleyError('INVALID_PREKEY', `${what}: the sender should fetch a fresh bundle`, { details: { spkId, reason } });
    }
    if (spk.retiredAt !== null && graceEnded(spk.retiredAt, now)) {
      throw new ParleyError('INVALID_PREKEY', 'signed prekey was retired and its grace is over: the sender should fetch a fresh bundle', {
        details: { spkId, reason: 'retired' },
      });
    }
    const opk = parsed.oneTimePrekeyId === null ? undefined : this.#oneTimePrekeys.get(parsed.oneTimePrekeyId);
    if (parsed.oneTimePrekeyId !== null && !opk) {
      throw new ParleyError('INVALID_PREKEY', 'unknown or already used one-time prekey', { details: { opkId: parsed.oneTimePrekeyId } });
    }
    // X25519 ignores bit 255 and reduces u mod p (RFC 7748 §5), so a non-canonical base key is
    // a second encoding of another key: accepting it would let a replayed prekey message with
    // that bit flipped pass the byte-wise replay check below (THREATS C6). Honest keys are
    // always canonical.
    if (!isCanonicalX25519(parsed.baseKey)) throw new ParleyError('INVALID_KEY', 'base key is not a canonical X25519 public key');
    const baseKeyDigest = baseKeyDigestHex(parsed.baseKey);
    if (spk.baseKeys.has(baseKeyDigest)) throw new ParleyError('DUPLICATE_MESSAGE', 'prekey message base key was already used');
    // Never accept a base key this SPK could not remember for as long as it accepts (C6).
    if (spk.baseKeys.size >= MAX_BASE_KEYS_PER_SIGNED_PREKEY) {
      throw new ParleyError('INVALID_PREKEY', 'signed prekey accepts no more sessions until the device rotates it: the sender should fetch a fresh bundle', {
        details: { spkId, reason: 'full' },
      });
    }

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
    spk.baseKeys.add(baseKeyDigest);
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
      const flags = (spk.retiredAt === null ? 0 : SPK_RETIRED) | (spk.memoryIncomplete ? SPK_MEMORY_INCOMPLETE : 0);
      w.u8(flags).u64(spk.retiredAt ?? 0).u32(spk.baseKeys.size);
      for (const hex of spk.baseKeys) w.fixed(fromHex(hex));
    }
    w.u32(this.#oneTimePrekeys.size);
    for (const [id, rec] of this.#oneTimePrekeys) {
      w.u32(id).u8(rec.published ? 1 : 0);
      writeKeyPair(w, rec.keyPair);
    }
    return w.finish().slice();
  }

  /**
   * Rebuilds an account from {@link Account.pickle} output (version 2, or version 1 as written
   * before signed prekeys kept their own base keys).
   * @throws ParleyError `STORAGE_INTEGRITY` for corrupt input, `UNSUPPORTED_VERSION` for newer pickles.
   */
  static unpickle(bytes: Uint8Array): Account {
    const r = new ByteReader(bytes, 'STORAGE_INTEGRITY');
    if (r.u32() !== ACCOUNT_PICKLE_MAGIC) r.fail('not an account pickle');
    const version = r.u8();
    if (version !== ACCOUNT_PICKLE_VERSION && version !== 1) {
      throw new ParleyError('UNSUPPORTED_VERSION', 'unsupported account pickle version', { details: { version } });
    }
    const identity = IdentityKeyPair.fromPrivate(r.fixed(32), r.fixed(32));
    const nextPrekeyId = r.u32();
    const spkCount = r.u8();
    if (spkCount < 1 || spkCount > (version === 1 ? V1_SIGNED_PREKEYS_KEPT : MAX_SIGNED_PREKEYS)) r.fail('invalid signed prekey count');
    const spks: SignedPrekeyRecord[] = [];
    for (let i = 0; i < spkCount; i++) {
      const id = r.u32();
      const createdAt = r.u64();
      const signature = r.fixed(64);
      const keyPair = readKeyPair(r);
      if (spks.some((s) => s.id === id)) r.fail('duplicate signed prekey id');
      if (version === 1) {
        spks.push({ id, createdAt, signature, keyPair, retiredAt: null, memoryIncomplete: false, baseKeys: new Set() });
        continue;
      }
      const flags = r.u8();
      if ((flags & ~(SPK_RETIRED | SPK_MEMORY_INCOMPLETE)) !== 0) r.fail('unknown signed prekey flags');
      const retiredAt = r.u64();
      if ((flags & SPK_RETIRED) === 0 && retiredAt !== 0) r.fail('retirement time on a current signed prekey');
      const baseKeyCount = r.u32();
      if (baseKeyCount > MAX_BASE_KEYS_PER_SIGNED_PREKEY) r.fail('too many remembered base keys');
      const baseKeys = new Set<string>();
      for (let k = 0; k < baseKeyCount; k++) baseKeys.add(toHex(r.fixed(BASE_KEY_DIGEST_BYTES)));
      if (baseKeys.size !== baseKeyCount) r.fail('duplicate remembered base key');
      const memoryIncomplete = (flags & SPK_MEMORY_INCOMPLETE) !== 0;
      spks.push({ id, createdAt, signature, keyPair, retiredAt: (flags & SPK_RETIRED) === 0 ? null : retiredAt, memoryIncomplete, baseKeys });
    }
    // v1's one rotation rule: the previous SPK was retired when the next one was created.
    if (version === 1) for (const spk of spks.slice(0, -1)) spk.retiredAt = spks[spks.length - 1]!.createdAt;
    // Exactly one current SPK, the last (the order of creation); every earlier one is retired.
    if (spks.some((s, i) => (s.retiredAt === null) !== (i === spks.length - 1))) r.fail('invalid signed prekey retirement');
    const opkCount = r.u32();
    if (opkCount > 100_000) r.fail('too many one-time prekeys');
    const opks = new Map<number, OneTimePrekeyRecord>();
    for (let i = 0; i < opkCount; i++) {
      const id = r.u32();
      const published = r.u8() === 1;
      opks.set(id, { published, keyPair: readKeyPair(r) });
    }
    if (version === 1) readV1BaseKeys(r, spks);
    r.end();
    return new Account(identity, spks, opks, nextPrekeyId);
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

/** True once a signed prekey retired at `retiredAt` no longer accepts first messages. */
function graceEnded(retiredAt: number, now: number): boolean {
  return now >= retiredAt + SIGNED_PREKEY_GRACE_MS;
}

/** The remembered form of a base key: the first {@link BASE_KEY_DIGEST_BYTES} of its SHA-256, as hex. */
function baseKeyDigestHex(baseKey: Uint8Array): string {
  return toHex(getCrypto().sha256(baseKey).subarray(0, BASE_KEY_DIGEST_BYTES));
}

/**
 * The tail of a v1 pickle: one list of the account's last 1,000 accepted base keys, without the
 * signed prekey each one used. The list is attached to **every** v1 SPK, not only the current
 * one: a key accepted under the previous SPK must stay refused there too, and v1 cannot tell
 * which it was (at most 2 × 1,000 digests, 32 KB). A full list means v1 may already have
 * forgotten keys: the SPKs are flagged so the current one is rotated at the next publish (the
 * older one is already retired and ends with its grace).
 */
function readV1BaseKeys(r: ByteReader, spks: SignedPrekeyRecord[]): void {
  const baseKeyCount = r.u32();
  if (baseKeyCount > V1_MAX_REMEMBERED_BASE_KEYS) r.fail('too many remembered base keys');
  const digests: string[] = [];
  for (let i = 0; i < baseKeyCount; i++) digests.push(baseKeyDigestHex(r.fixed(32)));
  const incomplete = baseKeyCount === V1_MAX_REMEMBERED_BASE_KEYS;
  spks.forEach((spk, i) => {
    spks[i] = { ...spk, memoryIncomplete: incomplete, baseKeys: new Set(digests) };
  });
}
