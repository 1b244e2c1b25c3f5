/**
 * Conversations with several members: the {@link ConversationBook}, its types and the frame
 * limits. Frames travel as engine payloads of type `'conversation'`.
 */
export { ConversationBook, type ConversationBookOptions } from './book.js';
export {
  MAX_FRAME_BYTES,
  MAX_MEMBERS,
  MAX_NAME_CHARS,
  MAX_REASON_CHARS,
  MAX_HISTORY_ITEMS,
  CONVERSATION_ID_PATTERN,
  decodeFrame,
} from './frame.js';
export { membersHash } from './members.js';
export type { ErasureReceipt, ErasureSigner, ErasureStatus } from './erasure.js';
export { MAX_FORM_VALUE_CHARS } from './consent.js';
export type { ConsentEntry, ConsentEvent, ConsentRequestView, ConsentSigner, FormRequestBody, FormRequestView, FormValuesBody, NoConsentWhy } from './consent.js';
export type {
  ConversationEvent,
  ConversationGap,
  ConversationInfo,
  ConversationMessage,
  Frame,
  FrameContent,
  FrameKind,
  HistoryItem,
  Member,
  MemberRole,
  MessageSender,
  PreparedFrame,
  PreparedMessage,
  ReceiveFacts,
} from './types.js';
