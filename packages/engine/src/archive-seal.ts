/**
 * One sent message as a compliance archive submission (protocol archive.ts; THREATS P2/P3): the
 * pure part both archivers share, the client's (`@parley/client` conversations/archiver.ts) and
 * the bot enclave's (`@parley/bot` enclave/archiver.ts). The message is sealed to the org's
 * compliance key (`sealToArchiveKey`, associated data = the ref and the sender's key), wrapped in
 * a submission naming the ref and the sender's own sequence number, and signed by the sender's
 * identity key under `parley/v1/archive-entry` (the caller passes the engine's
 * `signArchiveSubmission`: the key stays in the engine). No I/O: the caller appends the bytes at
 * the relay (`archiveAppend`).
 *
 * The seal is randomised (an ephemeral key and nonce per call): building the submission twice
 * for one message gives two different byte strings. A caller that may retry an append therefore
 * builds it once and keeps the bytes (the bot's sealed archive outbox does).
 */
import {
  archiveSealAd,
  encodeArchiveSubmission,
  encodeArchivedMessage,
  makeArchiveSubmission,
  sealToArchiveKey,
  type MessageContent,
} from '@parley/protocol';

/** The message being archived, as the sender's conversation book recorded it. */
export interface ArchivableMessage {
  /** The conversation id (named inside the sealed payload for the compliance officer). */
  readonly conversation: string;
  /** Message id. */
  readonly id: string;
  /** Sender device id. */
  readonly from: string;
  /** ms since the epoch (the book's `sentAt`). */
  readonly at: number;
  readonly content: MessageContent;
}

/** What sealing needs besides the message. */
export interface ArchiveSealInput {
  /** The org's compliance X25519 public key (from the verified disclosure). */
  readonly archiveKey: Uint8Array;
  /** The archive ref the entry is appended under. */
  readonly ref: string;
  /** The sender's Ed25519 identity key (its `publicIdentity.signingKey`). */
  readonly senderKey: Uint8Array;
  /** The sender's count of its earlier submissions to `ref` (0, 1, 2, …). */
  readonly senderSeq: number;
  /** Signs under the `archiveEntry` context (engine `signArchiveSubmission`). */
  sign(payload: Uint8Array): Uint8Array;
}

/** The archived text of a message's content: the text, JSON as text, or a note for binary. */
export function archivedBody(content: MessageContent): string {
  if (content.type === 'text') return content.text ?? '';
  if (content.type === 'json') return JSON.stringify(content.json ?? null);
  return `[binary ${content.binary?.length ?? 0} bytes]`;
}

/**
 * Seals `m` to the archive key and returns the signed, encoded submission
 * (`encodeArchiveSubmission`) for the relay's `archiveAppend`.
 * @throws ParleyError `USAGE` for a bad key, ref or sequence number; `PAYLOAD_TOO_LARGE`.
 */
export function sealArchiveSubmission(input: ArchiveSealInput, m: ArchivableMessage): Uint8Array {
  const plaintext = encodeArchivedMessage({ conversation: m.conversation, id: m.id, from: m.from, at: m.at, body: archivedBody(m.content) });
  const sealed = sealToArchiveKey(input.archiveKey, plaintext, archiveSealAd(input.ref, input.senderKey));
  const submission = makeArchiveSubmission({ ref: input.ref, senderKey: input.senderKey, senderSeq: input.senderSeq, sealed }, (p) => input.sign(p));
  return encodeArchiveSubmission(submission);
}
