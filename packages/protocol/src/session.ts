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
import { HEADER_CACHE_ENTRIES } from './limits.js';
import {
  canSend,
  openBody,
  openHeader,
  ratchetEncrypt,
  settleSkippedKeys,
  skippedKeyCount,
  stateSecrets,
  discardOpened,
  wipeReplaced,
  type OpenedHeader,
  type RatchetContext,
  type RatchetState,
} from './ratchet.js';
import { SESSION_PICKLE_VERSION, readRatchetState, writeRatchetState, readIdentity, writeIdentity } from './pickle.js';
import { MESSAGE_TYPE, WIRE_VERSION, encodePrekeyMessage, parseMessage, type RatchetMessage } from './wire/message.js';

/** Which side started the session. */
export type SessionRole = 'initiator' | 'responder';

/** Prekey ids the initiator repeats in every message until it hears back. */
export interface PendingPrekey {
  readonly signedPrekeyId: number;
  readonly oneTimePrekeyId: number | null;
}

const SESSION_PICKLE_MAGIC = 0x50534553; // "PSES"
/*
 * Session pickle versions (SESSION_PICKLE_VERSION, pickle.ts, is the one written):
 * 2: a responder's pickle keeps the prekey ids of the message that opened it (in the slot an
 *    initiator uses for the ids it still sends). A v1 responder does not know its ids and
 *    compares none.
 * 3: each skipped key carries its skip time (SKIPPED_KEY_TTL_MS), and each skipped chain the
 *    ranges of its evicted counters instead of the highest one (pickle.ts). v1/v2 keys are
 *    stamped at the next decrypt; their evicted counters read as one range from 0.
 * Versions 1 and 2 are still read.
 */

/** Options of {@link Session.decrypt}. */
export interface DecryptOptions {
  /**
   * The clock, in ms since the epoch (default `Date.now()`): skipped message keys stored more
   * than SKIPPED_KEY_TTL_MS before it have expired. Pass the app's clock where it has one.
   */
  readonly now?: number;
}

/** A header stage kept for a repeat of the same header, valid only while `base` is the state. */
interface CachedHeader {
  readonly base: RatchetState;
  /** Hex of the message's authenticated prefix (version, type, header nonce, encrypted header). */
  readonly prefix: string;
  readonly opened: OpenedHeader;
}

function clockReading(now: number | undefined): number {
  const t = now ?? Date.now();
  if (typeof t !== 'number' || !Number.isFinite(t) || t < 0 || t > Number.MAX_SAFE_INTEGER - 1) {
    throw new ParleyError('USAGE', 'now must be a non-negative number of milliseconds');
  }
  return Math.floor(t);
}

function ratchetContext(ad: Uint8Array): RatchetContext {
  return { ad, headerAd: concatBytes(ad, new Uint8Array([WIRE_VERSION, MESSAGE_TYPE.message])) };
}

/** Copies of every secret of a session's state: `@parley/protocol/testing` only (set by the class below). */
export let sessionSecrets: (session: Session) => Uint8Array[];
/**
 * The live secret arrays of a session's state and, separately, of its kept header stages (not
 * copies: tests hold them to see them wiped). `@parley/protocol/testing` only.
 */
export let liveSessionSecrets: (session: Session) => { state: Uint8Array[]; headerCache: Uint8Array[] };

/** An end-to-end encrypted session with one peer device. */
export class Session {
  #state: RatchetState;
  /** Header stages derived from `#state`, oldest first; in memory only, never pickled. */
  #headers: CachedHeader[] = [];
  /**
   * True when a message arrived since our last encrypt: the peer is then most likely still
   * sending on its current chain, so its next header is tried there first (openHeader's
   * `peerStillSending`; only the trial order depends on it). In memory only: a fresh or
   * unpickled session starts with the default order.
   */
  #receivedSinceSend = false;
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
    this.#commit(state);
    this.#receivedSinceSend = false;
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
   * Decrypts one message. Transactional: on any error the session's state is exactly as before.
   *
   * Why a message is refused (the window; packages/protocol/README.md, "Duplicates, expired
   * keys and the window"): while its chain is held (the current receiving chain, or one of the
   * last MAX_SKIPPED_CHAINS chains with skipped keys or evicted counters), a counter whose key
   * was consumed answers `DUPLICATE_MESSAGE` (`SENDER_STATE_ROLLBACK` if its header differs from
   * the one received, over the last RECENT_HEADERS counters of the current chain), one whose key
   * was dropped unused answers `MESSAGE_KEY_EXPIRED`: evicted by the count caps, or stored more
   * than SKIPPED_KEY_TTL_MS before `options.now`. Once its chain is gone, `AUTH_FAILED`. Beyond
   * MAX_EVICTED_RANGES ranges per chain, consumed counters between merged ranges may answer
   * `MESSAGE_KEY_EXPIRED` too; a dropped key never answers `DUPLICATE_MESSAGE`.
   *
   * Expired skipped keys are dropped (and their counters recorded) when a decrypt succeeds; see
   * {@link Session.expireSkippedKeys} to drop them without a message. A header whose body fails
   * is kept in memory for this state (HEADER_CACHE_ENTRIES), so forged bodies under a captured
   * genuine header cost its DH step and chain skips once, and the genuine message still opens.
   * Secrets the new state no longer holds are zero-filled once it is adopted.
   * @param options.now The clock in ms (default `Date.now()`), for skipped-key expiry.
   * @throws ParleyError `AUTH_FAILED`, `DUPLICATE_MESSAGE`, `SENDER_STATE_ROLLBACK`,
   *   `MESSAGE_KEY_EXPIRED`, `TOO_MANY_SKIPPED`, `SESSION_FORK_DETECTED`, `INVALID_KEY`,
   *   `MALFORMED_MESSAGE`, `UNSUPPORTED_VERSION`; `USAGE` for an invalid `options.now`.
   */
  decrypt(wire: Uint8Array, options: DecryptOptions = {}): Uint8Array {
    const now = clockReading(options.now);
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
    const opened = this.#openHeader(message, now);
    let result;
    try {
      result = openBody(opened, message, this.#ctx, now);
    } catch (e) {
      // A kept stage waits for its genuine body; any other derived stage is released now.
      if (!this.#headers.some((h) => h.opened === opened)) discardOpened(opened, this.#state);
      throw e;
    }
    const { state, plaintext } = result;
    this.#commit(state, [opened.mk]);
    this.#pendingPrekey = null;
    this.#receivedSinceSend = true;
    return plaintext;
  }

  /**
   * Drops the skipped message keys stored more than SKIPPED_KEY_TTL_MS before `now` (their
   * messages then answer `MESSAGE_KEY_EXPIRED`) and zero-fills them; keys read from an older
   * pickle without a skip time are stamped with `now`. Every successful decrypt does the same;
   * call this to expire keys of a quiet session (before pickling it, say). Persist afterwards.
   * @param now The clock in ms (default `Date.now()`).
   * @returns How many keys expired.
   * @throws ParleyError `USAGE` for an invalid `now`.
   */
  expireSkippedKeys(now?: number): number {
    const { state, expired } = settleSkippedKeys(this.#state, clockReading(now));
    this.#commit(state);
    return expired;
  }

  /** The header stage for `message`: kept from an earlier try with this exact state, or derived. */
  #openHeader(message: RatchetMessage, now: number): OpenedHeader {
    // The hex key is only needed when there are kept stages to look up or one to keep: most
    // messages need neither.
    let prefix: string | undefined;
    if (this.#headers.length > 0) {
      const hex = toHex(message.authenticatedPrefix);
      prefix = hex;
      const i = this.#headers.findIndex((h) => h.base === this.#state && h.prefix === hex);
      if (i >= 0) {
        const [hit] = this.#headers.splice(i, 1);
        this.#headers.push(hit!);
        return hit!.opened;
      }
    }
    const opened = openHeader(this.#state, message, this.#ctx, now, this.#receivedSinceSend);
    // Only stages with a DH step or skipped keys are worth keeping: one chain step or a stored
    // key costs about what the body's AEAD does.
    if (opened.expensive) {
      prefix ??= toHex(message.authenticatedPrefix);
      this.#headers.push({ base: this.#state, prefix, opened });
      if (this.#headers.length > HEADER_CACHE_ENTRIES) {
        const [oldest] = this.#headers.splice(0, 1);
        discardOpened(oldest!.opened, this.#state);
      }
    }
    return opened;
  }

  /**
   * Adopts `next` and zero-fills every secret the replaced state, the dropped header stages and
   * `extra` (a used message key) held that `next` does not. States are immutable and share
   * arrays until one is adopted, so this is the one place where replaced secrets are released.
   */
  #commit(next: RatchetState, extra: readonly Uint8Array[] = []): void {
    if (next === this.#state) {
      wipeReplaced(next, next, extra);
      return;
    }
    const old = this.#state;
    const stages = this.#headers;
    this.#state = next;
    // Stages derived from the replaced state are never valid again: adopting one would roll the
    // state back (a sending chain, a counter).
    this.#headers = [];
    wipeReplaced(old, next, extra);
    for (const stage of stages) discardOpened(stage.opened, next);
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
    if (version !== 1 && version !== 2 && version !== SESSION_PICKLE_VERSION) {
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
    const state = readRatchetState(r, version);
    r.end();
    return new Session({ state, role: roleByte === 1 ? 'initiator' : 'responder', localIdentity, remoteIdentity, baseKey, ad, prekeyIds });
  }

  /** SHA-256 of the canonical pickle, hex: equal digests mean byte-identical state. */
  stateDigest(): string {
    return toHex(getCrypto().sha256(this.pickle()));
  }

  static {
    sessionSecrets = (session) => stateSecrets(session.#state).map((k) => k.slice());
    liveSessionSecrets = (session) => ({ state: stateSecrets(session.#state), headerCache: session.#headers.flatMap(headerSecrets) });
  }

  /** Zero-fills the secrets this object holds (its state and kept header stages). The session is unusable afterwards. */
  dispose(): void {
    for (const h of this.#headers) for (const k of headerSecrets(h)) wipe(k);
    this.#headers = [];
    wipe(...stateSecrets(this.#state));
  }

  toJSON(): { sessionId: string; role: SessionRole; remoteDeviceId: string } {
    return { sessionId: this.sessionId, role: this.role, remoteDeviceId: this.remoteDeviceId };
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `Session { sessionId: '${this.sessionId}', role: '${this.role}', remoteDeviceId: '${this.remoteDeviceId}', keys: [redacted] }`;
  }
}

/** The secret arrays a kept header stage references (its derived state and message key). */
function headerSecrets(h: CachedHeader): Uint8Array[] {
  return [...stateSecrets(h.opened.next), h.opened.mk];
}
