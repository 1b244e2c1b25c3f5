/**
 * The demo banner: when the server is the demo (`pnpm demo`), it answers `./api/demo-agent`
 * with the demo agent's username, password and **current authenticator code**, so a person can
 * sign in at once without an authenticator app. A real console has no such route and shows
 * nothing. The code is fetched again when it expires (every 30 s).
 */
import { h } from './dom.js';

interface DemoAgentInfo {
  username: string;
  displayName: string;
  password: string;
  code: string;
  validForMs: number;
}

function valid(x: unknown): x is DemoAgentInfo {
  const o = x as Partial<DemoAgentInfo> | null;
  return !!o && typeof o.username === 'string' && typeof o.password === 'string' && typeof o.displayName === 'string' && typeof o.code === 'string' && /^[0-9]{6}$/.test(o.code) && typeof o.validForMs === 'number';
}

async function fetchInfo(): Promise<DemoAgentInfo | undefined> {
  try {
    const res = await fetch('./api/demo-agent', { cache: 'no-store' });
    if (!res.ok || !(res.headers.get('content-type') ?? '').startsWith('application/json')) return undefined;
    const j: unknown = await res.json();
    return valid(j) ? j : undefined;
  } catch {
    return undefined;
  }
}

/** Shows the banner if this is the demo server; keeps the code current. */
export function demoBanner(): void {
  const banner = document.getElementById('demo-banner');
  if (!banner) return;
  let info: DemoAgentInfo | undefined;
  let fetchedAt = 0;
  const code = h('code', { id: 'demo-code' });
  const left = h('span', { id: 'demo-code-left' });
  const fill = h('button', { type: 'button', id: 'demo-fill', class: 'secondary' }, 'Fill in the sign-in form');
  fill.addEventListener('click', () => {
    if (!info) return;
    const put = (): void => {
      for (const [id, v] of [['username', info!.username], ['password', info!.password], ['totp', info!.code]] as const) {
        const input = document.getElementById(id) as HTMLInputElement | null;
        if (input) input.value = v;
      }
    };
    if (location.hash !== '#/signin') {
      location.hash = '#/signin';
      setTimeout(put, 0);
    } else put();
  });

  const tick = async (): Promise<void> => {
    const remaining = info ? info.validForMs - (Date.now() - fetchedAt) : 0;
    if (remaining <= 0) {
      info = await fetchInfo();
      fetchedAt = Date.now();
      if (!info) {
        banner.hidden = true;
        return;
      }
      code.textContent = info.code;
      banner.replaceChildren(
        h('strong', {}, 'Demo: '),
        `sign in as ${info.displayName} with username `, h('code', { id: 'demo-username' }, info.username),
        ', password ', h('code', { id: 'demo-password' }, info.password),
        ' and the authenticator code ', code, ' ', left, ' ',
        fill,
        h('span', { class: 'hint' }, ' (demo only: a real console never shows these; each code works once)'),
      );
      banner.hidden = false;
    }
    left.textContent = `(changes in ${Math.max(1, Math.ceil((info!.validForMs - (Date.now() - fetchedAt)) / 1000))} s)`;
    setTimeout(() => void tick(), 1000);
  };
  void tick();
}
