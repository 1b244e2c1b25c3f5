/** Tiny DOM helpers: elements built with `textContent` only (no `innerHTML`), so data never becomes markup. */

type Attrs = Record<string, string | boolean | undefined>;
type Child = Node | string | null | undefined | false;

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) el.append(c);
  return el;
}

/** A labelled input (`<label for>` + `<input id>`). */
export function field(id: string, label: string, attrs: Attrs = {}): HTMLElement {
  return h('p', { class: 'field' }, h('label', { for: id }, label), h('input', { id, name: id, ...attrs }));
}

/** Replaces the main content and moves focus to the page heading. */
export function render(title: string, ...children: Child[]): HTMLElement {
  const main = document.getElementById('main')!;
  const heading = h('h1', { tabindex: '-1' }, title);
  main.replaceChildren(heading, ...children.filter((c): c is Node | string => !!c));
  document.title = `${title} · Parley agent console`;
  heading.focus();
  return main;
}

/** The page's live status line (`role="status"`) and alert (`role="alert"`). */
export function status(text: string): void {
  document.getElementById('status')!.textContent = text;
}
export function alertText(text: string): void {
  const el = document.getElementById('alert')!;
  el.textContent = text;
  el.hidden = text === '';
}
