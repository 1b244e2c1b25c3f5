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
import { constantTimeEqual, utf8, wipe } from './bytes.js';
import { getCrypto, type KeyPair } from './crypto/index.js';
import { ParleyError, isParleyError } from './errors.js';
import {
  MAX_EVICTED_RANGES,
  MAX_PLAINTEXT_BYTES,
  MAX_SKIP,
  MAX_SKIPPED_CHAINS,
  MAX_STORED_SKIPPED_KEYS,
  RECENT_HEADERS,
  SKIPPED_KEY_TTL_MS,
} from './limits.js';
import {
  BODY_AD_END,
  NONCE_BYTES,
  TAG_BYTES,
  decodeHeader,
  encodeHeader,
  encodeRatchetPrefixInto,
  pad,
  unpad,
  type RatchetMessage,
} from './wire/message.js';

const RATCHET_INFO = utf8('Parley v1 ratchet');
const MESSAGE_KEY_INPUT = new Uint8Array([0x01]);
const CHAIN_KEY_INPUT = new Uint8Array([0x02]);

/** One stored skipped message key and when it was stored. */
export interface SkippedKey {
  readonly mk: Uint8Array;
  /**
   * Clock reading (ms) of the decrypt that derived this key, the start of its
   * SKIPPED_KEY_TTL_MS; never lower than the keys before it on its chain, so a chain's keys
   * expire in order. Null for keys read from session pickles v1/v2 and keys skipped by a
   * `ratchetDecrypt` without `now` (the first message of an inbound session): they get the clock
   * of the next decrypt that has one, so an upgrade never expires them early.
   */
  readonly skippedAt: number | null;
}

/** Counters `from`..`to` (inclusive) of one chain whose keys were evicted or expired unused. */
export interface EvictedRange {
  readonly from: number;
  readonly to: number;
}

/** Skipped message keys of one receiving chain, identified by its header key. */
export interface SkippedChain {
  readonly hk: Uint8Array;
  /** n → stored key, in insertion (increasing n, so also increasing skip time) order. */
  readonly keys: ReadonlyMap<number, SkippedKey>;
  /**
   * Counters whose keys were dropped unused (caps or expiry): they answer MESSAGE_KEY_EXPIRED,
   * every other counter without a key was consumed and answers DUPLICATE_MESSAGE. Sorted,
   * disjoint, non-adjacent ranges, at most MAX_EVICTED_RANGES: beyond that the two closest
   * ranges merge, so the consumed counters between them answer MESSAGE_KEY_EXPIRED too (the
   * record errs towards "lost", never towards "already delivered").
   */
  readonly evicted: readonly EvictedRange[];
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

/**
 * One buffer for every message body's AD (AD || message prefix, ~213 bytes): public bytes that
 * the AEAD reads synchronously before anything else can call {@link bodyAd}, so a message costs
 * no allocation for them (arrays over 64 bytes get an off-heap backing store, ~0.5 µs each) and a
 * session holds no extra memory.
 */
let bodyAdScratch = new Uint8Array(512);

/** AD || prefix for a message body, as a view of {@link bodyAdScratch}: pass it straight to the AEAD. */
function bodyAd(ctx: RatchetContext, prefix: Uint8Array): Uint8Array {
  const length = ctx.ad.length + prefix.length;
  if (length > bodyAdScratch.length) bodyAdScratch = new Uint8Array(length);
  bodyAdScratch.set(ctx.ad, 0);
  bodyAdScratch.set(prefix, ctx.ad.length);
  return bodyAdScratch.subarray(0, length);
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
  const encryptedHeader = c.xchachaEncrypt(s.hks!, headerNonce, header, ctx.headerAd);
  const padded = pad(plaintext);
  // The message is assembled in place: prefix [0, 82), body nonce, then the body once sealed
  // under AD || prefix.
  const message = new Uint8Array(BODY_AD_END + NONCE_BYTES + padded.length + TAG_BYTES);
  encodeRatchetPrefixInto(message, headerNonce, encryptedHeader);
  message.set(bodyNonce, BODY_AD_END);
  const body = c.xchachaEncrypt(mk, bodyNonce, padded, bodyAd(ctx, message.subarray(0, BODY_AD_END)));
  message.set(body, BODY_AD_END + NONCE_BYTES);
  wipe(mk, padded);
  s.sendChain = nextChain;
  s.ns += 1;
  return { state: s, message };
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
  const padded = getCrypto().xchachaDecrypt(mk, msg.bodyNonce, msg.body, bodyAd(ctx, msg.authenticatedPrefix));
  try {
    return unpad(padded); // a copy: the padded plaintext is ours to wipe
  } finally {
    wipe(padded);
  }
}

function findChain(skipped: readonly SkippedChain[], hk: Uint8Array): number {
  return skipped.findIndex((chain) => constantTimeEqual(chain.hk, hk));
}

// ---------------------------------------------------------------------------------------------
// The record of evicted counters

/** True if counter n of `chain` had its key evicted or expired unused. */
function isEvicted(chain: SkippedChain, n: number): boolean {
  return chain.evicted.some((r) => r.from <= n && n <= r.to);
}

/**
 * Adds counter n to `ranges` (sorted, disjoint, non-adjacent; changed in place), then merges
 * the two closest ranges while there are more than MAX_EVICTED_RANGES. Merging over-states
 * eviction rather than forgetting it: a lost message must never be reported as delivered.
 */
function addEvicted(ranges: EvictedRange[], n: number): void {
  let i = 0;
  while (i < ranges.length && ranges[i]!.to < n - 1) i++;
  const at = ranges[i];
  if (at && at.from <= n + 1) {
    let merged = { from: Math.min(at.from, n), to: Math.max(at.to, n) };
    const after = ranges[i + 1];
    if (after && after.from <= merged.to + 1) {
      merged = { from: merged.from, to: Math.max(merged.to, after.to) };
      ranges.splice(i + 1, 1);
    }
    ranges[i] = merged;
  } else {
    ranges.splice(i, 0, { from: n, to: n });
  }
  while (ranges.length > MAX_EVICTED_RANGES) {
    let closest = 0;
    for (let k = 1; k < ranges.length - 1; k++) {
      if (ranges[k + 1]!.from - ranges[k]!.to < ranges[closest + 1]!.from - ranges[closest]!.to) closest = k;
    }
    ranges.splice(closest, 2, { from: ranges[closest]!.from, to: ranges[closest + 1]!.to });
  }
}

/** A copy of `skipped` without key n of chain i (the chain dropped when nothing of it is left). */
function withoutKey(skipped: readonly SkippedChain[], i: number, n: number): SkippedChain[] {
  const chain = skipped[i]!;
  const keys = new Map(chain.keys);
  keys.delete(n);
  const next = skipped.slice();
  if (keys.size === 0 && chain.evicted.length === 0) next.splice(i, 1);
  else next[i] = { ...chain, keys };
  return next;
}

/**
 * Stores the keys of messages nr..until-1 of the current receiving chain, stamped with `now`
 * (raised to the chain's latest stamp if the clock went back), then enforces the caps.
 */
function skipMessageKeys(s: Mutable<RatchetState>, until: number, now: number | undefined): void {
  if (s.recvChain === null || until <= s.nr) return;
  // Callers check the gap against MAX_SKIP before any derivation; this is a second guard.
  if (until - s.nr > MAX_SKIP) throw new ParleyError('TOO_MANY_SKIPPED', 'message gap exceeds MAX_SKIP');
  const skipped = s.skipped.slice();
  const i = findChain(skipped, s.hkr!);
  const keys = new Map(i >= 0 ? skipped[i]!.keys : undefined);
  let skippedAt = now ?? null;
  if (skippedAt !== null) for (const key of keys.values()) if (key.skippedAt !== null && key.skippedAt > skippedAt) skippedAt = key.skippedAt;
  let chainKey = s.recvChain;
  for (let n = s.nr; n < until; n++) {
    const [mk, next] = kdfChain(chainKey);
    keys.set(n, { mk, skippedAt });
    chainKey = next;
  }
  const chain: SkippedChain = { hk: s.hkr!, keys, evicted: i >= 0 ? skipped[i]!.evicted : [] };
  if (i >= 0) skipped[i] = chain;
  else skipped.push(chain);
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
    const evicted = chain.evicted.slice();
    // No wipe here: the caller's previous state still shares these arrays until it commits,
    // and the owner wipes what the adopted state no longer references (wipeReplaced).
    for (const n of keys.keys()) {
      if (total <= MAX_STORED_SKIPPED_KEYS) break;
      keys.delete(n);
      addEvicted(evicted, n);
      total--;
    }
    chains[i] = { ...chain, keys, evicted };
  }
  return chains;
}

function isExpired(key: SkippedKey, now: number | undefined): boolean {
  return now !== undefined && key.skippedAt !== null && now - key.skippedAt >= SKIPPED_KEY_TTL_MS;
}

/**
 * Applies the clock to the skipped keys: keys without a skip time get `now`, keys stored at
 * least SKIPPED_KEY_TTL_MS before `now` are dropped and their counters recorded as evicted (so
 * they answer MESSAGE_KEY_EXPIRED). Returns `state` itself when nothing changes.
 *
 * Only the head of each chain is looked at: its stamps never decrease, and keys without one
 * (read from an old pickle, or skipped without a clock) come before any key stamped after them,
 * so the scan stops at the first stamped key that has not expired. A decrypt stays O(chains).
 */
export function settleSkippedKeys(state: RatchetState, now: number): { state: RatchetState; expired: number } {
  let expired = 0;
  let changed = false;
  const skipped = state.skipped.map((chain) => {
    let keys: Map<number, SkippedKey> | null = null;
    let evicted: EvictedRange[] | null = null;
    for (const [n, key] of chain.keys) {
      if (key.skippedAt === null) {
        keys ??= new Map(chain.keys);
        keys.set(n, { mk: key.mk, skippedAt: now });
      } else if (isExpired(key, now)) {
        keys ??= new Map(chain.keys);
        evicted ??= chain.evicted.slice();
        keys.delete(n);
        addEvicted(evicted, n);
        expired++;
      } else {
        break;
      }
    }
    if (keys === null) return chain;
    changed = true;
    return { ...chain, keys, evicted: evicted ?? chain.evicted };
  });
  return changed ? { state: { ...state, skipped }, expired } : { state, expired };
}

function remember(recent: readonly RecentHeader[], n: number, nonce: Uint8Array): RecentHeader[] {
  const next = recent.length >= RECENT_HEADERS ? recent.slice(recent.length - RECENT_HEADERS + 1) : recent.slice();
  next.push({ n, nonce: nonce.slice(0, RECENT_NONCE_BYTES) });
  return next;
}

/**
 * Why a counter of a held chain has no key: its key was consumed (replay), the sender reused it
 * (rollback), or its key was dropped unused (evicted by the caps or expired). `recent` holds the
 * header nonces of the current chain's last counters; older chains pass none.
 */
function staleCounterError(recent: readonly RecentHeader[], chain: SkippedChain | undefined, n: number, msg: RatchetMessage): ParleyError {
  const seen = recent.find((r) => r.n === n);
  if (seen && !constantTimeEqual(seen.nonce, msg.headerNonce.subarray(0, RECENT_NONCE_BYTES))) {
    return new ParleyError('SENDER_STATE_ROLLBACK', 'peer reused a message counter with a new header');
  }
  // A counter seen on this chain was consumed, whatever an over-full eviction record says.
  if (!seen && chain && isEvicted(chain, n)) return expiredError();
  return new ParleyError('DUPLICATE_MESSAGE', 'message was already received');
}

function expiredError(): ParleyError {
  return new ParleyError('MESSAGE_KEY_EXPIRED', 'the key for this message was evicted or expired');
}

// ---------------------------------------------------------------------------------------------
// Decryption: header stage, then body stage

/**
 * What the header of one message leads to: the state to adopt once its body authenticates, and
 * the body's message key. Valid only together with the exact state object it was derived from.
 */
export interface OpenedHeader {
  /** The state after this message (its key consumed, counters advanced, header remembered). */
  readonly next: RatchetState;
  /** The body's message key: a stored skipped key, or freshly derived when `derived`. */
  readonly mk: Uint8Array;
  /** True when `mk` was derived here (not a stored skipped key): the owner wipes it after use. */
  readonly derived: boolean;
  /**
   * True when opening the header ran a DH ratchet step or skipped keys: the work a forged body
   * under a genuine header would make the receiver repeat, so worth keeping for a repeat.
   */
  readonly expensive: boolean;
}

/**
 * Header stage of RatchetDecryptHE: finds the header key that opens `msg`'s header, refuses
 * stale, over-limit and forked counters, and derives (on a copy) the state the message leads to.
 * Deterministic for a given state and header bytes, but for `now`: it decides whether a stored
 * skipped key has expired, and stamps the keys this message skips. Nothing is released: the
 * body is not touched. `peerStillSending` (a hint: true when a message of the peer's current
 * chain arrived after our last send) only changes the order the header keys are tried in.
 * @throws ParleyError `AUTH_FAILED`, `DUPLICATE_MESSAGE`, `SENDER_STATE_ROLLBACK`,
 *   `MESSAGE_KEY_EXPIRED`, `TOO_MANY_SKIPPED`, `SESSION_FORK_DETECTED`, `INVALID_KEY` or
 *   `MALFORMED_MESSAGE`.
 */
export function openHeader(state: RatchetState, msg: RatchetMessage, ctx: RatchetContext, now?: number, peerStillSending = false): OpenedHeader {
  // Each candidate header key is tried at most once, so a header that opens under none costs
  // at most (skipped chains + 2) trial decryptions. Only the order varies (a header opens under
  // one key at most): once we have sent on our current chain, the peer's next message most
  // likely starts a new DH ratchet step, unless the peer has kept sending on its chain since
  // (`peerStillSending`, which the caller may know: a failed trial costs an AEAD and a throw).
  const nextFirst = !peerStillSending && state.dhSelf !== null && state.ns > 0;
  if (nextFirst) {
    const header = tryHeader(state.nhkr, msg, ctx);
    if (header) return openNewRatchetStep(state, header, msg, now);
  }
  // The current receiving chain.
  if (state.hkr !== null) {
    const header = tryHeader(state.hkr, msg, ctx);
    if (header) return openCurrentChain(state, header, msg, now);
  }
  // Older chains that still hold skipped keys (or a record of evicted ones).
  for (let i = 0; i < state.skipped.length; i++) {
    const chain = state.skipped[i]!;
    if (state.hkr !== null && constantTimeEqual(chain.hk, state.hkr)) continue;
    const header = tryHeader(chain.hk, msg, ctx);
    if (!header) continue;
    const key = chain.keys.get(header.n);
    if (!key) throw staleCounterError([], chain, header.n, msg);
    if (isExpired(key, now)) throw expiredError();
    return { next: { ...state, skipped: withoutKey(state.skipped, i, header.n) }, mk: key.mk, derived: false, expensive: false };
  }
  if (!nextFirst) {
    const header = tryHeader(state.nhkr, msg, ctx);
    if (header) return openNewRatchetStep(state, header, msg, now);
  }
  throw new ParleyError('AUTH_FAILED', 'message does not authenticate under any key of this session');
}

/**
 * Body stage: opens the body with the header stage's message key and returns the state to
 * adopt, with the clock applied to the skipped keys when `now` is given (settleSkippedKeys).
 * Neither `opened` nor its state is changed, so a failed body can be retried.
 * @throws ParleyError `AUTH_FAILED` or `MALFORMED_MESSAGE` (bad padding).
 */
export function openBody(opened: OpenedHeader, msg: RatchetMessage, ctx: RatchetContext, now?: number): { state: RatchetState; plaintext: Uint8Array } {
  const plaintext = decryptBody(opened.mk, msg, ctx);
  return { state: now === undefined ? opened.next : settleSkippedKeys(opened.next, now).state, plaintext };
}

/**
 * RatchetDecryptHE on a copy of the state: {@link openHeader} then {@link openBody}. Returns the
 * new state and the plaintext; on any error the input state is untouched and nothing is
 * released. Secrets the input state holds are not wiped: the caller does that once it adopts
 * the new state ({@link wipeReplaced}).
 * @param now Clock (ms) for skipped-key expiry; without it keys neither expire nor get stamped.
 * @throws ParleyError as {@link openHeader} and {@link openBody}.
 */
export function ratchetDecrypt(state: RatchetState, msg: RatchetMessage, ctx: RatchetContext, now?: number): { state: RatchetState; plaintext: Uint8Array } {
  const opened = openHeader(state, msg, ctx, now);
  try {
    const result = openBody(opened, msg, ctx, now);
    if (opened.derived) wipe(opened.mk);
    return result;
  } catch (e) {
    discardOpened(opened, state);
    throw e;
  }
}

/** Wipes what a header stage derived that `live` does not hold (a header stage given up). */
export function discardOpened(opened: OpenedHeader, live: RatchetState): void {
  wipeReplaced(opened.next, live, [opened.mk]);
}

/** The header opened under the next header key: the peer started a new DH ratchet step. */
function openNewRatchetStep(state: RatchetState, header: ReturnType<typeof decodeHeader>, msg: RatchetMessage, now: number | undefined): OpenedHeader {
  if (state.dhSelf === null) throw new ParleyError('AUTH_FAILED', 'message does not authenticate under any key of this session');
  if (header.n > MAX_SKIP || (state.recvChain !== null && header.pn - state.nr > MAX_SKIP)) {
    // Header counters stay out of errors: header encryption exists to hide them (finding 9).
    throw new ParleyError('TOO_MANY_SKIPPED', 'message gap exceeds MAX_SKIP', { details: { max: MAX_SKIP } });
  }
  const s: Mutable<RatchetState> = { ...state };
  try {
    skipMessageKeys(s, header.pn, now);
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
    return advanceChain(s, header.n, msg, now, true);
  } catch (e) {
    // A peer-authentic header with a low-order ratchet key (INVALID_KEY): drop what was derived.
    wipeReplaced(s, state);
    throw e;
  }
}

function openCurrentChain(state: RatchetState, header: ReturnType<typeof decodeHeader>, msg: RatchetMessage, now: number | undefined): OpenedHeader {
  if (state.dhRemote === null || !constantTimeEqual(header.ratchetKey, state.dhRemote)) {
    // The header authenticated under this chain's header key, which only the peer's session
    // state holds, yet names another ratchet key: two copies of the peer's state (a restored
    // backup, a clone) each started this ratchet step. Not a forgery: a fork (docs/threats.md C3 b).
    throw new ParleyError('SESSION_FORK_DETECTED', 'two copies of the peer\'s session state are sending; the session forked');
  }
  if (header.n < state.nr) {
    const i = findChain(state.skipped, state.hkr!);
    const chain = i >= 0 ? state.skipped[i] : undefined;
    const key = chain?.keys.get(header.n);
    if (!key) throw staleCounterError(state.recent, chain, header.n, msg);
    if (isExpired(key, now)) throw expiredError();
    return {
      next: { ...state, skipped: withoutKey(state.skipped, i, header.n), recent: remember(state.recent, header.n, msg.headerNonce) },
      mk: key.mk,
      derived: false,
      expensive: false,
    };
  }
  if (header.n - state.nr > MAX_SKIP) {
    throw new ParleyError('TOO_MANY_SKIPPED', 'message gap exceeds MAX_SKIP', { details: { max: MAX_SKIP } });
  }
  return advanceChain({ ...state }, header.n, msg, now, false);
}

/** Skips to n on the current receiving chain and derives n's key (the body is not opened here). */
function advanceChain(s: Mutable<RatchetState>, n: number, msg: RatchetMessage, now: number | undefined, dhStep: boolean): OpenedHeader {
  const expensive = dhStep || n > s.nr;
  skipMessageKeys(s, n, now);
  const [mk, next] = kdfChain(s.recvChain!);
  s.recvChain = next;
  s.nr = n + 1;
  s.recent = remember(s.recent, n, msg.headerNonce);
  return { next: s, mk, derived: true, expensive };
}

// ---------------------------------------------------------------------------------------------
// Releasing secrets

/**
 * Every secret byte array `state` references: root, chain and header keys, the ratchet private
 * key, skipped message keys. States share arrays until one is adopted, so identity matters.
 */
export function stateSecrets(state: RatchetState): Uint8Array[] {
  return secretsOutside(state, new Set());
}

/**
 * Zero-fills every secret of `old` (and of `extra`: a used message key) that `next` does not
 * reference: chain keys, root-KDF outputs, the old ratchet private key, used, evicted and expired
 * skipped keys. The owner calls it right after adopting `next` (never before: until then other
 * states may still share these arrays), and for header stages it gives up, with the live state
 * as `next`.
 *
 * Skipped chains that both states share as the same object keep all their keys, and a key is
 * only ever held by one chain of a state, so their keys are left out of both sides: an in-order
 * decrypt costs O(chains) here, not O(stored keys). Hence `extra` must not be a key of such a
 * shared chain (a used skipped key never is: its chain is replaced by a copy without it).
 */
export function wipeReplaced(old: RatchetState, next: RatchetState, extra: readonly Uint8Array[] = []): void {
  // Runs after every message: no closures or spreads here (the common states hold no skipped
  // chains, and then this is two short arrays and a small Set).
  const shared = old.skipped.length === 0 || next.skipped.length === 0 ? NO_CHAINS : new Set(old.skipped.filter((chain) => next.skipped.includes(chain)));
  const kept = secretsOutside(next, shared);
  const replaced = secretsOutside(old, shared);
  for (const k of extra) replaced.push(k);
  // A few arrays (no skipped keys) are searched faster than a Set is built.
  if (kept.length <= 16) {
    for (const k of replaced) if (!kept.includes(k)) wipe(k);
    return;
  }
  const keep = new Set(kept);
  for (const k of replaced) if (!keep.has(k)) wipe(k);
}

const NO_CHAINS: ReadonlySet<SkippedChain> = new Set();

/** {@link stateSecrets} without the message keys of the chains in `shared`. */
function secretsOutside(state: RatchetState, shared: ReadonlySet<SkippedChain>): Uint8Array[] {
  const all: Uint8Array[] = [state.rootKey, state.nhks, state.nhkr];
  if (state.dhSelf) all.push(state.dhSelf.privateKey);
  if (state.sendChain) all.push(state.sendChain);
  if (state.recvChain) all.push(state.recvChain);
  if (state.hks) all.push(state.hks);
  if (state.hkr) all.push(state.hkr);
  for (const chain of state.skipped) {
    all.push(chain.hk);
    if (!shared.has(chain)) for (const key of chain.keys.values()) all.push(key.mk);
  }
  return all;
}

/** Number of skipped message keys held (for tests and metrics). */
export function skippedKeyCount(state: RatchetState): number {
  return state.skipped.reduce((sum, chain) => sum + chain.keys.size, 0);
}
