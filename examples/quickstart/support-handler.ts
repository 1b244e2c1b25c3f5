/**
 * The demo's support bot. It runs inside the bot's enclave worker, so it sees plaintext and the
 * bot host never does. Answers order-status and opening-hours questions, and asks for personal
 * data only after the customer agreed to share it (consent first).
 */
import type { BotHandler } from '@parley/bot';

const HOURS = 'We are open Monday to Friday, 08:00–20:00, and Saturday 09:00–14:00 (CET).';
const ORDERS: Record<string, string> = {
  '1042': 'left our warehouse this morning; expected delivery: tomorrow before 18:00',
  '1043': 'is being packed; it ships today',
  '1044': 'was delivered yesterday at 14:12',
};

type Consent = 'asked' | 'form-sent';

// Per-conversation consent state in `ctx.state`: sealed by the enclave, kept across restarts, and
// never in clear outside the enclave. A run's changes are committed only when it returns.
const handle: BotHandler = async (message, ctx) => {
  const consent = await ctx.state.get<Consent>('consent');
  if (message.json !== undefined) {
    const form = message.json as { type?: string; name?: string; email?: string };
    if (form.type === 'contact-form' && consent === 'form-sent') {
      await ctx.state.delete('consent');
      await ctx.reply(`Thank you${form.name ? `, ${String(form.name).slice(0, 40)}` : ''}. An agent will contact you; your details stay end-to-end encrypted.`);
    } else {
      await ctx.reply('I can only accept your details after you agree to share them. Type "contact me" to start.');
    }
    return;
  }
  const text = (message.text ?? '').trim().toLowerCase();
  const order = /(?:order|#)\s*#?(\d{3,6})/.exec(text)?.[1];
  if (consent === 'asked') {
    if (/^(yes|i agree|agree|ok)\b/.test(text)) {
      await ctx.state.set('consent', 'form-sent');
      await ctx.reply({ type: 'contact-form', fields: ['name', 'email'], purpose: 'so an agent can contact you about your request' });
    } else {
      await ctx.state.delete('consent');
      await ctx.reply('No problem: I will not ask for personal data.');
    }
  } else if (order) {
    const status = ORDERS[order];
    await ctx.reply(status ? `Order #${order} ${status}.` : `I can't find order #${order}. Please check the number.`);
  } else if (/hour|open|close/.test(text)) {
    await ctx.reply(HOURS);
  } else if (/contact|call me|agent|human/.test(text)) {
    await ctx.state.set('consent', 'asked');
    await ctx.reply('To have an agent contact you I need your name and email. Do you agree to share them for this purpose only? (yes / no)');
  } else {
    await ctx.reply('I can help with order status ("where is order 1042?"), opening hours, or having an agent contact you.');
  }
};

export default handle;
