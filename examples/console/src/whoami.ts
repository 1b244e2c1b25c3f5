/**
 * `#/me`: who is signed in on this browser (name, roles, certificate expiry), whether the
 * device is connected to the relay with that certificate, a small form to message a customer
 * device as this agent, and sign out (forget the certificate and the device, then close).
 */
import type { ParleyClient } from '@parley/client';
import { describeError } from './error-text.js';
import { alertText, field, h, render, status } from './dom.js';
import { loadStaff, saveStaff, session, setPhase, state, type ConsoleState } from './state.js';
import { forgetDevice } from './device.js';
import { agentSession, forgetAgentSession } from './agent.js';

let wired: ParleyClient | undefined;

function relayText(s: ConsoleState['relay']): string {
  return s === 'connected' ? 'connected (certificate accepted)' : s === 'refused' ? 'refused this device' : s === 'disconnected' ? 'disconnected, reconnecting…' : 'connecting…';
}

export function whoAmIPage(orgKey: string): void {
  state.page = 'me';
  const staff = state.staff ?? loadStaff();
  if (!staff) {
    setPhase('idle');
    render('Who am I', h('p', { id: 'signed-out' }, 'Nobody is signed in on this browser. ', h('a', { href: '#/signin' }, 'Sign in'), '.'));
    return;
  }
  state.staff = staff;
  const expires = new Date(staff.expiresAt);
  const relay = h('dd', { id: 'me-relay' }, relayText(state.relay));
  const deviceId = h('dd', {}, h('code', { id: 'me-device' }, state.deviceId ?? '–'));
  const send = h('form', { id: 'send-form' },
    h('h2', {}, 'Message a customer'),
    field('peer', 'Customer device id', { required: true, autocomplete: 'off' }),
    field('text', 'Message', { required: true, autocomplete: 'off', maxlength: '2000' }),
    h('button', { type: 'submit' }, 'Send'),
  );
  const signOut = h('button', { type: 'button', id: 'sign-out', class: 'secondary' }, 'Sign out');
  render('Who am I',
    h('dl', { id: 'me' },
      h('dt', {}, 'Name'), h('dd', { id: 'me-name' }, staff.displayName),
      h('dt', {}, 'Username'), h('dd', { id: 'me-username' }, staff.username),
      h('dt', {}, 'Roles'), h('dd', { id: 'me-roles' }, staff.roles.join(', ')),
      h('dt', {}, 'Certificate expires'), h('dd', {}, h('time', { id: 'me-expires', datetime: expires.toISOString() }, expires.toLocaleString())),
      h('dt', {}, 'Relay'), relay,
      h('dt', {}, 'This device'), deviceId,
    ),
    send,
    h('p', {}, h('a', { href: '#/queue', id: 'open-queue' }, 'Open the queue and your conversations'), ' · ', signOut),
  );
  if (state.pendingSignInStart !== undefined) {
    state.signInMs = Math.round(performance.now() - state.pendingSignInStart);
    delete state.pendingSignInStart;
  }
  setPhase('done');
  status(`Signed in as ${staff.displayName}.`);

  const setRelay = (s: ConsoleState['relay']): void => {
    state.relay = s;
    const el = document.getElementById('me-relay');
    if (el) el.textContent = relayText(s);
  };
  void (async () => {
    // The agent session wires the conversation events before the device connects.
    const { client } = await agentSession(orgKey);
    state.deviceId = client.deviceId;
    const el = document.getElementById('me-device');
    if (el) el.textContent = client.deviceId;
    if (wired !== client) {
      wired = client;
      client.on('connected', () => setRelay('connected'));
      client.on('disconnected', () => setRelay('disconnected'));
      client.on('authFailed', ({ error }) => {
        setRelay('refused');
        alertText(`Relay: ${describeError(error).text}`);
      });
    }
    if (!client.connected) {
      setRelay('connecting');
      await client.connect();
    }
    setRelay('connected');
  })().catch((e: unknown) => {
    setRelay('refused');
    alertText(`Relay: ${describeError(e).text}`);
  });

  send.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const peer = (document.getElementById('peer') as HTMLInputElement).value.trim();
    const input = document.getElementById('text') as HTMLInputElement;
    alertText('');
    void (async () => {
      const { client } = await agentSession(orgKey);
      await client.send(peer, input.value);
      state.sent = (state.sent ?? 0) + 1;
      input.value = '';
      status('Message sent.');
    })().catch((e: unknown) => alertText(describeError(e).text));
  });

  signOut.addEventListener('click', () => {
    void (async () => {
      await forgetDevice();
      forgetAgentSession();
      wired = undefined;
      saveStaff(undefined);
      delete session.token;
      delete state.deviceId;
      delete state.relay;
      location.hash = '#/signin';
      status('Signed out. This browser no longer holds your certificate.');
    })();
  });
}
