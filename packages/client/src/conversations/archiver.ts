/**
 * Sealing each sent message to the compliance archive (THREATS P2/P3; relay README "Compliance
 * archive"). When a conversation's archive is on for this device, every message it sends is also
 * sealed to the org's compliance key (`sealToArchiveKey`), signed by this device's identity key
 * through the engine, and appended to the relay's append-only archive of the conversation
 * (`archiveAppend`); the relay orders the chain. Each member appends only what it sends, so every
 * message is archived once, by its sender. The sender's sequence number is its count of its own
 * earlier messages in the conversation (the book keeps them), so it survives a restart.
 *
 * When the archive is on: for the customer, only when the engine's gate says every other member
 * disclosed it before the first message (`conversation.archive()`); for a bot or agent device,
 * when it publishes a disclosure itself (`setArchiveDisclosure`).
 */
import { archiveRef } from '@parley/protocol';
import { sealArchiveSubmission, type ArchivableMessage } from '@parley/engine';

/** What the archiver needs from the client. */
export interface ArchiveHooks {
  /** This device's Ed25519 identity key (the submission's sender key). */
  readonly signingKey: Uint8Array;
  /** Signs under the `archiveEntry` context (engine `signArchiveSubmission`). */
  sign(payload: Uint8Array): Uint8Array;
  /** The relay's `archiveAppend` (relay link). */
  append(ref: string, submission: Uint8Array): Promise<number>;
  /** The compliance key this device's own disclosure names, when it publishes one (bot/agent). */
  ownArchiveKey(): Uint8Array | undefined;
}

/**
 * Seals and appends one sent message (the sealing is the engine's `sealArchiveSubmission`, the
 * code the bot enclave's archiver runs too).
 * @param senderSeq how many of this device's messages the conversation held before this one.
 */
export async function archiveSent(hooks: ArchiveHooks, archiveKey: Uint8Array, m: ArchivableMessage, senderSeq: number): Promise<number> {
  const ref = archiveRef(m.conversation);
  const submission = sealArchiveSubmission({ archiveKey, ref, senderKey: hooks.signingKey, senderSeq, sign: (p) => hooks.sign(p) }, m);
  return hooks.append(ref, submission);
}
