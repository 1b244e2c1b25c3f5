/**
 * "What the relay sees" of one conversation: the ticket exactly as the relay keeps it (queue,
 * opaque reference, device ids, times, state) and the envelopes between the conversation's
 * members (device ids, message id, size: ciphertext only). The envelopes come from the demo
 * server's feed of the relay's store (`/api/relay-events`, examples/relay-observer); without
 * that feed (a console in front of a production relay) only the ticket is shown.
 */
import type { Ticket } from '@parley/client';
import { h } from './dom.js';

/** The fields of the relay-observer's events this view reads. */
interface RelayEventView {
  n: number;
  at: number;
  kind: string;
  from?: string;
  to?: string;
  id?: string;
  size?: number;
  head?: string;
  duplicate?: boolean;
}

const KEEP = 2000;

export class RelayView {
  readonly element: HTMLElement;
  readonly #ticket = h('dl', { id: 'relay-ticket' });
  readonly #summary = h('p', { id: 'relay-summary' }, 'No conversation selected.');
  readonly #rows = h('tbody', { id: 'relay-rows' });
  readonly #events: RelayEventView[] = [];
  #members = new Map<string, string>();
  #source: EventSource | undefined;
  #feed: 'connecting' | 'on' | 'absent' = 'connecting';

  constructor() {
    this.element = h('section', { id: 'relay-section', class: 'panel relay', 'aria-labelledby': 'relay-title' },
      h('h2', { id: 'relay-title' }, 'What the relay sees'),
      h('p', { class: 'hint' }, 'Everything the relay holds about this conversation: the ticket, device ids, sizes and ciphertext. No text, no names.'),
      this.#ticket,
      this.#summary,
      h('table', { class: 'relay-table' },
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'from → to'), h('th', { scope: 'col' }, 'message id'), h('th', { scope: 'col' }, 'bytes'), h('th', { scope: 'col' }, 'ciphertext'))),
        this.#rows,
      ),
    );
  }

  /** Starts the feed (once); reconnects on its own. */
  connect(url = '/api/relay-events'): void {
    if (this.#source) return;
    this.#source = new EventSource(url);
    this.#source.addEventListener('open', () => {
      this.#feed = 'on';
      this.#render();
    });
    this.#source.addEventListener('error', () => {
      if (this.#feed !== 'on') {
        // No feed on this server: a console in front of a relay that is not the demo's.
        this.#feed = 'absent';
        this.#source?.close();
        this.#render();
      }
    });
    this.#source.addEventListener('message', (m: MessageEvent<string>) => {
      try {
        const e = JSON.parse(m.data) as RelayEventView;
        if (e.kind !== 'stored' || e.duplicate) return;
        this.#events.push(e);
        if (this.#events.length > KEEP) this.#events.shift();
        if (this.#members.has(e.from ?? '') && this.#members.has(e.to ?? '')) this.#render();
      } catch {
        // a malformed event is ignored
      }
    });
  }

  close(): void {
    this.#source?.close();
    this.#source = undefined;
  }

  /** Shows `ticket` and the envelopes among `members` (device id → name shown instead of the id). */
  show(ticket: Ticket | undefined, members: ReadonlyMap<string, string>): void {
    this.#members = new Map(members);
    const rows: [string, string][] = ticket
      ? [
          ['Ticket', ticket.id],
          ['Queue', ticket.queue],
          ['Reference', ticket.ref],
          ['Customer device', ticket.customer],
          ['Opened', new Date(ticket.openedAt).toLocaleString()],
          ['Waiting since', new Date(ticket.waitingSince).toLocaleString()],
          ['State', ticket.state],
          ['Claimed by', ticket.claimedBy ?? '–'],
        ]
      : [];
    this.#ticket.replaceChildren(...rows.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, h('code', {}, v))]));
    this.#render();
  }

  #name(id: string | undefined): string {
    return (id && this.#members.get(id)) ?? (id ? `${id.slice(0, 8)}…` : '–');
  }

  #render(): void {
    if (this.#members.size === 0) {
      this.#summary.textContent = 'No conversation selected.';
      this.#rows.replaceChildren();
      return;
    }
    if (this.#feed === 'absent') {
      this.#summary.textContent = 'This server has no feed of the relay\'s store: only the ticket is shown.';
      return;
    }
    const mine = this.#events.filter((e) => this.#members.has(e.from ?? '') && this.#members.has(e.to ?? ''));
    const bytes = mine.reduce((n, e) => n + (e.size ?? 0), 0);
    this.#summary.textContent = `${mine.length} envelopes among the members, ${bytes} bytes of ciphertext. One envelope per member for each message (pairwise fan-out); the relay has no key to any of them.`;
    this.#rows.replaceChildren(
      ...mine.slice(-100).reverse().map((e) =>
        h('tr', { title: new Date(e.at).toLocaleTimeString([], { hour12: false }) },
          h('td', {}, `${this.#name(e.from)} → ${this.#name(e.to)}`),
          h('td', {}, e.id === undefined ? '' : e.id.length > 11 ? `${e.id.slice(0, 10)}…` : e.id),
          h('td', { class: 'bytes' }, String(e.size ?? '')),
          h('td', { class: 'hex' }, e.head ? `${e.head.slice(0, 16)}…` : ''),
        ),
      ),
    );
  }
}
