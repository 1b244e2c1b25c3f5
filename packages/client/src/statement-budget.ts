/**
 * How often an incoming message may make this device fetch its sender's published statements
 * (certificate, attestation) from the relay. Those fetches share the relay's per-device budget
 * with the bundle fetches `send` needs (10 a minute by default), so a stranger sending junk
 * prekey messages could otherwise spend it all and make this device's next `send` fail with
 * `RATE_LIMITED` (issue 10, finding 5). Senders this device already knows are not limited here:
 * their statements were checked before, and a refresh (an expired certificate) is worth it.
 */

/** Fetches for unknown senders in a burst, and the time one more becomes available. */
export const UNKNOWN_SENDER_FETCH_BURST = 3;
export const UNKNOWN_SENDER_FETCH_REFILL_MS = 20_000;
/** One sender's statements are fetched at most once per this interval. */
export const SENDER_FETCH_INTERVAL_MS = 10 * 60_000;
const REMEMBERED_SENDERS = 1_000;

export class StatementFetchBudget {
  #tokens = UNKNOWN_SENDER_FETCH_BURST;
  #refilledAt: number;
  readonly #lastBySender = new Map<string, number>();

  constructor(now: number) {
    this.#refilledAt = now;
  }

  /** A fetch for `sender` never reached the relay: the next one may go at once. */
  forget(sender: string): void {
    this.#lastBySender.delete(sender);
  }

  /** True (and counted) when a fetch for `sender` may go to the relay now. */
  allow(sender: string, known: boolean, now: number): boolean {
    const last = this.#lastBySender.get(sender);
    if (last !== undefined && now - last < SENDER_FETCH_INTERVAL_MS) return false;
    if (!known) {
      const refills = Math.floor((now - this.#refilledAt) / UNKNOWN_SENDER_FETCH_REFILL_MS);
      if (refills > 0) {
        this.#tokens = Math.min(UNKNOWN_SENDER_FETCH_BURST, this.#tokens + refills);
        this.#refilledAt += refills * UNKNOWN_SENDER_FETCH_REFILL_MS;
      }
      if (this.#tokens === 0) return false;
      this.#tokens -= 1;
    }
    this.#lastBySender.delete(sender);
    this.#lastBySender.set(sender, now);
    if (this.#lastBySender.size > REMEMBERED_SENDERS) this.#lastBySender.delete(this.#lastBySender.keys().next().value!);
    return true;
  }
}
