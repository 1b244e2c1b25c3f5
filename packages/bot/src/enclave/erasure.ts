/**
 * Erasure in the bot's enclave (docs/threats.md P4): the owner's valid `erase` frame (the
 * conversation book checked its signature and deleted the conversation's records) also deletes
 * the conversation's `ctx.state` record, and the enclave answers with the book's signed deletion
 * receipt, encrypted into the sealed outbox in the same commit as the frame's decryption.
 */
import { concatBytes, getCrypto, toHex, utf8 } from '@parley/protocol';
import type { ConversationEvent } from '@parley/engine';
import type { EnclaveEngine, Outgoing } from './engine.js';
import type { SealedKeyValueStore } from './sealed-store.js';

/** `ctx.state` of a conversation (entry.ts `STATE_PREFIX` + `conv/<id>`). */
const stateKey = (conversation: string): string => `handler-state/conv/${conversation}`;

/** The deletion receipt's message id: deterministic per erase frame, so a re-delivery re-sends the same one. */
export function receiptMessageId(from: string, eraseId: string): string {
  return toHex(getCrypto().sha256(concatBytes(utf8('parley/v1/bot-erasure'), new Uint8Array([0]), utf8(from), new Uint8Array([0]), utf8(eraseId))).subarray(0, 16));
}

/**
 * Runs inside the delivery's commit: deletes the conversation's handler state and encrypts the
 * signed receipt to the owner. Returns the envelope to hand to the host once committed.
 */
export async function eraseInEnclave(
  store: SealedKeyValueStore,
  engine: EnclaveEngine,
  ev: Extract<ConversationEvent, { kind: 'erased' }>,
  eraseId: string,
): Promise<Outgoing | undefined> {
  const key = stateKey(ev.conversation);
  if (await store.get(key)) await store.delMany([key]);
  return engine.sendFrame(ev.owner, ev.reply.frame, receiptMessageId(ev.owner, eraseId));
}
