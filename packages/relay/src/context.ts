/** What every connection and handler shares within one relay instance. */
import type { Logger } from 'pino';
import type { Server, Socket } from 'socket.io';
import type { ClientToServerEvents, ServerToClientEvents } from '@parley/protocol/wire';
import type { KeyedLimiter } from './limits.js';
import type { RelayMetrics } from './metrics.js';
import type { RelayLimits } from './options.js';
import type { RelayStore } from './store/types.js';

/** Per-socket state, kept in `socket.data`. Nothing here is durable. */
export interface SocketData {
  address: string;
  serverNonce: Uint8Array;
  /** Set once `auth` has been tried: the nonce is single-use even when the answer fails. */
  nonceUsed: boolean;
  deviceId?: string;
  role?: 'device' | 'bot';
  violations: number;
  authTimer?: NodeJS.Timeout;
  /** Backlog drain: last seq pushed from the store, messages pushed and not acked yet. */
  cursor: number;
  inFlight: number;
  draining: boolean;
}

export type RelayServer = Server<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>;
export type RelaySocket = Socket<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>;

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
  /** Handler promises still running; `close()` waits for them before closing the store. */
  readonly inFlight: Set<Promise<unknown>>;
  /**
   * Several nodes (Redis adapter): resolves once the broadcasts emitted so far have reached
   * Redis, so a node that dies right after an ack cannot take an unsent push with it.
   */
  broadcastBarrier?: () => Promise<void>;
}

/** socket.io room of every socket of one device (works across nodes with the Redis adapter). */
export const deviceRoom = (deviceId: string): string => `device:${deviceId}`;
