/**
 * Staff trust, the host's part (README "Staff"). With `orgKey` set, the enclave verifies staff
 * credentials against it; the host only carries public bytes there:
 *
 * - revocation lists: fetched from the relay (`fetchRevocations`) after each login and every
 *   `revocationRefreshMs`, handed in with the `revocations` call (the enclave verifies each
 *   against the org key and keeps the newest per issuer, sealed);
 * - a sender's staff credential: its published certificate statement (`fetchIdentity`), fetched
 *   before a delivery when the sender opens a new session (a prekey message), is not known to
 *   this process yet, or its credential known here has expired (the person may have signed in
 *   again), and handed in with the `peerStatements` call. A credential the enclave refuses
 *   (forged, beyond the issuer's policy, expired, revoked) gets that delivery dropped, logged.
 *
 * Failing to fetch (logged out, relay error) never blocks a delivery: the sender is then simply
 * not known as staff, which grants nothing. Runs in the host: everything here is public.
 */
import { isParleyError, isStaffCredential, type PublicIdentity } from '@parley/protocol/verify';
import { MESSAGE_TYPE, type RelayMessage } from '@parley/protocol/wire';
import { toWireError, type Params, type Result } from '../rpc/messages.js';
import type { BotLogger } from './supervisor.js';

/** Default `revocationRefreshMs`: 5 minutes, as `ParleyClient`'s. */
export const DEFAULT_REVOCATION_REFRESH_MS = 5 * 60 * 1000;
/** Senders remembered per process (looked up, and when their credential expires). */
const MAX_KNOWN_SENDERS = 10_000;

export interface StaffTrustOptions {
  fetchRevocations(): Promise<Uint8Array[]>;
  fetchIdentity(peer: string): Promise<{ identity: PublicIdentity; certificate?: Uint8Array }>;
  /** The enclave's `revocations` call. */
  handInRevocations(params: Params<'revocations'>): Promise<Result<'revocations'>>;
  /** The enclave's `peerStatements` call. */
  handInStatements(params: Params<'peerStatements'>): Promise<Result<'peerStatements'>>;
  /** False while logged out. */
  canFetch(): boolean;
  logger: BotLogger;
  now?: () => number;
}

export class StaffTrust {
  readonly #o: StaffTrustOptions;
  /** Senders looked up in this process: when their staff credential expires (`Infinity`: not staff). */
  readonly #known = new Map<string, number>();
  #refresh: Promise<void> | undefined;

  constructor(options: StaffTrustOptions) {
    this.#o = options;
  }

  /** Fetches the relay's revocation lists and hands them to the enclave. Never throws; one at a time. */
  refreshRevocations(): Promise<void> {
    if (!this.#o.canFetch()) return Promise.resolve();
    this.#refresh ??= (async () => {
      try {
        const lists = await this.#o.fetchRevocations();
        const update = await this.#o.handInRevocations({ lists });
        if (update.refused > 0) this.#o.logger.warn({ event: 'staff.revocationListRefused', count: update.refused }, 'a revocation list from the relay was refused (not signed under the org key)');
      } catch (e) {
        this.#o.logger.warn({ event: 'staff.revocationFetchFailed', error: toWireError(e) }, 'could not refresh the staff revocation lists; the next refresh tries again');
      }
    })().finally(() => {
      this.#refresh = undefined;
    });
    return this.#refresh;
  }

  /**
   * Before `m` goes to the enclave: hands in the sender's staff credential when it may be new.
   * `'refused'`: the sender's published staff credential was refused, so drop this delivery.
   */
  async beforeDeliver(m: RelayMessage): Promise<'deliver' | 'refused'> {
    const now = this.#o.now?.() ?? Date.now();
    const expires = this.#known.get(m.from);
    const opensSession = m.envelope instanceof Uint8Array && m.envelope[1] === MESSAGE_TYPE.prekey; // ct-ok: public wire type byte
    if (expires !== undefined && expires > now && !opensSession) return 'deliver';
    if (!this.#o.canFetch()) return 'deliver';
    let statements;
    try {
      statements = await this.#o.fetchIdentity(m.from);
    } catch (e) {
      this.#o.logger.warn({ event: 'staff.lookupFailed', from: m.from, error: toWireError(e) }, 'could not fetch a sender\'s statements; delivered as a customer');
      return 'deliver';
    }
    if (!statements.certificate || !isStaffCredential(statements.certificate)) {
      this.#remember(m.from, Infinity);
      return 'deliver';
    }
    const { identity, certificate } = statements;
    try {
      const r = await this.#o.handInStatements({ peer: m.from, identity: { signingKey: identity.signingKey, dhKey: identity.dhKey, binding: identity.binding }, certificate });
      this.#remember(m.from, r.staff && r.expiresAt !== undefined ? r.expiresAt : Infinity);
      return 'deliver';
    } catch (e) {
      if (!isParleyError(e, 'UNTRUSTED_IDENTITY')) {
        // The enclave restarting, say: the delivery itself is retried by the caller.
        this.#o.logger.warn({ event: 'staff.handInFailed', from: m.from, error: toWireError(e) }, 'could not hand a sender\'s staff credential to the enclave');
        return 'deliver';
      }
      this.#known.delete(m.from);
      this.#o.logger.warn({ event: 'staff.refused', from: m.from, id: m.id, reason: e.details?.reason }, 'dropped a message from a staff device whose credential was refused');
      return 'refused';
    }
  }

  #remember(peer: string, expiresAt: number): void {
    this.#known.delete(peer);
    this.#known.set(peer, expiresAt);
    if (this.#known.size > MAX_KNOWN_SENDERS) this.#known.delete(this.#known.keys().next().value!);
  }
}
