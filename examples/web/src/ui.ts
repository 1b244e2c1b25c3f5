/**
 * DOM rendering of the widget. Plain DOM, `textContent` only (never `innerHTML` with message
 * content), so a message cannot inject markup; no inline styles, so the page runs under a
 * strict Content-Security-Policy.
 */

/**
 * A bot message with structure (see bot/support-handler.ts). Consent requests and forms are not
 * messages: they are the SDK's consent frames, shown by `privacy.ts`.
 */
export type BotCard = { type: 'quick-replies'; options: string[] };

/** One line of the conversation as the widget keeps it (sealed in IndexedDB). */
export interface ChatItem {
  readonly key: string;
  /** `agent`: a person who joined through a handoff (their certified name in `name`). */
  readonly who: 'me' | 'bot' | 'agent' | 'system';
  readonly at: number;
  /** The sender's certified name (agents). */
  readonly name?: string;
  readonly text?: string;
  readonly card?: BotCard;
  /** Our message id (own messages), to match the end-to-end delivery receipt. */
  readonly msgId?: string;
  /** The bot's device persisted it (end-to-end receipt). */
  delivered?: boolean;
  /** Not sent: the typed error (e.g. the SDK refused an unverified bot). */
  failed?: string;
}

/** Callbacks of interactive cards. */
export interface CardActions {
  quickReply(text: string): void;
}

const $ = <T extends HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`missing #${id}`);
  return el as T;
};

function el<K extends keyof HTMLElementTagNameMap>(tag: K, cls?: string, text?: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

export function parseCard(json: unknown): BotCard | undefined {
  if (typeof json !== 'object' || json === null) return undefined;
  const j = json as Record<string, unknown>;
  const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string').slice(0, 20) : []);
  if (j.type === 'quick-replies') return { type: 'quick-replies', options: strings(j.options) };
  return undefined;
}

function time(at: number): string {
  return new Date(at).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

/** The widget's DOM. */
export class WidgetView {
  readonly messages = $<HTMLOListElement>('messages');
  readonly chips = $<HTMLDivElement>('chips');
  readonly input = $<HTMLInputElement>('input');
  readonly send = $<HTMLButtonElement>('send');
  readonly composer = $<HTMLFormElement>('composer');
  readonly banner = $<HTMLDivElement>('banner');
  readonly #actions: CardActions;

  constructor(actions: CardActions) {
    this.#actions = actions;
  }

  setStatus(text: string): void {
    $('status').textContent = text;
  }

  setBadge(state: 'verified' | 'unverified' | 'pending', text: string, title?: string): void {
    const b = $('badge');
    b.className = `badge ${state}`;
    b.textContent = text;
    if (title) b.title = title;
  }

  setDetail(id: 'safety-number' | 'measurement' | 'pinned-measurement' | 'bot-device' | 'my-device' | 'backend' | 'storage', text: string): void {
    $(id).textContent = text;
  }

  /** A banner above the conversation; `action` adds a button. `undefined` hides it. */
  showBanner(text: string | undefined, kind: 'info' | 'error' = 'info', action?: { label: string; run: () => void }): void {
    this.banner.replaceChildren();
    this.banner.hidden = text === undefined;
    this.banner.className = kind === 'error' ? 'banner error' : 'banner';
    if (text === undefined) return;
    this.banner.append(el('span', undefined, text));
    if (action) {
      const btn = el('button', 'secondary', action.label);
      btn.type = 'button';
      btn.addEventListener('click', action.run);
      this.banner.append(btn);
    }
  }

  enableInput(on: boolean): void {
    this.input.disabled = !on;
    this.send.disabled = !on;
    if (on) this.input.focus();
  }

  /** Adds (or re-renders) an item. */
  render(item: ChatItem): void {
    if (item.card?.type === 'quick-replies') {
      this.#chips(item.card.options);
      return;
    }
    const li = el('li', `msg ${item.who}`);
    li.dataset.key = item.key;
    if (item.delivered) li.dataset.delivered = 'true';
    if (item.failed) li.dataset.failed = item.failed;
    if (item.who === 'agent' && item.name) li.append(el('span', 'from', item.name));
    if (item.text !== undefined) li.append(document.createTextNode(item.text));
    const status = item.failed ? ` · not sent (${item.failed})` : item.delivered ? ' · delivered ✓✓' : ' · sent ✓';
    if (item.who !== 'system') li.append(el('span', 'meta', `${time(item.at)}${item.who === 'me' ? status : ''}`));
    const old = this.messages.querySelector<HTMLLIElement>(`li[data-key="${CSS.escape(item.key)}"]`);
    if (old) old.replaceWith(li);
    else this.messages.append(li);
    this.messages.scrollTop = this.messages.scrollHeight;
  }

  /** The member list in the header: each member's certified name and role. */
  setMembers(members: readonly { deviceId: string; name: string; role: string; self: boolean }[]): void {
    const list = $<HTMLUListElement>('members');
    list.replaceChildren(
      ...members.map((m) => {
        const li = el('li', `member ${m.role}`);
        li.dataset.device = m.deviceId;
        li.dataset.role = m.role;
        li.append(el('span', 'member-name', m.self ? 'You' : m.name), el('span', 'member-role', m.role));
        return li;
      }),
    );
    list.hidden = members.length === 0;
  }

  clear(): void {
    this.messages.replaceChildren();
    this.chips.replaceChildren();
  }

  #chips(options: string[]): void {
    this.chips.replaceChildren(
      ...options.map((o) => {
        const c = el('button', 'chip', o);
        c.type = 'button';
        c.addEventListener('click', () => this.#actions.quickReply(o));
        return c;
      }),
    );
  }
}
