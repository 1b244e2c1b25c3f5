/**
 * Rate limiting: token buckets keyed by device or address. They live in memory on purpose:
 * they are not durable state (a restart forgiving a flooder for one burst is harmless), and
 * with several nodes each node limits what it serves.
 */

/** A token bucket: `capacity` tokens, refilled at `ratePerMs`. */
export class TokenBucket {
  #tokens: number;
  #last: number;
  constructor(readonly capacity: number, readonly ratePerMs: number, now: number) {
    this.#tokens = capacity;
    this.#last = now;
  }

  /** Takes one token if available. */
  take(now: number): boolean {
    this.#refill(now);
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }

  /** True when the bucket is full again (safe to forget). */
  full(now: number): boolean {
    this.#refill(now);
    return this.#tokens >= this.capacity;
  }

  #refill(now: number): void {
    const elapsed = Math.max(0, now - this.#last);
    this.#tokens = Math.min(this.capacity, this.#tokens + elapsed * this.ratePerMs);
    this.#last = now;
  }
}

/** Buckets per key, forgetting full ones so memory stays bounded by active keys. */
export class KeyedLimiter {
  readonly #buckets = new Map<string, TokenBucket>();
  #lastSweep = 0;
  constructor(readonly capacity: number, readonly perSecond: number, readonly now: () => number) {}

  /** Takes one token for `key`; false when it is rate limited. */
  take(key: string): boolean {
    const now = this.now();
    this.#sweep(now);
    let b = this.#buckets.get(key);
    if (!b) {
      b = new TokenBucket(this.capacity, this.perSecond / 1000, now);
      this.#buckets.set(key, b);
    }
    return b.take(now);
  }

  get size(): number {
    return this.#buckets.size;
  }

  #sweep(now: number): void {
    if (now - this.#lastSweep < 10_000) return;
    this.#lastSweep = now;
    for (const [k, b] of this.#buckets) if (b.full(now)) this.#buckets.delete(k);
  }
}

/** Concurrent connections per address. */
export class ConnectionCounter {
  readonly #counts = new Map<string, number>();
  constructor(readonly max: number) {}

  /** Registers a connection; false (and nothing registered) when the address is at the cap. */
  open(address: string): boolean {
    const n = this.#counts.get(address) ?? 0;
    if (n >= this.max) return false;
    this.#counts.set(address, n + 1);
    return true;
  }

  close(address: string): void {
    const n = (this.#counts.get(address) ?? 1) - 1;
    if (n <= 0) this.#counts.delete(address);
    else this.#counts.set(address, n);
  }
}
