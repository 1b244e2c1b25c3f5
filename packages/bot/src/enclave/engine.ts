/**
 * The enclave's view of `@parley/engine`'s `ConversationEngine`: the bot's account,
 * sessions, dedupe, inbox and outbox, over the sealed store. Runs only inside the enclave.
 *
 * Every method that writes is called by entry.ts inside one sealed-store transaction, so the
 * engine's writes for one operation leave the enclave as one atomic host batch.
 */
import type { PrekeyUpload, PublicIdentity } from '@parley/protocol';
import { isParleyError } from '@parley/protocol';
import { decodeContent, encodeContent, type MessageContent, type OutgoingContent } from '@parley/protocol';
import { ConversationEngine, type ReceivedMessage as EngineMessage } from '@parley/engine';
import type { SealedKeyValueStore } from './sealed-store.js';

/** A decrypted message waiting for (or being run by) the handler. */
export type ReceivedMessage = MessageContent & {
  readonly from: string;
  readonly id: string;
  readonly sentAt: number;
};

export interface EnclaveEngine {
  readonly deviceId: string;
  readonly publicIdentity: PublicIdentity;
  /** Answers a relay login challenge (context `relayAuth`, over a payload the engine builds). */
  relayLoginAnswer: ConversationEngine['relayLoginAnswer'];
  /** Signs an attestation payload (context `botAttestation`). */
  signAttestation(payload: Uint8Array): Uint8Array;
  prekeys(generate: number): Promise<PrekeyUpload>;
  prekeysPublished(ids: readonly number[]): Promise<void>;
  receive(incoming: { from: string; id: string; envelope: Uint8Array }): Promise<{ kind: 'message'; message: ReceivedMessage } | { kind: 'duplicate' } | { kind: 'ignored' }>;
  /** Encrypts a reply into the outbox; `undefined` if this id is already queued (a handler re-run). */
  send(to: string, content: OutgoingContent, messageId: string): Promise<{ to: string; id: string; envelope: Uint8Array } | undefined>;
  markSent(to: string, id: string): Promise<void>;
  /**
   * Encrypts one delivery receipt to `peer` for the messages it is owed one for (into the sealed
   * outbox, like a reply); `undefined` when none is owed. A peer that can no longer be encrypted
   * to (untrusted, blocked) has its owed ids dropped instead.
   */
  receipt(peer: string): Promise<{ to: string; id: string; envelope: Uint8Array } | undefined>;
  /** Peers owed a delivery receipt (after a restart: the ones a crash left unsent). */
  peersOwedReceipts(): string[];
  pendingOutbox(): Promise<{ to: string; id: string; envelope: Uint8Array }[]>;
  /** Messages decrypted but not yet consumed by the handler (a crash interrupted it). */
  unconsumed(): Promise<ReceivedMessage[]>;
  consume(from: string, id: string): Promise<void>;
  safetyNumber(peer: string): string;
}

function view(m: EngineMessage): ReceivedMessage {
  // Receipts never reach here (`receive` consumes them).
  const type = m.type === 'receipt' ? 'binary' : m.type;
  return { from: m.from, id: m.id, sentAt: m.sentAt, ...decodeContent(type, m.payload) };
}

/**
 * Opens (or, on an empty store, creates) the bot's engine. The bot talks to customers who are
 * not org-certified, so no certificate is required of peers.
 */
export async function openEngine(store: SealedKeyValueStore): Promise<EnclaveEngine> {
  const engine = await ConversationEngine.open({ store, trust: { requireCertificate: 'none' } });
  return {
    deviceId: engine.deviceId,
    publicIdentity: engine.publicIdentity,
    relayLoginAnswer: (challenge) => engine.relayLoginAnswer(challenge),
    signAttestation: (payload) => engine.signBotAttestation(payload),
    prekeys: (generate) => engine.prekeyUpload(generate),
    prekeysPublished: (ids) => engine.markUploaded(ids),
    async receive(incoming) {
      // Like every device, the bot acknowledges delivery: the ids owed are persisted with the message.
      const r = await engine.receive(incoming, { receipt: true });
      if (r.kind === 'duplicate') return { kind: 'duplicate' };
      if (r.kind === 'sessionReset') return { kind: 'ignored' };
      if (r.type === 'receipt') {
        await engine.consume(r.from, r.id);
        return { kind: 'ignored' };
      }
      return { kind: 'message', message: view(r) };
    },
    async send(to, content, messageId) {
      if (engine.pendingOutbox().some((e) => e.to === to && e.id === messageId)) return undefined;
      const { type, body } = encodeContent(content);
      return engine.encrypt(to, body, { messageId, type });
    },
    markSent: (to, id) => engine.markDelivered(to, id),
    async receipt(peer) {
      try {
        return await engine.encryptReceipts(peer);
      } catch (e) {
        if (isParleyError(e, 'STORAGE_INTEGRITY') || isParleyError(e, 'STORAGE_QUOTA')) throw e;
        await engine.dropReceipts(peer, engine.pendingReceipts().find((p) => p.peer === peer)?.ids ?? []);
        return undefined;
      }
    },
    peersOwedReceipts: () => engine.pendingReceipts().map((p) => p.peer),
    pendingOutbox: async () => engine.pendingOutbox().map((e) => ({ to: e.to, id: e.id, envelope: e.envelope })),
    unconsumed: async () => engine.inbox().filter((m) => m.type !== 'receipt').map(view),
    consume: (from, id) => engine.consume(from, id),
    safetyNumber: (peer) => engine.safetyNumber(peer),
  };
}
