/**
 * The staff revocation lists the engine holds (issue 12): the newest verified list per issuer,
 * persisted, so a restarted device still refuses what it knew to be revoked. A list is kept only
 * when it verifies against the pinned org key (the relay that hands them out is not trusted for
 * them) and its sequence is higher than the one held for its issuer: a relay replaying an older
 * list cannot take a revocation back.
 */
import { ParleyError, fromHex, toHex, verifyRevocationList, type RevocationList } from '@parley/protocol';
import { K, jsonBytes, parseJsonRecord } from './records.js';
import type { KeyValueStore } from './store.js';

/** Most issuers whose lists are held (an org runs one issuer, or a few). */
const MAX_ISSUERS = 16;

/** What {@link RevocationSet.plan} found. */
export interface RevocationUpdate {
  /** Lists that verified and are newer than the ones held. */
  readonly accepted: number;
  /** Lists that verified but are not newer. */
  readonly stale: number;
  /** Lists that did not verify (malformed, another org, an expired issuer, a forgery). */
  readonly refused: number;
}

export class RevocationSet {
  /** Issuer key (hex) → the newest list and its bytes. */
  #byIssuer = new Map<string, { list: RevocationList; bytes: Uint8Array }>();

  /** Loads the persisted lists, keeping those that still verify. */
  static async load(store: KeyValueStore, orgKey: Uint8Array | undefined, now: number): Promise<RevocationSet> {
    const set = new RevocationSet();
    const bytes = await store.get(K.revocations);
    if (!bytes || !orgKey) return set;
    const hexes = parseJsonRecord<unknown>(bytes, 'revocation lists');
    if (!Array.isArray(hexes) || !hexes.every((h) => typeof h === 'string')) throw new ParleyError('STORAGE_INTEGRITY', 'stored revocation lists are not valid');
    set.#merge(hexes.map((h) => fromHex(h as string)), orgKey, now);
    return set;
  }

  /** The lists held, for `verifyStaffCredential`. */
  get lists(): RevocationList[] {
    return [...this.#byIssuer.values()].map((e) => e.list);
  }

  /**
   * Verifies `lists` and works out the new set without changing this one; `write` is the
   * record to persist and `apply` swaps the set in once it is.
   */
  plan(lists: readonly Uint8Array[], orgKey: Uint8Array, now: number): RevocationUpdate & { write: [string, Uint8Array] | undefined; apply: () => void } {
    const next = new RevocationSet();
    next.#byIssuer = new Map(this.#byIssuer);
    const update = next.#merge(lists, orgKey, now);
    if (update.accepted === 0) return { ...update, write: undefined, apply: () => undefined };
    const write: [string, Uint8Array] = [K.revocations, jsonBytes([...next.#byIssuer.values()].map((e) => toHex(e.bytes)))];
    return { ...update, write, apply: () => void (this.#byIssuer = next.#byIssuer) };
  }

  #merge(lists: readonly Uint8Array[], orgKey: Uint8Array, now: number): RevocationUpdate {
    let accepted = 0;
    let stale = 0;
    let refused = 0;
    for (const bytes of lists) {
      let list: RevocationList;
      try {
        list = verifyRevocationList(bytes, { orgKey, now });
      } catch (e) {
        if (e instanceof ParleyError && e.code === 'UNTRUSTED_IDENTITY') {
          refused++;
          continue;
        }
        throw e;
      }
      const issuer = toHex(list.issuerKey);
      const held = this.#byIssuer.get(issuer);
      if ((held && held.list.sequence >= list.sequence) || (!held && this.#byIssuer.size >= MAX_ISSUERS)) {
        stale++;
        continue;
      }
      this.#byIssuer.set(issuer, { list, bytes: bytes.slice() });
      accepted++;
    }
    return { accepted, stale, refused };
  }
}
