/**
 * `@parley/bot/testing`: test hooks that deliberately break the enclave boundary (key dumps,
 * a tap on every RPC message, the supervisor for crash injection). For the SDK's own tests and
 * for developers testing their handlers; never import it in production code.
 *
 * @example
 * import { createBotForTesting } from '@parley/bot/testing';
 * const bot = await createBotForTesting({ relayUrl, apiKey, handler: './handler.mjs', stateDir }, { unsafeTestingTap: (d, m) => log.push([d, m]) });
 * await bot.supervisor.unsafeTestingTerminate(); // a crash; the supervisor restarts the enclave
 */
import { startBot, type BotOptions, type BotTestingHooks, type TestingBot } from './host/bot.js';

export type { BotTestingHooks, TestingBot } from './host/bot.js';
export { EnclaveSupervisor } from './host/supervisor.js';

/** Starts a bot like `createBot`, with test hooks, and returns it with its supervisor. */
export function createBotForTesting(options: BotOptions, hooks: BotTestingHooks = {}): Promise<TestingBot> {
  return startBot(options, hooks);
}
