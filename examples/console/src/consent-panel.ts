/**
 * The "Personal data" panel of the conversation view: **Request consent** (purpose, fields,
 * retention days, controller), the customer's receipts per request (waiting, granted, denied,
 * withdrawn), **Request form** for a granted receipt, and the values received. Built once per
 * page (the inputs keep what the agent typed); `show` redraws the lists. Values are rendered as
 * text only.
 */
import type { ConsentReceiptInfo } from '@parley/client';
import { h } from './dom.js';
import type { ConsentAsk, ConsentRow, ReceivedForm } from './consent-log.js';

/** What the panel asks its page to do. */
export interface ConsentPanelActions {
  requestConsent(ask: ConsentAsk): void;
  requestForm(receipt: ConsentReceiptInfo): void;
}

/** The form's starting values (the demo's return: what the support bot asks for too). */
const DEFAULTS = { purpose: 'To arrange your return', fields: 'name, email, address', retentionDays: '30', controller: 'Acme Ltd' } as const;

const STATUS_TEXT: Record<ConsentRow['status'], string> = {
  waiting: 'waiting for the customer',
  granted: 'granted (signed receipt)',
  denied: 'denied (signed receipt)',
  withdrawn: 'withdrawn by the customer',
};

const time = (at: number): string => new Date(at).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });

function input(id: string, label: string, value: string, attrs: Record<string, string> = {}): { row: HTMLElement; el: HTMLInputElement } {
  const el = h('input', { id, name: id, value, autocomplete: 'off', ...attrs });
  return { row: h('p', { class: 'field' }, h('label', { for: id }, label), el), el };
}

export class ConsentPanel {
  readonly element: HTMLElement;
  readonly #requests = h('ul', { id: 'consent-requests', class: 'consents', 'aria-label': 'Consent requests' });
  readonly #values = h('ul', { id: 'form-values', class: 'consents', 'aria-label': 'Form values received' });
  readonly #actions: ConsentPanelActions;

  constructor(actions: ConsentPanelActions) {
    this.#actions = actions;
    const purpose = input('consent-purpose', 'Purpose (the customer reads this)', DEFAULTS.purpose, { maxlength: '200' });
    const fields = input('consent-fields', 'Fields (names, comma-separated)', DEFAULTS.fields, { maxlength: '400' });
    const retention = input('consent-retention', 'Kept for (days)', DEFAULTS.retentionDays, { type: 'number', min: '0', max: '3650' });
    const controller = input('consent-controller', 'Controller', DEFAULTS.controller, { maxlength: '100' });
    const submit = h('button', { type: 'submit', id: 'consent-request' }, 'Request consent');
    const form = h('form', { id: 'consent-form', class: 'consent-form' }, purpose.row, fields.row, retention.row, controller.row, submit);
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.#actions.requestConsent({
        purpose: purpose.el.value.trim(),
        fields: fields.el.value.split(',').map((f) => f.trim()).filter((f) => f.length > 0),
        retentionDays: Number(retention.el.value),
        controller: controller.el.value.trim(),
      });
    });
    this.element = h('details', { id: 'consent-section', class: 'consent-panel', open: true },
      h('summary', {}, 'Personal data: consent and forms'),
      h('p', { class: 'hint' }, 'Ask the customer first. Their answer comes back as a receipt signed by their device; a form can only ask for the fields a granted receipt covers, and the SDK refuses values without one.'),
      form,
      h('h3', {}, 'Requests and receipts'), this.#requests,
      h('h3', {}, 'Values received'), this.#values,
    );
  }

  /** Redraws the requests (with their receipts) and the values received. */
  show(rows: readonly ConsentRow[], received: readonly ReceivedForm[]): void {
    this.#requests.replaceChildren(
      ...(rows.length === 0 ? [h('li', { class: 'hint' }, 'No consent asked for yet.')] : []),
      ...rows.map((r) => {
        const li = h('li', { class: `consent ${r.status}`, 'data-request': r.requestId, 'data-state': r.status },
          h('span', { class: 'consent-purpose' }, r.purpose),
          h('span', { class: 'consent-fields' }, `Fields: ${r.fields.join(', ')} · kept ${r.retentionDays} days · ${r.controller}${r.mine ? '' : ' · not asked from this page (another member, or before a reload)'}`),
          h('span', { class: 'consent-status' }, `${STATUS_TEXT[r.status]}${r.receipt ? `, ${time(r.receipt.at)}` : ''}`),
        );
        if (r.form) li.append(h('span', { class: 'consent-form-status' }, `Form requested at ${time(r.form.at)}`));
        if (r.status === 'granted' && r.receipt && r.mine) {
          const receipt = r.receipt;
          const b = h('button', { type: 'button', class: 'request-form secondary', 'data-receipt': receipt.id }, r.form ? 'Request form again' : 'Request form');
          b.addEventListener('click', () => this.#actions.requestForm(receipt));
          li.append(b);
        }
        return li;
      }),
    );
    this.#values.replaceChildren(
      ...(received.length === 0 ? [h('li', { class: 'hint' }, 'None.')] : []),
      ...received.map((f) => h('li', { class: 'form-values', 'data-form': f.formId, 'data-receipt': f.receipt },
        h('span', { class: 'consent-status' }, `Received at ${time(f.at)}, covered by receipt ${f.receipt.slice(0, 8)}…`),
        h('dl', {}, ...Object.entries(f.values).flatMap(([k, v]) => [h('dt', {}, k), h('dd', { 'data-field': k }, v)])),
      )),
    );
  }
}
