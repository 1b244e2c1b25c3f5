/**
 * Test helpers for the protocol suites in `test/protocol/` and `test/golden/`.
 *
 * Everything here is test-only. Two helpers reach below the public API on purpose and say so
 * in their names:
 * - {@link unsafeDecodeSessionPickle} reads the ratchet state out of a session pickle (header
 *   keys, chain keys), so tests can craft peer-authentic headers (THREATS C8, C11, C15) and
 *   scan snapshots for old keys (C2).
 * - {@link unsafeDeterministicCrypto} replaces the active provider's randomness with a seeded
 *   stream, for the golden vectors. It is never used by `src/`.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  Account,
  ParleyError,
  Session,
  getCrypto,
  initCrypto,
  toHex,
  type BackendName,
  type CryptoProvider,
  type ParleyErrorCode,
  type PublicIdentity,
} from '../../src/index.js';
import { ByteReader } from '../../src/codec.js';
import { concatBytes } from '../../src/bytes.js';
import { contextMessage } from '../../src/contexts.js';
import { readIdentity, readRatchetState } from '../../src/pickle.js';
import type { RatchetState } from '../../src/ratchet.js';
import { MESSAGE_TYPE, WIRE_VERSION, encodeHeader, encodeRatchetPrefix } from '../../src/wire/message.js';
import { hex, readWycheproof, type XdhGroup } from './vectors.js';

export const BACKENDS: readonly BackendName[] = ['node', 'sodium', 'noble'];

/** Scale knob shared with the other suites: `PARLEY_TEST_SCALE=extended` runs larger counts. */
export const EXTENDED = process.env.PARLEY_TEST_SCALE === 'extended';

const encoder = new TextEncoder();
const decoder = new TextDecoder();
export const text = (s: string): Uint8Array => encoder.encode(s);
export const str = (b: Uint8Array): string => decoder.decode(b);

// ---------------------------------------------------------------------------------------------
// Errors

/** Every ParleyError the helpers below saw, so a suite can check what error messages carry. */
export const seenErrors: ParleyError[] = [];

/** 32 bytes or more as hex: key material, never allowed in an error message or its details. */
const LONG_HEX = /[0-9a-fA-F]{64}/;

/**
 * Runs `fn`, which must throw a ParleyError whose code is one of `codes`; returns that code.
 * Also checks that neither the message nor the details carry 32+ bytes of hex.
 */
export function expectError(fn: () => unknown, codes: ParleyErrorCode | readonly ParleyErrorCode[], label = ''): ParleyErrorCode {
  const allowed = typeof codes === 'string' ? [codes] : codes;
  let result: unknown;
  try {
    result = fn();
  } catch (e) {
    if (!(e instanceof ParleyError)) {
      assert.fail(`${label}: expected a ParleyError (${allowed.join('|')}), got ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
    }
    seenErrors.push(e);
    assert.ok(allowed.includes(e.code), `${label}: expected ${allowed.join('|')}, got ${e.code} (${e.message})`);
    const shown = `${e.message} ${JSON.stringify(e.details ?? {})}`;
    assert.ok(!LONG_HEX.test(shown), `${label}: error text carries 32+ bytes of hex: ${shown}`);
    return e.code;
  }
  assert.fail(`${label}: expected ${allowed.join('|')}, but the call returned ${result instanceof Uint8Array ? `${result.length} bytes` : typeof result}`);
}

/** Runs `fn`; anything it throws must be a ParleyError. Returns the result or the error. */
export function onlyParleyErrors<T>(fn: () => T, label = ''): T | ParleyError {
  try {
    return fn();
  } catch (e) {
    if (e instanceof ParleyError) return e;
    assert.fail(`${label}: untyped ${e instanceof Error ? `${e.name}: ${e.message}\n${e.stack}` : String(e)}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Sessions

export interface Pair {
  readonly alice: Account;
  readonly bob: Account;
  /** Alice's (initiator's) session. */
  readonly a: Session;
  /** Bob's (responder's) session. */
  readonly b: Session;
  /** The first (prekey) message Alice sent. */
  readonly prekeyMessage: Uint8Array;
}

/**
 * Alice opens a session to Bob and Bob accepts her first message. With `reply` (default) Bob
 * answers and Alice decrypts, so both sides can send and Alice stops sending prekey messages.
 */
export function establish(options: { reply?: boolean; oneTimePrekey?: boolean } = {}): Pair {
  const alice = Account.create();
  const bob = Account.create();
  if (options.oneTimePrekey !== false) bob.generateOneTimePrekeys(2);
  const a = alice.createOutboundSession(bob.bundle());
  const prekeyMessage = a.encrypt(text('hello bob'));
  const { session: b, plaintext } = bob.createInboundSession(prekeyMessage);
  assert.equal(str(plaintext), 'hello bob');
  if (options.reply !== false) {
    assert.equal(str(a.decrypt(b.encrypt(text('hello alice')))), 'hello alice');
    assert.equal(a.isAwaitingReply, false);
  }
  return { alice, bob, a, b, prekeyMessage };
}

/** Encrypts `count` messages `prefix 0`, `prefix 1`, … and returns them in order. */
export function sendMany(from: Session, count: number, prefix: string): { wire: Uint8Array; plaintext: string }[] {
  const out: { wire: Uint8Array; plaintext: string }[] = [];
  for (let i = 0; i < count; i++) {
    const plaintext = `${prefix} ${i}`;
    out.push({ wire: from.encrypt(text(plaintext)), plaintext });
  }
  return out;
}

/** A copy of `s` made through its pickle (an attacker's snapshot, or an app restart). */
export function clone(s: Session): Session {
  return Session.unpickle(s.pickle());
}

/** SHA-256 hex of an account pickle: equal digests mean an unchanged account. */
export function accountDigest(account: Account): string {
  return toHex(getCrypto().sha256(account.pickle()));
}

/** Flips bit `bit` (0 = most significant of byte 0) of a copy of `bytes`. */
export function flipBit(bytes: Uint8Array, bit: number): Uint8Array {
  const out = bytes.slice();
  out[bit >> 3]! ^= 0x80 >> (bit & 7);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Counting provider calls

export type ProviderMethod = Exclude<keyof CryptoProvider, 'name'>;

/**
 * Runs `fn` with the active provider's `methods` wrapped by counters (and `tap`, if given, seeing
 * every call's arguments and result); the originals are restored afterwards, even on a throw.
 */
export function withCounts<T>(
  methods: readonly ProviderMethod[],
  fn: () => T,
  tap?: (method: ProviderMethod, args: unknown[], result: unknown) => void,
): { result: T | undefined; error: unknown; counts: Record<string, number> } {
  const provider = getCrypto() as unknown as Record<string, (...args: unknown[]) => unknown>;
  const originals = new Map<string, (...args: unknown[]) => unknown>();
  const counts: Record<string, number> = {};
  for (const m of methods) {
    const original = provider[m]!;
    originals.set(m, original);
    counts[m] = 0;
    provider[m] = (...args: unknown[]) => {
      counts[m]!++;
      const result = original.apply(provider, args);
      tap?.(m, args, result);
      return result;
    };
  }
  try {
    return { result: fn(), error: undefined, counts };
  } catch (error) {
    return { result: undefined, error, counts };
  } finally {
    for (const [m, original] of originals) provider[m] = original;
  }
}

// ---------------------------------------------------------------------------------------------
// Hazmat: reading session pickles and crafting peer-authentic messages

export interface DecodedSessionPickle {
  readonly role: 'initiator' | 'responder';
  readonly localIdentity: PublicIdentity;
  readonly remoteIdentity: PublicIdentity;
  readonly baseKey: Uint8Array;
  readonly ad: Uint8Array;
  readonly state: RatchetState;
}

/** Session pickle layout v1 (see `Session.pickle`): the ratchet state with all its secrets. */
export function unsafeDecodeSessionPickle(pickle: Uint8Array): DecodedSessionPickle {
  const r = new ByteReader(pickle, 'STORAGE_INTEGRITY');
  r.u32();
  r.u8();
  const role = r.u8() === 1 ? 'initiator' : 'responder';
  const localIdentity = readIdentity(r);
  const remoteIdentity = readIdentity(r);
  const baseKey = r.fixed(32);
  const ad = r.bytes(256);
  if (r.u8() === 1) r.fixed(9);
  const state = readRatchetState(r);
  r.end();
  return { role, localIdentity, remoteIdentity, baseKey, ad, state };
}

/**
 * A type-0x02 message whose header decrypts under `headerKey` (of the sender's decoded state)
 * and says (ratchetKey, pn, n). The body is sealed under `messageKey` when given (a message the
 * receiver will accept if the header is right), or is random bytes (rejected at the body tag).
 * `ad` overrides the session AD (to test AD binding).
 */
export function unsafeCraftMessage(opts: {
  headerKey: Uint8Array;
  ad: Uint8Array;
  ratchetKey: Uint8Array;
  pn: number;
  n: number;
  messageKey?: Uint8Array;
  plaintext?: Uint8Array;
}): Uint8Array {
  const c = getCrypto();
  const headerAd = concatBytes(opts.ad, new Uint8Array([WIRE_VERSION, MESSAGE_TYPE.message]));
  const headerNonce = c.randomBytes(24);
  const prefix = encodeRatchetPrefix(headerNonce, c.xchachaEncrypt(opts.headerKey, headerNonce, encodeHeader(opts.ratchetKey, opts.pn, opts.n), headerAd));
  const bodyNonce = c.randomBytes(24);
  const padded = new Uint8Array(256);
  const pt = opts.plaintext ?? new Uint8Array(0);
  new DataView(padded.buffer).setUint32(0, pt.length);
  padded.set(pt, 4);
  const body = opts.messageKey
    ? c.xchachaEncrypt(opts.messageKey, bodyNonce, padded, concatBytes(opts.ad, prefix))
    : c.randomBytes(256 + 16);
  return concatBytes(prefix, bodyNonce, body);
}

/** KDF_CK's message key for the chain key `chainKey` (HMAC-SHA256(ck, 0x01), ratchet.ts). */
export function unsafeMessageKey(chainKey: Uint8Array): Uint8Array {
  return getCrypto().hmacSha256(chainKey, new Uint8Array([0x01]));
}

// ---------------------------------------------------------------------------------------------
// Identities and low-order keys

/** A fresh Ed25519 key the test controls, and a {@link PublicIdentity} for any X25519 key. */
export function testSigner(): { seed: Uint8Array; signingKey: Uint8Array; identityFor(dhKey: Uint8Array): PublicIdentity } {
  const c = getCrypto();
  const { privateKey: seed, publicKey: signingKey } = c.ed25519Generate();
  return {
    seed,
    signingKey,
    identityFor: (dhKey) => ({ signingKey, dhKey, binding: c.ed25519Sign(seed, contextMessage('identityBinding', dhKey)) }),
  };
}

/** The Ed25519 seed and X25519 identity private key of an account (pickle bytes 5..37, 37..69). */
export function unsafeAccountPrivateKeys(account: Account): { signingSeed: Uint8Array; dhPrivate: Uint8Array } {
  const p = account.pickle();
  return { signingSeed: p.slice(5, 37), dhPrivate: p.slice(37, 69) };
}

/**
 * The distinct public keys of the Wycheproof X25519 cases flagged `ZeroSharedSecret` (31 cases
 * over 14 distinct points: each low-order point appears with several private keys, and with
 * and without the high bit set). Every clamped scalar maps them to the all-zero output.
 */
export function zeroSharedSecretPublicKeys(): { tcIds: number[]; publicKey: Uint8Array }[] {
  const file = readWycheproof<XdhGroup>('x25519_test.json');
  const byKey = new Map<string, number[]>();
  for (const group of file.testGroups) {
    for (const t of group.tests) {
      if (!t.flags.includes('ZeroSharedSecret')) continue;
      byKey.set(t.public, [...(byKey.get(t.public) ?? []), t.tcId]);
    }
  }
  const cases = [...byKey].map(([publicKey, tcIds]) => ({ tcIds, publicKey: hex(publicKey) }));
  assert.equal(cases.reduce((n, c) => n + c.tcIds.length, 0), 31, 'expected the 31 ZeroSharedSecret cases');
  return cases;
}

// ---------------------------------------------------------------------------------------------
// Deterministic randomness (golden vectors only)

/** A seeded byte stream: SHA-256(seed || label || counter) blocks. Same on every backend. */
export class SeededStream {
  #counter = 0;
  #buffer: Uint8Array = new Uint8Array(0);
  readonly #seed: Uint8Array;

  constructor(seed: string) {
    this.#seed = text(seed);
  }

  next(length: number): Uint8Array {
    while (this.#buffer.length < length) {
      const counter = new Uint8Array(8);
      new DataView(counter.buffer).setBigUint64(0, BigInt(this.#counter++));
      const block = createHash('sha256').update(text('parley/test/seeded-stream')).update(this.#seed).update(counter).digest();
      this.#buffer = concatBytes(this.#buffer, new Uint8Array(block));
    }
    const out = this.#buffer.slice(0, length);
    this.#buffer = this.#buffer.slice(length);
    return out;
  }
}

/**
 * Runs `fn` with the active provider's `randomBytes`, `x25519Generate` and `ed25519Generate`
 * drawing from a {@link SeededStream}, then restores them. Private keys are 32 stream bytes
 * (X25519 clamps them; Ed25519 keys are seeds), so the output is identical on every backend.
 */
export function unsafeDeterministicCrypto<T>(seed: string, fn: () => T): T {
  const provider = getCrypto() as unknown as Record<string, unknown> & CryptoProvider;
  const saved = { randomBytes: provider.randomBytes, x25519Generate: provider.x25519Generate, ed25519Generate: provider.ed25519Generate };
  const stream = new SeededStream(seed);
  provider.randomBytes = (length: number) => stream.next(length);
  provider.x25519Generate = () => {
    const privateKey = stream.next(32);
    return { privateKey, publicKey: provider.x25519PublicKey(privateKey) };
  };
  provider.ed25519Generate = () => {
    const privateKey = stream.next(32);
    return { privateKey, publicKey: provider.ed25519PublicKey(privateKey) };
  };
  try {
    return fn();
  } finally {
    Object.assign(provider, saved);
  }
}

/** Activates each backend in turn (the last stays active). */
export async function forEachBackend(fn: (name: BackendName) => void | Promise<void>): Promise<void> {
  for (const name of BACKENDS) {
    await initCrypto(name);
    await fn(name);
  }
}

/** A small seeded PRNG (mulberry32) for scripted schedules outside fast-check. */
export function seededRandom(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** True if `needle` occurs anywhere in `haystack`. */
export function containsBytes(haystack: Uint8Array, needle: Uint8Array): boolean {
  return Buffer.from(haystack.buffer, haystack.byteOffset, haystack.byteLength).indexOf(Buffer.from(needle.buffer, needle.byteOffset, needle.byteLength)) >= 0;
}
