/**
 * A 1:1 session: the ratchet state plus what binds it (both identities, the AD, the
 * initiator's base key). Live state never serialises by accident: `pickle()` is the only way
 * out, and callers seal the pickle before storing it.
 */
import { ByteReader, ByteWriter } from './codec.js';
import { concatBytes, constantTimeEqual, toHex, wipe } from './bytes.js';
import { getCrypto } from './crypto/index.js';
import { ParleyError } from './errors.js';
import { deviceIdOf, sameIdentity, type PublicIdentity } from './identity.js';
import {
  canSend,
  ratchetDecrypt,
  ratchetEncrypt,
  skippedKeyCount,
  type RatchetContext,
  type RatchetState,
} from './ratchet.js';
import { readRatchetState, writeRatchetState, readIdentity, writeIdentity } from './pickle.js';
import { MESSAGE_TYPE, WIRE_VERSION, encodePrekeyMessage, parseMessage } from './wire/message.js';

/** Which side started the session. */
export type SessionRole = 'initiator' | 'responder';

/** Prekey ids the initiator repeats in every message until it hears back. */
export interface PendingPrekey {
  readonly signedPrekeyId: number;
  readonly oneTimePrekeyId: number | null;
}

const SESSION_PICKLE_MAGIC = 0x50534553; // "PSES"
/**
 * 2: a responder's pickle keeps the prekey ids of the message that opened it (in the slot an
 * initiator uses for the ids it still sends). Version 1 pickles are read; a v1 responder does
 * not know its ids and compares none.
 */
const SESSION_PICKLE_VERSION = 2;

function ratchetContext(ad: Uint8Array): RatchetContext {
  return { ad, headerAd: concatBytes(ad, new Uint8Array([WIRE_VERSION, MESSAGE_TYPE.message])) };
}

/** Copies of every secret of a session's state: `@parley/protocol/testing` only (set by the class below). */
export let sessionSecrets: (session: Session) => Uint8Array[];

/** An end-to-end encrypted session with one peer device. */
export class Session {
  #state: RatchetState;
  /** Initiator: the prekey ids its messages carry until it hears back. */
  #pendingPrekey: PendingPrekey | null;
  /** Responder: the prekey ids of the message that opened the session (repeats must match). */
  readonly #openedWith: PendingPrekey | null;
  readonly #ctx: RatchetContext;
  readonly role: SessionRole;
  readonly localIdentity: PublicIdentity;
  readonly remoteIdentity: PublicIdentity;
  /** The peer's device id, derived from its identity keys. */
  readonly remoteDeviceId: string;
  /** The initiator's X3DH ephemeral public key; identifies the session on both sides. */
  readonly baseKey: Uint8Array;
  /** Public, stable id of this session (hash of AD and base key). */
  readonly sessionId: string;

  /** @internal Use `Account.createOutboundSession` / `createInboundSession` or `Session.unpickle`. */
  constructor(init: {
    state: RatchetState;
    role: SessionRole;
    localIdentity: PublicIdentity;
    remoteIdentity: PublicIdentity;
    baseKey: Uint8Array;
    ad: Uint8Array;
    /** Initiator: the ids it sends until it hears back; responder: the ids that opened it. */
    prekeyIds: PendingPrekey | null;
  }) {
    this.#state = init.state;
    this.#pendingPrekey = init.role === 'initiator' ? init.prekeyIds : null;
    this.#openedWith = init.role === 'responder' ? init.prekeyIds : null;
    this.#ctx = ratchetContext(init.ad);
    this.role = init.role;
    this.localIdentity = init.localIdentity;
    this.remoteIdentity = init.remoteIdentity;
    this.remoteDeviceId = deviceIdOf(init.remoteIdentity);
    this.baseKey = init.baseKey;
    this.sessionId = toHex(getCrypto().sha256(concatBytes(init.ad, init.baseKey)).subarray(0, 16));
  }

  /** True once a message from the peer has been decrypted in this session. */
  get hasReceivedMessage(): boolean {
    return this.#state.hkr !== null;
  }

  /** True while outgoing messages still carry the X3DH prekey header. */
  get isAwaitingReply(): boolean {
    return this.#pendingPrekey !== null;
  }

  /** Skipped message keys currently held (bounded by MAX_STORED_SKIPPED_KEYS). */
  get skippedKeyCount(): number {
    return skippedKeyCount(this.#state);
  }

  /** True if this side can encrypt now. */
  get canSend(): boolean {
    return canSend(this.#state);
  }

  /**
   * Encrypts one message. The session advances; persist it (`pickle`) before sending the result.
   * @throws ParleyError `PAYLOAD_TOO_LARGE` above MAX_PLAINTEXT_BYTES, `USAGE` if it can't send yet.
   */
  encrypt(plaintext: Uint8Array): Uint8Array {
    const { state, message } = ratchetEncrypt(this.#state, plaintext, this.#ctx);
    this.#state = state;
    if (this.#pendingPrekey === null) return message;
    return encodePrekeyMessage(
      {
        identity: this.localIdentity,
        baseKey: this.baseKey,
        signedPrekeyId: this.#pendingPrekey.signedPrekeyId,
        oneTimePrekeyId: this.#pendingPrekey.oneTimePrekeyId,
      },
      message,
    );
  }

  /**
   * True if `wire` belongs to this session as far as can be told without keys: a prekey
   * message with this session's base key, or any ratchet message.
   */
  matchesPrekeyMessage(wire: Uint8Array): boolean {
    const parsed = parseMessage(wire);
    return parsed.type === MESSAGE_TYPE.prekey && this.role === 'responder' && constantTimeEqual(parsed.baseKey, this.baseKey);
  }

  /**
   * Decrypts one message. Transactional: on any error the session is exactly as before.
   * @throws ParleyError `AUTH_FAILED`, `DUPLICATE_MESSAGE`, `SENDER_STATE_ROLLBACK`,
   *   `MESSAGE_KEY_EXPIRED`, `TOO_MANY_SKIPPED`, `INVALID_KEY`, `MALFORMED_MESSAGE`,
   *   `UNSUPPORTED_VERSION`.
   */
  decrypt(wire: Uint8Array): Uint8Array {
    const parsed = parseMessage(wire);
    let message;
    if (parsed.type === MESSAGE_TYPE.prekey) {
      // A repeated prekey message (the initiator sends them until it hears back).
      // The prekey header is outside the ratchet AEAD, so it must also name this session's peer.
      const samePeer = sameIdentity(parsed.identity, this.remoteIdentity) && constantTimeEqual(parsed.identity.binding, this.remoteIdentity.binding);
      if (this.role !== 'responder' || !constantTimeEqual(parsed.baseKey, this.baseKey) || !samePeer) {
        throw new ParleyError('AUTH_FAILED', 'prekey message does not belong to this session');
      }
      // Its prekey ids are outside every AEAD: they must be the ones that opened the session.
      const opened = this.#openedWith;
      if (opened && (parsed.signedPrekeyId !== opened.signedPrekeyId || parsed.oneTimePrekeyId !== opened.oneTimePrekeyId)) {
        throw new ParleyError('AUTH_FAILED', 'prekey message names other prekeys than the ones that opened this session');
      }
      message = parsed.message;
    } else {
      message = parsed;
    }
    const { state, plaintext } = ratchetDecrypt(this.#state, message, this.#ctx);
    this.#state = state;
    this.#pendingPrekey = null;
    return plaintext;
  }

  /** Versioned binary form of the whole session. Secret: seal it before it leaves memory. */
  pickle(): Uint8Array {
    const w = new ByteWriter(1024).u32(SESSION_PICKLE_MAGIC).u8(SESSION_PICKLE_VERSION);
    w.u8(this.role === 'initiator' ? 1 : 2);
    writeIdentity(w, this.localIdentity);
    writeIdentity(w, this.remoteIdentity);
    w.fixed(this.baseKey).bytes(this.#ctx.ad);
    const ids = this.role === 'initiator' ? this.#pendingPrekey : this.#openedWith;
    if (ids) {
      w.u8(1).u32(ids.signedPrekeyId);
      w.u8(ids.oneTimePrekeyId === null ? 0 : 1).u32(ids.oneTimePrekeyId ?? 0);
    } else {
      w.u8(0);
    }
    writeRatchetState(w, this.#state);
    return w.finish().slice();
  }

  /**
   * Rebuilds a session from {@link Session.pickle} output.
   * @throws ParleyError `STORAGE_INTEGRITY` for corrupt input, `UNSUPPORTED_VERSION` for newer pickles.
   */
  static unpickle(bytes: Uint8Array): Session {
    const r = new ByteReader(bytes, 'STORAGE_INTEGRITY');
    if (r.u32() !== SESSION_PICKLE_MAGIC) r.fail('not a session pickle');
    const version = r.u8();
    if (version !== 1 && version !== SESSION_PICKLE_VERSION) {
      throw new ParleyError('UNSUPPORTED_VERSION', 'unsupported session pickle version', { details: { version } });
    }
    const roleByte = r.u8();
    if (roleByte !== 1 && roleByte !== 2) r.fail('invalid role');
    const localIdentity = readIdentity(r);
    const remoteIdentity = readIdentity(r);
    const baseKey = r.fixed(32);
    const ad = r.bytes(256);
    let prekeyIds: PendingPrekey | null = null;
    if (r.u8() === 1) {
      const signedPrekeyId = r.u32();
      const hasOpk = r.u8();
      const opk = r.u32();
      prekeyIds = { signedPrekeyId, oneTimePrekeyId: hasOpk === 1 ? opk : null };
    }
    const state = readRatchetState(r);
    r.end();
    return new Session({ state, role: roleByte === 1 ? 'initiator' : 'responder', localIdentity, remoteIdentity, baseKey, ad, prekeyIds });
  }

  /** SHA-256 of the canonical pickle, hex: equal digests mean byte-identical state. */
  stateDigest(): string {
    return toHex(getCrypto().sha256(this.pickle()));
  }

  /** Zero-fills the secrets this object holds. The session is unusable afterwards. */
  static {
    sessionSecrets = (session) => {
      const s = session.#state;
      const all = [s.rootKey, s.dhSelf?.privateKey, s.sendChain, s.recvChain, s.hks, s.hkr, s.nhks, s.nhkr];
      for (const chain of s.skipped) all.push(chain.hk, ...chain.keys.values());
      return all.filter((k): k is Uint8Array => k instanceof Uint8Array).map((k) => k.slice());
    };
  }

  dispose(): void {
    const s = this.#state;
    wipe(s.rootKey, s.sendChain ?? undefined, s.recvChain ?? undefined, s.dhSelf?.privateKey, s.hks ?? undefined, s.hkr ?? undefined, s.nhks, s.nhkr);
    for (const chain of s.skipped) for (const mk of chain.keys.values()) wipe(mk);
  }

  toJSON(): { sessionId: string; role: SessionRole; remoteDeviceId: string } {
    return { sessionId: this.sessionId, role: this.role, remoteDeviceId: this.remoteDeviceId };
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `Session { sessionId: '${this.sessionId}', role: '${this.role}', remoteDeviceId: '${this.remoteDeviceId}', keys: [redacted] }`;
  }
}
