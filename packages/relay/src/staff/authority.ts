/**
 * The relay's staff authority: the pinned org key, and the revocation lists of the store as
 * verified lists (each verified against the org key when stored and again at most every
 * {@link REVERIFY_MS}, so an issuer certificate that expires stops counting).
 */
import { ParleyError, fromHex, toHex, verifyRevocationList, type RevocationList } from '@parley/protocol/verify';
import type { RelayStore } from '../store/types.js';

/** How long a verified list is trusted before it is verified again (its issuer may expire). */
export const REVERIFY_MS = 60_000;

/** Parses the `orgKey` option: 32 bytes, or 64 hex characters. @throws TypeError otherwise. */
export function parseOrgKey(key: Uint8Array | string): Uint8Array {
  if (typeof key === 'string') {
    if (!/^[0-9a-fA-F]{64}$/.test(key.trim())) throw new TypeError('orgKey: expected 64 hex characters (the org root public key)');
    return fromHex(key.trim().toLowerCase());
  }
  if (!(key instanceof Uint8Array) || key.length !== 32) throw new TypeError('orgKey: expected 32 bytes (the org root public key)');
  return Uint8Array.from(key);
}

interface Cached {
  readonly sequence: number;
  readonly list: RevocationList | undefined;
  readonly verifiedAt: number;
}

/** One per relay with an org key. */
export class StaffAuthority {
  readonly orgKey: Uint8Array;
  readonly #store: RelayStore;
  readonly #now: () => number;
  readonly #cache = new Map<string, Cached>();

  constructor(orgKey: Uint8Array, store: RelayStore, now: () => number) {
    this.orgKey = orgKey;
    this.#store = store;
    this.#now = now;
  }

  /**
   * Verifies a posted list against the org key.
   * @throws ParleyError `UNTRUSTED_IDENTITY` reason `revocationList`.
   */
  verify(bytes: Uint8Array): RevocationList {
    return verifyRevocationList(bytes, { orgKey: this.orgKey, now: this.#now() });
  }

  /** Issuer key as the store names it. */
  static issuerId(list: RevocationList): string {
    return toHex(list.issuerKey);
  }

  /**
   * The stored lists that verify now (one per issuer). A list whose issuer certificate expired is
   * left out: the credentials that issuer signed are refused anyway (`issuerExpired`).
   */
  async lists(): Promise<RevocationList[]> {
    const now = this.#now();
    const out: RevocationList[] = [];
    for (const stored of await this.#store.listRevocationLists()) {
      let c = this.#cache.get(stored.issuer);
      if (!c || c.sequence !== stored.sequence || now - c.verifiedAt > REVERIFY_MS) {
        let list: RevocationList | undefined;
        try {
          list = verifyRevocationList(stored.list, { orgKey: this.orgKey, now });
        } catch (e) {
          if (!(e instanceof ParleyError)) throw e;
        }
        c = { sequence: stored.sequence, list, verifiedAt: now };
        this.#cache.set(stored.issuer, c);
      }
      if (c.list) out.push(c.list);
    }
    return out;
  }
}

/** Whether `lists` name the device, or (for its issuer) the person. */
export function isRevoked(lists: readonly RevocationList[], deviceId: string, staff?: { readonly issuer: string; readonly personId: string }): boolean {
  return lists.some((l) => l.devices.includes(deviceId) || (staff !== undefined && StaffAuthority.issuerId(l) === staff.issuer && l.persons.includes(staff.personId))); // ct-ok: public ids
}
