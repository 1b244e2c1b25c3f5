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
 * Customers are `ParleyClient`s on memory stores in a load process of their own
 * (`load-worker.ts`), so the bot's process holds only the bot (or the baseline): they send
 * receipts for the replies, as clients do, to either target. A round: each customer queues M
 * messages at once; the rate is replies received ÷ time from the first send to the last reply,
 * both taken in the customers' process. Rounds alternate between the two targets so drifting
 * machine load hits both alike.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { createBot, type Bot, type BotContext, type BotLogger, type BotMessage, type JsonValue } from '@parley/bot';
import { ParleyClient, type IncomingMessage } from '@parley/client';
import echo from './echo-handler.js';
import { Child, cpuSecondsSince, fmtNum, fmtPct, log, sleep, type ServerProcess } from './common.js';
import type { CustomersRound, LoadRequest } from './load-worker.js';

/** The baseline has no enclave: `ctx.state` in memory, per message (the echo handler does not use it). */
function baselineState(): BotContext['state'] {
  const m = new Map<string, JsonValue>();
  return {
    get: async <T extends JsonValue = JsonValue>(k: string) => m.get(k) as T | undefined,
    set: async (k, v) => void m.set(k, v),
    delete: async (k) => m.delete(k),
    entries: async () => [...m],
  };
}

export type EnclaveTarget = 'enclave' | 'baseline';

export interface EnclaveRound {
  readonly target: EnclaveTarget;
  readonly messages: number;
  readonly replies: number;
  /** First send to last reply. */
  readonly seconds: number;
  readonly repliesPerSec: number;
  /** CPU of the bot's process (bot host and enclave thread, or the baseline client)… */
  readonly botCpuSecs: number;
  /** …over this long: the round as the runner saw it (a little longer than `seconds`). */
  readonly botWallSecs: number;
  /** CPU of the customers' process. */
  readonly customersCpuSecs: number;
  readonly serverCpuSecs: number;
}

export interface EnclaveOptions {
  readonly customers: number;
  readonly messagesPerCustomer: number;
  /** Timed rounds per target (after two short untimed rounds each: sessions, then warm-up). */
  readonly rounds: number;
  /** Longest a round may take before it is cut short (reported as such). */
  readonly roundTimeoutMs: number;
  /** Scratch directory for the bot's and the baseline's state. */
  readonly dir: string;
}

/** Set while closing: the bot's "relay disconnected" warning is expected then. */
let closing = false;

const botLogger: BotLogger = {
  info: () => undefined,
  warn: (obj, msg) => void (closing || log(`bot warning: ${msg ?? ''} ${JSON.stringify(obj)}`)),
  error: (obj, msg) => log(`bot error: ${msg ?? ''} ${JSON.stringify(obj)}`),
};

/** The handler's view of a message, as the enclave builds it (`src/enclave/entry.ts`). */
function botMessage(m: IncomingMessage): BotMessage {
  const { receivedAt: _receivedAt, seq: _seq, ...message } = m;
  return { ...message, redelivered: false };
}

export async function measureEnclave(server: ServerProcess, o: EnclaveOptions): Promise<{ rounds: EnclaveRound[]; errors: Record<string, number> }> {
  const errors: Record<string, number> = {};
  const fail = (code: string, n = 1): void => void (errors[code] = (errors[code] ?? 0) + n);
  const botKey = (await server.request({ op: 'apiKey', label: 'bench bot' })) as string;
  const baselineKey = (await server.request({ op: 'apiKey', label: 'bench baseline' })) as string;

  let bot: Bot | undefined;
  let baseline: ParleyClient | undefined;
  const customers = new Child<LoadRequest>('load-worker.ts', 'customers process');
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
        state: baselineState(),
        fetch: () => Promise.reject(new Error('the echo handler makes no requests')),
        handoff: () => Promise.reject(new Error('the echo handler hands nothing off')),
        members: () => [],
        consents: () => [],
        requestConsent: () => Promise.reject(new Error('the echo handler asks for no consent')),
        requestForm: () => Promise.reject(new Error('the echo handler asks for no form')),
      };
      void Promise.resolve(echo(botMessage(m), ctx)).catch(() => fail('baseline handler'));
    });
    await b.connect();
    const targets: Record<EnclaveTarget, string> = { enclave: bot.deviceId, baseline: b.deviceId };
    log(`enclave: bot ${bot.deviceId.slice(0, 8)}… (measurement ${bot.measurement.slice(0, 12)}…), baseline ${b.deviceId.slice(0, 8)}…`);
    await customers.request({ op: 'customersSetup', url: server.url, customers: o.customers });

    const round = async (target: EnclaveTarget, perCustomer: number): Promise<EnclaveRound> => {
      const cpu0 = process.cpuUsage();
      const server0 = await server.cpuSeconds();
      const w0 = performance.now();
      const r = (await customers.request(
        { op: 'customersRound', target: targets[target], perCustomer, timeoutMs: o.roundTimeoutMs },
        o.roundTimeoutMs + 30_000,
      )) as CustomersRound;
      const botCpuSecs = cpuSecondsSince(cpu0);
      const botWallSecs = (performance.now() - w0) / 1000;
      const serverCpuSecs = (await server.cpuSeconds()) - server0;
      for (const [code, n] of Object.entries(r.errors)) fail(`customers (${target}): ${code}`, n);
      // The customers' receipts for the last replies may still be on their way in.
      await sleep(100);
      await Promise.all([bot!.idle(), b.idle()]);
      return { target, messages: r.expected, replies: r.replies, seconds: r.seconds, repliesPerSec: r.replies / r.seconds, botCpuSecs, botWallSecs, customersCpuSecs: r.cpuSecs, serverCpuSecs };
    };

    // Sessions (bundle fetch, prekey message) and JIT: untimed rounds, one message per customer,
    // then a few.
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
        line.push(`${t} ${fmtNum(r.repliesPerSec)} replies/s (${r.replies} in ${r.seconds.toFixed(2)} s, bot process CPU ${fmtPct(r.botCpuSecs / r.botWallSecs)})`);
      }
      log(`enclave round ${i + 1}/${o.rounds}: ${line.join(' · ')}`);
    }
    const stats = bot.stats;
    if (stats.crashes > 0) fail(`enclave crashes: ${stats.crashes}`);
    if (stats.handlerFailures > 0) fail(`enclave handler failures: ${stats.handlerFailures}`);
    return { rounds, errors };
  } finally {
    closing = true;
    await customers.stop();
    await bot?.close().catch(() => undefined);
    await baseline?.close().catch(() => undefined);
  }
}
