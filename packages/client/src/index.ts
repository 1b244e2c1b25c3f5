/**
 * `@parley/client`: end-to-end encrypted chat for customer-service widgets and Node apps.
 *
 * - {@link ParleyClient}: the device API (connect, send, receive, receipts, trust).
 * - `@parley/client/node`: `FileStore` (sealed, crash-safe storage in a directory).
 * - `@parley/client/browser`: `IndexedDbStore` and the one-writer-tab lock.
 * - `@parley/engine`: the transport-agnostic conversation engine underneath (advanced use).
 *
 * @example
 * import { ParleyClient } from '@parley/client';
 * const client = await ParleyClient.create({ relayUrl, storagePath: './parley-state', storageSecret });
 * client.on('message', (m) => console.log(m.text));
 * await client.connect();
 * await client.send(peerDeviceId, 'hello');
 */
export {
  ParleyClient,
  DEFAULT_REVOCATION_REFRESH_MS,
  type ParleyClientOptions,
  type ParleyClientEvents,
  type IncomingMessage,
  type ClientErrorEvent,
  type OwnStaffCredential,
} from './client.js';
export type {
  Conversation,
  ConversationMember,
  ConversationEvents,
  ConversationSendResult,
  ConversationArchive,
  ConversationInfo,
  ConversationMessage,
  HandoffOffer,
  AcceptAgentOptions,
  ClientTickets,
  Member,
  HistoryItem,
  Ticket,
  TicketChange,
  ConsentRequestInput,
  ConsentRequestInfo,
  ConsentReceiptInfo,
  FormRequestInput,
  FormRequestInfo,
} from './conversations/types.js';
export type { ConversationErasure, ErasureArchiveOutcome } from './conversations/erasure.js';
export type { ArchiveOpenedEvent } from './conversations/archive-notices.js';
export type { ConversationExport } from './conversations/export.js';
export {
  signInStaff,
  type StaffDevice,
  type StaffSignInOptions,
  type StaffSignInResult,
  type StaffPasskeyRequestOptions,
  type StaffPasskeyResponse,
} from './staff-signin.js';
export { type PeerStaffInfo } from '@parley/engine';
export { type StaffRole } from '@parley/protocol';
export { type Logger } from '@parley/relay-link';
export { MemoryStore, type KeyValueStore, type TrustOptions, type TrustEvent, type IdentityChangedEvent, type TrustPolicy } from '@parley/engine';
export { ParleyError, isParleyError, type ParleyErrorCode, type ParleyErrorOf, type ErrorDetailsByCode } from '@parley/protocol';
