/**
 * What the page shows, readable by tests through `window.parleyConsole` (no secrets in it).
 */
import type { StaffRole } from '@parley/protocol';

/** The signed-in person (public facts of the certificate). */
export interface Staff {
  readonly personId: string;
  readonly username: string;
  readonly displayName: string;
  readonly roles: readonly StaffRole[];
  readonly expiresAt: number;
}

export interface ConsoleState {
  page: string;
  /** `idle` (waiting for input), `busy`, `done` (the page's step succeeded), `error`. */
  phase: 'idle' | 'busy' | 'done' | 'error';
  error?: { code: string; reason: string };
  staff?: Staff;
  deviceId?: string;
  relay?: 'connecting' | 'connected' | 'disconnected' | 'refused';
  /** Milliseconds from the sign-in submit to the certificate shown (last sign-in). */
  signInMs?: number;
  /** `performance.now()` at the last sign-in submit, until who-am-I shows the certificate. */
  pendingSignInStart?: number;
  invitationLink?: string;
  sent?: number;
  /** `#/queue`: the open tickets this device sees (relay metadata only). */
  queue?: { id: string; queue: string; state: string; claimedBy?: string }[];
  /** The last claim: `pending` (waiting for the customer's consent), `joined`, `declined`, `failed` (with the code). */
  claim?: { ticket: string; status: 'pending' | 'joined' | 'declined' | 'failed'; code?: string };
  /** The conversation shown: members, and how many of its messages there are and how many were shared by the customer. */
  conversation?: { id: string; members: { deviceId: string; role: string; name: string }[]; messages: number; shared: number };
  /** The shown conversation's consent requests (id, status, the form asked for) and how many forms' values arrived (no values here). */
  consent?: { requests: { id: string; status: 'waiting' | 'granted' | 'denied' | 'withdrawn'; form?: string }[]; forms: number };
}

export const state: ConsoleState = { page: '', phase: 'idle' };
(globalThis as unknown as { parleyConsole: ConsoleState }).parleyConsole = state;

/** Kept for the tab's life so a reload shows who is signed in (public facts only). */
const KEY = 'parley-console-staff';
export function saveStaff(s: Staff | undefined): void {
  state.staff = s;
  if (s) sessionStorage.setItem(KEY, JSON.stringify(s));
  else sessionStorage.removeItem(KEY);
}
export function loadStaff(): Staff | undefined {
  try {
    const raw = sessionStorage.getItem(KEY);
    return raw ? (JSON.parse(raw) as Staff) : undefined;
  } catch {
    return undefined;
  }
}

/** The admin session token: memory only (a reload asks an admin to sign in again). */
export const session: { token?: string } = {};

export function setPhase(p: ConsoleState['phase'], error?: { code: string; reason: string }): void {
  state.phase = p;
  if (error) state.error = error;
  else delete state.error;
  document.body.dataset.phase = p;
}
