/**
 * `#/admin` (role `admin` only; the issuer checks the role again on every call): create a staff
 * member, which gives a one-time invitation link to hand over, and list the staff.
 */
import { STAFF_ROLES, type StaffRole } from '@parley/protocol';
import { admin } from './issuer-api.js';
import { describeError } from './error-text.js';
import { alertText, field, h, render, status } from './dom.js';
import { session, setPhase, state } from './state.js';

export function adminPage(base: string): void {
  state.page = 'admin';
  if (!state.staff?.roles.includes('admin') || !session.token) {
    setPhase('idle');
    render('Staff admin', h('p', { id: 'not-admin' }, 'Only a signed-in administrator can see this page. ', h('a', { href: '#/signin' }, 'Sign in'), '.'));
    return;
  }
  const token = session.token;
  const fail = (e: unknown): void => {
    const d = describeError(e);
    setPhase('error', { code: d.code, reason: d.reason });
    alertText(d.text);
  };
  const roles = h('fieldset', {}, h('legend', {}, 'Roles'),
    ...STAFF_ROLES.map((r) => h('label', { class: 'role' }, h('input', { type: 'checkbox', name: 'role', value: r, checked: r === 'agent' }), ` ${r} `)),
  );
  const form = h('form', { id: 'add-staff' },
    h('h2', {}, 'Add a staff member'),
    field('new-username', 'Username', { required: true, autocomplete: 'off' }),
    field('new-display-name', 'Display name', { required: true, autocomplete: 'off' }),
    roles,
    h('button', { type: 'submit' }, 'Create and get invitation link'),
  );
  const invitation = h('section', { id: 'invitation', hidden: true, 'aria-live': 'polite' });
  const body = h('tbody', { id: 'staff-rows' });
  const table = h('table', { id: 'staff' },
    h('caption', {}, 'Staff'),
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Username'), h('th', { scope: 'col' }, 'Name'), h('th', { scope: 'col' }, 'Roles'), h('th', { scope: 'col' }, 'Status'))),
    body,
  );
  render('Staff admin', form, invitation, table);

  const refresh = async (): Promise<void> => {
    const rows = await admin.list(base, token);
    body.replaceChildren(...rows.map((r) => h('tr', {}, h('td', {}, r.username), h('td', {}, r.displayName), h('td', {}, r.roles.join(', ')), h('td', {}, r.disabled ? 'disabled' : 'active'))));
  };
  setPhase('busy');
  void refresh().then(() => setPhase('idle'), fail);

  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    alertText('');
    const username = (document.getElementById('new-username') as HTMLInputElement).value.trim();
    const displayName = (document.getElementById('new-display-name') as HTMLInputElement).value.trim();
    const chosen = Array.from(form.querySelectorAll<HTMLInputElement>('input[name="role"]:checked'), (i) => i.value as StaffRole);
    if (chosen.length === 0) return void alertText('Choose at least one role.');
    setPhase('busy');
    void (async () => {
      const r = await admin.add(base, token, { username, displayName, roles: chosen });
      const link = `${location.origin}${location.pathname}#/enrol/${encodeURIComponent(r.invitation)}`;
      state.invitationLink = link;
      invitation.replaceChildren(
        h('h2', {}, 'Invitation link'),
        h('p', {}, `Give this one-time link to ${displayName} (valid for 72 hours):`),
        h('p', {}, h('a', { id: 'invitation-link', href: link, class: 'secret' }, link)),
      );
      invitation.hidden = false;
      form.reset();
      await refresh();
      setPhase('done');
      status(`${username} created.`);
    })().catch(fail);
  });
}
