/**
 * The "what the relay sees" panel: a live feed (Server-Sent Events from the demo server) of
 * what the relay's store held and passed on. Every field shown is one the relay has: device
 * ids, message ids, sizes, and the first bytes of ciphertext.
 */

/** Mirrors `RelayEvent` in examples/relay-observer/relay-observer.ts (what the SSE stream carries). */
export interface RelayEventView {
  n: number;
  at: number;
  kind: 'stored' | 'forwarded' | 'acked' | 'prekeys' | 'bundle';
  from?: string;
  to?: string;
  id?: string;
  seq?: number;
  size?: number;
  head?: string;
  duplicate?: boolean;
  count?: number;
}

const MAX_ROWS = 200;

export class RelayPanel {
  readonly #rows: HTMLTableSectionElement;
  readonly #summary: HTMLElement;
  readonly #names = new Map<string, string>();
  #stored = 0;
  #bytes = 0;
  #lastN = 0;
  #source: EventSource | undefined;

  constructor() {
    this.#rows = document.getElementById('relay-rows') as HTMLTableSectionElement;
    this.#summary = document.getElementById('relay-summary')!;
  }

  /** Shows `name` instead of a device id's prefix, also in rows already shown. */
  name(deviceId: string, name: string): void {
    this.#names.set(deviceId, name);
    this.#rows.querySelectorAll<HTMLSpanElement>('span[data-device]').forEach((span) => {
      if (span.dataset.device === deviceId) span.textContent = name;
    });
  }

  /** Starts listening (reconnects on its own, and never shows an event twice). */
  connect(url = './api/relay-events'): void {
    this.#source = new EventSource(url);
    this.#source.addEventListener('message', (m: MessageEvent<string>) => {
      try {
        this.add(JSON.parse(m.data) as RelayEventView);
      } catch {
        // a malformed event is ignored
      }
    });
  }

  close(): void {
    this.#source?.close();
  }

  #who(id: string | undefined): HTMLSpanElement {
    const span = document.createElement('span');
    span.textContent = id ? (this.#names.get(id) ?? `${id.slice(0, 8)}…`) : '–';
    if (id) span.dataset.device = id;
    return span;
  }

  add(e: RelayEventView): void {
    if (e.n <= this.#lastN) return;
    this.#lastN = e.n;
    if (e.kind === 'stored' && !e.duplicate) {
      this.#stored++;
      this.#bytes += e.size ?? 0;
    }
    const tr = document.createElement('tr');
    tr.className = e.kind;
    const route: (string | Node)[] =
      e.kind === 'prekeys'
        ? [this.#who(e.from), ` prekeys (${e.count} OPKs)`]
        : e.kind === 'bundle'
          ? ['bundle of ', this.#who(e.to)]
          : [this.#who(e.from), ' → ', this.#who(e.to)];
    const cells: [string | (string | Node)[], string?][] = [
      [new Date(e.at).toLocaleTimeString([], { hour12: false })],
      [(e.kind === 'acked' ? 'acked, deleted' : e.kind) + (e.duplicate ? ' (dup)' : ''), 'ev'],
      [route, 'route'],
      [e.id === undefined ? '' : e.id.length > 14 ? `${e.id.slice(0, 13)}…` : e.id],
      [e.size === undefined ? '' : String(e.size)],
      [e.head ?? '', 'hex'],
    ];
    for (const [content, cls] of cells) {
      const td = document.createElement('td');
      if (typeof content === 'string') td.textContent = content;
      else td.append(...content);
      if (cls) td.className = cls;
      tr.append(td);
    }
    this.#rows.prepend(tr);
    while (this.#rows.rows.length > MAX_ROWS) this.#rows.deleteRow(-1);
    this.#summary.textContent = `${this.#stored} envelopes stored, ${this.#bytes} bytes of ciphertext. The relay routes by device id and never holds a key that opens them.`;
  }
}
