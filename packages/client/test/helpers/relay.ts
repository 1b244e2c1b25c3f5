/** Test helpers: a relay on 127.0.0.1 (port 0) and clients that talk through it. */
import { createRelay, type Relay, type RelayOptions } from '@parley/relay';
import { ParleyClient, type IncomingMessage, type ParleyClientOptions } from '../../src/index.js';
import { ConversationEngine, MemoryStore } from '@parley/engine';
import { RelayLink } from '@parley/relay-link';

/** Limits high enough that tests opening many sockets from 127.0.0.1 are not throttled. */
export const TEST_LIMITS = { connectBurst: 10_000, connectsPerSecondPerAddress: 10_000, maxConnectionsPerAddress: 10_000, bundleFetchesPerMinute: 1000, eventsPerSecond: 1000, eventBurst: 1000 };

export function startRelay(options: RelayOptions = {}): Promise<Relay> {
  return createRelay({ logLevel: 'silent', ...options, limits: { ...TEST_LIMITS, ...options.limits } });
}

export const FAST = { reconnectDelayMs: 50, maxReconnectDelayMs: 300 };

/** A client with an inbox recorder. */
export async function client(relay: { url: string }, options: Partial<ParleyClientOptions> = {}) {
  const store = options.storagePath ? undefined : (options.store ?? new MemoryStore());
  const c = await ParleyClient.create({
    relayUrl: relay.url,
    ...(store ? { store } : {}),
    ...options,
    transport: { ...FAST, ...options.transport },
  });
  const got: IncomingMessage[] = [];
  const delivered: string[] = [];
  c.on('message', (m) => got.push(m));
  c.on('delivered', (d) => delivered.push(d.id));
  return { client: c, store, got, delivered };
}

/** Waits until `predicate` holds, polling; fails after `ms`. */
export async function until(predicate: () => boolean, ms = 10_000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * A device below ParleyClient: an engine on the one relay client, logged in, so a test decides
 * exactly what reaches the relay (withhold a message, drain prekeys).
 */
export async function rawDevice(relay: { url: string }) {
  const engine = await ConversationEngine.open({ store: new MemoryStore() });
  const link = new RelayLink({ url: relay.url, credentials: { answer: (c) => engine.relayLoginAnswer(c) } });
  await link.connect();
  return {
    engine,
    link,
    async close() {
      await link.close();
      await engine.close();
    },
  };
}
