/**
 * Case 2, end-to-end latency: real `ParleyClient` pairs over the SQLite relay. Senders are
 * driven open-loop at a fixed total rate (a message is due every 1/rate s, whether or not the
 * earlier ones have arrived, so a backlog shows up as latency instead of slowing the load).
 *
 * Latency of one message = from the sender's `send()` call (encrypt, outbox write, relay send,
 * durable commit at the relay, push) to the receiver's `message` event (decrypt, session and
 * inbox write). The receiver then acks the relay and sends its encrypted receipt, as a client
 * does by default; that traffic is part of the load but not of the latency. Both clients live
 * in this process, so one clock serves both ends.
 */
import { randomBytes } from 'node:crypto';
import { MemoryStore, ParleyClient, type IncomingMessage } from '@parley/client';
import { cpuSecondsSince, log, quantile, sleep, type ServerProcess } from './common.js';

/** Text of every message: 100 bytes, like the throughput case's envelopes (before encryption). */
const TEXT = 'x'.repeat(100);
/** The pacer wakes up this often and sends every message that has come due. */
const TICK_MS = 1;
/** Longest wait for messages still in flight when the sending window closes. */
const DRAIN_TIMEOUT_MS = 10_000;

export interface LatencyResult {
  /** Messages sent in the measured window and how many of them arrived. */
  readonly sent: number;
  readonly received: number;
  readonly seconds: number;
  /** Sends per second actually issued (the pacer can fall behind on a busy machine). */
  readonly achievedRate: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
  /** Client-process CPU seconds during the window (all clients' crypto is in this process). */
  readonly clientCpuSecs: number;
  readonly serverCpuSecs: number;
  readonly errors: Record<string, number>;
}

interface ClientPair {
  readonly sender: ParleyClient;
  readonly receiver: ParleyClient;
}

export async function measureLatency(
  server: ServerProcess,
  o: { pairs: number; rate: number; warmupSeconds: number; seconds: number },
): Promise<LatencyResult> {
  const sentAt = new Map<string, number>();
  let latencies: number[] = [];
  const errors: Record<string, number> = {};
  const fail = (code: string): void => void (errors[code] = (errors[code] ?? 0) + 1);
  const onMessage = (m: IncomingMessage): void => {
    const t = sentAt.get(m.id);
    if (t === undefined) return; // a warm-up message
    sentAt.delete(m.id);
    latencies.push(performance.now() - t);
  };

  const make = async (): Promise<ParleyClient> => {
    // MemoryStore: client-side storage is not what this case measures (a FileStore adds an
    // fdatasync per send and per receive on each device, ~0.3 ms each on this disk).
    const c = await ParleyClient.create({ relayUrl: server.url, store: new MemoryStore() });
    c.on('error', ({ error }) => fail(error.code));
    await c.connect();
    return c;
  };
  const pairs: ClientPair[] = [];
  for (let i = 0; i < o.pairs; i++) {
    const sender = await make();
    const receiver = await make();
    receiver.on('message', onMessage);
    pairs.push({ sender, receiver });
  }
  try {
    // Sessions first (bundle fetch and first message both ways), untimed.
    await Promise.all(
      pairs.map(async ({ sender, receiver }) => {
        const back = new Promise<void>((resolve) => {
          const off = sender.on('message', () => {
            off();
            resolve();
          });
        });
        await sender.send(receiver.deviceId, 'hello');
        await receiver.send(sender.deviceId, 'hello back');
        await back;
      }),
    );

    const run = async (seconds: number): Promise<{ sent: number; seconds: number; clientCpuSecs: number; serverCpuSecs: number }> => {
      const interval = 1000 / o.rate;
      const cpu0 = process.cpuUsage();
      const server0 = await server.cpuSeconds();
      const t0 = performance.now();
      let k = 0;
      for (;;) {
        const elapsed = performance.now() - t0;
        if (elapsed >= seconds * 1000) break;
        for (const due = Math.floor(elapsed / interval) + 1; k < due; k++) {
          const p = pairs[k % pairs.length]!;
          const id = randomBytes(16).toString('hex');
          sentAt.set(id, performance.now());
          p.sender.send(p.receiver.deviceId, TEXT, { id }).catch((e: unknown) => fail((e as { code?: string }).code ?? 'send'));
        }
        await sleep(TICK_MS);
      }
      const secs = (performance.now() - t0) / 1000;
      const clientCpuSecs = cpuSecondsSince(cpu0);
      const serverCpuSecs = (await server.cpuSeconds()) - server0;
      const end = Date.now() + DRAIN_TIMEOUT_MS;
      while (sentAt.size > 0 && Date.now() < end) await sleep(5);
      return { sent: k, seconds: secs, clientCpuSecs, serverCpuSecs };
    };

    if (o.warmupSeconds > 0) {
      await run(o.warmupSeconds);
      log(`latency: warm-up done (${latencies.length} messages)`);
    }
    latencies = [];
    sentAt.clear();
    const r = await run(o.seconds);
    if (sentAt.size > 0) fail(`not delivered within ${DRAIN_TIMEOUT_MS / 1000} s`);
    const sorted = [...latencies].sort((a, b) => a - b);
    return {
      sent: r.sent,
      received: sorted.length,
      seconds: r.seconds,
      achievedRate: r.sent / r.seconds,
      p50: quantile(sorted, 0.5),
      p90: quantile(sorted, 0.9),
      p99: quantile(sorted, 0.99),
      max: sorted.at(-1) ?? NaN,
      clientCpuSecs: r.clientCpuSecs,
      serverCpuSecs: r.serverCpuSecs,
      errors,
    };
  } finally {
    await Promise.allSettled(pairs.flatMap((p) => [p.sender.close(), p.receiver.close()]));
  }
}
