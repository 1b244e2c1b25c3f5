/**
 * `#/enrol/<invitation>`: a new staff member sets a password, then registers a passkey
 * (WebAuthn, `@simplewebauthn/browser`) or, where no passkey is possible, an authenticator app
 * (TOTP: the otpauth URL and the secret are shown once). The invitation is consumed by the
 * issuer when the password and one factor are set.
 */
import { startRegistration } from '@simplewebauthn/browser';
import { enrol } from './issuer-api.js';
import { describeError } from './error-text.js';
import { alertText, field, h, render, status } from './dom.js';
import { setPhase, state } from './state.js';

const MIN_PASSWORD = 12;

export async function enrolPage(base: string, invitation: string): Promise<void> {
  const fail = (e: unknown): void => {
    const d = describeError(e);
    setPhase('error', { code: d.code, reason: d.reason });
    alertText(d.text);
    status('');
  };
  render('Set up your staff account');
  setPhase('busy');
  status('Checking your invitation…');
  let who;
  try {
    who = await enrol.start(base, invitation);
  } catch (e) {
    fail(e);
    return;
  }
  status('');
  setPhase('idle');

  const password = h('form', { id: 'enrol-password', novalidate: true },
    h('p', {}, `Welcome, ${who.displayName}. Your username is `, h('strong', { id: 'enrol-username' }, who.username), '.'),
    field('new-password', `Choose a password (at least ${MIN_PASSWORD} characters)`, { type: 'password', autocomplete: 'new-password', required: true, minlength: String(MIN_PASSWORD) }),
    field('confirm-password', 'Type it again', { type: 'password', autocomplete: 'new-password', required: true }),
    h('button', { type: 'submit' }, 'Save password'),
  );
  const factor = h('section', { id: 'enrol-factor', hidden: true, 'aria-labelledby': 'factor-heading' },
    h('h2', { id: 'factor-heading' }, 'Add a second factor'),
    h('p', {}, 'A passkey on this device is the simplest and phishing-resistant. If this device cannot hold one, use an authenticator app.'),
    h('button', { type: 'button', id: 'register-passkey' }, 'Register a passkey'),
    h('button', { type: 'button', id: 'use-totp', class: 'secondary' }, 'Use an authenticator app instead'),
  );
  const done = h('section', { id: 'enrol-done', hidden: true },
    h('p', {}, 'You are enrolled. ', h('a', { href: '#/signin' }, 'Sign in now'), '.'),
  );
  render('Set up your staff account', password, factor, done);

  const finish = (): void => {
    factor.hidden = true;
    done.hidden = false;
    setPhase('done');
    status('Enrolment complete.');
    (done.querySelector('a') as HTMLElement).focus();
  };

  password.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const p = (document.getElementById('new-password') as HTMLInputElement).value;
    const c = (document.getElementById('confirm-password') as HTMLInputElement).value;
    if (p.length < MIN_PASSWORD) return void alertText(`The password needs at least ${MIN_PASSWORD} characters.`);
    if (p !== c) return void alertText('The two passwords are not the same.');
    alertText('');
    setPhase('busy');
    void enrol.password(base, invitation, p).then(
      () => {
        password.hidden = true;
        factor.hidden = false;
        setPhase('idle');
        status('Password saved. Now add a second factor.');
        (document.getElementById('register-passkey') as HTMLElement).focus();
      },
      fail,
    );
  });

  document.getElementById('register-passkey')!.addEventListener('click', () => {
    alertText('');
    setPhase('busy');
    status('Follow your browser to create the passkey…');
    void (async () => {
      const optionsJSON = await enrol.passkeyOptions(base, invitation);
      const response = await startRegistration({ optionsJSON });
      await enrol.passkeyVerify(base, invitation, response);
      finish();
    })().catch(fail);
  });

  document.getElementById('use-totp')!.addEventListener('click', () => {
    alertText('');
    setPhase('busy');
    void (async () => {
      const { otpauthUrl, secret } = await enrol.totpStart(base, invitation);
      const form = h('form', { id: 'enrol-totp' },
        h('p', {}, 'Add this account to your authenticator app (scan or paste the link, or type the secret), then type the 6-digit code it shows.'),
        h('p', {}, 'Link: ', h('a', { href: otpauthUrl, id: 'otpauth-url', class: 'secret' }, otpauthUrl)),
        h('p', {}, 'Secret: ', h('code', { id: 'totp-secret', class: 'secret' }, secret)),
        field('enrol-code', 'Code from the app', { inputmode: 'numeric', autocomplete: 'one-time-code', pattern: '[0-9]{6,8}', required: true }),
        h('button', { type: 'submit' }, 'Confirm code'),
      );
      factor.replaceChildren(h('h2', { id: 'factor-heading' }, 'Authenticator app'), form);
      setPhase('idle');
      (document.getElementById('enrol-code') as HTMLElement).focus();
      form.addEventListener('submit', (ev) => {
        ev.preventDefault();
        alertText('');
        setPhase('busy');
        const code = (document.getElementById('enrol-code') as HTMLInputElement).value.trim();
        void enrol.totpVerify(base, invitation, code).then(finish, fail);
      });
    })().catch(fail);
  });
  state.page = 'enrol';
}
