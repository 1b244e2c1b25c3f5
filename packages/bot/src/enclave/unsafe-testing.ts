/**
 * `unsafeTestingExposeKeys`: a TEST-ONLY hook that lets a leak test learn the enclave's secret
 * bytes, so it can scan the host for them. Runs only inside the enclave, and only when the host
 * passed a `MessagePort` in `init` (createBot option `unsafeTestingExposeKeys`).
 *
 * The secrets never go through the host: they are posted on the test's own port, and only when
 * the test asks (`'dump'`), so a test can take its host heap snapshot first and only then receive
 * them. The tap collects, at every commit, the private keys in the account record (identity,
 * signed and one-time prekeys) and in every session record (root, chain, header and skipped
 * message keys, ratchet private key), plus the sealing secret and sealing key. Keys that were
 * replaced are kept, so old chain keys are scanned for too.
 */
import type { MessagePort } from 'node:worker_threads';
import { toHex } from '@parley/protocol';
import type { SealedKeyValueStore } from './sealed-store.js';

const ACCOUNT_MAGIC = 0x50414343;
const SESSION_MAGIC = 0x50534553;

class R {
  o = 0;
  constructor(readonly b: Uint8Array) {}
  u8(): number {
    if (this.o + 1 > this.b.length) throw new RangeError('short');
    return this.b[this.o++]!;
  }
  u16(): number {
    return (this.u8() << 8) | this.u8();
  }
  u32(): number {
    return ((this.u8() << 24) >>> 0) + (this.u8() << 16) + (this.u8() << 8) + this.u8();
  }
  take(n: number): Uint8Array {
    if (this.o + n > this.b.length) throw new RangeError('short');
    this.o += n;
    return this.b.slice(this.o - n, this.o);
  }
  opt(): Uint8Array | null {
    return this.u8() === 1 ? this.take(32) : null;
  }
}

function accountSecrets(b: Uint8Array): Uint8Array[] {
  const r = new R(b);
  if (r.u32() !== ACCOUNT_MAGIC) return [];
  r.u8();
  const out = [r.take(32), r.take(32)];
  r.u32();
  for (let i = r.u8(); i > 0; i--) {
    r.u32();
    r.take(8 + 64);
    out.push(r.take(32));
    r.take(32);
  }
  for (let i = r.u32(); i > 0; i--) {
    r.u32();
    r.u8();
    out.push(r.take(32));
    r.take(32);
  }
  return out;
}

function sessionSecrets(b: Uint8Array): Uint8Array[] {
  const r = new R(b);
  if (r.u32() !== SESSION_MAGIC) return [];
  r.u8();
  r.u8();
  r.take(128 * 2 + 32);
  r.take(r.u32());
  if (r.u8() === 1) r.take(4 + 1 + 4);
  const out: Uint8Array[] = [r.take(32)];
  if (r.u8() === 1) {
    out.push(r.take(32));
    r.take(32);
  }
  r.opt();
  for (const k of [r.opt(), r.opt()]) if (k) out.push(k);
  r.take(12);
  for (const k of [r.opt(), r.opt()]) if (k) out.push(k);
  out.push(r.take(32), r.take(32));
  r.u8();
  for (let c = r.u8(); c > 0; c--) {
    out.push(r.take(32));
    r.u32();
    for (let k = r.u16(); k > 0; k--) {
      r.u32();
      out.push(r.take(32));
    }
  }
  return out;
}

export class TestingKeyTap {
  readonly #port: MessagePort;
  readonly #secrets = new Map<string, Uint8Array>();
  #parsedAccounts = 0;
  #parsedSessions = 0;
  #parseFailures = 0;

  constructor(port: MessagePort, initial: Uint8Array[]) {
    this.#port = port;
    for (const s of initial) this.#add(s);
    port.on('message', (m: unknown) => {
      if (m !== 'dump') return;
      port.postMessage({
        secrets: [...this.#secrets.values()],
        parsedAccounts: this.#parsedAccounts,
        parsedSessions: this.#parsedSessions,
        parseFailures: this.#parseFailures,
      });
    });
    port.unref();
  }

  #add(s: Uint8Array): void {
    if (s.some((x) => x !== 0)) this.#secrets.set(toHex(s), s.slice());
  }

  /** Collects the secrets in the store's records now, and in every record committed later. */
  attach(store: SealedKeyValueStore): void {
    this.#observe(store.unsafeTestingEntries());
    store.unsafeTestingOnCommit = (entries) => this.#observe(entries);
  }

  #observe(entries: Iterable<[string, Uint8Array]>): void {
    for (const [key, value] of entries) {
      try {
        if (key === 'account') {
          for (const s of accountSecrets(value)) this.#add(s);
          this.#parsedAccounts++;
        } else if (key.startsWith('session/')) {
          for (const s of sessionSecrets(value)) this.#add(s);
          this.#parsedSessions++;
        }
      } catch {
        this.#parseFailures++;
      }
    }
  }
}
