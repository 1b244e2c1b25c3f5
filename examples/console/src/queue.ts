/**
 * `#/queue`: the agent's workspace. The queue of handoff tickets with live updates and a
 * **Claim** button; the conversation this device joined after the customer's consent, with the
 * history the customer shared marked as such; a composer; **Transfer** (to a queue) and
 * **Close**; the customer's consent and forms (`consent-panel.ts`); and what the relay sees of
 * the conversation.
 */
import type { Conversation, ConversationMessage } from '@parley/client';
import { describeError } from './error-text.js';
import { alertText, h, render, status } from './dom.js';
import { loadStaff, setPhase, state } from './state.js';
import { agentSession, type AgentSession } from './agent.js';
import { RelayView } from './relay-view.js';
import { ConsentPanel } from './consent-panel.js';

/** The queues a conversation can be transferred to. */
export const TRANSFER_QUEUES = ['support', 'supervisors'] as const;

let unsubscribe: (() => void) | undefined;
let relayView: RelayView | undefined;

const time = (at: number): string => new Date(at).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });

function waited(since: number): string {
  const s = Math.max(0, Math.round((Date.now() - since) / 1000));
  return s < 60 ? `${s} s` : `${Math.round(s / 60)} min`;
}

/** A short, safe description of a structured (JSON) message: its `type`, never markup. */
function describeJson(json: unknown): string {
  const type = typeof json === 'object' && json !== null && typeof (json as { type?: unknown }).type === 'string' ? (json as { type: string }).type : 'data';
  const t = /^[a-z-]{1,32}$/.test(type) ? type : 'data';
  if (t === 'quick-replies') return '(suggested replies)';
  return `(structured message: ${t})`;
}

function text(m: ConversationMessage): string {
  const c = m.content;
  return c.type === 'text' ? c.text : c.type === 'json' ? describeJson(c.json) : `(attachment, ${c.binary.length} bytes)`;
}

export function queuePage(orgKey: string): void {
  state.page = 'queue';
  unsubscribe?.();
  unsubscribe = undefined;
  const staff = state.staff ?? loadStaff();
  if (!staff) {
    setPhase('idle');
    render('Conversations', h('p', { id: 'signed-out' }, 'Nobody is signed in on this browser. ', h('a', { href: '#/signin' }, 'Sign in'), '.'));
    return;
  }
  state.staff = staff;

  const tickets = h('ul', { id: 'tickets', class: 'tickets' });
  const queueEmpty = h('p', { id: 'queue-empty', class: 'hint' }, 'Nobody is waiting.');
  const queueSection = h('section', { id: 'queue-section', class: 'panel', 'aria-labelledby': 'queue-title' },
    h('h2', { id: 'queue-title' }, 'Queue'), queueEmpty, tickets);

  const claimStatus = h('p', { id: 'claim-status', role: 'status' });
  const members = h('ul', { id: 'conv-members', class: 'members', 'aria-label': 'Members' });
  const safety = h('p', { id: 'conv-safety', class: 'hint' });
  const messages = h('ol', { id: 'conv-messages', class: 'messages', 'aria-live': 'polite' });
  const input = h('input', { id: 'conv-input', name: 'conv-input', autocomplete: 'off', maxlength: '2000', 'aria-label': 'Message' });
  const send = h('button', { type: 'submit', id: 'conv-send' }, 'Send');
  const composer = h('form', { id: 'conv-composer', class: 'composer' }, input, send);
  const transferQueue = h('select', { id: 'transfer-queue' }, ...TRANSFER_QUEUES.map((q) => h('option', { value: q }, q)));
  const transfer = h('button', { type: 'button', id: 'transfer', class: 'secondary' }, 'Transfer');
  const close = h('button', { type: 'button', id: 'close-conv', class: 'secondary' }, 'Close');
  const actions = h('div', { class: 'conv-actions' }, h('label', { for: 'transfer-queue' }, 'Transfer to queue '), transferQueue, transfer, close);
  const consentPanel = new ConsentPanel({
    requestConsent: (ask) => {
      alertText('');
      void session?.requestConsent(ask).catch(fail);
    },
    requestForm: (receipt) => {
      alertText('');
      void session?.requestForm(receipt.id).catch(fail);
    },
  });
  const convTitle = h('h2', { id: 'conv-title' }, 'Conversation');
  const mine = h('ul', { id: 'my-conversations', class: 'tabs', 'aria-label': 'Your conversations' });
  const convSection = h('section', { id: 'conversation-section', class: 'panel conversation', 'aria-labelledby': 'conv-title' },
    convTitle, mine, claimStatus, members, safety, messages, composer, actions, consentPanel.element);

  relayView ??= new RelayView();
  relayView.connect();
  render('Conversations', h('div', { class: 'workspace' }, queueSection, convSection, relayView.element));
  setPhase('busy');
  status('Connecting to the relay…');

  const fail = (e: unknown): void => {
    const d = describeError(e);
    alertText(d.text);
  };

  let session: AgentSession | undefined;
  const draw = (): void => {
    if (!session) return;
    const s = session;
    const self = s.client.deviceId;
    // Queue.
    const q = s.queue();
    queueEmpty.hidden = q.length > 0;
    tickets.replaceChildren(
      ...q.map((t) => {
        const who = t.state === 'waiting' ? `waiting ${waited(t.waitingSince)}` : t.claimedBy === self ? 'claimed by you' : 'claimed by another agent';
        const claim = h('button', { type: 'button', class: 'claim', 'data-ticket': t.id, 'aria-label': `Claim the ticket in ${t.queue}, ${who}` }, 'Claim');
        claim.addEventListener('click', () => {
          alertText('');
          void s.claimTicket(t.id);
        });
        return h('li', { class: `ticket ${t.state}`, 'data-ticket': t.id, 'data-state': t.state },
          h('span', { class: 'ticket-queue' }, t.queue),
          h('span', { class: 'ticket-state' }, who),
          h('code', { class: 'ticket-id', title: 'Ticket id' }, `${t.id.slice(0, 8)}…`),
          claim,
        );
      }),
    );
    // Claim status.
    const c = s.claim;
    claimStatus.textContent =
      !c ? ''
        : c.status === 'pending' ? 'Claimed. Waiting for the customer to accept you and choose what to share…'
          : c.status === 'declined' ? 'The customer declined. Nothing was shared; the ticket is back in the queue.'
            : c.status === 'failed' ? `Claim failed: ${describeError(c.error).text}`
              : '';
    claimStatus.dataset.status = c?.status ?? '';
    if (c?.status === 'failed') alertText(describeError(c.error).text);
    // My conversations.
    const convs = s.conversations();
    mine.replaceChildren(
      ...convs.map((conv) => {
        const customer = conv.members.find((m) => m.role === 'customer');
        const b = h('button', { type: 'button', class: conv.id === s.current ? 'tab current' : 'tab secondary', 'aria-pressed': conv.id === s.current ? 'true' : 'false' }, `Customer ${customer?.deviceId.slice(0, 6) ?? ''}…`);
        b.addEventListener('click', () => {
          s.current = conv.id;
          draw();
        });
        return h('li', {}, b);
      }),
    );
    mine.hidden = convs.length < 2;
    drawConversation(s, s.shown());
  };

  const drawConversation = (s: AgentSession, conv: Conversation | undefined): void => {
    const self = s.client.deviceId;
    composer.hidden = actions.hidden = safety.hidden = consentPanel.element.hidden = !conv;
    if (!conv) {
      convTitle.textContent = 'Conversation';
      members.replaceChildren();
      messages.replaceChildren(...s.notes.map((n) => h('li', { class: 'note' }, n)), ...(s.notes.length ? [] : [h('li', { class: 'note' }, 'Claim a ticket; the customer decides whether you join and what you see of the chat so far.')]));
      relayView!.show(undefined, new Map());
      return;
    }
    convTitle.textContent = 'Conversation with a customer';
    members.replaceChildren(
      ...conv.members.map((m) => h('li', { class: `member ${m.role}`, 'data-device': m.deviceId, 'data-role': m.role },
        h('span', { class: 'member-name' }, m.deviceId === self ? `${m.name} (you)` : m.role === 'customer' ? 'Customer' : m.name),
        h('span', { class: 'member-role' }, m.role),
      )),
    );
    const customer = conv.members.find((m) => m.role === 'customer');
    safety.replaceChildren(
      'Safety number with the customer (they saw it when they let you in): ',
      h('code', { id: 'conv-safety-number' }, customer?.safetyNumber ?? '–'),
    );
    const names = new Map<string, string>();
    for (const m of conv.members) names.set(m.deviceId, m.deviceId === self ? 'you' : m.role === 'customer' ? 'customer' : m.name);
    const history = conv.history();
    const shared = history.filter((m) => m.shared);
    const items: HTMLElement[] = [];
    if (shared.length > 0) {
      items.push(h('li', { class: 'divider shared-divider', id: 'shared-heading' }, `Shared by the customer: ${shared.length} message${shared.length === 1 ? '' : 's'} from before you joined`));
    } else {
      items.push(h('li', { class: 'divider' }, 'The customer shared no earlier messages.'));
    }
    let joinedMarked = false;
    for (const m of history) {
      if (!m.shared && !joinedMarked) {
        joinedMarked = true;
        items.push(h('li', { class: 'divider' }, 'You joined'));
      }
      const from = m.from === self ? 'You' : m.sender.role === 'customer' ? 'Customer' : m.sender.name;
      const li = h('li', { class: `msg ${m.from === self ? 'me' : m.sender.role}${m.shared ? ' shared' : ''}`, 'data-id': m.id, ...(m.shared ? { 'data-shared': 'true' } : {}) },
        h('span', { class: 'from' }, `${from} · ${m.sender.role}`),
        text(m),
        h('span', { class: 'meta' }, time(m.sentAt), m.shared ? h('span', { class: 'shared-label' }, ' · shared by the customer') : ''),
      );
      items.push(li);
    }
    messages.replaceChildren(...items);
    consentPanel.show(s.consent.rows(conv), s.consent.received(conv.id));
    messages.scrollTop = messages.scrollHeight;
    relayView!.show(s.ticketFor(conv), names);
  };

  composer.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const conv = session?.shown();
    const value = input.value.trim();
    if (!conv || !value) return;
    input.value = '';
    alertText('');
    void conv.send(value).then((r) => {
      state.sent = (state.sent ?? 0) + 1;
      if (r.failed.length) alertText(`Not delivered to ${r.failed.length} member(s): ${describeError(r.failed[0]!.error).text}`);
      draw();
    }, fail);
  });
  transfer.addEventListener('click', () => {
    alertText('');
    void session?.transfer(transferQueue.value).catch(fail);
  });
  close.addEventListener('click', () => {
    alertText('');
    void session?.close().catch(fail);
  });

  void (async () => {
    session = await agentSession(orgKey);
    state.deviceId = session.client.deviceId;
    unsubscribe = session.subscribe(draw);
    draw();
    if (!session.client.connected) await session.client.connect();
    state.relay = 'connected';
    await session.refreshQueue();
    setPhase('done');
    status(`Signed in as ${staff.displayName}. The queue updates live.`);
  })().catch((e: unknown) => {
    const d = describeError(e);
    setPhase('error', { code: d.code, reason: d.reason });
    alertText(d.text);
    status('');
  });
  // The waiting times move on.
  const tick = setInterval(() => {
    if (state.page !== 'queue') clearInterval(tick);
    else if (session) {
      const s = session;
      tickets.querySelectorAll<HTMLElement>('li.ticket.waiting').forEach((li) => {
        const t = s.tickets.get(li.dataset.ticket ?? '');
        const span = li.querySelector('.ticket-state');
        if (t && span) span.textContent = `waiting ${waited(t.waitingSince)}`;
      });
    }
  }, 5000);
}
