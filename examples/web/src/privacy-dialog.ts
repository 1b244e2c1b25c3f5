/**
 * The privacy dialogs of the widget (issue 14): the **consent request** a bot or agent sends
 * (`consentRequested`: purpose, the named fields, retention, the controller, who asks; Allow /
 * Deny), and the **consent-gated form** (`formRequested`: an input for each field a valid receipt
 * covers; the others are shown, disabled, as "not covered by your consent").
 *
 * The SDK does the enforcing (a receipt signed by this device's identity key; values only for
 * covered fields); these dialogs only show what it reports and return the customer's answer.
 * Plain DOM with `textContent` only; modal `role="dialog"` with a label and a description, focus
 * moved into it and kept there, Escape = Deny / Cancel.
 */

/** What the consent dialog shows (the fields of the SDK's `consentRequested` event). */
export interface ConsentRequestView {
  readonly id: string;
  readonly purpose: string;
  readonly fields: readonly string[];
  readonly retentionDays: number;
  readonly controller: string;
  /** Who asks: the certified name and role of the requesting member. */
  readonly requestedBy: { readonly name: string; readonly role: string };
}

/** A field of a consent-gated form. */
export interface FormFieldView {
  readonly name: string;
  /** Shown label (default: the field name in words). */
  readonly label?: string;
  /** Covered by a valid, unwithdrawn receipt of this conversation (only then can it be sent). */
  readonly covered: boolean;
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string> = {}, ...children: (Node | string)[]): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  e.append(...children);
  return e;
}

/** `postalAddress` → "Postal address", `e_mail` → "E mail". */
export function fieldLabel(name: string): string {
  const words = name.replace(/_/g, ' ').replace(/([a-z0-9])([A-Z])/g, '$1 $2').toLowerCase();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/** "30 days", "1 day", "not kept" (0). */
export function retentionText(days: number): string {
  if (days === 0) return 'not kept after this conversation';
  return `${days} ${days === 1 ? 'day' : 'days'}`;
}

/** Focus trap, Escape, and removal of a modal form; `cancel` is called on Escape. */
function modal(host: HTMLElement, form: HTMLFormElement, overlayId: string, first: HTMLElement, cancel: () => void): () => void {
  const opener = document.activeElement instanceof HTMLElement ? document.activeElement : undefined;
  const overlay = el('div', { class: 'overlay', id: overlayId }, form);
  host.append(overlay);
  first.focus();
  form.addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape') {
      ev.preventDefault();
      cancel();
      return;
    }
    if (ev.key !== 'Tab') return;
    const focusable = Array.from(form.querySelectorAll<HTMLElement>('input, button')).filter((x) => !x.hasAttribute('disabled'));
    const a = focusable[0];
    const z = focusable[focusable.length - 1];
    if (ev.shiftKey && document.activeElement === a) {
      ev.preventDefault();
      z?.focus();
    } else if (!ev.shiftKey && document.activeElement === z) {
      ev.preventDefault();
      a?.focus();
    }
  });
  return () => {
    overlay.remove();
    opener?.focus();
  };
}

/** Shows the consent request over `host`; resolves `true` (Allow) or `false` (Deny, Escape). */
export function askDataConsent(host: HTMLElement, req: ConsentRequestView): Promise<boolean> {
  const allow = el('button', { type: 'submit', id: 'privacy-allow' }, 'Allow');
  const deny = el('button', { type: 'button', id: 'privacy-deny', class: 'secondary' }, 'Deny');
  const who = `${req.requestedBy.name} (${req.requestedBy.role})`;
  const form = el('form', { class: 'dialog', role: 'dialog', 'aria-modal': 'true', 'aria-labelledby': 'privacy-consent-title', 'aria-describedby': 'privacy-consent-desc', id: 'privacy-consent-dialog' },
    el('h2', { id: 'privacy-consent-title' }, 'May we use your personal data?'),
    el('p', { id: 'privacy-consent-desc' }, `${who} asks for the data below. Nothing is sent unless you allow it, and you can withdraw your consent later under "Privacy".`),
    el('dl', {},
      el('dt', {}, 'Purpose'), el('dd', { id: 'privacy-consent-purpose' }, req.purpose),
      el('dt', {}, 'Data'), el('dd', {}, el('ul', { id: 'privacy-consent-fields' }, ...req.fields.map((f) => el('li', {}, fieldLabel(f))))),
      el('dt', {}, 'Kept for'), el('dd', { id: 'privacy-consent-retention' }, retentionText(req.retentionDays)),
      el('dt', {}, 'Controller'), el('dd', { id: 'privacy-consent-controller' }, req.controller),
      el('dt', {}, 'Asked by'), el('dd', { id: 'privacy-consent-by' }, who),
    ),
    el('p', { class: 'hint' }, 'Your answer is signed by this device and kept by you and by the members of this chat as a receipt.'),
    el('div', { class: 'actions' }, allow, deny),
  );
  return new Promise<boolean>((resolve) => {
    const close = modal(host, form, 'privacy-consent-overlay', allow, () => done(false));
    const done = (grant: boolean): void => {
      close();
      resolve(grant);
    };
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      done(true);
    });
    deny.addEventListener('click', () => done(false));
  });
}

/**
 * Shows a consent-gated form; resolves with the values of the covered fields, or `undefined`
 * (Cancel, Escape). Fields no receipt covers are shown disabled and never returned.
 */
export function askForm(host: HTMLElement, o: { readonly formId: string; readonly title?: string; readonly fields: readonly FormFieldView[] }): Promise<Record<string, string> | undefined> {
  const submit = el('button', { type: 'submit', id: 'privacy-form-send' }, 'Send securely');
  const cancel = el('button', { type: 'button', id: 'privacy-form-cancel', class: 'secondary' }, 'Cancel');
  const inputs: HTMLInputElement[] = [];
  const rows = o.fields.map((f) => {
    const id = `privacy-form-${f.name}`;
    const input = el('input', { id, name: f.name, maxlength: '200', autocomplete: 'off' });
    if (f.covered) {
      input.required = true;
      inputs.push(input);
    } else {
      input.disabled = true;
      input.setAttribute('aria-describedby', `${id}-why`);
    }
    return el('div', { class: 'field' },
      el('label', { for: id }, f.label ?? fieldLabel(f.name)), input,
      ...(f.covered ? [] : [el('span', { class: 'hint', id: `${id}-why` }, 'Not covered by your consent: it cannot be sent.')]),
    );
  });
  const form = el('form', { class: 'dialog', role: 'dialog', 'aria-modal': 'true', 'aria-labelledby': 'privacy-form-title', 'aria-describedby': 'privacy-form-desc', id: 'privacy-form', 'data-form-id': o.formId },
    el('h2', { id: 'privacy-form-title' }, o.title ?? 'Your details'),
    el('p', { id: 'privacy-form-desc' }, 'Only the fields you consented to are sent, end-to-end encrypted to the members of this chat.'),
    ...rows,
    el('div', { class: 'actions' }, submit, cancel),
  );
  return new Promise<Record<string, string> | undefined>((resolve) => {
    const close = modal(host, form, 'privacy-form-overlay', inputs[0] ?? cancel, () => done(undefined));
    const done = (values: Record<string, string> | undefined): void => {
      close();
      resolve(values);
    };
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      if (inputs.length === 0) return;
      done(Object.fromEntries(inputs.map((i) => [i.name, i.value.trim()])));
    });
    cancel.addEventListener('click', () => done(undefined));
  });
}
