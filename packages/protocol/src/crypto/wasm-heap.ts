/**
 * Calls into libsodium's WASM that leave no secret behind in its linear memory.
 *
 * libsodium-wrappers copies every argument into the WASM heap with `_malloc`, calls the C
 * function, copies the result out and `_free`s the copies without zeroing them, so keys, seeds
 * and plaintexts stay readable in `HEAPU8` until some later allocation happens to overwrite them
 * (issue 9, defect 4). libsodium itself wipes most of its internal state (`sodium_memzero`), but
 * not every stack local (see {@link ScratchHeap.learnStack}). So the backends call the raw
 * exports of the emscripten module (`sodium.libsodium`, which the wrappers keep at run time but
 * leave out of their typings) through {@link ScratchHeap}: copy in, call, copy out, then zero
 * every heap byte written and the stack bytes the calls use, in a `finally`, so a failing call
 * (a bad tag) is wiped too.
 *
 * One scratch region per module is reused for every call instead of a `_malloc`/`_free` pair
 * per argument: nothing is freed with data in it, and the calls are cheaper than the wrappers'.
 * The region grows to the largest call seen (a maximum-size message: about twice its size).
 *
 * Arguments are passed as emscripten passes them to this build (no WASM BigInt): C
 * `unsigned long long` lengths become two i32 parameters, low word then high word; a null
 * pointer is 0.
 */
import { ParleyError } from '../errors.js';
import { webRandomBytes } from './common.js';

/** The emscripten exports of libsodium (standard build) that the backends call. */
export interface SodiumWasm {
  /** The linear memory; replaced by a new view when the memory grows, so never cached. */
  readonly HEAPU8: Uint8Array;
  _malloc(size: number): number;
  _free(pointer: number): void;
  // (c, clen_p, m, mlen, ad, adlen, nsec, npub, k)
  _crypto_aead_xchacha20poly1305_ietf_encrypt(c: number, clenP: number, m: number, mlenLo: number, mlenHi: number, ad: number, adlenLo: number, adlenHi: number, nsec: number, npub: number, k: number): number;
  _crypto_aead_chacha20poly1305_ietf_encrypt(c: number, clenP: number, m: number, mlenLo: number, mlenHi: number, ad: number, adlenLo: number, adlenHi: number, nsec: number, npub: number, k: number): number;
  // (m, mlen_p, nsec, c, clen, ad, adlen, npub, k)
  _crypto_aead_xchacha20poly1305_ietf_decrypt(m: number, mlenP: number, nsec: number, c: number, clenLo: number, clenHi: number, ad: number, adlenLo: number, adlenHi: number, npub: number, k: number): number;
  _crypto_aead_chacha20poly1305_ietf_decrypt(m: number, mlenP: number, nsec: number, c: number, clenLo: number, clenHi: number, ad: number, adlenLo: number, adlenHi: number, npub: number, k: number): number;
  _crypto_scalarmult_base(q: number, n: number): number;
  _crypto_scalarmult(q: number, n: number, p: number): number;
  _crypto_sign_seed_keypair(pk: number, sk: number, seed: number): number;
  _crypto_sign_detached(sig: number, siglenP: number, m: number, mlenLo: number, mlenHi: number, sk: number): number;
  _crypto_sign_verify_detached(sig: number, m: number, mlenLo: number, mlenHi: number, pk: number): number;
}

/** The sumo build's extra exports that the node backend calls (HMAC-SHA256). */
export interface SodiumSumoWasm extends SodiumWasm {
  _crypto_auth_hmacsha256(out: number, input: number, inlenLo: number, inlenHi: number, k: number): number;
  _crypto_auth_hmacsha256_statebytes(): number;
  _crypto_auth_hmacsha256_init(state: number, key: number, keylen: number): number;
  _crypto_auth_hmacsha256_update(state: number, input: number, inlenLo: number, inlenHi: number): number;
  _crypto_auth_hmacsha256_final(state: number, out: number): number;
}

const STANDARD_EXPORTS = [
  '_malloc',
  '_free',
  '_crypto_aead_xchacha20poly1305_ietf_encrypt',
  '_crypto_aead_xchacha20poly1305_ietf_decrypt',
  '_crypto_aead_chacha20poly1305_ietf_encrypt',
  '_crypto_aead_chacha20poly1305_ietf_decrypt',
  '_crypto_scalarmult_base',
  '_crypto_scalarmult',
  '_crypto_sign_seed_keypair',
  '_crypto_sign_detached',
  '_crypto_sign_verify_detached',
] as const;

const SUMO_EXPORTS = [
  ...STANDARD_EXPORTS,
  '_crypto_auth_hmacsha256',
  '_crypto_auth_hmacsha256_statebytes',
  '_crypto_auth_hmacsha256_init',
  '_crypto_auth_hmacsha256_update',
  '_crypto_auth_hmacsha256_final',
] as const;

/**
 * The emscripten module behind a ready libsodium-wrappers object. Throws `INTERNAL` when a
 * different wrappers version no longer exposes it: running on the leaky wrappers silently would
 * undo what this module is for.
 */
export function sodiumWasm(s: object): SodiumWasm {
  return moduleOf(s, STANDARD_EXPORTS) as unknown as SodiumWasm;
}

/** {@link sodiumWasm} for libsodium-wrappers-sumo, with the HMAC exports. */
export function sodiumSumoWasm(s: object): SodiumSumoWasm {
  return moduleOf(s, SUMO_EXPORTS) as unknown as SodiumSumoWasm;
}

function moduleOf(s: object, names: readonly string[]): Record<string, unknown> {
  const m = (s as { libsodium?: Record<string, unknown> }).libsodium;
  const missing = m === undefined ? ['libsodium'] : names.filter((n) => typeof m[n] !== 'function');
  if (m === undefined || missing.length > 0 || !(m['HEAPU8'] instanceof Uint8Array)) {
    throw new ParleyError('INTERNAL', 'libsodium-wrappers does not expose the WASM exports the crypto backend needs', {
      details: { missing: missing.join(',') || 'HEAPU8' },
    });
  }
  return m;
}

/** Alignment of every scratch slot: enough for the HMAC state's 64-bit fields. */
const ALIGN = 16;
/** Also the most a calibration exercise may use: it must run without a `_malloc`. */
const INITIAL_CAPACITY = 4096;
/**
 * While walking down from the highest stack byte a calibration changed, a run of this many
 * unchanged bytes ends the stack frames (frames have padding and unwritten arrays, but not of
 * this size; the data section lies much further down).
 */
const STACK_GAP = 2048;
/** A calibrated stack footprint larger than this is not believed (nor zeroed after each call). */
const MAX_STACK_FOOTPRINT = 32 * 1024;

/** The slots one call takes: what {@link ScratchHeap.run} must reserve before the call starts. */
export function slotsSize(...lengths: number[]): number {
  let total = 0;
  for (const n of lengths) total += align(n);
  return total;
}

function align(n: number): number {
  return (n + ALIGN - 1) & ~(ALIGN - 1);
}

/** Scratch slots handed to one {@link ScratchHeap.run} body. */
export interface Scratch {
  /** Copies `bytes` into a new slot; returns its address. */
  put(bytes: Uint8Array): number;
  /** A new slot of `length` bytes, zero-filled (the region is zero whenever no call runs). */
  reserve(length: number): number;
  /** A copy (in JS memory) of `length` bytes at `address`. */
  read(address: number, length: number): Uint8Array;
}

/**
 * A region of one WASM module's heap that holds the arguments and results of one call at a
 * time and is zero again whenever no call is running; likewise the part of the WASM stack the
 * calls write (see {@link ScratchHeap.learnStack}).
 */
export class ScratchHeap<W extends SodiumWasm = SodiumWasm> implements Scratch {
  readonly wasm: W;
  /** Start of the region (aligned), 0 before the first call. */
  #base = 0;
  /** What `_malloc` returned, for `_free`. */
  #allocation = 0;
  #capacity = 0;
  /** Bytes handed out in the running call; all of them are zeroed when it ends. */
  #used = 0;
  #running = false;
  /** The stack bytes the calls write, [start, end); zeroed after every call. Empty until learned. */
  #stackStart = 0;
  #stackEnd = 0;

  constructor(wasm: W) {
    this.wasm = wasm;
  }

  /**
   * Runs `body` with `size` bytes of scratch slots (see {@link slotsSize}) and zeroes them
   * afterwards, whether `body` returns or throws.
   */
  run<T>(size: number, body: (scratch: Scratch) => T): T {
    // The calls are synchronous and never call back into JS, so a nested run is a bug here.
    if (this.#running) throw new ParleyError('INTERNAL', 'nested libsodium scratch call');
    this.#ensure(size);
    this.#running = true;
    try {
      return body(this);
    } finally {
      const heap = this.wasm.HEAPU8;
      heap.fill(0, this.#base, this.#base + this.#used);
      heap.fill(0, this.#stackStart, this.#stackEnd);
      this.#used = 0;
      this.#running = false;
    }
  }

  /** The stack bytes zeroed after each call, [start, end); empty before {@link learnStack}. */
  get stackFootprint(): { readonly start: number; readonly end: number } {
    return { start: this.#stackStart, end: this.#stackEnd };
  }

  /**
   * Learns which bytes of the WASM stack the calls write, so that every later {@link run}
   * zeroes them too.
   *
   * libsodium keeps some secrets in stack locals that it does not wipe: the ChaCha20 code
   * decrypts a last partial block in a 64-byte stack buffer (up to 63 bytes of plaintext stay
   * there), and the curve code leaves field elements of secret scalars behind. The emscripten
   * module exports no stack pointer, so the footprint is found by watching: `exercise` makes
   * every call, on every code path, with random (non-secret) inputs, twice, and the bytes
   * below the scratch region that changed are the calls' stack frames. Emscripten lays out
   * static data, then the stack (growing down from its top), then the heap, and every call from
   * JS starts at the top of the stack, so the frames are the highest block of changed bytes
   * below the heap; data the calls wrote (none, for these functions) would be further down and
   * is left out by {@link STACK_GAP}. The footprint is rounded out to 16 bytes: the stack top
   * is 16-aligned, so rounding up never reaches the heap.
   *
   * Zeroing it after a call is safe: no C code runs then, so everything below the top of the
   * stack is dead. A footprint beyond {@link MAX_STACK_FOOTPRINT} means the layout is not the
   * one described here; it is then not used (the scratch region is still zeroed).
   */
  learnStack(exercise: () => void): void {
    // The scratch region must exist first: `_malloc` during the exercise would change heap
    // metadata and widen what looks like stack.
    this.#ensure(INITIAL_CAPACITY);
    const limit = this.#allocation;
    let start = this.#stackEnd > this.#stackStart ? this.#stackStart : Number.POSITIVE_INFINITY;
    let end = this.#stackEnd;
    for (let round = 0; round < 2; round++) {
      const before = this.wasm.HEAPU8.slice(0, limit);
      exercise();
      const after = this.wasm.HEAPU8;
      let top = limit - 1;
      while (top >= 0 && after[top] === before[top]) top--;
      if (top < 0) continue;
      let low = top;
      for (let i = top - 1; i >= 0 && low - i <= STACK_GAP; i--) if (after[i] !== before[i]) low = i;
      start = Math.min(start, low & ~(ALIGN - 1));
      end = Math.max(end, align(top + 1));
    }
    if (end > start && end - start <= MAX_STACK_FOOTPRINT) {
      this.#stackStart = start;
      this.#stackEnd = end;
      this.wasm.HEAPU8.fill(0, start, end);
    }
  }

  put(bytes: Uint8Array): number {
    const address = this.reserve(bytes.length);
    this.wasm.HEAPU8.set(bytes, address);
    return address;
  }

  reserve(length: number): number {
    const address = this.#base + this.#used;
    const next = this.#used + align(length);
    if (next > this.#capacity) throw new ParleyError('INTERNAL', 'libsodium scratch slots exceed the reserved size');
    this.#used = next;
    return address;
  }

  read(address: number, length: number): Uint8Array {
    return this.wasm.HEAPU8.slice(address, address + length);
  }

  #ensure(size: number): void {
    if (size <= this.#capacity) return;
    const capacity = Math.max(align(size), this.#capacity * 2, INITIAL_CAPACITY);
    // `_malloc` may grow the memory, which replaces HEAPU8: addresses stay valid, views do not,
    // which is why every access above reads `this.wasm.HEAPU8` afresh.
    const allocation = this.wasm._malloc(capacity + ALIGN);
    if (allocation === 0) {
      throw new ParleyError('INTERNAL', 'libsodium could not allocate scratch memory', { details: { bytes: capacity } });
    }
    // The old region is all zero (every run ends by zeroing what it used), so it is freed as is.
    if (this.#allocation !== 0) this.wasm._free(this.#allocation);
    this.#allocation = allocation;
    this.#base = align(allocation);
    this.#capacity = capacity;
    // `_malloc` does not clear: the new region may hold what an earlier user of that memory
    // (the wrappers, for one) freed there. Zero it once, so it is zero between runs from now on.
    this.wasm.HEAPU8.fill(0, this.#base, this.#base + capacity);
  }
}

/** One scratch region per module, shared by every backend built on it. */
const heaps = new WeakMap<SodiumWasm, ScratchHeap<SodiumWasm>>();

export function scratchHeapOf<W extends SodiumWasm>(wasm: W): ScratchHeap<W> {
  let heap = heaps.get(wasm);
  if (!heap) {
    heap = new ScratchHeap<SodiumWasm>(wasm);
    heaps.set(wasm, heap);
  }
  return heap as ScratchHeap<W>;
}

/** The libsodium operations the backends need, each leaving its scratch slots zeroed. */
export interface WasmCalls {
  /** ChaCha20-Poly1305 (IETF) or its XChaCha variant; returns ciphertext || tag. Sizes checked by the caller. */
  aeadEncrypt(kind: 'xchacha' | 'chacha', key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, ad: Uint8Array): Uint8Array;
  /** The plaintext, or undefined when the tag does not verify. `ciphertext` is at least 16 bytes. */
  aeadDecrypt(kind: 'xchacha' | 'chacha', key: Uint8Array, nonce: Uint8Array, ciphertext: Uint8Array, ad: Uint8Array): Uint8Array | undefined;
  /** X25519 public key of a 32-byte private key. */
  scalarmultBase(privateKey: Uint8Array): Uint8Array;
  /** X25519; undefined when libsodium refuses the result (all zero: a low-order public key). */
  scalarmult(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array | undefined;
  /** Ed25519 public key of a 32-byte seed. */
  ed25519PublicKey(seed: Uint8Array): Uint8Array;
  /** Ed25519 signature; the 64-byte secret key is expanded from the seed inside the heap and wiped there. */
  ed25519Sign(seed: Uint8Array, message: Uint8Array): Uint8Array;
  /** libsodium's strict verification; public inputs, so only the scratch reuse matters here. */
  ed25519Verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean;
}

/** {@link WasmCalls} on `wasm`, with the stack footprint of every call learned. */
export function wasmCalls(wasm: SodiumWasm): WasmCalls {
  const heap = scratchHeapOf(wasm);
  const calls = rawCalls(heap);
  heap.learnStack(() => exerciseCalls(calls));
  return calls;
}

/**
 * Every call on every code path (AEAD with and without a partial last block, with and without
 * AD, a failing tag; X25519 with a refused low-order point; signing and verifying, failing
 * too), on random inputs, for {@link ScratchHeap.learnStack}. Sizes stay within the initial
 * scratch capacity.
 */
function exerciseCalls(calls: WasmCalls): void {
  const r = webRandomBytes;
  for (const kind of ['xchacha', 'chacha'] as const) {
    const key = r(32);
    const nonce = r(kind === 'xchacha' ? 24 : 12);
    for (const length of [0, 1, 63, 64, 65, 200]) {
      for (const ad of [new Uint8Array(0), r(40)]) {
        const sealed = calls.aeadEncrypt(kind, key, nonce, r(length), ad);
        calls.aeadDecrypt(kind, key, nonce, sealed, ad);
        sealed[0]! ^= 1;
        calls.aeadDecrypt(kind, key, nonce, sealed, ad);
      }
    }
  }
  const privateKey = r(32);
  calls.scalarmult(privateKey, calls.scalarmultBase(r(32)));
  calls.scalarmult(privateKey, new Uint8Array(32));
  const seed = r(32);
  const publicKey = calls.ed25519PublicKey(seed);
  for (const length of [0, 1, 200]) {
    const message = r(length);
    const signature = calls.ed25519Sign(seed, message);
    calls.ed25519Verify(publicKey, message, signature);
    signature[0]! ^= 1;
    calls.ed25519Verify(publicKey, message, signature);
  }
}

function rawCalls(heap: ScratchHeap): WasmCalls {
  const w = heap.wasm;
  return {
    aeadEncrypt(kind, key, nonce, plaintext, ad) {
      const outLength = plaintext.length + 16;
      return heap.run(slotsSize(key.length, nonce.length, plaintext.length, ad.length, outLength), (h) => {
        const k = h.put(key);
        const n = h.put(nonce);
        const m = h.put(plaintext);
        const a = h.put(ad);
        const c = h.reserve(outLength);
        const encrypt = kind === 'xchacha' ? w._crypto_aead_xchacha20poly1305_ietf_encrypt : w._crypto_aead_chacha20poly1305_ietf_encrypt;
        if (encrypt(c, 0, m, plaintext.length, 0, a, ad.length, 0, 0, n, k) !== 0) {
          throw new ParleyError('INTERNAL', 'libsodium AEAD encryption failed');
        }
        return h.read(c, outLength);
      });
    },

    aeadDecrypt(kind, key, nonce, ciphertext, ad) {
      const outLength = ciphertext.length - 16;
      return heap.run(slotsSize(key.length, nonce.length, ciphertext.length, ad.length, outLength), (h) => {
        const k = h.put(key);
        const n = h.put(nonce);
        const c = h.put(ciphertext);
        const a = h.put(ad);
        const m = h.reserve(outLength);
        const decrypt = kind === 'xchacha' ? w._crypto_aead_xchacha20poly1305_ietf_decrypt : w._crypto_aead_chacha20poly1305_ietf_decrypt;
        // libsodium checks the tag (in constant time) before writing any plaintext.
        if (decrypt(m, 0, 0, c, ciphertext.length, 0, a, ad.length, 0, n, k) !== 0) return undefined;
        return h.read(m, outLength);
      });
    },

    scalarmultBase(privateKey) {
      return heap.run(slotsSize(32, 32), (h) => {
        const n = h.put(privateKey);
        const q = h.reserve(32);
        if (w._crypto_scalarmult_base(q, n) !== 0) throw new ParleyError('INTERNAL', 'libsodium X25519 base-point multiplication failed');
        return h.read(q, 32);
      });
    },

    scalarmult(privateKey, publicKey) {
      return heap.run(slotsSize(32, 32, 32), (h) => {
        const n = h.put(privateKey);
        const p = h.put(publicKey);
        const q = h.reserve(32);
        return w._crypto_scalarmult(q, n, p) === 0 ? h.read(q, 32) : undefined;
      });
    },

    ed25519PublicKey(seed) {
      return heap.run(slotsSize(32, 32, 64), (h) => {
        const s = h.put(seed);
        const pk = h.reserve(32);
        const sk = h.reserve(64);
        if (w._crypto_sign_seed_keypair(pk, sk, s) !== 0) throw new ParleyError('INTERNAL', 'libsodium Ed25519 key derivation failed');
        return h.read(pk, 32);
      });
    },

    ed25519Sign(seed, message) {
      return heap.run(slotsSize(32, 32, 64, message.length, 64), (h) => {
        const s = h.put(seed);
        const pk = h.reserve(32);
        const sk = h.reserve(64);
        const m = h.put(message);
        const sig = h.reserve(64);
        if (w._crypto_sign_seed_keypair(pk, sk, s) !== 0 || w._crypto_sign_detached(sig, 0, m, message.length, 0, sk) !== 0) {
          throw new ParleyError('INTERNAL', 'libsodium Ed25519 signing failed');
        }
        return h.read(sig, 64);
      });
    },

    ed25519Verify(publicKey, message, signature) {
      return heap.run(slotsSize(publicKey.length, message.length, signature.length), (h) => {
        const pk = h.put(publicKey);
        const m = h.put(message);
        const sig = h.put(signature);
        return w._crypto_sign_verify_detached(sig, m, message.length, 0, pk) === 0;
      });
    },
  };
}

/**
 * HMAC-SHA256 (any key length) on the sumo build, leaving no key, state or output in the heap
 * or on the stack.
 */
export function wasmHmacSha256(wasm: SodiumSumoWasm): (key: Uint8Array, data: Uint8Array) => Uint8Array {
  const heap = scratchHeapOf(wasm);
  const hmac = rawHmac(heap);
  // Both paths (one-shot for 32-byte keys; init/update/final, with keys hashed when over 64 bytes).
  heap.learnStack(() => {
    for (const keyLength of [32, 0, 16, 100]) for (const dataLength of [0, 1, 64, 200]) hmac(webRandomBytes(keyLength), webRandomBytes(dataLength));
  });
  return hmac;
}

function rawHmac(heap: ScratchHeap<SodiumSumoWasm>): (key: Uint8Array, data: Uint8Array) => Uint8Array {
  const w = heap.wasm;
  const stateBytes = w._crypto_auth_hmacsha256_statebytes();
  return (key, data) =>
    heap.run(slotsSize(key.length, data.length, 32, stateBytes), (h) => {
      const k = h.put(key);
      const d = h.put(data);
      const out = h.reserve(32);
      // The one-shot call takes exactly 32-byte keys (the ratchet's chain keys); other lengths
      // (HKDF-Extract's salt) go through init/update/final, whose state is a scratch slot too.
      const oneShot = key.length === 32;
      const state = oneShot ? 0 : h.reserve(stateBytes);
      const ok =
        oneShot
          ? w._crypto_auth_hmacsha256(out, d, data.length, 0, k) === 0
          : w._crypto_auth_hmacsha256_init(state, k, key.length) === 0 &&
            w._crypto_auth_hmacsha256_update(state, d, data.length, 0) === 0 &&
            w._crypto_auth_hmacsha256_final(state, out) === 0;
      if (!ok) throw new ParleyError('INTERNAL', 'libsodium HMAC-SHA256 failed');
      return h.read(out, 32);
    });
}
