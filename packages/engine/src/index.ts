/**
 * `@parley/engine`: the transport-agnostic conversation engine of the key holders. No sockets,
 * no files, no Node APIs: the Node/browser client and the bot enclave run the same engine and
 * carry its envelopes themselves.
 *
 * @example
 * import { initCrypto } from '@parley/protocol';
 * import { ConversationEngine, MemoryStore } from '@parley/engine';
 * await initCrypto();
 * const engine = await ConversationEngine.open({ store: new MemoryStore() });
 * console.log(engine.deviceId);
 */
export {
  ConversationEngine,
  MAX_SESSIONS_PER_PEER,
  SIGNED_PREKEY_MAX_AGE_MS,
  DEFAULT_PREKEY_TARGET,
  type EngineOptions,
  type EncryptOptions,
  type FetchedBundle,
  type IncomingEnvelope,
  type OutgoingEnvelope,
  type PeerCertificateInfo,
  type PeerStaffInfo,
  type PeerAttestationInfo,
  type PeerStatements,
  type ReceiveOptions,
  type ReceiveResult,
  type ReceivedMessage,
  type SessionResetResult,
  type ResendResult,
  receiptMessageId,
} from './engine.js';
export {
  resetReasonOf,
  resendRelayId,
  MAX_UNCONFIRMED_PER_PEER,
  MAX_RESENDS,
  MAX_ARCHIVED_SESSIONS,
  RESET_REQUEST_INTERVAL_MS,
  RESET_APPLY_INTERVAL_MS,
  MAX_RESET_REQUESTS_PER_MINUTE,
} from './healing.js';
export { MemoryStore, type KeyValueStore } from './store.js';
export { type RevocationUpdate } from './revocations.js';
export { SEEN_BUCKET_SIZE, SEEN_BUCKETS_KEPT } from './mailbox.js';
export { MAX_TRACKED_GAPS } from './gaps.js';
export {
  ConversationBook,
  MAX_FRAME_BYTES,
  MAX_MEMBERS,
  MAX_NAME_CHARS,
  MAX_REASON_CHARS,
  MAX_HISTORY_ITEMS,
  CONVERSATION_ID_PATTERN,
  decodeFrame,
  membersHash,
  type ConversationBookOptions,
  type ConversationEvent,
  type ConversationGap,
  type ConversationInfo,
  type ConversationMessage,
  type Frame,
  type FrameContent,
  type FrameKind,
  type HistoryItem,
  type Member,
  type MemberRole,
  type MessageSender,
  type PreparedFrame,
  type PreparedMessage,
  type ReceiveFacts,
  type ErasureReceipt,
  type ErasureSigner,
  type ErasureStatus,
  MAX_FORM_VALUE_CHARS,
  type ConsentEntry,
  type ConsentEvent,
  type ConsentRequestView,
  type ConsentSigner,
  type FormRequestBody,
  type FormRequestView,
  type FormValuesBody,
  type NoConsentWhy,
} from './conversations/index.js';
export { SealedStore, deriveStorageKey, sealRecord, openRecord, STORAGE_KEY_BYTES } from './sealed-store.js';
export { resolveTrust, type TrustOptions, type TrustEvent, type IdentityChangedEvent, type TrustPolicy } from './trust.js';
export { archiveStatus, requireArchive, type ArchiveStatus, type StoredDisclosure } from './archive-disclosure.js';
export { sealArchiveSubmission, archivedBody, type ArchivableMessage, type ArchiveSealInput } from './archive-seal.js';
export {
  encodePayload,
  decodePayload,
  encodeReceiptBody,
  decodeReceiptBody,
  assertMessageId,
  PAYLOAD_VERSION,
  MAX_RECEIPT_IDS,
  type InnerPayload,
  type PayloadType,
} from './payload.js';
