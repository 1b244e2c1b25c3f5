/**
 * The demo's support bot. This module runs **inside the bot's enclave worker** (its source is
 * part of the bot's attested measurement), so the customer's questions and personal data are
 * plaintext here and nowhere else on the server side.
 *
 * What it answers:
 * - order status: "where is order 1042?" (a small fixed table of demo orders);
 * - opening hours;
 * - a return request, which needs personal data. The bot asks for that data **only after the
 *   customer agrees**: it first sends a consent request (what, why, how long), and sends the form
 *   only after `{ type: 'consent', granted: true }`. A form that arrives without consent is
 *   discarded unread;
 * - "I want to talk to a person" (agent, human, person...): in a conversation it asks for a human
 *   agent with `ctx.handoff({ queue: 'support', reason })` and tells the customer so. The
 *   customer's widget opens the ticket and later asks the customer to consent to the agent who
 *   claims it (and which history to share); nothing is shared by the bot. While a human agent
 *   or supervisor is a member of the conversation, the bot stays quiet (an observer).
 *
 * The consent state lives in `ctx.state` (per conversation, sealed by the enclave, kept across
 * restarts; the host never sees it in clear). Replies are a pure function of (the message, the
 * consent state), and a run's state changes are committed only when it returns, so a message run
 * twice after an enclave restart (`redelivered`) sees the same state and produces the same
 * replies with the same ids.
 *
 * Messages between widget and bot (JSON bodies; everything else is text):
 * ```
 * bot → customer  { type: 'consent-request', purpose, fields: string[], retention }
 * customer → bot  { type: 'consent', granted: boolean }
 * bot → customer  { type: 'form-request', formId, fields: { name, label, kind }[] }
 * customer → bot  { type: 'form', formId, values: Record<string, string> }
 * bot → customer  { type: 'quick-replies', options: string[] }
 * ```
 */
import type { BotContext, BotHandler, BotMessage } from '@parley/bot';

/** Demo orders (no real data). */
const ORDERS: Record<string, { status: string; detail: string }> = {
  '1042': { status: 'shipped', detail: 'left our warehouse yesterday; tracking PX-88217-DE, expected Thursday' },
  '1043': { status: 'being packed', detail: 'will ship today before 17:00' },
  '1044': { status: 'delivered', detail: 'delivered on Monday at 10:14, signed for at the front desk' },
  '1045': { status: 'cancelled', detail: 'cancelled at your request; the refund reached your card on Friday' },
};

export const OPENING_HOURS = 'Our support team is available Monday to Friday 09:00–18:00 and Saturday 10:00–14:00 (CET). I, the bot, answer around the clock.';

/** The personal data a return needs, and why. */
const RETURN_FIELDS = [
  { name: 'name', label: 'Full name', kind: 'text' },
  { name: 'email', label: 'E-mail for the return label', kind: 'email' },
  { name: 'address', label: 'Pick-up address', kind: 'text' },
] as const;

const QUICK_REPLIES = ['Where is order 1042?', 'Opening hours', 'I want to return an item', 'Talk to a person'];

/** The queue of human agents the bot hands off to (the agent console lists it). */
export const HANDOFF_QUEUE = 'support';

/** Words that ask for a human. */
const WANTS_PERSON = /\b(agent|human|person|representative|operator)s?\b/;

type ConsentState = 'asked' | 'granted' | 'declined';

/** This conversation's consent state (sealed `ctx.state`; one record per customer device). */
const getConsent = (ctx: BotContext): Promise<ConsentState | undefined> => ctx.state.get<ConsentState>('consent');
const setConsent = (ctx: BotContext, state: ConsentState): Promise<void> => ctx.state.set('consent', state);

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

async function handleJson(m: BotMessage, body: Record<string, unknown>, ctx: BotContext): Promise<void> {
  if (body.type === 'consent') {
    if ((await getConsent(ctx)) === undefined) {
      await ctx.reply('I have not asked you for any personal data. Say "return" if you want to start a return.');
      return;
    }
    if (body.granted === true) {
      await setConsent(ctx, 'granted');
      await ctx.reply('Thank you. Please fill in the form below; it goes end-to-end encrypted to me and to no one else.');
      await ctx.reply({ type: 'form-request', formId: 'return', fields: RETURN_FIELDS });
    } else {
      await setConsent(ctx, 'declined');
      await ctx.reply('Understood: no personal data. I can still tell you about your orders and our opening hours.');
    }
    return;
  }
  if (body.type === 'form') {
    if ((await getConsent(ctx)) !== 'granted') {
      // Consent first: data sent without it is not read, not answered with, not kept.
      await ctx.reply('I did not ask for this data and have discarded it unread. Say "return" to start a return with your consent.');
      return;
    }
    const values = isRecord(body.values) ? body.values : {};
    const name = typeof values.name === 'string' ? values.name.trim().slice(0, 80) : '';
    const email = typeof values.email === 'string' ? values.email.trim().slice(0, 120) : '';
    const address = typeof values.address === 'string' ? values.address.trim().slice(0, 200) : '';
    if (!name || !/^[^\s@]+@[^\s@]+$/.test(email) || !address) {
      await ctx.reply('Some fields are missing or the e-mail looks wrong; please check the form and send it again.');
      await ctx.reply({ type: 'form-request', formId: 'return', fields: RETURN_FIELDS });
      return;
    }
    await setConsent(ctx, 'asked'); // the consent covered this one return
    await ctx.reply(`Thanks, ${name}. Your return is booked: the label goes to ${email} and a courier will pick up the parcel at ${address} within 2 working days.`);
    return;
  }
  await ctx.reply("Sorry, I don't understand that message.");
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
    await setConsent(ctx, 'asked');
    await ctx.reply({
      type: 'consent-request',
      purpose: 'To book a return I need your name, an e-mail address for the return label and a pick-up address.',
      fields: RETURN_FIELDS.map((f) => f.label),
      retention: 'Used for this return only, inside the bot enclave; not shared and not kept after the return is booked.',
    });
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
  if (typeof message.text === 'string') return handleText(message, message.text.slice(0, 2000), ctx);
  if (isRecord(message.json)) return handleJson(message, message.json, ctx);
  await ctx.reply("Sorry, I can't read attachments.");
};

export default handle;
