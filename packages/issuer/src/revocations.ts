/**
 * Revocation lists: after a device is revoked or a person disabled, the issuer signs a new list
 * (sequence + 1, every revoked person and device) and POSTs it to the relay's
 * `POST /v1/revocations`; it also serves the current list at its own `GET /v1/revocations`.
 * A list that could not be published is retried until the relay takes it.
 */
import { signRevocationList } from '@parley/protocol';
import type Database from 'better-sqlite3';
import type { Directory } from './directory.js';
import type { IssuerKey } from './keys.js';

/** The signed list and its sequence. */
export interface CurrentList {
  readonly sequence: number;
  readonly bytes: Uint8Array;
}

/** Signs, keeps and publishes revocation lists. */
export class Revocations {
  readonly #db: Database.Database;
  readonly #dir: Directory;
  readonly #key: IssuerKey;
  readonly #issuerCertificate: Uint8Array;
  readonly #relay: string | undefined;
  readonly #now: () => number;
  readonly #warn: (msg: string) => void;

  constructor(o: { db: Database.Database; directory: Directory; key: IssuerKey; issuerCertificate: Uint8Array; relay?: string; now?: () => number; warn?: (msg: string) => void }) {
    this.#db = o.db;
    this.#dir = o.directory;
    this.#key = o.key;
    this.#issuerCertificate = o.issuerCertificate;
    this.#relay = o.relay?.replace(/\/+$/, '');
    this.#now = o.now ?? Date.now;
    this.#warn = o.warn ?? (() => {});
  }

  #state(key: string): Buffer | number | undefined {
    return (this.#db.prepare('SELECT value FROM state WHERE key = ?').get(key) as { value: Buffer | number } | undefined)?.value;
  }

  #set(key: string, value: Buffer | number): void {
    this.#db.prepare('INSERT INTO state (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value').run(key, value);
  }

  /** The current signed list, if any was ever signed. */
  current(): CurrentList | undefined {
    const bytes = this.#state('revocationList');
    const sequence = this.#state('revocationSequence');
    return Buffer.isBuffer(bytes) && typeof sequence === 'number' ? { sequence, bytes: new Uint8Array(bytes) } : undefined;
  }

  /** Signs a new list when something was revoked since the last one. @returns the new list, or undefined. */
  signIfChanged(): CurrentList | undefined {
    return this.#db.transaction(() => {
      if (this.#state('revocationDirty') !== 1) return undefined;
      const sequence = ((this.#state('revocationSequence') as number | undefined) ?? 0) + 1;
      const { persons, devices } = this.#dir.revoked();
      const bytes = signRevocationList(this.#key.seed, { issuerCertificate: this.#issuerCertificate, sequence, issuedAt: this.#now(), persons, devices });
      this.#set('revocationList', Buffer.from(bytes));
      this.#set('revocationSequence', sequence);
      this.#set('revocationDirty', 0);
      this.#dir.audit.append({ type: 'revocation.sign', actor: 'issuer', subject: String(sequence), details: { persons: persons.length, devices: devices.length } }, this.#now());
      return { sequence, bytes };
    }).immediate();
  }

  /**
   * Sends the current list to the relay (if configured and not yet taken). A 204 or a 409 (the
   * relay holds this sequence or a newer one) count as published.
   * @returns true when the relay has it (or there is nothing to publish).
   */
  async publish(): Promise<boolean> {
    const list = this.current();
    if (!this.#relay || !list) return true;
    if (this.#state('revocationPublished') === list.sequence) return true;
    try {
      const res = await fetch(`${this.#relay}/v1/revocations`, {
        method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: list.bytes.slice(), signal: AbortSignal.timeout(10_000),
      });
      await res.arrayBuffer().catch(() => undefined);
      if (res.status !== 204 && res.status !== 200 && res.status !== 409) {
        this.#warn(`the relay refused revocation list ${list.sequence}: HTTP ${res.status}`);
        return false;
      }
      this.#set('revocationPublished', list.sequence);
      this.#dir.audit.append({ type: 'revocation.publish', actor: 'issuer', subject: String(list.sequence), details: { relay: this.#relay, status: res.status } }, this.#now());
      return true;
    } catch (e) {
      this.#warn(`cannot publish revocation list ${list.sequence} to ${this.#relay}: ${(e as Error).message}`);
      return false;
    }
  }

  /** Signs a new list if needed and publishes. */
  async update(): Promise<boolean> {
    this.signIfChanged();
    return this.publish();
  }
}
