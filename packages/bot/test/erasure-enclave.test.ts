/**
 * Erasure in the bot's enclave (THREATS P4): a customer's valid `erase` deletes the
 * conversation in the enclave's sealed book and its `ctx.state`, and the enclave answers with a
 * signed deletion receipt the customer's client records; the bot's state folder holds no byte of
 * the conversation's canary text.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { MemoryStore } from '@parley/engine';
import { createRelay, type Relay } from '../../relay/src/index.js';
import { ParleyClient, type ConversationEvents } from '../../client/src/index.js';
import type { TestingBot } from '../src/testing.js';
import { TEST_RELAY_LIMITS, startBot } from './harness.js';
import { countBytes, setupCrypto, tempDir, waitFor } from './helpers.js';

const HANDLER = new URL('./fixtures/conversation-handler.mjs', import.meta.url);
const CANARY = 'canary-bot-erasure-91be';
let relay: Relay;
let bot: TestingBot;
let botDir: string;

before(async () => {
  await setupCrypto();
  relay = await createRelay({ logLevel: 'silent', limits: TEST_RELAY_LIMITS });
  botDir = tempDir();
  ({ bot } = await startBot(relay, botDir, { handler: HANDLER }));
});
after(async () => {
  await bot.close();
  await relay.close();
});

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? files(p) : [p];
  });
}

test('a valid erase: the enclave deletes and answers a signed deletion receipt', async () => {
  const client = await ParleyClient.create({ relayUrl: relay.url, store: new MemoryStore(), trust: { requireCertificate: 'none' }, transport: { reconnectDelayMs: 50, maxReconnectDelayMs: 400 } });
  try {
    await client.connect();
    const statuses: ConversationEvents['erasureStatus'][] = [];
    client.on('erasureStatus', (s) => void statuses.push(s));
    client.on('conversationMessage', () => undefined);
    const c = await client.startConversation(bot.deviceId);
    await c.send(`${CANARY} hello`);
    await waitFor(() => c.history().some((m) => m.from === bot.deviceId), 10_000, 'the reply');
    const started = await c.erase();
    assert.deepEqual(started.missing, [bot.deviceId]);
    await waitFor(() => statuses.some((s) => s.receipts.length === 1), 10_000, 'the deletion receipt');
    assert.deepEqual(c.erasure()!.receipts.map((r) => r.member), [bot.deviceId]);
    assert.deepEqual(c.erasure()!.missing, []);
    await bot.idle();
    const needle = new TextEncoder().encode(CANARY);
    assert.equal(files(botDir).reduce((n, f) => n + countBytes(readFileSync(f), needle), 0), 0);
  } finally {
    await client.close();
  }
});
