/**
 * `#/signin`: username and password, then the second factor (the passkey, or a code from the
 * authenticator app). The issuer also gets this browser's proof of possession of its device
 * identity key, and certifies that key: the certificate is handed to the device's client,
 * which connects to the relay with it.
 */
import { startAuthentication, type PublicKeyCredentialRequestOptionsJSON } from '@simplewebauthn/browser';
import { signInStaff } from '@parley/client';
import { describeError } from './error-text.js';
import { alertText, field, h, render, status } from './dom.js';
import { saveStaff, session, setPhase, state } from './state.js';
import { device } from './device.js';

export function signInPage(base: string, orgKey: string, onSignedIn: () => void): void {
  state.page = 'signin';
  setPhase('idle');
  const form = h('form', { id: 'signin' },
    field('username', 'Username', { autocomplete: 'username webauthn', required: true }),
    field('password', 'Password', { type: 'password', autocomplete: 'current-password', required: true }),
    h('fieldset', {},
      h('legend', {}, 'Second factor'),
      h('p', {}, 'Use your passkey, or type the code from your authenticator app.'),
      field('totp', 'Authenticator code (leave empty to use your passkey)', { inputmode: 'numeric', autocomplete: 'one-time-code', pattern: '[0-9]{6,8}' }),
    ),
    h('button', { type: 'submit', id: 'signin-submit' }, 'Sign in'),
  );
  render('Sign in', form);

  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const t0 = performance.now();
    const username = (document.getElementById('username') as HTMLInputElement).value.trim();
    const password = (document.getElementById('password') as HTMLInputElement).value;
    const totp = (document.getElementById('totp') as HTMLInputElement).value.trim();
    const button = document.getElementById('signin-submit') as HTMLButtonElement;
    alertText('');
    setPhase('busy');
    button.disabled = true;
    status(totp ? 'Signing in…' : 'Signing in: follow your browser to use your passkey…');
    void (async () => {
      const client = await device(orgKey);
      const r = await signInStaff(client, {
        issuerUrl: base,
        username,
        password,
        // The issuer's options are WebAuthn's JSON shape, which `@simplewebauthn/browser` takes as is.
        ...(totp ? { totp } : { passkey: (o) => startAuthentication({ optionsJSON: o as PublicKeyCredentialRequestOptionsJSON }) }),
      });
      session.token = r.sessionToken;
      saveStaff({ personId: r.personId, username, displayName: r.displayName, roles: r.roles, expiresAt: r.expiresAt });
      state.pendingSignInStart = t0;
      onSignedIn();
    })().catch((e: unknown) => {
      const d = describeError(e);
      setPhase('error', { code: d.code, reason: d.reason });
      alertText(d.text);
      status('');
      button.disabled = false;
      (document.getElementById('password') as HTMLInputElement).value = '';
    });
  });
}
