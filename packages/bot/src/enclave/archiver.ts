/**
 * The bot's own messages in the compliance archive (README "Compliance archive: the bot's
 * messages"; THREATS P2/P3). Runs only inside the enclave: the plaintext and the identity key
 * live here.
 *
 * When the bot publishes an archive disclosure that verifies against the pinned (measured) org
 * key, every message it sends in a conversation is sealed to the disclosure's compliance key and
 * signed by the bot's identity key (`sealArchiveSubmission`, the engine code the client's
 * archiver uses too) **in the same sealed commit that prepares the message's frame**. The
 * submission is kept in a sealed archive outbox (`bot-archive-out/<n>`, in order) until the host
 * reports the relay appended it (`archived`); the host only carries the sealed bytes to the
 * relay (`archiveAppend`). So:
 * - a crash before the commit archives nothing and sends nothing (the re-run prepares both);
 * - a handler re-run finds the kept frame and seals nothing again (no second entry, no second
 *   sequence number);
 * - a crash after the commit re-posts the kept submission, byte for byte, at the next start;
 *   the host appends it as a retry, which the relay answers with the entry it already holds
 *   when the first try had landed (relay README "Compliance archive": idempotent retries).
 *
 * The sender sequence number is a sealed counter per archive ref (`bot-archive-seq/<ref>`),
 * +1 per submission, from 0: the chain's per-sender numbers have no gap.
 */
import { archiveRef, fromBase64, toBase64, verifyArchiveDisclosure, type ArchiveDisclosure, type MessageContent } from '@parley/protocol';
import { sealArchiveSubmission } from '@parley/engine';
import type { SealedKeyValueStore } from './sealed-store.js';

/** The archive ref a conversation's entries are appended under: opaque, as the client's (the one call site). */
export function refOf(conversation: string): string {
  return archiveRef(conversation);
}

/** Sealed archive submissions waiting for the relay, oldest first: `bot-archive-out/<n>`. */
const OUT_PREFIX = 'bot-archive-out/';
/** The next outbox number. */
const NEXT_KEY = 'bot-archive-next';
/** The next sender sequence number per ref: `bot-archive-seq/<ref>`. */
const SEQ_PREFIX = 'bot-archive-seq/';
/** Outbox numbers are zero-padded so the record keys sort in order. */
const PAD = 12;
const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder();

/** One sealed submission for the host to append (`archive` message). */
export interface ArchiveOut {
  /** The outbox record (`archived` names it back). */
  readonly key: string;
  readonly ref: string;
  /** `encodeArchiveSubmission` bytes, sealed and signed. */
  readonly submission: Uint8Array;
}

/** What sealing needs of the engine (the key stays there). */
export interface ArchiveSigner {
  readonly signingKey: Uint8Array;
  sign(payload: Uint8Array): Uint8Array;
}

function readNumber(raw: Uint8Array | undefined): number {
  if (!raw) return 0;
  const n = Number(textDecoder.decode(raw));
  return Number.isSafeInteger(n) && n >= 0 ? n : 0;
}

export class BotArchiver {
  readonly #store: SealedKeyValueStore;
  readonly #signer: ArchiveSigner;
  readonly #disclosure: ArchiveDisclosure;

  private constructor(store: SealedKeyValueStore, signer: ArchiveSigner, disclosure: ArchiveDisclosure) {
    this.#store = store;
    this.#signer = signer;
    this.#disclosure = disclosure;
  }

  /**
   * The archiver for a published disclosure, verified against the pinned org key; `undefined`
   * without a disclosure or an org key (nothing is sealed then).
   * @throws ParleyError `FORBIDDEN` reason `archiveNotDisclosed` for a disclosure that does not
   *   verify (another org key, a bad signature, expired).
   */
  static open(store: SealedKeyValueStore, signer: ArchiveSigner, disclosure: Uint8Array | undefined, orgKey: Uint8Array | undefined): BotArchiver | undefined {
    if (!disclosure || disclosure.length === 0 || !orgKey) return undefined;
    return new BotArchiver(store, signer, verifyArchiveDisclosure(disclosure, { orgKey, now: Date.now() }));
  }

  /** True while the disclosure has not expired. */
  get active(): boolean {
    return this.#disclosure.expiresAt === undefined || Date.now() < this.#disclosure.expiresAt;
  }

  /**
   * Seals one sent message into the archive outbox. Call inside the commit that prepares the
   * message (so the two are written together); nothing leaves before that commit.
   */
  async seal(m: { readonly conversation: string; readonly id: string; readonly from: string; readonly at: number; readonly content: MessageContent }): Promise<ArchiveOut> {
    const ref = refOf(m.conversation);
    const seqKey = `${SEQ_PREFIX}${ref}`;
    const senderSeq = readNumber(await this.#store.get(seqKey));
    const n = readNumber(await this.#store.get(NEXT_KEY));
    const submission = sealArchiveSubmission(
      { archiveKey: this.#disclosure.archiveKey, ref, senderKey: this.#signer.signingKey, senderSeq, sign: (p) => this.#signer.sign(p) },
      m,
    );
    const key = `${OUT_PREFIX}${String(n).padStart(PAD, '0')}`;
    await this.#store.setMany([
      [key, textEncoder.encode(JSON.stringify({ r: ref, s: toBase64(submission) }))],
      [seqKey, textEncoder.encode(String(senderSeq + 1))],
      [NEXT_KEY, textEncoder.encode(String(n + 1))],
    ]);
    return { key, ref, submission };
  }

  /** Submissions not yet appended, oldest first (after a restart: to post again as retries). */
  async pending(): Promise<ArchiveOut[]> {
    const keys = (await this.#store.keys(OUT_PREFIX)).sort();
    const out: ArchiveOut[] = [];
    for (const key of keys) {
      const raw = await this.#store.get(key);
      if (!raw) continue;
      const v = JSON.parse(textDecoder.decode(raw)) as { r: string; s: string };
      out.push({ key, ref: v.r, submission: fromBase64(v.s) });
    }
    return out;
  }

  /** The relay appended it: drop it from the outbox. Unknown keys change nothing. */
  async appended(key: string): Promise<void> {
    if (!key.startsWith(OUT_PREFIX)) return;
    if (await this.#store.get(key)) await this.#store.delMany([key]);
  }
}
