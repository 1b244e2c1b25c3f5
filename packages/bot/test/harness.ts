/** A relay (in this process) and a bot for end-to-end tests. */
import { join } from 'node:path';
import { createRelay, createApiKey, type Relay } from '../../relay/src/index.js';
import type { BotOptions } from '../src/index.js';
import { createBotForTesting, type BotTestingHooks, type TestingBot } from '../src/testing.js';
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
  extra: Partial<BotOptions> & BotTestingHooks = {},
): Promise<{ bot: TestingBot; logger: ReturnType<typeof captureLogger>; options: BotOptions }> {
  const { key } = await createApiKey(relay.store, 'test bot');
  const logger = captureLogger();
  const { unsafeTestingExposeKeys, unsafeTestingTap, ...rest } = extra;
  const options: BotOptions = { relayUrl: relay.url, apiKey: key, handler: ECHO_HANDLER, stateDir: join(dir, 'bot'), logger, oneTimePrekeys: 20, ...rest };
  const hooks: BotTestingHooks = {
    ...(unsafeTestingExposeKeys ? { unsafeTestingExposeKeys } : {}),
    ...(unsafeTestingTap ? { unsafeTestingTap } : {}),
  };
  const bot = await createBotForTesting(options, hooks);
  return { bot, logger, options };
}
