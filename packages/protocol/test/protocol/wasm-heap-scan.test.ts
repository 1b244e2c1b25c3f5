/**
 * Zeroization evidence for the libsodium backends (issue 9, defect 4): no secret that went into
 * libsodium's WASM heap, or came out of it, is still there — neither right after the call that
 * used it returns, nor after the protocol has run to the end (identities, X3DH, messages both
 * ways, skipped keys, a pickle round trip) and everything was disposed. The whole linear memory
 * (`HEAPU8` of the emscripten module) is scanned.
 *
 * libsodium-wrappers copies every argument into the WASM heap and frees it without zeroing, so
 * without the backends' own heap handling (src/crypto/wasm-heap.ts) plaintexts, message keys,
 * header keys and the identity seed stay readable there.
 *
 * What is searched for:
 * - the testing-only copies of the account and session secrets (`@parley/protocol/testing`),
 *   taken before dispose: identity seed and DH key, prekeys, root/chain/header keys, skipped
 *   message keys, and the message key each chain key yields next;
 * - every secret argument and result the active provider sees (a tap on its methods): X25519
 *   private keys and outputs, Ed25519 seeds and their SHA-512 expansion (scalar and nonce
 *   prefix), AEAD keys, AEAD plaintexts in and out, HMAC/HKDF keys and outputs. These are also
 *   searched for right after each call returns, before later allocations can overwrite them;
 * - distinctive 48+ byte plaintexts.
 * Derived values are computed with node:crypto, so the scan itself puts nothing in the heap.
 *
 * A secret counts as found when any 16-byte window of it (at every 8-byte step over its first
 * 256 bytes, every 64 bytes after that, and the last) is present: the allocator writes its free-list links over the first bytes of a freed chunk,
 * so searching only for the whole secret would miss a key that is otherwise intact. Windows with
 * fewer than 8 distinct byte values (the zero padding of a padded plaintext) are skipped: they
 * would match any zeroed memory.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import sodium from 'libsodium-wrappers';
import sodiumSumo from 'libsodium-wrappers-sumo';
import { Account, Session, initCrypto, limits, type BackendName } from '../../src/index.js';
import { unsafeTestingAccountSecrets, unsafeTestingSessionSecrets } from '../../src/testing.js';
import { scratchHeapOf, sodiumSumoWasm, sodiumWasm } from '../../src/crypto/wasm-heap.js';
import { withCounts, type ProviderMethod } from '../helpers/protocol.js';

/** The emscripten module under libsodium-wrappers, as far as this test reads it. */
interface WasmHeap {
  readonly HEAPU8: Uint8Array;
}

/** The heap of the libsodium build a backend uses (`node` runs the AEADs and HMAC on the sumo build). */
function heapOf(backend: 'sodium' | 'node'): WasmHeap {
  const inner = ((backend === 'sodium' ? sodium : sodiumSumo) as unknown as { libsodium?: Partial<WasmHeap> }).libsodium;
  assert.ok(inner?.HEAPU8 instanceof Uint8Array, 'libsodium-wrappers exposes its emscripten module with HEAPU8');
  return inner as WasmHeap;
}

const WINDOW = 16;
const STEP = 8;

function windows(secret: Uint8Array): Buffer[] {
  const last = secret.length - WINDOW;
  if (last < 0) return [];
  const starts = new Set([last]);
  // Past the first bytes (where free-list links land) a long plaintext is sampled more sparsely.
  for (let i = 0; i < last; i += i < 256 ? STEP : 8 * STEP) starts.add(i);
  return [...starts].map((i) => Buffer.from(secret.buffer, secret.byteOffset + i, WINDOW)).filter((w) => new Set(w).size >= 8);
}

interface Secret {
  readonly label: string;
  readonly bytes: Uint8Array;
}

/** Secrets to search for (deduplicated by content) and what the searches found. */
class Scanner {
  readonly #heap: WasmHeap;
  readonly all = new Map<string, Secret>();
  /** Labels of secrets found in the heap right after the call that used them returned. */
  readonly afterCall = new Set<string>();

  constructor(backend: 'sodium' | 'node') {
    this.#heap = heapOf(backend);
  }

  /** Records a secret; returns it (or undefined when too short or too regular to search for). */
  add(label: string, bytes: Uint8Array | null | undefined): Secret | undefined {
    if (!bytes || bytes.length < WINDOW || windows(bytes).length === 0) return undefined;
    const copy = Uint8Array.from(bytes);
    const key = Buffer.from(copy).toString('hex');
    let secret = this.all.get(key);
    if (!secret) {
      secret = { label: `${label} #${this.all.size}`, bytes: copy };
      this.all.set(key, secret);
    }
    return secret;
  }

  /** The testing-only copies of an account's private keys. */
  addAccount(name: string, account: Account): void {
    for (const k of unsafeTestingAccountSecrets(account)) this.add(`${name} account key`, k);
  }

  /** The testing-only copies of a session's secrets, plus the message key each chain key yields next. */
  addSession(name: string, session: Session): void {
    for (const k of unsafeTestingSessionSecrets(session)) {
      this.add(`${name} session secret`, k);
      if (k.length === 32) this.add(`${name} message key of a chain key`, messageKeyOf(k));
    }
  }

  /** Secrets (of `among`, default all) with at least one window in the heap. */
  scan(among: Iterable<Secret> = this.all.values()): string[] {
    // HEAPU8 is read afresh each time: a memory.grow replaces the view. The search stops at the
    // last non-zero byte: the rest of the memory was never used (or is zero, which is the point).
    const heap = this.#heap.HEAPU8;
    const memory = Buffer.from(heap.buffer, heap.byteOffset, usedLength(heap));
    const found: string[] = [];
    for (const { label, bytes } of among) {
      if (windows(bytes).some((w) => memory.includes(w))) found.push(label);
    }
    return found;
  }

  report(found: readonly string[], when: string, of = this.all.size): string {
    const shown = found.slice(0, 20).map((label) => `  ${label}`);
    return `${found.length} of ${of} secrets found in the WASM heap ${when}:\n${shown.join('\n')}`;
  }
}

/** Length of `heap` up to its last non-zero byte (read 8 bytes at a time). */
function usedLength(heap: Uint8Array): number {
  const words = new BigUint64Array(heap.buffer, heap.byteOffset, heap.byteLength >> 3);
  let i = words.length;
  while (i > 0 && words[i - 1] === 0n) i--;
  return Math.min(heap.byteLength, i * 8);
}

/** KDF_CK's message key (ratchet.ts: HMAC-SHA256(ck, 0x01)), computed with node:crypto. */
function messageKeyOf(chainKey: Uint8Array): Uint8Array {
  return new Uint8Array(createHmac('sha256', chainKey).update(Uint8Array.of(0x01)).digest());
}

/** RFC 8032 §5.1.5: SHA-512 of the seed, its clamped scalar and its nonce prefix. */
function expandedSeed(seed: Uint8Array): Uint8Array[] {
  const h = new Uint8Array(createHash('sha512').update(seed).digest());
  const scalar = h.slice(0, 32);
  scalar[0]! &= 248;
  scalar[31]! &= 127;
  scalar[31]! |= 64;
  return [h, scalar, h.slice(32, 64)];
}

/** Every provider method whose arguments or result can carry a secret. */
const TAPPED: readonly ProviderMethod[] = [
  'x25519Generate',
  'x25519PublicKey',
  'x25519',
  'ed25519Generate',
  'ed25519PublicKey',
  'ed25519Sign',
  'xchachaEncrypt',
  'xchachaDecrypt',
  'hmacSha256',
  'hkdfSha256',
];

/** The secret arguments and results of one provider call, labelled. */
function secretsOfCall(method: ProviderMethod, args: readonly unknown[], result: unknown): [string, Uint8Array][] {
  const a = args as readonly Uint8Array[];
  const seed = (s: Uint8Array): [string, Uint8Array][] => [['ed25519 seed', s], ...expandedSeed(s).map((e): [string, Uint8Array] => ['ed25519 seed expansion', e])];
  switch (method) {
    case 'x25519Generate':
      return [['x25519 private key', (result as { privateKey: Uint8Array }).privateKey]];
    case 'ed25519Generate':
      return seed((result as { privateKey: Uint8Array }).privateKey);
    case 'x25519PublicKey':
      return [['x25519 private key', a[0]!]];
    case 'ed25519PublicKey':
    case 'ed25519Sign':
      return seed(a[0]!);
    case 'x25519':
      return [['x25519 private key', a[0]!], ['x25519 shared secret', result as Uint8Array]];
    case 'xchachaEncrypt':
      return [['AEAD key', a[0]!], ['AEAD plaintext in', a[2]!]];
    case 'xchachaDecrypt':
      return [['AEAD key', a[0]!], ['AEAD plaintext out', result as Uint8Array]];
    case 'hmacSha256':
      return [['HMAC key', a[0]!], ['HMAC output', result as Uint8Array]];
    case 'hkdfSha256':
      return [['HKDF input key', a[0]!], ['HKDF salt (root key)', a[1]!], ['HKDF output', result as Uint8Array]];
    default:
      return [];
  }
}

/**
 * Runs `fn` with the provider tapped: each call's secrets are recorded and searched for at once,
 * when the call returns.
 */
function tapped<T>(scanner: Scanner, fn: () => T): T {
  const { result, error } = withCounts(TAPPED, fn, (method, args, out) => {
    const recorded = secretsOfCall(method, args, out).map(([label, bytes]) => scanner.add(`${method}: ${label}`, bytes));
    for (const label of scanner.scan(recorded.filter((s) => s !== undefined))) scanner.afterCall.add(label);
  });
  if (error !== undefined) throw error;
  return result as T;
}

/**
 * A plaintext no other bytes can match by accident: random bytes as hex (24 unless `length`
 * asks for more), then a label used once. No 16-byte window is shared with another plaintext (a
 * common prefix would make every plaintext "found" wherever one of them is).
 */
function distinctive(label: string, length = 0): Uint8Array {
  const random = randomBytes(Math.max(24, Math.ceil((length - label.length - 1) / 2))).toString('hex');
  return new TextEncoder().encode(`${random} ${label}`).subarray(0, Math.max(length, 49 + label.length));
}

/**
 * The whole protocol on the active backend: two accounts, X3DH with a one-time prekey, a round
 * trip, a burst delivered out of order (skipped message keys held, then used), DH ratchet steps
 * both ways, a pickle round trip, then dispose of everything.
 */
function conversation(scanner: Scanner): void {
  const alice = tapped(scanner, () => Account.create());
  const bob = tapped(scanner, () => Account.create());
  tapped(scanner, () => bob.generateOneTimePrekeys(2));
  scanner.addAccount('alice', alice);
  scanner.addAccount('bob', bob);

  const say = (label: string, length?: number): Uint8Array => {
    const p = distinctive(label, length);
    scanner.add(`plaintext ${label}`, p);
    return p;
  };

  const a = tapped(scanner, () => alice.createOutboundSession(bob.bundle()));
  const hello = say('first');
  const first = tapped(scanner, () => a.encrypt(hello));
  const { session: b, plaintext } = tapped(scanner, () => bob.createInboundSession(first));
  assert.deepEqual(plaintext, hello);
  const sessions: Session[] = [a, b];

  const deliver = (from: Session, to: Session, label: string, length?: number): void => {
    scanner.addSession('receiver before decrypt', to);
    const p = say(label, length);
    const wire = tapped(scanner, () => from.encrypt(p));
    assert.deepEqual(tapped(scanner, () => to.decrypt(wire)), p);
  };

  deliver(b, a, 'reply');
  // A burst from Alice delivered last-first: Bob holds skipped message keys, then uses them.
  const burst = [0, 1, 2, 3].map((i) => {
    const p = say(`burst ${i}`);
    return { p, wire: tapped(scanner, () => a.encrypt(p)) };
  });
  tapped(scanner, () => b.decrypt(burst[3]!.wire));
  scanner.addSession('bob holding skipped keys', b);
  for (const i of [0, 2, 1]) assert.deepEqual(tapped(scanner, () => b.decrypt(burst[i]!.wire)), burst[i]!.p);
  for (let i = 0; i < 4; i++) deliver(i % 2 === 0 ? b : a, i % 2 === 0 ? a : b, `ping-pong ${i}`);
  // The largest plaintext: the scratch region grows (a new allocation, the old one freed).
  deliver(a, b, 'largest', limits.MAX_PLAINTEXT_BYTES);

  // A session restored from its pickle carries on with the same keys.
  const restored = tapped(scanner, () => Session.unpickle(b.pickle()));
  sessions.push(restored);
  deliver(a, restored, 'to the restored session');

  for (const s of sessions) scanner.addSession('session before dispose', s);
  scanner.addAccount('alice before dispose', alice);
  scanner.addAccount('bob before dispose', bob);
  for (const s of sessions) s.dispose();
  alice.dispose();
  bob.dispose();
}

/** Runs the conversation on `backend` and asserts that no scan found anything. */
async function assertNothingLeft(backend: 'sodium' | 'node'): Promise<void> {
  await initCrypto(backend satisfies BackendName);
  const scanner = new Scanner(backend);
  conversation(scanner);
  assert.ok(scanner.all.size > 100, `enough secrets searched for (${scanner.all.size})`);
  const afterCall = [...scanner.afterCall];
  const afterDispose = scanner.scan();
  const both = `${scanner.report(afterCall, 'right after the call that used them')}\n${scanner.report(afterDispose, 'after dispose')}`;
  assert.ok(afterCall.length === 0 && afterDispose.length === 0, both);
  // The stack is scrubbed only where calibration found the calls' frames: on this build it must
  // have found them (a few KiB right below the heap), or a later run could leave residue the
  // conversation above happened not to produce.
  const { start, end } = scratchHeapOf(backend === 'sodium' ? sodiumWasm(sodium) : sodiumSumoWasm(sodiumSumo)).stackFootprint;
  assert.ok(end - start >= 1024 && end - start <= 32 * 1024, `stack footprint [${start}, ${end})`);
}

describe('libsodium WASM heap holds no secret once a call returns', () => {
  before(async () => {
    await sodium.ready;
    await sodiumSumo.ready;
  });
  after(() => initCrypto('node'));

  test('sodium backend: plaintexts, message/chain/header keys, DH outputs and private keys are gone', () => assertNothingLeft('sodium'));

  test('sodium backend: the identity seed is gone after Account.dispose()', async () => {
    await initCrypto('sodium');
    const scanner = new Scanner('sodium');
    const account = tapped(scanner, () => Account.create());
    tapped(scanner, () => account.rotateSignedPrekey());
    tapped(scanner, () => account.sign('relayAuth', distinctive('signed payload')));
    // Unpickling rebuilds the identity from its seed: public keys and binding signature again.
    const restored = tapped(scanner, () => Account.unpickle(account.pickle()));
    const [seed] = unsafeTestingAccountSecrets(account);
    assert.ok(seed !== undefined && seed.length === 32);
    const seedForms = [scanner.add('identity seed', seed)!, ...expandedSeed(seed).map((e) => scanner.add('identity seed expansion', e)!)];
    scanner.addAccount('account', account);
    account.dispose();
    restored.dispose();
    const seedFound = scanner.scan(seedForms);
    const afterCall = [...scanner.afterCall];
    const afterDispose = scanner.scan();
    const all = [
      scanner.report(seedFound, 'after dispose (the seed and its expansion)', seedForms.length),
      scanner.report(afterCall, 'right after the call that used them'),
      scanner.report(afterDispose, 'after dispose'),
    ].join('\n');
    assert.ok(seedFound.length === 0 && afterCall.length === 0 && afterDispose.length === 0, all);
  });

  test('node backend: the libsodium-sumo heap (AEADs, HMAC/HKDF, Ed25519 public keys) holds no secret', () => assertNothingLeft('node'));

  test('control: the scan finds what libsodium-wrappers itself leaves in the heap', () => {
    // The wrappers called directly (not through a backend) leave key and plaintext in freed heap
    // memory: the scan must see them, or its "nothing found" above would prove nothing.
    const scanner = new Scanner('sodium');
    const key = new Uint8Array(randomBytes(32));
    const plaintext = distinctive('control');
    sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, null, null, new Uint8Array(randomBytes(24)), key);
    scanner.add('control key', key);
    scanner.add('control plaintext', plaintext);
    assert.equal(scanner.scan().length, 2, 'the scan sees what the raw wrappers leave behind');
  });
});
