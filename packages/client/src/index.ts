/**
 * `@parley/client`: end-to-end encrypted chat for customer-service widgets and Node apps.
 *
 * - {@link ParleyClient}: the device API (connect, send, receive, receipts, trust).
 * - `@parley/client/core`: the transport-agnostic {@link ConversationEngine} and stores.
 * - `@parley/client/node`: `FileStore` (sealed, crash-safe storage in a directory).
 *
 * @example
 * import { ParleyClient } from '@parley/client';
 * const client = await ParleyClient.create({ relayUrl, storagePath: './parley-state', storageSecret });
 * client.on('message', (m) => console.log(m.text));
 * await client.connect();
 * await client.send(peerDeviceId, 'hello');
 */
export { ParleyClient, type ParleyClientOptions, type ParleyClientEvents, type IncomingMessage, type ClientErrorEvent } from './client.js';
export { SocketTransport, type SocketTransportOptions, type TransportHandlers, type RelayCredentials, type Logger } from './transport/socket.js';
export * from './core/index.js';
export { ParleyError, isParleyError, type ParleyErrorCode } from '@parley/protocol';
