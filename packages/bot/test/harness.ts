/** A relay (in this process) and a bot for end-to-end tests. */
import { join } from 'node:path';
import { createRelay, createApiKey, type Relay } from '../../relay/src/index.js';
import { createBot, type Bot, type BotOptions } from '../src/index.js';
import { captureLogger, ECHO_HANDLER } from './helpers.js';

export const TEST_RELAY_LIMITS = {
  connectBurst: 10_000,
  connectsPerSecondPerAddress: 10_000,
  maxConnectionsPerAddress: 10_000,
  eventsPerSecond: 100_000,
  eventBurst: 100_000,
  bundleFetchesPerMinute: 10_000,
};

export async function startRelay(): Promise<Relay> {
  return createRelay({ logLevel: process.env.PARLEY_TEST_RELAY_LOG ?? 'silent', limits: TEST_RELAY_LIMITS });
}

export async function startBot(
  relay: Relay,
  dir: string,
  extra: Partial<BotOptions> = {},
): Promise<{ bot: Bot; logger: ReturnType<typeof captureLogger>; options: BotOptions }> {
  const { key } = await createApiKey(relay.store, 'test bot');
  const logger = captureLogger();
  const options: BotOptions = { relayUrl: relay.url, apiKey: key, handler: ECHO_HANDLER, stateDir: join(dir, 'bot'), logger, oneTimePrekeys: 20, ...extra };
  const bot = await createBot(options);
  return { bot, logger, options };
}
