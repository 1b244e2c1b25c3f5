/**
 * Field codecs shared by the account and session pickles. Layouts are versioned by their
 * owners (Account / Session); every read is bounds-checked and reports STORAGE_INTEGRITY.
 */
import type { ByteReader, ByteWriter } from './codec.js';
import type { PublicIdentity } from './identity.js';
import { MAX_EVICTED_RANGES, MAX_SKIP, MAX_SKIPPED_CHAINS, MAX_STORED_SKIPPED_KEYS, RECENT_HEADERS } from './limits.js';
import { RECENT_NONCE_BYTES, type EvictedRange, type RatchetState, type RecentHeader, type SkippedChain, type SkippedKey } from './ratchet.js';
import type { KeyPair } from './crypto/index.js';

export function writeIdentity(w: ByteWriter, id: PublicIdentity): void {
  w.fixed(id.signingKey).fixed(id.dhKey).fixed(id.binding);
}

export function readIdentity(r: ByteReader): PublicIdentity {
  return { signingKey: r.fixed(32), dhKey: r.fixed(32), binding: r.fixed(64) };
}

export function writeKeyPair(w: ByteWriter, kp: KeyPair): void {
  w.fixed(kp.privateKey).fixed(kp.publicKey);
}

export function readKeyPair(r: ByteReader): KeyPair {
  return { privateKey: r.fixed(32), publicKey: r.fixed(32) };
}

function writeOptionalKey(w: ByteWriter, key: Uint8Array | null): void {
  if (key) w.u8(1).fixed(key);
  else w.u8(0);
}

function readOptionalKey(r: ByteReader): Uint8Array | null {
  const flag = r.u8();
  if (flag === 0) return null;
  if (flag !== 1) r.fail('invalid presence flag');
  return r.fixed(32);
}

/**
 * The session pickle version `Session.pickle` writes, and the ratchet state layout that goes with
 * it. Session pickles 1 and 2 share the older layout, which {@link readRatchetState} still reads:
 * - v1/v2, per skipped chain: hk, u32 (highest evicted counter + 1, 0 for none), u16 key
 *   count, then u32 n || key per key;
 * - v3, per skipped chain: hk, u8 range count, u32 from || u32 to per evicted range (sorted,
 *   disjoint), u16 key count, then u32 n || key || u64 (skip time ms + 1, 0 for not yet
 *   stamped) per key.
 */
export const SESSION_PICKLE_VERSION = 3;

/** Ratchet state in the layout of session pickle version 3 (inside the session pickle). */
export function writeRatchetState(w: ByteWriter, s: RatchetState): void {
  w.fixed(s.rootKey);
  if (s.dhSelf) {
    w.u8(1);
    writeKeyPair(w, s.dhSelf);
  } else w.u8(0);
  writeOptionalKey(w, s.dhRemote);
  writeOptionalKey(w, s.sendChain);
  writeOptionalKey(w, s.recvChain);
  w.u32(s.ns).u32(s.nr).u32(s.pn);
  writeOptionalKey(w, s.hks);
  writeOptionalKey(w, s.hkr);
  w.fixed(s.nhks).fixed(s.nhkr).u8(s.sendRatchetPending ? 1 : 0);
  w.u8(s.skipped.length);
  for (const chain of s.skipped) {
    w.fixed(chain.hk).u8(chain.evicted.length);
    for (const range of chain.evicted) w.u32(range.from).u32(range.to);
    w.u16(chain.keys.size);
    for (const [n, key] of chain.keys) w.u32(n).fixed(key.mk).u64(key.skippedAt === null ? 0 : key.skippedAt + 1);
  }
  w.u8(s.recent.length);
  for (const rec of s.recent) w.u32(rec.n).fixed(rec.nonce);
}

/**
 * Reads a ratchet state written by session pickle `version` (1, 2 or 3; default the current).
 * Older layouts carry no skip times (keys are stamped at the next decrypt with a clock) and
 * only the highest evicted counter, read as the range 0..that counter: what it answered before.
 */
export function readRatchetState(r: ByteReader, version: number = SESSION_PICKLE_VERSION): RatchetState {
  const rootKey = r.fixed(32);
  const hasSelf = r.u8();
  if (hasSelf > 1) r.fail('invalid presence flag');
  const dhSelf = hasSelf === 1 ? readKeyPair(r) : null;
  const dhRemote = readOptionalKey(r);
  const sendChain = readOptionalKey(r);
  const recvChain = readOptionalKey(r);
  const ns = r.u32();
  const nr = r.u32();
  const pn = r.u32();
  const hks = readOptionalKey(r);
  const hkr = readOptionalKey(r);
  const nhks = r.fixed(32);
  const nhkr = r.fixed(32);
  const pending = r.u8();
  if (pending > 1) r.fail('invalid flag');
  const chainCount = r.u8();
  if (chainCount > MAX_SKIPPED_CHAINS) r.fail('too many skipped chains');
  const skipped: SkippedChain[] = [];
  let total = 0;
  for (let i = 0; i < chainCount; i++) {
    const hk = r.fixed(32);
    const evicted = version >= 3 ? readEvictedRanges(r) : legacyEvicted(r.u32());
    const count = r.u16();
    total += count;
    if (count > MAX_SKIP * 2 || total > MAX_STORED_SKIPPED_KEYS) r.fail('too many skipped keys');
    const keys = new Map<number, SkippedKey>();
    for (let k = 0; k < count; k++) {
      const n = r.u32();
      const mk = r.fixed(32);
      let skippedAt: number | null = null;
      if (version >= 3) {
        const stamp = r.u64();
        skippedAt = stamp === 0 ? null : stamp - 1;
        if (keys.has(n)) r.fail('repeated skipped counter');
      }
      keys.set(n, { mk, skippedAt });
    }
    skipped.push({ hk, keys, evicted });
  }
  const recentCount = r.u8();
  if (recentCount > RECENT_HEADERS) r.fail('too many recent headers');
  const recent: RecentHeader[] = [];
  for (let i = 0; i < recentCount; i++) recent.push({ n: r.u32(), nonce: r.fixed(RECENT_NONCE_BYTES) });
  return { rootKey, dhSelf, dhRemote, sendChain, recvChain, ns, nr, pn, hks, hkr, nhks, nhkr, sendRatchetPending: pending === 1, skipped, recent };
}

function readEvictedRanges(r: ByteReader): EvictedRange[] {
  const count = r.u8();
  if (count > MAX_EVICTED_RANGES) r.fail('too many evicted ranges');
  const ranges: EvictedRange[] = [];
  for (let i = 0; i < count; i++) {
    const from = r.u32();
    const to = r.u32();
    const previous = ranges[ranges.length - 1];
    // Sorted, disjoint and non-adjacent, as the ratchet keeps them.
    if (to < from || (previous && from <= previous.to + 1)) r.fail('invalid evicted range');
    ranges.push({ from, to });
  }
  return ranges;
}

/** v1/v2 stored the highest evicted counter + 1 (0 for none); every lower counter answered "expired". */
function legacyEvicted(highestPlusOne: number): EvictedRange[] {
  return highestPlusOne === 0 ? [] : [{ from: 0, to: highestPlusOne - 1 }];
}
