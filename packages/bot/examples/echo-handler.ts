/**
 * An example bot handler. It runs inside the enclave worker: it sees plaintext, the host never
 * does. Keep it a single file (its imports are not part of the measurement), and never log
 * message contents: logs leave the enclave.
 */
import type { BotHandler } from '@parley/bot';

const handle: BotHandler = async (message, ctx) => {
  if (message.text !== undefined) {
    await ctx.reply(`echo: ${message.text}`);
  } else if (message.json !== undefined) {
    await ctx.reply({ echo: message.json });
  }
};

export default handle;
