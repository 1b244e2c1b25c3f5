/**
 * The compliance archive in memory (the {@link ArchiveStore} part of `MemoryStore`): per ref, the
 * encoded entries in order. Appends are synchronous, so one process never forks a chain.
 */
import { chainArchiveEntry, type ArchiveSubmission } from '@parley/protocol/verify';

/** Per-ref append-only lists of encoded entries. */
export class MemoryArchive {
  readonly #chains = new Map<string, Uint8Array[]>();

  /** Chains `submission` to its ref's last entry and stores it; returns its index. */
  append(submission: ArchiveSubmission): number {
    let chain = this.#chains.get(submission.ref);
    if (!chain) this.#chains.set(submission.ref, (chain = []));
    const entry = chainArchiveEntry(submission, chain.at(-1));
    chain.push(entry);
    return chain.length - 1;
  }

  /** Copies of the ref's entries, in order. */
  entries(ref: string): Uint8Array[] {
    return (this.#chains.get(ref) ?? []).map((e) => e.slice());
  }
}
