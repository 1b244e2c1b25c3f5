/**
 * The bench's bot handler: one reply per message, echoing it. The enclave loads this module
 * (`createBot({ handler })`) and the in-process baseline imports the same default export, so
 * both run exactly this function. One file with no runtime imports, as a handler should be:
 * its source is part of the bot's measurement.
 */
import type { BotHandler } from '@parley/bot';

const handle: BotHandler = async (message, ctx) => {
  if (message.text !== undefined) await ctx.reply(`echo: ${message.text}`);
  else await ctx.reply({ echo: message.json ?? null });
};

export default handle;
