/** What every connection and handler shares within one relay instance. */
import type { Logger } from 'pino';
import type { Server, Socket } from 'socket.io';
import type { ClientToServerEvents, ServerToClientEvents } from '@parley/protocol/wire';
import type { KeyedLimiter } from './limits.js';
import type { RelayMetrics } from './metrics.js';
import type { RelayLimits } from './options.js';
import type { RelayStore } from './store/types.js';
import type { StaffAuthority } from './staff/authority.js';
import type { StaffLogin } from './staff/login.js';

/** Per-socket state, kept in `socket.data`. Nothing here is durable. */
export interface SocketData {
  address: string;
  serverNonce: Uint8Array;
  /** Set once `auth` has been tried: the nonce is single-use even when the answer fails. */
  nonceUsed: boolean;
  deviceId?: string;
  role?: 'device' | 'bot';
  /** The connection's roles (`customer`, `bot`, staff roles): staff/roles.ts. */
  roles?: readonly string[];
  /** A verified staff login (relay with an org key, device with a credential). */
  staff?: StaffLogin;
  /** Bots: the hash and public id of the API key they logged in with (rechecked for revocation). */
  apiKey?: { readonly hash: string; readonly id: string };
  violations: number;
  authTimer?: NodeJS.Timeout;
  /** Backlog drain (mailbox.ts): last seq read from the store in this pass. */
  cursor: number;
  /** Backlog envelopes pushed on this socket and not acked yet: seq → when pushed. */
  inFlight: Map<number, number>;
  /** The running drain, if any: one per socket at a time. */
  drain?: Promise<void>;
  /** A pass from the start was asked for (fetchQueue, resync) while a drain ran. */
  rescan: boolean;
  /** Wakes a drain waiting for an ack or for the socket's buffer to drain. */
  wake?: () => void;
  /** Bytes in engine.io's write buffer (packets not handed to the transport yet). */
  queuedBytes: number;
  /** Dropped as a slow consumer (once). */
  slow: boolean;
}

/** Messages between relay nodes (Redis adapter `serverSideEmit`). */
export interface InterServerEvents {
  /** A revocation list was stored: check your sockets (staff/revocations.ts). */
  revocations: () => void;
}

export type RelayServer = Server<ClientToServerEvents, ServerToClientEvents, InterServerEvents, SocketData>;
export type RelaySocket = Socket<ClientToServerEvents, ServerToClientEvents, InterServerEvents, SocketData>;

export interface RelayContext {
  readonly io: RelayServer;
  readonly store: RelayStore;
  readonly log: Logger;
  readonly metrics: RelayMetrics;
  readonly limits: RelayLimits;
  /** Resolved after listen (the default origin depends on the port). */
  origin: string;
  readonly now: () => number;
  readonly eventLimiter: KeyedLimiter;
  readonly bundleLimiter: KeyedLimiter;
  /** Bundle and identity fetches per remote address (sybil identities share it). */
  readonly addressBundleLimiter: KeyedLimiter;
  /** One-time prekeys handed out per target device. */
  readonly opkLimiter: KeyedLimiter;
  /** Authenticated sockets on this node, by device. */
  readonly deviceSockets: Map<string, Set<RelaySocket>>;
  /** Handler promises still running; `close()` waits for them before closing the store. */
  readonly inFlight: Set<Promise<unknown>>;
  /**
   * Several nodes (Redis adapter): resolves once the broadcasts emitted so far have reached
   * Redis, so a node that dies right after an ack cannot take an unsent push with it.
   */
  broadcastBarrier?: () => Promise<void>;
  /** Staff roles and revocation lists: present when the relay has an org key. */
  staff?: StaffAuthority;
  /** See `RelayOptions.customersMayMessageCustomers`. */
  customersMayMessageCustomers: boolean;
  /** Several nodes: tells the others to check their sockets against the revocation lists. */
  notifyNodes?: () => void;
}

/** socket.io room of every socket of one device (works across nodes with the Redis adapter). */
export const deviceRoom = (deviceId: string): string => `device:${deviceId}`;
