/**
 * Quickstart: a relay (embedded SQLite store), a support bot in its enclave worker, and a
 * customer client, in one process. Runs a short conversation and prints each message beside
 * what the relay stored and forwarded: routing ids, sizes and ciphertext, never plaintext.
 *
 *   npx -y pnpm@10.34.9 quickstart
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRelay, createApiKey, SqliteStore } from '@parley/relay';
import { createBot } from '@parley/bot';
import { ParleyClient, MemoryStore, type IncomingMessage } from '@parley/client';
import { generateOrgKey, signOrgCertificate } from '@parley/protocol';
import { toHex } from '@parley/protocol';
import { pino } from 'pino';
import { ObservedStore, type RelayEvent } from '../relay-observer/relay-observer.js';

const CONVERSATION = ['Hi! Where is my order 1042?', 'What are your opening hours?', 'Can an agent contact me?', 'yes'];
const short = (id: string) => id.slice(0, 8);

function relayLine(e: RelayEvent): string {
  const what = e.kind === 'stored' ? `stored    #${String(e.seq).padEnd(3)}` : `delivered #${String(e.seq).padEnd(3)}`;
  const head = e.head ? `  ${e.head}…` : '  (deleted after the recipient acked)';
  return `   relay ${what} ${short(e.from ?? '')} → ${short(e.to ?? '')}  ${String(e.size).padStart(4)} B${head}`;
}

export async function runQuickstart(log: (line: string) => void = console.log): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'parley-quickstart-'));
  const quiet = pino({ level: 'error' });
  let stored = 0;
  let finished = false;
  let storedBytes = 0;
  const store = new ObservedStore(new SqliteStore(join(dir, 'relay.db')));
  store.subscribe((e) => {
    if (finished || (e.kind !== 'stored' && e.kind !== 'acked')) return; // receipts still in flight at shutdown
    if (e.kind === 'stored') {
      stored += 1;
      storedBytes += e.size ?? 0;
    }
    log(relayLine(e));
  });
  const relay = await createRelay({ store, logger: quiet });
  log(`relay listening on ${relay.url} (store: ${join(dir, 'relay.db')})`);

  const { key: apiKey } = await createApiKey(relay.store, 'support bot');
  const bot = await createBot({
    relayUrl: relay.url,
    apiKey,
    handler: new URL('./support-handler.ts', import.meta.url),
    stateDir: join(dir, 'bot'),
    logger: quiet,
  });
  log(`support bot ${short(bot.deviceId)}… running in its enclave worker; measurement ${bot.measurement.slice(0, 16)}…`);

  // The company's org key certifies the bot's identity (normally: `parley-org certify`); the
  // customer's app pins the org key and the bot's code measurement, so it refuses anything the
  // relay might substitute before sending a byte.
  const org = generateOrgKey();
  const year = 365 * 24 * 3600 * 1000;
  await bot.setCertificate(signOrgCertificate(org.seed, { role: 'bot', label: 'support', ...bot.identity, expiresAt: Date.now() + year }));
  log(`org key ${toHex(org.publicKey).slice(0, 16)}… certified the bot; customer pins it and the measurement`);

  const customer = await ParleyClient.create({
    relayUrl: relay.url,
    store: new MemoryStore(),
    logger: quiet,
    trust: { orgKey: org.publicKey, botMeasurement: bot.measurement },
  });
  await customer.connect();
  log(`customer    ${short(customer.deviceId)}… connected`);
  log('(each side also sends an encrypted delivery receipt: to the relay it looks like any other message)\n');

  try {
    for (const line of CONVERSATION) {
      const reply = new Promise<IncomingMessage>((resolve) => {
        const off = customer.on('message', (m) => {
          if (m.from !== bot.deviceId) return;
          off();
          resolve(m);
        });
      });
      log(`customer: ${line}`);
      await customer.send(bot.deviceId, line);
      const m = await withTimeout(reply, 15_000, 'bot reply');
      log(`bot:      ${m.text ?? JSON.stringify(m.json)}\n`);
    }
    log(`safety number (compare with the bot's): ${customer.safetyNumber(bot.deviceId)}`);
    log(`bot attestation verified against the pinned measurement: ${customer.peerAttestation(bot.deviceId) ? 'yes' : 'no'}`);
    finished = true;
    log(`the relay stored ${stored} envelopes (${storedBytes} bytes): device ids, message ids, sizes and ciphertext only.`);
  } finally {
    await customer.close();
    await bot.close();
    await relay.close();
    await rm(dir, { recursive: true, force: true });
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out waiting for the ${what}`)), ms);
    }),
  ]);
}

if (import.meta.url === `file://${process.argv[1]}`) await runQuickstart();
