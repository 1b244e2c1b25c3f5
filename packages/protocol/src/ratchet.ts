/**
 * Double Ratchet with header encryption (Signal spec §3 and §4,
 * https://signal.org/docs/specifications/doubleratchet/), as pure functions over an
 * immutable state: every operation returns a new state and never mutates its input, so a
 * failed decrypt leaves the caller's state exactly as it was (transactional decrypt).
 *
 * One deliberate refinement: the sending half of a DH ratchet step (new key pair, KDF_RK for
 * the sending chain) runs lazily at the next encrypt instead of at receive time. The peer can
 * only ratchet again after it sees our new key, so the order of root-key updates is the same
 * as in the spec; receiving costs one DH instead of a key generation and two DHs, and the old
 * private key is dropped at once.
 */
import { concatBytes, constantTimeEqual, utf8, wipe } from './bytes.js';
import { getCrypto, type KeyPair } from './crypto/index.js';
import { ParleyError, isParleyError } from './errors.js';
import { MAX_SKIP, MAX_SKIPPED_CHAINS, MAX_STORED_SKIPPED_KEYS, RECENT_HEADERS, MAX_PLAINTEXT_BYTES } from './limits.js';
import {
  NONCE_BYTES,
  decodeHeader,
  encodeHeader,
  encodeRatchetPrefix,
  pad,
  unpad,
  type RatchetMessage,
} from './wire/message.js';

const RATCHET_INFO = utf8('Parley v1 ratchet');
const MESSAGE_KEY_INPUT = new Uint8Array([0x01]);
const CHAIN_KEY_INPUT = new Uint8Array([0x02]);

/** Skipped message keys of one receiving chain, identified by its header key. */
export interface SkippedChain {
  readonly hk: Uint8Array;
  /** n → message key, in insertion (increasing n) order. */
  readonly keys: ReadonlyMap<number, Uint8Array>;
  /** Highest n whose key was evicted by the caps (-1 if none): such n give MESSAGE_KEY_EXPIRED. */
  readonly evictedMaxN: number;
}

/** Bytes of each remembered header nonce: 64 random bits tell a replay from a re-encryption. */
export const RECENT_NONCE_BYTES = 8;

/** The (first bytes of the) header nonce seen for counter n on the current receiving chain. */
export interface RecentHeader {
  readonly n: number;
  readonly nonce: Uint8Array;
}

/** Complete ratchet state. Treat as opaque; only this module creates new versions. */
export interface RatchetState {
  readonly rootKey: Uint8Array;
  /** Our current ratchet key pair; null between receiving a new peer key and our next send. */
  readonly dhSelf: KeyPair | null;
  readonly dhRemote: Uint8Array | null;
  readonly sendChain: Uint8Array | null;
  readonly recvChain: Uint8Array | null;
  readonly ns: number;
  readonly nr: number;
  readonly pn: number;
  readonly hks: Uint8Array | null;
  readonly hkr: Uint8Array | null;
  readonly nhks: Uint8Array;
  readonly nhkr: Uint8Array;
  /** True when the sending half of a DH ratchet step is due at the next encrypt. */
  readonly sendRatchetPending: boolean;
  readonly skipped: readonly SkippedChain[];
  readonly recent: readonly RecentHeader[];
}

/** Per-session constants the ratchet authenticates: AD, and AD || version || type for headers. */
export interface RatchetContext {
  readonly ad: Uint8Array;
  readonly headerAd: Uint8Array;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** KDF_RK_HE: HKDF-SHA256 keyed (salt) by the root key → new root key, chain key, next header key. */
function kdfRoot(rootKey: Uint8Array, dhOut: Uint8Array): [Uint8Array, Uint8Array, Uint8Array] {
  const okm = getCrypto().hkdfSha256(dhOut, rootKey, RATCHET_INFO, 96);
  wipe(dhOut);
  return [okm.slice(0, 32), okm.slice(32, 64), okm.slice(64, 96)];
}

/** KDF_CK: HMAC-SHA256 with distinct constants → (message key, next chain key). */
function kdfChain(chainKey: Uint8Array): [Uint8Array, Uint8Array] {
  const c = getCrypto();
  return [c.hmacSha256(chainKey, MESSAGE_KEY_INPUT), c.hmacSha256(chainKey, CHAIN_KEY_INPUT)];
}

/** RatchetInitAliceHE: the initiator knows the responder's signed prekey. */
export function initInitiator(sk: Uint8Array, remoteSpk: Uint8Array, sharedHka: Uint8Array, sharedNhkb: Uint8Array): RatchetState {
  const c = getCrypto();
  const dhSelf = c.x25519Generate();
  const [rootKey, sendChain, nhks] = kdfRoot(sk, c.x25519(dhSelf.privateKey, remoteSpk));
  return {
    rootKey,
    dhSelf,
    dhRemote: remoteSpk,
    sendChain,
    recvChain: null,
    ns: 0,
    nr: 0,
    pn: 0,
    hks: sharedHka,
    hkr: null,
    nhks,
    nhkr: sharedNhkb,
    sendRatchetPending: false,
    skipped: [],
    recent: [],
  };
}

/** RatchetInitBobHE: the responder starts from its signed prekey pair. */
export function initResponder(sk: Uint8Array, spk: KeyPair, sharedHka: Uint8Array, sharedNhkb: Uint8Array): RatchetState {
  return {
    rootKey: sk,
    dhSelf: spk,
    dhRemote: null,
    sendChain: null,
    recvChain: null,
    ns: 0,
    nr: 0,
    pn: 0,
    hks: null,
    hkr: null,
    nhks: sharedNhkb,
    nhkr: sharedHka,
    sendRatchetPending: false,
    skipped: [],
    recent: [],
  };
}

/** True once this side can encrypt (the initiator at once, the responder after its first receive). */
export function canSend(state: RatchetState): boolean {
  return state.hks !== null && (state.sendChain !== null || (state.sendRatchetPending && state.dhRemote !== null));
}

/**
 * RatchetEncryptHE. Returns the new state and the encoded type-0x02 message.
 * @throws ParleyError `USAGE` if this side cannot send yet or the plaintext is too large.
 */
export function ratchetEncrypt(state: RatchetState, plaintext: Uint8Array, ctx: RatchetContext): { state: RatchetState; message: Uint8Array } {
  if (plaintext.length > MAX_PLAINTEXT_BYTES) {
    throw new ParleyError('PAYLOAD_TOO_LARGE', 'plaintext exceeds the maximum message size', {
      details: { length: plaintext.length, max: MAX_PLAINTEXT_BYTES },
    });
  }
  if (!canSend(state)) throw new ParleyError('USAGE', 'this session cannot send before it has received a message');
  const c = getCrypto();
  const s: Mutable<RatchetState> = { ...state };
  if (s.sendRatchetPending) {
    const dhSelf = c.x25519Generate();
    [s.rootKey, s.sendChain, s.nhks] = kdfRoot(s.rootKey, c.x25519(dhSelf.privateKey, s.dhRemote!));
    s.dhSelf = dhSelf;
    s.sendRatchetPending = false;
  }
  const [mk, nextChain] = kdfChain(s.sendChain!);
  const nonces = c.randomBytes(2 * NONCE_BYTES);
  const headerNonce = nonces.subarray(0, NONCE_BYTES);
  const bodyNonce = nonces.subarray(NONCE_BYTES);
  const header = encodeHeader(s.dhSelf!.publicKey, s.pn, s.ns);
  const prefix = encodeRatchetPrefix(headerNonce, c.xchachaEncrypt(s.hks!, headerNonce, header, ctx.headerAd));
  const body = c.xchachaEncrypt(mk, bodyNonce, pad(plaintext), concatBytes(ctx.ad, prefix));
  wipe(mk);
  s.sendChain = nextChain;
  s.ns += 1;
  return { state: s, message: concatBytes(prefix, bodyNonce, body) };
}

function tryHeader(hk: Uint8Array, msg: RatchetMessage, ctx: RatchetContext): ReturnType<typeof decodeHeader> | null {
  try {
    return decodeHeader(getCrypto().xchachaDecrypt(hk, msg.headerNonce, msg.encryptedHeader, ctx.headerAd));
  } catch (e) {
    if (isParleyError(e, 'AUTH_FAILED')) return null;
    throw e;
  }
}

function decryptBody(mk: Uint8Array, msg: RatchetMessage, ctx: RatchetContext): Uint8Array {
  const padded = getCrypto().xchachaDecrypt(mk, msg.bodyNonce, msg.body, concatBytes(ctx.ad, msg.authenticatedPrefix));
  return unpad(padded);
}

function findChain(skipped: readonly SkippedChain[], hk: Uint8Array): number {
  return skipped.findIndex((chain) => constantTimeEqual(chain.hk, hk));
}

/** A copy of `skipped` without key n of chain i (the chain dropped when it empties). */
function withoutKey(skipped: readonly SkippedChain[], i: number, n: number): SkippedChain[] {
  const chain = skipped[i]!;
  const keys = new Map(chain.keys);
  keys.delete(n);
  const next = skipped.slice();
  if (keys.size === 0 && chain.evictedMaxN < 0) next.splice(i, 1);
  else next[i] = { ...chain, keys };
  return next;
}

/** Stores the keys of messages nr..until-1 of the current receiving chain, then enforces the caps. */
function skipMessageKeys(s: Mutable<RatchetState>, until: number): void {
  if (s.recvChain === null || until <= s.nr) return;
  // Callers check the gap against MAX_SKIP before any derivation; this is a second guard.
  if (until - s.nr > MAX_SKIP) throw new ParleyError('TOO_MANY_SKIPPED', 'message gap exceeds MAX_SKIP');
  const skipped = s.skipped.slice();
  let i = findChain(skipped, s.hkr!);
  const keys = new Map(i >= 0 ? skipped[i]!.keys : undefined);
  let chainKey = s.recvChain;
  for (let n = s.nr; n < until; n++) {
    const [mk, next] = kdfChain(chainKey);
    keys.set(n, mk);
    chainKey = next;
  }
  const chain: SkippedChain = { hk: s.hkr!, keys, evictedMaxN: i >= 0 ? skipped[i]!.evictedMaxN : -1 };
  if (i >= 0) skipped[i] = chain;
  else {
    skipped.push(chain);
    i = skipped.length - 1;
  }
  s.recvChain = chainKey;
  s.nr = until;
  s.skipped = enforceCaps(skipped);
}

/** Evicts oldest chains beyond MAX_SKIPPED_CHAINS, then oldest keys beyond MAX_STORED_SKIPPED_KEYS. */
function enforceCaps(skipped: SkippedChain[]): SkippedChain[] {
  let chains = skipped.length > MAX_SKIPPED_CHAINS ? skipped.slice(skipped.length - MAX_SKIPPED_CHAINS) : skipped;
  let total = chains.reduce((sum, ch) => sum + ch.keys.size, 0);
  if (total <= MAX_STORED_SKIPPED_KEYS) return chains;
  chains = chains.slice();
  for (let i = 0; i < chains.length && total > MAX_STORED_SKIPPED_KEYS; i++) {
    const chain = chains[i]!;
    const keys = new Map(chain.keys);
    let evictedMaxN = chain.evictedMaxN;
    // No wipe here: the caller's previous state still shares these arrays until it commits.
    for (const n of keys.keys()) {
      if (total <= MAX_STORED_SKIPPED_KEYS) break;
      keys.delete(n);
      evictedMaxN = Math.max(evictedMaxN, n);
      total--;
    }
    chains[i] = { ...chain, keys, evictedMaxN };
  }
  return chains;
}

function remember(recent: readonly RecentHeader[], n: number, nonce: Uint8Array): RecentHeader[] {
  const next = recent.length >= RECENT_HEADERS ? recent.slice(recent.length - RECENT_HEADERS + 1) : recent.slice();
  next.push({ n, nonce: nonce.slice(0, RECENT_NONCE_BYTES) });
  return next;
}

/** Why a counter below the chain position has no key: replay, rollback or expiry. */
function staleCounterError(state: RatchetState, chain: SkippedChain | undefined, n: number, msg: RatchetMessage): ParleyError {
  const seen = state.recent.find((r) => r.n === n);
  if (seen && !constantTimeEqual(seen.nonce, msg.headerNonce.subarray(0, RECENT_NONCE_BYTES))) {
    return new ParleyError('SENDER_STATE_ROLLBACK', 'peer reused a message counter with a new header');
  }
  if (!seen && chain && n <= chain.evictedMaxN) {
    return new ParleyError('MESSAGE_KEY_EXPIRED', 'the key for this message was evicted');
  }
  return new ParleyError('DUPLICATE_MESSAGE', 'message was already received');
}

/**
 * RatchetDecryptHE on a copy of the state. Returns the new state and the plaintext; on any
 * error the input state is untouched and nothing is released.
 * @throws ParleyError `AUTH_FAILED`, `DUPLICATE_MESSAGE`, `SENDER_STATE_ROLLBACK`,
 *   `MESSAGE_KEY_EXPIRED`, `TOO_MANY_SKIPPED`, `INVALID_KEY` or `MALFORMED_MESSAGE`.
 */
export function ratchetDecrypt(state: RatchetState, msg: RatchetMessage, ctx: RatchetContext): { state: RatchetState; plaintext: Uint8Array } {
  // Each candidate header key is tried at most once, so a header that opens under none costs
  // at most (skipped chains + 2) trial decryptions. Only the order varies: once we have sent
  // on our current chain, the peer's next message most likely starts a new DH ratchet step.
  const nextFirst = state.dhSelf !== null && state.ns > 0;
  if (nextFirst) {
    const header = tryHeader(state.nhkr, msg, ctx);
    if (header) return decryptNewRatchetStep(state, header, msg, ctx);
  }
  // The current receiving chain.
  if (state.hkr !== null) {
    const header = tryHeader(state.hkr, msg, ctx);
    if (header) return decryptCurrentChain(state, header, msg, ctx);
  }
  // Older chains that still hold skipped keys.
  for (let i = 0; i < state.skipped.length; i++) {
    const chain = state.skipped[i]!;
    if (state.hkr !== null && constantTimeEqual(chain.hk, state.hkr)) continue;
    const header = tryHeader(chain.hk, msg, ctx);
    if (!header) continue;
    const mk = chain.keys.get(header.n);
    if (!mk) throw staleCounterError({ ...state, recent: [] }, chain, header.n, msg);
    const plaintext = decryptBody(mk, msg, ctx);
    return { state: { ...state, skipped: withoutKey(state.skipped, i, header.n) }, plaintext };
  }
  if (!nextFirst) {
    const header = tryHeader(state.nhkr, msg, ctx);
    if (header) return decryptNewRatchetStep(state, header, msg, ctx);
  }
  throw new ParleyError('AUTH_FAILED', 'message does not authenticate under any key of this session');
}

/** The header opened under the next header key: the peer started a new DH ratchet step. */
function decryptNewRatchetStep(
  state: RatchetState,
  header: ReturnType<typeof decodeHeader>,
  msg: RatchetMessage,
  ctx: RatchetContext,
): { state: RatchetState; plaintext: Uint8Array } {
  if (state.dhSelf === null) throw new ParleyError('AUTH_FAILED', 'message does not authenticate under any key of this session');
  if (header.n > MAX_SKIP || (state.recvChain !== null && header.pn - state.nr > MAX_SKIP)) {
    // Header counters stay out of errors: header encryption exists to hide them (finding 9).
    throw new ParleyError('TOO_MANY_SKIPPED', 'message gap exceeds MAX_SKIP', { details: { max: MAX_SKIP } });
  }
  const s: Mutable<RatchetState> = { ...state };
  skipMessageKeys(s, header.pn);
  // Receiving half of DHRatchetHE; the sending half runs at the next encrypt.
  const dhOut = getCrypto().x25519(s.dhSelf!.privateKey, header.ratchetKey);
  s.pn = s.ns;
  s.ns = 0;
  s.nr = 0;
  s.hks = s.nhks;
  s.hkr = s.nhkr;
  s.dhRemote = header.ratchetKey;
  [s.rootKey, s.recvChain, s.nhkr] = kdfRoot(s.rootKey, dhOut);
  s.dhSelf = null;
  s.sendChain = null;
  s.sendRatchetPending = true;
  s.recent = [];
  return finishOnChain(s, header.n, msg, ctx);
}

function decryptCurrentChain(
  state: RatchetState,
  header: ReturnType<typeof decodeHeader>,
  msg: RatchetMessage,
  ctx: RatchetContext,
): { state: RatchetState; plaintext: Uint8Array } {
  if (state.dhRemote === null || !constantTimeEqual(header.ratchetKey, state.dhRemote)) {
    // The header authenticated under this chain's header key, which only the peer's session
    // state holds, yet names another ratchet key: two copies of the peer's state (a restored
    // backup, a clone) each started this ratchet step. Not a forgery: a fork (docs/threats.md C3 b).
    throw new ParleyError('SESSION_FORK_DETECTED', 'two copies of the peer\'s session state are sending; the session forked');
  }
  if (header.n < state.nr) {
    const i = findChain(state.skipped, state.hkr!);
    const chain = i >= 0 ? state.skipped[i] : undefined;
    const mk = chain?.keys.get(header.n);
    if (!mk) throw staleCounterError(state, chain, header.n, msg);
    const plaintext = decryptBody(mk, msg, ctx);
    return {
      state: { ...state, skipped: withoutKey(state.skipped, i, header.n), recent: remember(state.recent, header.n, msg.headerNonce) },
      plaintext,
    };
  }
  if (header.n - state.nr > MAX_SKIP) {
    throw new ParleyError('TOO_MANY_SKIPPED', 'message gap exceeds MAX_SKIP', { details: { max: MAX_SKIP } });
  }
  return finishOnChain({ ...state }, header.n, msg, ctx);
}

/** Skips to n on the current receiving chain, derives n's key and opens the body. */
function finishOnChain(s: Mutable<RatchetState>, n: number, msg: RatchetMessage, ctx: RatchetContext): { state: RatchetState; plaintext: Uint8Array } {
  skipMessageKeys(s, n);
  const [mk, next] = kdfChain(s.recvChain!);
  const plaintext = decryptBody(mk, msg, ctx);
  wipe(mk);
  s.recvChain = next;
  s.nr = n + 1;
  s.recent = remember(s.recent, n, msg.headerNonce);
  return { state: s, plaintext };
}

/** Number of skipped message keys held (for tests and metrics). */
export function skippedKeyCount(state: RatchetState): number {
  return state.skipped.reduce((sum, chain) => sum + chain.keys.size, 0);
}
