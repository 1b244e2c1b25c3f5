/**
 * The demo's support bot. This module runs **inside the bot's enclave worker** (its source is
 * part of the bot's attested measurement), so the customer's questions and personal data are
 * plaintext here and nowhere else on the server side.
 *
 * What it answers:
 * - order status: "where is order 1042?" (a small fixed table of demo orders);
 * - opening hours;
 * - a return request, which needs personal data. The bot asks for that data **only after the
 *   customer agrees**, with the SDK's consent receipts (docs/threats.md P1): `ctx.requestConsent`
 *   (purpose, fields, retention, controller) shows the customer a consent dialog; the customer's
 *   device answers with a receipt signed by its identity key, which runs this handler with
 *   `message.consent`; only for a granted receipt does the bot send the form (`ctx.requestForm`),
 *   and the values come back as `message.form`. The SDK enforces the order on both sides: the
 *   customer's client sends only fields a valid, unwithdrawn receipt covers, and the enclave
 *   refuses uncovered values before this handler sees them;
 * - "I want to talk to a person" (agent, human, person...): in a conversation it asks for a human
 *   agent with `ctx.handoff({ queue: 'support', reason })` and tells the customer so. The
 *   customer's widget opens the ticket and later asks the customer to consent to the agent who
 *   claims it (and which history to share); nothing is shared by the bot. While a human agent
 *   or supervisor is a member of the conversation, the bot stays quiet (an observer).
 *
 * The open return's consent request id lives in `ctx.state` (per conversation, sealed by the
 * enclave, kept across restarts; the host never sees it in clear); the values themselves are not
 * kept. Replies are a pure function of (the message, that state), and a run's state changes are
 * committed only when it returns, so a message run twice after an enclave restart (`redelivered`)
 * sees the same state and produces the same replies, consent and form requests with the same ids.
 *
 * Besides text, the bot sends one structured message (JSON):
 * `{ type: 'quick-replies', options: string[] }`.
 */
import type { BotConsentAnswer, BotContext, BotFormValues, BotHandler, BotMessage } from '@parley/bot';

/** Demo orders (no real data). */
const ORDERS: Record<string, { status: string; detail: string }> = {
  '1042': { status: 'shipped', detail: 'left our warehouse yesterday; tracking PX-88217-DE, expected Thursday' },
  '1043': { status: 'being packed', detail: 'will ship today before 17:00' },
  '1044': { status: 'delivered', detail: 'delivered on Monday at 10:14, signed for at the front desk' },
  '1045': { status: 'cancelled', detail: 'cancelled at your request; the refund reached your card on Friday' },
};

export const OPENING_HOURS = 'Our support team is available Monday to Friday 09:00–18:00 and Saturday 10:00–14:00 (CET). I, the bot, answer around the clock.';

/** The personal data a return needs, why, for how long, and who controls it (the consent request). */
export const RETURN_CONSENT = {
  purpose: 'To book your return: your name, an e-mail address for the return label and a pick-up address.',
  fields: ['name', 'email', 'address'],
  retentionDays: 30,
  controller: 'Acme Ltd',
} as const;

const QUICK_REPLIES = ['Where is order 1042?', 'Opening hours', 'I want to return an item', 'Talk to a person'];

/** The queue of human agents the bot hands off to (the agent console lists it). */
export const HANDOFF_QUEUE = 'support';

/** Words that ask for a human. */
const WANTS_PERSON = /\b(agent|human|person|representative|operator)s?\b/;

/** `ctx.state` key: the id of the consent request of the return being booked (absent: none open). */
const RETURN_KEY = 'return';

const openReturn = (ctx: BotContext): Promise<string | undefined> => ctx.state.get<string>(RETURN_KEY);

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A return: asks the customer for consent first (the SDK's consent dialog); no data before that. */
async function askForReturn(m: BotMessage, ctx: BotContext): Promise<void> {
  if (m.conversation === undefined) {
    await ctx.reply('I can only book a return in a conversation; please reload the page to start one.');
    return;
  }
  const id = await ctx.requestConsent({ ...RETURN_CONSENT, fields: [...RETURN_CONSENT.fields] });
  await ctx.state.set(RETURN_KEY, id);
  await ctx.reply('To book a return I need some personal data. I have asked for your consent: you decide, and nothing is sent unless you allow it.');
}

/** The customer's signed answer to a consent request (verified by the enclave). */
async function onConsent(c: BotConsentAnswer, ctx: BotContext): Promise<void> {
  if (c.requestId !== (await openReturn(ctx))) return; // another member's request, or an old one
  if (c.decision === 'granted') {
    await ctx.requestForm({ fields: c.fields, consentRequest: c.requestId });
    await ctx.reply('Thank you. Please fill in the form; it goes end-to-end encrypted to me and to no one else.');
  } else if (c.decision === 'denied') {
    await ctx.state.delete(RETURN_KEY);
    await ctx.reply('Understood: no personal data. I can still tell you about your orders and our opening hours.');
  } else {
    await ctx.state.delete(RETURN_KEY);
    await ctx.reply('You withdrew your consent: I will not ask for or use your details for this return.');
  }
}

/** A form's values, covered by a granted receipt (the enclave checked it before this run). */
async function onForm(f: BotFormValues, ctx: BotContext): Promise<void> {
  const request = await openReturn(ctx);
  if (request === undefined) {
    await ctx.reply('That return is already booked or was cancelled. Say "return" to start another one.');
    return;
  }
  const name = (f.values.name ?? '').trim().slice(0, 80);
  const email = (f.values.email ?? '').trim().slice(0, 120);
  const address = (f.values.address ?? '').trim().slice(0, 200);
  if (!name || !/^[^\s@]+@[^\s@]+$/.test(email) || !address) {
    await ctx.requestForm({ fields: [...RETURN_CONSENT.fields], consentRequest: request });
    await ctx.reply('Some fields are missing or the e-mail looks wrong; please check the form and send it again.');
    return;
  }
  await ctx.state.delete(RETURN_KEY); // the consent covered this one return
  await ctx.reply(`Thanks, ${name}. Your return is booked: the label goes to ${email} and a courier will pick up the parcel at ${address} within 2 working days.`);
}

/** True while a human (agent or supervisor) is a member of the message's conversation. */
function humanPresent(m: BotMessage, ctx: BotContext): boolean {
  return m.conversation !== undefined && ctx.members().some((x) => x.role === 'agent' || x.role === 'supervisor');
}

/** The customer asked for a person: a handoff request to the customer's device, which opens the ticket. */
async function askForPerson(m: BotMessage, ctx: BotContext): Promise<void> {
  if (m.conversation === undefined) {
    await ctx.reply('I can only hand you over to a person in a conversation; please reload the page to start one.');
    return;
  }
  await ctx.handoff({ queue: HANDOFF_QUEUE, reason: 'The customer asked to talk to a person.' });
  await ctx.reply(
    'I have asked for a person from our support team. When one is free you will see who it is, and you decide whether they join and which of our messages they may read.',
  );
}

async function handleText(m: BotMessage, text: string, ctx: BotContext): Promise<void> {
  const t = text.toLowerCase();
  if (WANTS_PERSON.test(t)) {
    await askForPerson(m, ctx);
    return;
  }
  const orderNo = /\b(\d{4,8})\b/.exec(t)?.[1];
  if (orderNo !== undefined || /\border|parcel|package|shipping|delivery\b/.test(t)) {
    if (orderNo === undefined) {
      await ctx.reply('Which order? Tell me its number, for example "where is order 1042?".');
      return;
    }
    const order = ORDERS[orderNo];
    await ctx.reply(
      order ? `Order ${orderNo} is ${order.status}: it ${order.detail}.` : `I can't find an order ${orderNo}. Demo orders are 1042, 1043, 1044 and 1045.`,
    );
    return;
  }
  if (/\b(hours?|open|opening|closed|when)\b/.test(t)) {
    await ctx.reply(OPENING_HOURS);
    return;
  }
  if (/\b(return|refund|send back|exchange|pick ?up)\b/.test(t)) {
    await askForReturn(m, ctx);
    return;
  }
  if (/\b(hi|hello|hey|help|start)\b/.test(t)) {
    await ctx.reply("Hello! I'm the support bot. I can tell you where your order is, when we're open, or book a return.");
    await ctx.reply({ type: 'quick-replies', options: QUICK_REPLIES });
    return;
  }
  await ctx.reply("I'm only a small demo bot: I know about orders, opening hours and returns.");
  await ctx.reply({ type: 'quick-replies', options: QUICK_REPLIES });
}

const handle: BotHandler = async (message, ctx) => {
  // A human agent has taken over: the bot only observes (the customer chose to keep it in).
  if (humanPresent(message, ctx)) return;
  if (message.consent) return onConsent(message.consent, ctx);
  if (message.form) return onForm(message.form, ctx);
  if (typeof message.text === 'string') return handleText(message, message.text.slice(0, 2000), ctx);
  if (isRecord(message.json)) {
    await ctx.reply("Sorry, I don't understand that message.");
    return;
  }
  await ctx.reply("Sorry, I can't read attachments.");
};

export default handle;
