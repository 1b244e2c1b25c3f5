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
}
