/**
 * What the conversation layer needs from its {@link ParleyClient}: the client's send path (engine
 * encrypt + durable outbox), its trust view of peers, the relay's ticket calls, and its events.
 * The client implements it with closures over its private state, so this layer sees nothing else.
 */
import type { ParleyError } from '@parley/protocol';
import type { ArchiveStatus, PeerCertificateInfo, PeerStaffInfo } from '@parley/engine';
import type { RelayLink } from '@parley/relay-link';
import type { ConversationEvents } from './types.js';
import type { ErasureHooks } from './erasure.js';
import type { ArchiveHooks } from './archiver.js';

/** The relay's ticket calls (`RelayLink`). */
export type TicketLink = Pick<RelayLink, 'openTicket' | 'listTickets' | 'getTicket' | 'claimTicket' | 'releaseTicket' | 'closeTicket'>;

/** One recipient a fan-out could not reach, and why. */
export interface FanOutFailure {
  readonly peer: string;
  readonly error: ParleyError;
}

export interface ConversationPort {
  readonly deviceId: string;
  /** True when the client pins an org key (certificates and staff credentials can be verified). */
  readonly orgKeyPinned: boolean;
  /**
   * Encrypts `frame` (an engine payload of type `'conversation'`) to each recipient with message
   * id `id`, through the outbox; resolves once the relay settled them (or they wait in the outbox).
   * Never throws for one recipient: its failure is returned.
   */
  fanOut(recipients: readonly string[], frame: Uint8Array, id: string): Promise<FanOutFailure[]>;
  /** Fetches `peer`'s published statements from the relay and lets the engine verify them (throws the engine's refusal). */
  refreshStatements(peer: string): Promise<void>;
  peerStaff(peer: string): PeerStaffInfo | undefined;
  peerCertificate(peer: string): PeerCertificateInfo | undefined;
  /** The engine's archive gate over `peers` and the first message's time (archive-disclosure.ts). */
  archiveStatus?(peers: readonly string[], firstMessageAt: number | undefined): ArchiveStatus;
  /** Sealing sent messages to the compliance archive (conversations/archiver.ts). */
  readonly archiveHooks?: ArchiveHooks;
  /** The safety number with `peer`, or undefined before any contact. */
  safetyNumber(peer: string): string | undefined;
  readonly link: TicketLink;
  emit<K extends keyof ConversationEvents>(event: K, value: ConversationEvents[K]): void;
  report(e: unknown, context?: { peer?: string; id?: string }): void;
  newMessageId(): string;
  /** Engine and relay calls of erasure (conversations/erasure.ts). */
  readonly erasureHooks?: ErasureHooks;
}
