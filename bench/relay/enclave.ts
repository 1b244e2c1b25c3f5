/**
 * Case 3, bot enclave throughput: customers send to an echo bot; how many replies per second
 * come back, with the handler in the enclave (`createBot`) and without the worker boundary.
 *
 * `@parley/bot` has no in-process mode (the enclave is always a worker; tests without one drive
 * the supervisor, still a worker). The baseline is therefore a `ParleyClient` in this process
 * answering each message with the same handler function (`echo-handler.ts`'s default export,
 * imported here), with what the bot has: the same relay (SQLite), a relay API key (role `bot`),
 * a sealed, fdatasync'ed file store (`storagePath`: FileStore, XChaCha20-Poly1305 records; the
 * bot seals in the enclave and the host appends to its SealedBlobStore log) and no receipts
 * (the bot sends none). What differs is what the boundary costs and two scheduling details,
 * listed in the README: the bot sends replies to different customers concurrently (the client
 * sends its outbox one envelope at a time), and the client consumes a message when the handler
 * has started, the bot when it has finished.
 *
 * Customers are `ParleyClient`s on memory stores in this process (they send receipts for the
 * replies, as clients do, to either target). A round: each customer queues M messages at once;
 * the rate is replies received ÷ time from the first send to the last reply. Rounds alternate
 * between the two targets so drifting machine load hits both alike.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { createBot, type Bot, type BotContext, type BotLogger, type BotMessage } from '@parley/bot';
import { MemoryStore, ParleyClient, type IncomingMessage } from '@parley/client';
import echo from './echo-handler.js';
import { cpuSecondsSince, log, sleep, type ServerProcess } from './common.js';

export type EnclaveTarget = 'enclave' | 'baseline';

export interface EnclaveRound {
  readonly target: EnclaveTarget;
  readonly messages: number;
  readonly replies: number;
  /** First send to last reply. */
  readonly seconds: number;
  readonly repliesPerSec: number;
  /** CPU of this process (customers, bot host and enclave thread, or the baseline client). */
  readonly clientCpuSecs: number;
  readonly serverCpuSecs: number;
}

export interface EnclaveOptions {
  readonly customers: number;
  readonly messagesPerCustomer: number;
  /** Timed rounds per target (after one untimed warm-up round each). */
  readonly rounds: number;
  /** Longest a round may take before it is cut short (reported as such). */
  readonly roundTimeoutMs: number;
  /** Scratch directory for the bot's and the baseline's state. */
  readonly dir: string;
}

const botLogger: BotLogger = {
  info: () => undefined,
  warn: (obj, msg) => log(`bot warning: ${msg ?? ''} ${JSON.stringify(obj)}`),
  error: (obj, msg) => log(`bot error: ${msg ?? ''} ${JSON.stringify(obj)}`),
};

/** The handler's view of a message, as the enclave builds it (`src/enclave/entry.ts`). */
function botMessage(m: IncomingMessage): BotMessage {
  return {
    from: m.from,
    id: m.id,
    sentAt: m.sentAt,
    redelivered: false,
    ...(m.type === 'text' ? { text: m.text } : {}),
    ...(m.type === 'json' ? { json: m.data } : {}),
    ...(m.type === 'binary' ? { binary: m.bytes } : {}),
  };
}

export async function measureEnclave(server: ServerProcess, o: EnclaveOptions): Promise<{ rounds: EnclaveRound[]; errors: Record<string, number> }> {
  const errors: Record<string, number> = {};
  const fail = (code: string): void => void (errors[code] = (errors[code] ?? 0) + 1);
  const botKey = (await server.request({ op: 'apiKey', label: 'bench bot' })) as string;
  const baselineKey = (await server.request({ op: 'apiKey', label: 'bench baseline' })) as string;

  let bot: Bot | undefined;
  let baseline: ParleyClient | undefined;
  const customers: ParleyClient[] = [];
  try {
    bot = await createBot({
      relayUrl: server.url,
      apiKey: botKey,
      handler: new URL('./echo-handler.ts', import.meta.url),
      stateDir: join(o.dir, 'bot'),
      oneTimePrekeys: 100,
      logger: botLogger,
    });
    baseline = await ParleyClient.create({
      relayUrl: server.url,
      storagePath: join(o.dir, 'baseline'),
      storageSecret: new Uint8Array(randomBytes(32)),
      apiKey: baselineKey,
      receipts: false,
      prekeyTarget: 100,
    });
    const b = baseline;
    b.on('error', ({ error }) => fail(`baseline ${error.code}`));
    b.on('message', (m) => {
      const ctx: BotContext = {
        botDeviceId: b.deviceId,
        safetyNumber: () => b.safetyNumber(m.from),
        reply: async (content) => void (await b.send(m.from, content)),
      };
      void Promise.resolve(echo(botMessage(m), ctx)).catch(() => fail('baseline handler'));
    });
    await b.connect();
    const targets: Record<EnclaveTarget, string> = { enclave: bot.deviceId, baseline: b.deviceId };
    const byDevice = new Map<string, EnclaveTarget>([[bot.deviceId, 'enclave'], [b.deviceId, 'baseline']]);
    log(`enclave: bot ${bot.deviceId.slice(0, 8)}… (measurement ${bot.measurement.slice(0, 12)}…), baseline ${b.deviceId.slice(0, 8)}…`);

    const replies: Record<EnclaveTarget, number> = { enclave: 0, baseline: 0 };
    const lastReply: Record<EnclaveTarget, number> = { enclave: 0, baseline: 0 };
    for (let i = 0; i < o.customers; i++) {
      const c = await ParleyClient.create({ relayUrl: server.url, store: new MemoryStore() });
      c.on('error', ({ error }) => fail(`customer ${error.code}`));
      c.on('message', (m) => {
        const t = byDevice.get(m.from);
        if (!t) return;
        replies[t]++;
        lastReply[t] = performance.now();
      });
      await c.connect();
      customers.push(c);
    }

    const quiet = async (): Promise<void> => {
      // Receipts for the last replies are still on their way to the target; let them land.
      await sleep(200);
      await Promise.all([bot!.idle(), b.idle(), ...customers.map((c) => c.idle())]);
    };

    const round = async (target: EnclaveTarget, perCustomer: number): Promise<EnclaveRound> => {
      const expected = replies[target] + customers.length * perCustomer;
      const start = replies[target];
      const cpu0 = process.cpuUsage();
      const server0 = await server.cpuSeconds();
      const t0 = performance.now();
      for (const c of customers) {
        for (let j = 0; j < perCustomer; j++) c.send(targets[target], `message ${j}`).catch((e: unknown) => fail(`send ${(e as { code?: string }).code ?? '?'}`));
      }
      const end = t0 + o.roundTimeoutMs;
      while (replies[target] < expected && performance.now() < end) await sleep(2);
      const got = replies[target] - start;
      if (got < expected - start) fail(`${target}: round cut at ${o.roundTimeoutMs / 1000} s`);
      const seconds = ((got === expected - start ? lastReply[target] : performance.now()) - t0) / 1000;
      const clientCpuSecs = cpuSecondsSince(cpu0);
      const serverCpuSecs = (await server.cpuSeconds()) - server0;
      await quiet();
      return { target, messages: customers.length * perCustomer, replies: got, seconds, repliesPerSec: got / seconds, clientCpuSecs, serverCpuSecs };
    };

    // Sessions (bundle fetch, prekey message) and JIT: one untimed round each, one message per
    // customer, then a short one.
    for (const t of ['enclave', 'baseline'] as const) {
      await round(t, 1);
      await round(t, Math.min(5, o.messagesPerCustomer));
    }
    log('enclave: sessions established, warm-up done');

    const rounds: EnclaveRound[] = [];
    for (let i = 0; i < o.rounds; i++) {
      const order: EnclaveTarget[] = i % 2 === 0 ? ['enclave', 'baseline'] : ['baseline', 'enclave'];
      const line: string[] = [];
      for (const t of order) {
        const r = await round(t, o.messagesPerCustomer);
        rounds.push(r);
        line.push(`${t} ${Math.round(r.repliesPerSec)} replies/s (${r.replies} in ${r.seconds.toFixed(2)} s)`);
      }
      log(`enclave round ${i + 1}/${o.rounds}: ${line.join(' · ')}`);
    }
    const stats = bot.stats;
    if (stats.crashes > 0) fail(`enclave crashes: ${stats.crashes}`);
    if (stats.handlerFailures > 0) fail(`enclave handler failures: ${stats.handlerFailures}`);
    return { rounds, errors };
  } finally {
    await Promise.allSettled(customers.map((c) => c.close()));
    await bot?.close().catch(() => undefined);
    await baseline?.close().catch(() => undefined);
  }
}
