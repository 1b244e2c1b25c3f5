/**
 * Self-healing sessions, the host's part: when the enclave needs a customer's prekey bundle (the
 * customer asked for a session reset, so replies must go out again in a fresh session), it posts
 * `needBundle`; the courier fetches the bundle from the relay (`RelayLink.fetchBundle`, whose
 * answer the link checks) and hands it to the enclave with the `resend` call, whose schema checks
 * it again (exact key sizes) before the enclave's engine verifies it. What the enclave then
 * re-encrypts comes back as ordinary `send`s through the reply outbox. Runs in the host: a bundle
 * is public keys only.
 *
 * One fetch at a time per peer. A transient failure (logged out, rate limited, enclave
 * restarting) keeps the request for {@link BundleCourier.pumpAll} (on login and on a timer); a
 * bundle already fetched is kept for the retry, so a retry costs the customer no second one-time
 * prekey. Any other failure (the relay knows no such device, a malformed or refused bundle) is
 * logged and dropped: the enclave asks again later (a waiting reply, or its next start).
 */
import type { PrekeyBundle } from '@parley/protocol/verify';
import { toWireError, type PrekeyBundleWire } from '../rpc/messages.js';
import { isTransient } from './transient.js';
import type { BotLogger } from './supervisor.js';

export interface BundleCourierOptions {
  /** Fetches `peer`'s bundle from the relay (consumes one of its one-time prekeys). */
  fetch(peer: string): Promise<PrekeyBundle>;
  /** Hands the bundle to the enclave (the `resend` call). */
  handIn(peer: string, bundle: PrekeyBundleWire): Promise<unknown>;
  /** False while logged out: nothing is fetched then. */
  canFetch(): boolean;
  /** Something finished (for idle waiters). */
  onChange(): void;
  logger: BotLogger;
}

/** The relay's bundle in the RPC's form: exactly the public fields the enclave takes. */
function toWire(b: PrekeyBundle): PrekeyBundleWire {
  const { identity, signedPrekey: spk, oneTimePrekey: opk } = b;
  return {
    identity: { signingKey: identity.signingKey, dhKey: identity.dhKey, binding: identity.binding },
    signedPrekey: { id: spk.id, createdAt: spk.createdAt, publicKey: spk.publicKey, signature: spk.signature },
    ...(opk ? { oneTimePrekey: { id: opk.id, publicKey: opk.publicKey } } : {}),
  };
}

export class BundleCourier {
  readonly #opts: BundleCourierOptions;
  /** Peers the enclave asked for, not handed in yet. */
  readonly #wanted = new Set<string>();
  /** Bundles fetched whose hand-in failed transiently: kept for the retry. */
  readonly #fetched = new Map<string, PrekeyBundleWire>();
  readonly #busy = new Set<string>();
  /** Asked again while a run for the peer was in flight: run once more after it. */
  readonly #again = new Set<string>();

  constructor(options: BundleCourierOptions) {
    this.#opts = options;
  }

  /** True when nothing is wanted or in flight. */
  get empty(): boolean {
    return this.#wanted.size === 0 && this.#busy.size === 0;
  }

  /** The enclave needs `peer`'s bundle. */
  request(peer: string): void {
    if (this.#busy.has(peer)) this.#again.add(peer);
    this.#wanted.add(peer);
    this.#run(peer);
  }

  /** Retries every wanted peer (after a login, and periodically). */
  pumpAll(): void {
    for (const peer of this.#wanted) this.#run(peer);
  }

  #run(peer: string): void {
    if (this.#busy.has(peer) || !this.#wanted.has(peer) || !this.#opts.canFetch()) return;
    this.#busy.add(peer);
    void this.#deliver(peer).then(() => {
      this.#busy.delete(peer);
      const again = this.#again.delete(peer);
      if (again) this.#wanted.add(peer);
      this.#opts.onChange();
      // Asked again meanwhile: once more now. A transient failure waits for the next pumpAll.
      if (again) this.#run(peer);
    });
  }

  /** One attempt; never rejects. */
  async #deliver(peer: string): Promise<void> {
    try {
      let bundle = this.#fetched.get(peer);
      if (!bundle) {
        bundle = toWire(await this.#opts.fetch(peer));
        this.#fetched.set(peer, bundle);
      }
      await this.#opts.handIn(peer, bundle);
      this.#fetched.delete(peer);
      this.#wanted.delete(peer);
    } catch (e) {
      if (isTransient(e)) return;
      this.#fetched.delete(peer);
      this.#wanted.delete(peer);
      this.#opts.logger.warn({ event: 'session.bundleFailed', peer, error: toWireError(e) }, "could not hand a customer's bundle to the enclave for a session reset");
    }
  }
}
