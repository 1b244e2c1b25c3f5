/**
 * The consent dialog of a handoff: an agent claimed the customer's request and asks to join.
 * It shows what the SDK verified about the agent (the certified name and role from the staff
 * credential, and the safety number of the pair) and asks which history to share (none, the
 * last N, all) and whether the bot stays. Nothing is shared and nobody joins until "Accept".
 *
 * Plain DOM with `textContent` only; a modal `role="dialog"` with a label, a description, focus
 * moved into it and kept there, Escape = Decline.
 */

/** What the dialog shows: the verified facts of the offer. */
export interface ConsentRequest {
  readonly agentName: string;
  readonly roles: readonly string[];
  readonly safetyNumber: string;
  /** The bot is a member now (the "keep the bot" choice is asked only then). */
  readonly botIsMember: boolean;
}

/** The customer's answer. */
export type ConsentAnswer =
  | { readonly accept: false }
  | { readonly accept: true; readonly history: 'none' | 'all' | { readonly last: number }; readonly bot: 'stay' | 'leave' };

/** Default of "share the last N messages". */
export const DEFAULT_SHARE_LAST = 5;

function el<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string> = {}, ...children: (Node | string)[]): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  e.append(...children);
  return e;
}

function radio(name: string, value: string, checked: boolean, id: string): HTMLInputElement {
  const r = el('input', { type: 'radio', name, value, id });
  r.checked = checked;
  return r;
}

/** The role shown for the agent: the handoff roles first. */
export function roleLabel(roles: readonly string[]): string {
  const main = roles.includes('supervisor') ? 'supervisor' : roles.includes('agent') ? 'agent' : (roles[0] ?? 'staff');
  const rest = roles.filter((r) => r !== main);
  return rest.length ? `${main} (also ${rest.join(', ')})` : main;
}

/** Shows the dialog over `host`; resolves with the answer and removes it. */
export function askConsent(host: HTMLElement, req: ConsentRequest): Promise<ConsentAnswer> {
  const opener = document.activeElement instanceof HTMLElement ? document.activeElement : undefined;
  const lastCount = el('input', { type: 'number', id: 'share-last-count', min: '1', max: '500', value: String(DEFAULT_SHARE_LAST), inputmode: 'numeric' });
  const shareNone = radio('share', 'none', false, 'share-none');
  const shareLast = radio('share', 'last', true, 'share-last');
  const shareAll = radio('share', 'all', false, 'share-all');
  const botStay = radio('bot', 'stay', true, 'bot-stay');
  const botLeave = radio('bot', 'leave', false, 'bot-leave');
  const accept = el('button', { type: 'submit', id: 'consent-accept' }, 'Accept');
  const decline = el('button', { type: 'button', id: 'consent-decline', class: 'secondary' }, 'Decline');
  const role = roleLabel(req.roles);

  const form = el('form', { class: 'dialog', role: 'dialog', 'aria-modal': 'true', 'aria-labelledby': 'consent-title', 'aria-describedby': 'consent-desc', id: 'consent-dialog' },
    el('h2', { id: 'consent-title' }, 'A person wants to join this chat'),
    el('p', { id: 'consent-desc' }, `${req.agentName} (${role}) picked up your request. They can read and write here only if you accept, and they see only the history you choose to share.`),
    el('dl', {},
      el('dt', {}, 'Name'), el('dd', { id: 'consent-agent-name' }, req.agentName),
      el('dt', {}, 'Role'), el('dd', { id: 'consent-agent-role' }, role),
      el('dt', {}, 'Safety number'), el('dd', {}, el('code', { id: 'consent-safety-number' }, req.safetyNumber)),
    ),
    el('p', { class: 'hint' }, 'Name and role are certified by the organisation this page trusts. The agent sees the same safety number: compare them to be sure nobody is in between.'),
    el('fieldset', {},
      el('legend', {}, 'Share the conversation so far'),
      el('label', { for: 'share-none' }, shareNone, ' Nothing'),
      el('div', { class: 'share-last' },
        shareLast, el('label', { for: 'share-last' }, ' The last '),
        lastCount, el('label', { for: 'share-last-count' }, ' messages'),
      ),
      el('label', { for: 'share-all' }, shareAll, ' Everything'),
    ),
    ...(req.botIsMember
      ? [el('fieldset', {},
          el('legend', {}, 'The support bot'),
          el('label', { for: 'bot-stay' }, botStay, ' Keep the bot in the chat (it stays quiet while a person helps you)'),
          el('label', { for: 'bot-leave' }, botLeave, ' Remove the bot'),
        )]
      : []),
    el('div', { class: 'actions' }, accept, decline),
  );
  const overlay = el('div', { class: 'overlay', id: 'consent-overlay' }, form);
  lastCount.addEventListener('focus', () => (shareLast.checked = true));
  host.append(overlay);
  accept.focus();

  return new Promise<ConsentAnswer>((resolve) => {
    const done = (answer: ConsentAnswer): void => {
      overlay.remove();
      opener?.focus();
      resolve(answer);
    };
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      let history: 'none' | 'all' | { last: number } = 'none';
      if (shareAll.checked) history = 'all';
      else if (shareLast.checked) {
        const n = Math.floor(Number(lastCount.value));
        if (!Number.isFinite(n) || n < 1 || n > 500) {
          lastCount.setCustomValidity('A number from 1 to 500');
          lastCount.reportValidity();
          return;
        }
        history = { last: n };
      }
      done({ accept: true, history, bot: botLeave.checked ? 'leave' : 'stay' });
    });
    lastCount.addEventListener('input', () => lastCount.setCustomValidity(''));
    decline.addEventListener('click', () => done({ accept: false }));
    form.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape') {
        ev.preventDefault();
        done({ accept: false });
        return;
      }
      if (ev.key !== 'Tab') return;
      // Keep focus inside the modal dialog.
      const focusable = Array.from(form.querySelectorAll<HTMLElement>('input, button')).filter((x) => !x.hasAttribute('disabled'));
      const first = focusable[0];
      const last = focusable[focusable.length - 1];
      if (ev.shiftKey && document.activeElement === first) {
        ev.preventDefault();
        last?.focus();
      } else if (!ev.shiftKey && document.activeElement === last) {
        ev.preventDefault();
        first?.focus();
      }
    });
  });
}
