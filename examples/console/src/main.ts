/**
 * The agent console: a hash router over five pages (enrol, sign in, who am I, the queue and
 * conversations, staff admin).
 * The issuer and the relay are reached on this page's own origin (the console server forwards
 * `/v1/` and `/socket.io/`), so the page's origin is the one WebAuthn, the device's proof and
 * the relay login all name. The organisation key is pinned in the bundle at build time.
 */
import { alertText } from './dom.js';
import { enrolPage } from './enrol.js';
import { signInPage } from './signin.js';
import { whoAmIPage } from './whoami.js';
import { adminPage } from './admin.js';
import { queuePage } from './queue.js';
import { demoBanner } from './demo-banner.js';
import { loadStaff, state } from './state.js';

declare const __PARLEY_ORG_KEY__: string;
const ORG_KEY = __PARLEY_ORG_KEY__;
const ISSUER = location.origin;

function route(): void {
  alertText('');
  document.getElementById('status')!.textContent = '';
  state.staff ??= loadStaff();
  (document.getElementById('nav-admin') as HTMLElement).hidden = !state.staff?.roles.includes('admin');
  const hash = location.hash.replace(/^#/, '') || '/signin';
  document.body.dataset.page = hash.split('/')[1] ?? '';
  const enrol = /^\/enrol\/([^/]+)$/.exec(hash);
  if (enrol) return void enrolPage(ISSUER, decodeURIComponent(enrol[1]!));
  if (hash === '/me') return whoAmIPage(ORG_KEY);
  if (hash === '/admin') return adminPage(ISSUER);
  if (hash === '/queue') return queuePage(ORG_KEY);
  return signInPage(ISSUER, ORG_KEY, () => {
    if (location.hash === '#/me') route();
    else location.hash = '#/me';
  });
}

window.addEventListener('hashchange', route);
route();
demoBanner();
