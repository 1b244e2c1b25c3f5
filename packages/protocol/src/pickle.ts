/**
 * Field codecs shared by the account and session pickles. Layouts are versioned by their
 * owners (Account / Session); every read is bounds-checked and reports STORAGE_INTEGRITY.
 */
import type { ByteReader, ByteWriter } from './codec.js';
import type { PublicIdentity } from './identity.js';
import { MAX_SKIP, MAX_SKIPPED_CHAINS, MAX_STORED_SKIPPED_KEYS, RECENT_HEADERS } from './limits.js';
import { RECENT_NONCE_BYTES, type RatchetState, type RecentHeader, type SkippedChain } from './ratchet.js';
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

/** Ratchet state layout v1 (inside the session pickle). */
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
    w.fixed(chain.hk).u32(chain.evictedMaxN + 1).u16(chain.keys.size);
    for (const [n, mk] of chain.keys) w.u32(n).fixed(mk);
  }
  w.u8(s.recent.length);
  for (const rec of s.recent) w.u32(rec.n).fixed(rec.nonce);
}

export function readRatchetState(r: ByteReader): RatchetState {
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
    const evictedMaxN = r.u32() - 1;
    const count = r.u16();
    total += count;
    if (count > MAX_SKIP * 2 || total > MAX_STORED_SKIPPED_KEYS) r.fail('too many skipped keys');
    const keys = new Map<number, Uint8Array>();
    for (let k = 0; k < count; k++) keys.set(r.u32(), r.fixed(32));
    skipped.push({ hk, keys, evictedMaxN });
  }
  const recentCount = r.u8();
  if (recentCount > RECENT_HEADERS) r.fail('too many recent headers');
  const recent: RecentHeader[] = [];
  for (let i = 0; i < recentCount; i++) recent.push({ n: r.u32(), nonce: r.fixed(RECENT_NONCE_BYTES) });
  return { rootKey, dhSelf, dhRemote, sendChain, recvChain, ns, nr, pn, hks, hkr, nhks, nhkr, sendRatchetPending: pending === 1, skipped, recent };
}
