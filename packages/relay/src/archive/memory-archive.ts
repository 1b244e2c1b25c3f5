/**
 * The compliance archive in memory (the {@link ArchiveStore} part of `MemoryStore`): per ref, the
 * encoded entries in order, who appended, the newest append's time; legal holds; erased refs
 * (tombstones); openings and the devices still to be told of each. Every step is synchronous, so one process never forks a
 * chain and a purge never races a hold.
 */
import { chainArchiveEntry, type ArchiveSubmission } from '@parley/protocol/verify';
import type { ArchiveHold, ArchiveOpening } from '../store/types.js';
import { archiveErasedError } from './erased.js';

interface Chain {
  readonly entries: Uint8Array[];
  readonly appenders: Set<string>;
  last: number;
}

/** Per-ref append-only lists of encoded entries, and the archive operations over them. */
export class MemoryArchive {
  readonly #chains = new Map<string, Chain>();
  readonly #holds = new Map<string, ArchiveHold>();
  /** Refs erased by a member's purge (tombstones): appends to them are refused. */
  readonly #erased = new Set<string>();
  readonly #openings = new Map<number, ArchiveOpening>();
  /** Opening id → devices that have not acknowledged it. */
  readonly #pending = new Map<number, Set<string>>();
  #nextOpening = 1;

  /** Chains `submission` to its ref's last entry and stores it; returns its index. */
  append(submission: ArchiveSubmission, at: number, deviceId?: string): number {
    if (this.#erased.has(submission.ref)) throw archiveErasedError();
    let chain = this.#chains.get(submission.ref);
    if (!chain) this.#chains.set(submission.ref, (chain = { entries: [], appenders: new Set(), last: at }));
    const entry = chainArchiveEntry(submission, chain.entries.at(-1));
    chain.entries.push(entry);
    chain.last = Math.max(chain.last, at);
    if (deviceId !== undefined) chain.appenders.add(deviceId);
    return chain.entries.length - 1;
  }

  /** Copies of the ref's entries, in order. */
  entries(ref: string): Uint8Array[] {
    return (this.#chains.get(ref)?.entries ?? []).map((e) => e.slice());
  }

  appenders(ref: string): string[] {
    return [...(this.#chains.get(ref)?.appenders ?? [])].sort();
  }

  purge(ref: string, erasedAt?: number): { deleted: number; held: boolean } {
    if (this.#holds.has(ref)) return { deleted: 0, held: true };
    if (erasedAt !== undefined) this.#erased.add(ref);
    const deleted = this.#chains.get(ref)?.entries.length ?? 0;
    this.#chains.delete(ref);
    for (const [id, o] of this.#openings) {
      if (o.ref !== ref) continue; // ct-ok: public refs
      this.#openings.delete(id);
      this.#pending.delete(id);
    }
    return { deleted, held: false };
  }

  hold(h: ArchiveHold): void {
    this.#holds.set(h.ref, { ...h });
  }

  release(ref: string): boolean {
    return this.#holds.delete(ref);
  }

  holds(): ArchiveHold[] {
    return [...this.#holds.values()].sort((a, b) => (a.ref < b.ref ? -1 : 1)).map((h) => ({ ...h }));
  }

  sweep(before: number, limit: number): { refs: number; entries: number } {
    let refs = 0;
    let entries = 0;
    for (const [ref, c] of [...this.#chains]) {
      if (refs >= limit) break;
      if (c.last >= before || this.#holds.has(ref)) continue;
      entries += this.purge(ref).deleted;
      refs++;
    }
    return { refs, entries };
  }

  recordOpening(o: Omit<ArchiveOpening, 'id'>): number {
    const id = this.#nextOpening++;
    this.#openings.set(id, { id, ...o });
    this.#pending.set(id, new Set(this.#chains.get(o.ref)?.appenders ?? []));
    return id;
  }

  openingsAfter(afterId: number, limit: number): ArchiveOpening[] {
    return [...this.#openings.values()].filter((o) => o.id > afterId).sort((a, b) => a.id - b.id).slice(0, limit).map((o) => ({ ...o }));
  }

  pendingOpenings(deviceId: string): ArchiveOpening[] {
    return [...this.#openings.values()].filter((o) => this.#pending.get(o.id)?.has(deviceId)).sort((a, b) => a.id - b.id).map((o) => ({ ...o }));
  }

  noticed(id: number, deviceId: string): void {
    this.#pending.get(id)?.delete(deviceId);
  }
}
