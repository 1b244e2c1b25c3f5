/**
 * The enclave's view of `@parley/engine`'s `ConversationEngine`: the bot's account,
 * sessions, dedupe, inbox and outbox, over the sealed store. Runs only inside the enclave.
 *
 * Every method that writes is called by entry.ts inside one sealed-store transaction, so the
 * engine's writes for one operation leave the enclave as one atomic host batch.
 */
import type { PrekeyUpload, PublicIdentity, SessionResetReason } from '@parley/protocol';
import { isParleyError, isStaffCredential } from '@parley/protocol';
import { decodeContent, encodeContent, type MessageContent, type OutgoingContent } from '@parley/protocol';
import { ConversationEngine, type FetchedBundle, type PayloadType, type PeerStaffInfo, type ReceivedMessage as EngineMessage, type RevocationUpdate } from '@parley/engine';
import type { ConsentSigner } from '@parley/engine';
import type { ErasureSigner } from '@parley/engine';
import type { SealedKeyValueStore } from './sealed-store.js';
import type { ArchiveSigner } from './archiver.js';

/**
 * A resend waiting for the peer's bundle: a session reset the peer asked for was applied and
 * replies it has not receipted must go out again. Written in the same commit as the reset and
 * removed in the resend's, so a crash in between asks for the bundle again on the next start.
 */
const RESEND_PREFIX = 'bot-resend/';
const resendKey = (peer: string): string => `${RESEND_PREFIX}${peer}`;
/** Bundles kept for a reply to a peer with no session (in memory; a restart asks again). */
const MAX_KEPT_BUNDLES = 1024;

/** An envelope for the relay, already in the sealed outbox. */
export interface Outgoing {
  readonly to: string;
  readonly id: string;
  readonly envelope: Uint8Array;
}

/** What one relay delivery turned out to be. */
export type Delivered =
  | { kind: 'message'; message: ReceivedMessage }
  /** A conversation frame (engine payload type `'conversation'`), in the inbox until consumed. */
  | { kind: 'frame'; frame: ReceivedFrame }
  | { kind: 'duplicate' }
  | { kind: 'ignored' }
  /**
   * The peer's signed session reset request. `applied`: the bot's sessions with it are archived;
   * `resend`: replies it has not receipted wait for its bundle (see {@link EnclaveEngine.takeBundle}).
   */
  | { kind: 'reset'; applied: boolean; reason: SessionResetReason; resend: boolean };

/** A decrypted conversation frame (its bytes as sent; `ConversationBook.receive` validates them). */
export interface ReceivedFrame {
  readonly from: string;
  readonly id: string;
  readonly sentAt: number;
  readonly frame: Uint8Array;
}

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
  /** Consent receipts (the conversation book's `consent` option): peers' keys to verify customers' receipts. */
  readonly consent: ConsentSigner;
  /** Erasure statements (the conversation book's `erasure` option): signs deletion receipts, verifies the owner's request. */
  readonly erasure: ErasureSigner;
  /** Compliance archive submissions (archiver.ts): the bot's signing key and a signer under context `archiveEntry`. */
  readonly archive: ArchiveSigner;
  prekeys(generate: number): Promise<PrekeyUpload>;
  prekeysPublished(ids: readonly number[]): Promise<void>;
  receive(incoming: { from: string; id: string; envelope: Uint8Array }): Promise<Delivered>;
  /**
   * Encrypts a reply into the outbox; `undefined` if this id is already queued (a handler re-run).
   * With no session (a reset archived them) it starts one from the bundle {@link takeBundle} kept.
   */
  send(to: string, content: OutgoingContent, messageId: string): Promise<Outgoing | undefined>;
  /** {@link send} for a conversation frame (engine payload type `'conversation'`). */
  sendFrame(to: string, frame: Uint8Array, messageId: string): Promise<Outgoing | undefined>;
  /** True when a reply to `peer` needs its bundle first: a reset archived its sessions and none is kept. */
  needsBundle(peer: string): boolean;
  /**
   * After a delivery from `peer` failed for a session reason: a signed reset request into the
   * outbox (send it like a reply); `undefined` when the engine's bounds say not now.
   */
  requestReset(peer: string, failedId: string, reason: SessionResetReason): Promise<Outgoing | undefined>;
  /** True while the engine holds back reset requests (checked before opening a commit). */
  hasDeferredResets(): boolean;
  /** Reset requests the engine's bounds held back whose time has come, into the outbox. */
  deferredResets(): Promise<{ readonly out: Outgoing; readonly reason: SessionResetReason }[]>;
  /** Peers whose resend waits for their bundle (after a restart: the ones a crash interrupted). */
  pendingResends(): Promise<string[]>;
  /**
   * `peer`'s bundle, fetched by the host. If a resend waits for it, re-encrypts every reply the
   * peer has not receipted into the outbox in a fresh session (`failed`: ids given up after
   * too many resets). If there is still no session afterwards, keeps the bundle for the next reply.
   * A bundle nobody asked for changes nothing.
   */
  takeBundle(peer: string, bundle: FetchedBundle): Promise<{ resent: Outgoing[]; failed: string[] }>;
  markSent(to: string, id: string): Promise<void>;
  /**
   * Encrypts one delivery receipt to `peer` for the messages it is owed one for (into the sealed
   * outbox, like a reply); `undefined` when none is owed, or while there is no session with the
   * peer (a reset archived them: the ids stay owed until a reply or a resend opens a fresh one).
   * A peer that can no longer be encrypted to (untrusted, blocked) has its owed ids dropped instead.
   */
  receipt(peer: string): Promise<{ to: string; id: string; envelope: Uint8Array } | undefined>;
  /** Peers owed a delivery receipt (after a restart: the ones a crash left unsent). */
  peersOwedReceipts(): string[];
  pendingOutbox(): Promise<{ to: string; id: string; envelope: Uint8Array }[]>;
  /** Messages decrypted but not yet consumed by the handler (a crash interrupted it). */
  unconsumed(): Promise<ReceivedMessage[]>;
  /** Conversation frames decrypted but not yet consumed (a crash interrupted their handler run). */
  unconsumedFrames(): ReceivedFrame[];
  consume(from: string, id: string): Promise<void>;
  safetyNumber(peer: string): string;
  /** Takes the relay's staff revocation lists (verified against the org key; the newest per issuer kept). */
  setRevocationLists(lists: readonly Uint8Array[]): Promise<RevocationUpdate>;
  /**
   * Verifies `peer`'s published staff credential against the org key and keeps it; `false` (and
   * nothing kept) for a certificate that is not a staff credential, or without an org key.
   * @throws ParleyError `UNTRUSTED_IDENTITY` for a credential refused (details.reason).
   */
  setPeerCredential(peer: string, identity: PublicIdentity, certificate: Uint8Array): Promise<boolean>;
  /** The verified staff credential of `peer` (name, roles, expiry), if any. */
  peerStaff(peer: string): PeerStaffInfo | undefined;
}

function view(m: EngineMessage): ReceivedMessage {
  // Receipts and conversation frames never reach here (`receive` takes them apart).
  const type = m.type === 'receipt' || m.type === 'conversation' ? 'binary' : m.type;
  return { from: m.from, id: m.id, sentAt: m.sentAt, ...decodeContent(type, m.payload) };
}

/**
 * Opens (or, on an empty store, creates) the bot's engine. The bot talks to customers who are
 * not org-certified, so no certificate is required of peers; with `orgKey` pinned, a peer whose
 * staff credential was handed in is verified against it (and refused once expired or revoked).
 */
export async function openEngine(store: SealedKeyValueStore, options: { orgKey?: Uint8Array } = {}): Promise<EnclaveEngine> {
  const engine = await ConversationEngine.open({ store, trust: { requireCertificate: 'none', ...(options.orgKey ? { orgKey: options.orgKey } : {}) } });
  const kept = new Map<string, FetchedBundle>();
  const keep = (peer: string, bundle: FetchedBundle): void => {
    kept.delete(peer);
    kept.set(peer, bundle);
    if (kept.size > MAX_KEPT_BUNDLES) kept.delete(kept.keys().next().value!);
  };
  /** Encrypts into the outbox unless `messageId` is already queued for `to` (a re-run); a kept bundle starts a session. */
  const encryptOnce = async (to: string, body: Uint8Array, messageId: string, type: PayloadType): Promise<Outgoing | undefined> => {
    if (engine.pendingOutbox().some((e) => e.to === to && e.id === messageId)) return undefined;
    const bundle = engine.needsBundle(to) ? kept.get(to) : undefined;
    // Used once either way: after it there is a session, or the bundle was refused.
    if (bundle) kept.delete(to);
    return engine.encrypt(to, body, { messageId, type, ...(bundle ? { bundle } : {}) });
  };
  return {
    deviceId: engine.deviceId,
    publicIdentity: engine.publicIdentity,
    relayLoginAnswer: (challenge) => engine.relayLoginAnswer(challenge),
    signAttestation: (payload) => engine.signBotAttestation(payload),
    consent: { sign: (r) => engine.signConsent(r), signingKey: (peer) => engine.peerIdentity(peer)?.signingKey },
    erasure: { sign: (p) => engine.signErasure(p), signingKey: (peer) => engine.peerIdentity(peer)?.signingKey },
    archive: { signingKey: engine.publicIdentity.signingKey, sign: (p) => engine.signArchiveSubmission(p) },
    prekeys: (generate) => engine.prekeyUpload(generate),
    prekeysPublished: (ids) => engine.markUploaded(ids),
    async receive(incoming) {
      // Like every device, the bot acknowledges delivery: the ids owed are persisted with the message.
      const r = await engine.receive(incoming, { receipt: true });
      if (r.kind === 'duplicate') return { kind: 'duplicate' };
      if (r.kind === 'sessionReset') {
        // Applied: the peer lost or rolled back its state. A kept bundle may name prekeys it no longer has.
        if (r.applied) kept.delete(r.from);
        const resend = r.applied && r.unconfirmed > 0;
        if (resend) await store.setMany([[resendKey(r.from), new Uint8Array([1])]]);
        return { kind: 'reset', applied: r.applied, reason: r.reason, resend };
      }
      if (r.type === 'receipt') {
        await engine.consume(r.from, r.id);
        return { kind: 'ignored' };
      }
      if (r.type === 'conversation') return { kind: 'frame', frame: { from: r.from, id: r.id, sentAt: r.sentAt, frame: r.payload } };
      return { kind: 'message', message: view(r) };
    },
    async send(to, content, messageId) {
      const { type, body } = encodeContent(content);
      return encryptOnce(to, body, messageId, type);
    },
    sendFrame: (to, frame, messageId) => encryptOnce(to, frame, messageId, 'conversation'),
    needsBundle: (peer) => engine.needsBundle(peer) && !kept.has(peer),
    requestReset: (peer, failedId, reason) => engine.requestSessionReset(peer, { failedId, reason }),
    hasDeferredResets: () => engine.deferredResetCount > 0,
    deferredResets: async () => (await engine.requestDeferredResets()).map(({ envelope, reason }) => ({ out: envelope, reason })),
    pendingResends: async () => (await store.keys(RESEND_PREFIX)).map((k) => k.slice(RESEND_PREFIX.length)),
    async takeBundle(peer, bundle) {
      let result: { resent: Outgoing[]; failed: string[] } = { resent: [], failed: [] };
      if (await store.get(resendKey(peer))) {
        const r = await engine.resendUnconfirmed(peer, bundle);
        await store.delMany([resendKey(peer)]);
        result = { resent: r.resent.map((e) => ({ to: e.to, id: e.id, envelope: e.envelope })), failed: [...r.failed] };
      }
      if (engine.needsBundle(peer)) keep(peer, bundle);
      return result;
    },
    markSent: (to, id) => engine.markDelivered(to, id),
    async receipt(peer) {
      // A receipt cannot open a session: keep the ids owed until a reply or a resend opened one.
      if (engine.needsBundle(peer)) return undefined;
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
    unconsumed: async () => engine.inbox().filter((m) => m.type !== 'receipt' && m.type !== 'conversation').map(view),
    unconsumedFrames: () => engine.inbox().flatMap((m) => (m.type === 'conversation' ? [{ from: m.from, id: m.id, sentAt: m.sentAt, frame: m.payload }] : [])),
    consume: (from, id) => engine.consume(from, id),
    safetyNumber: (peer) => engine.safetyNumber(peer),
    setRevocationLists: (lists) => engine.setRevocationLists(lists),
    async setPeerCredential(peer, identity, certificate) {
      if (!options.orgKey || !isStaffCredential(certificate)) return false;
      await engine.setPeerStatements(peer, { identity, certificate });
      return engine.peerStaff(peer) !== undefined;
    },
    peerStaff: (peer) => engine.peerStaff(peer),
  };
}
