/**
 * The widget's observable state (`window.parleyWidget`): what the tests and the headless mode
 * read, and all they may read — never keys or message content.
 */
import type { BackendName } from '@parley/protocol';

export type Phase = 'starting' | 'waiting-for-tab' | 'ready' | 'error';

export interface WidgetState {
  phase: Phase;
  backend: BackendName;
  deviceId?: string;
  botDeviceId?: string;
  /** The SDK's verdict on the bot: undefined until it checked (before the first send). */
  verified?: boolean;
  errorCode?: string;
  errorRecord?: string;
  sent: number;
  received: number;
  delivered: number;
  /** The current conversation's id. */
  conversationId?: string;
  /** Its members (certified names and roles; this device is `customer`). */
  members?: { deviceId: string; role: string; name: string }[];
  /**
   * The handoff to a person: `none`; `waiting` (a ticket is open, no agent yet); `offer` (an
   * agent claimed it: the consent dialog is open); `joined` (an agent is a member).
   */
  handoff?: 'none' | 'waiting' | 'offer' | 'joined';
  /** The open ticket (an id the relay chose; the relay knows it anyway). */
  ticketId?: string;
  /** Consent dialogs answered: accepted and declined. */
  consents?: { accepted: number; declined: number };
}
