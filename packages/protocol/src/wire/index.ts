/**
 * Wire types shared by every side: the message codec, the event contract (from the relay), and
 * the one bounds-checked byte reader/writer every binary format of Parley is written with.
 */
export * from './message.js';
export * from './relay.js';
export * from './reset.js';
export * from './tickets.js';
export type { IssuedCredential } from './issuer.js';
export { ByteReader, ByteWriter } from '../codec.js';
export { encodeContent, decodeContent, type ContentType, type MessageContent, type OutgoingContent } from '../content.js';
