/**
 * `@parley/relay-link`: the one key-free relay client, used by devices (`@parley/client`) and
 * by the bot host (`@parley/bot`). It logs in (the key holder signs the challenge through a
 * callback), makes relay calls, batches delivery acks and reconnects. It never holds a private
 * key or a plaintext: it imports only the protocol's wire and verify subpaths.
 *
 * @example
 * import { RelayLink } from '@parley/relay-link';
 * const link = new RelayLink({ url: 'https://relay.example.com', credentials: { answer: (c) => signer.answer(c) } });
 * link.setHandlers({ onMessage: async (m) => ((await handle(m)) ? 'ack' : 'keep') });
 * await link.connect();
 */
export {
  RelayLink,
  DEFAULT_CONNECT_TIMEOUT_MS,
  type RelayLinkOptions,
  type RelayCredentials,
  type LoginChallenge,
  type LoginAnswer,
  type TransportHandlers,
  type Logger,
} from './relay-link.js';
