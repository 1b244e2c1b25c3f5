/**
 * A load process of the relay bench: real `ParleyClient`s (memory stores) driven by the runner
 * over IPC (`serveRequests`). It plays either the latency case's sender/receiver pairs or the
 * enclave case's customers. Client-side storage is not what either case measures: a FileStore
 * would add an fdatasync per send and per receive on every device.
 */
import { randomBytes } from 'node:crypto';
import { MemoryStore, ParleyClient, type IncomingMessage } from '@parley/client';
import { processCpuSeconds, serveRequests, sleep } from './common.js';

export type LoadRequest =
  | { op: 'latencySetup'; url: string; pairs: number }
  | { op: 'latencyRun'; rate: number; seconds: number }
  | { op: 'customersSetup'; url: string; customers: number }
  | { op: 'customersRound'; target: string; perCustomer: number; timeoutMs: number };

export interface LatencyRun {
  /** Messages whose `send()` was called in the window, and the latencies of those that arrived. */
  readonly sent: number;
  readonly latencies: number[];
  readonly seconds: number;
  readonly cpuSecs: number;
  readonly errors: Record<string, number>;
}

export interface CustomersRound {
  readonly replies: number;
  readonly expected: number;
  /** First send to last reply (or to the timeout). */
  readonly seconds: number;
  readonly cpuSecs: number;
  readonly errors: Record<string, number>;
}

/** Text of every latency message: 100 bytes, like the throughput case's envelopes. */
const TEXT = 'x'.repeat(100);
/** The pacer wakes up this often and sends every message that has come due. */
const TICK_MS = 1;
/** Longest wait for messages still in flight when the sending window closes. */
const DRAIN_TIMEOUT_MS = 10_000;

let errors: Record<string, number> = {};
const fail = (code: string): void => void (errors[code] = (errors[code] ?? 0) + 1);
const codeOf = (e: unknown): string => (e as { code?: string } | null)?.code ?? 'unknown';
const clients: ParleyClient[] = [];

async function newClient(url: string): Promise<ParleyClient> {
  const c = await ParleyClient.create({ relayUrl: url, store: new MemoryStore() });
  c.on('error', ({ error }) => fail(error.code));
  await c.connect();
  clients.push(c);
  return c;
}

// ---- latency pairs ----------------------------------------------------------------------------

const pairs: { sender: ParleyClient; receiver: ParleyClient }[] = [];
const sentAt = new Map<string, number>();
let latencies: number[] = [];

function onLatencyMessage(m: IncomingMessage): void {
  const t = sentAt.get(m.id);
  if (t === undefined) return; // the session set-up messages
  sentAt.delete(m.id);
  latencies.push(performance.now() - t);
}

async function latencySetup(url: string, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const sender = await newClient(url);
    const receiver = await newClient(url);
    receiver.on('message', onLatencyMessage);
    pairs.push({ sender, receiver });
  }
  // Sessions first (bundle fetch, prekey message, the first reply), untimed.
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
}

/**
 * Open loop: message k is due at k / rate seconds, whether or not earlier ones have arrived, so
 * a backlog shows as latency instead of slowing the load. Pairs take turns.
 */
async function latencyRun(rate: number, seconds: number): Promise<LatencyRun> {
  errors = {};
  latencies = [];
  sentAt.clear();
  const interval = 1000 / rate;
  const cpu0 = processCpuSeconds();
  const t0 = performance.now();
  let k = 0;
  for (;;) {
    const elapsed = performance.now() - t0;
    if (elapsed >= seconds * 1000) break;
    for (const due = Math.floor(elapsed / interval) + 1; k < due; k++) {
      const p = pairs[k % pairs.length]!;
      const id = randomBytes(16).toString('hex');
      sentAt.set(id, performance.now());
      p.sender.send(p.receiver.deviceId, TEXT, { id }).catch((e: unknown) => fail(`send ${codeOf(e)}`));
    }
    await sleep(TICK_MS);
  }
  const secs = (performance.now() - t0) / 1000;
  const cpuSecs = processCpuSeconds() - cpu0;
  const end = Date.now() + DRAIN_TIMEOUT_MS;
  while (sentAt.size > 0 && Date.now() < end) await sleep(5);
  if (sentAt.size > 0) fail(`${sentAt.size} not delivered within ${DRAIN_TIMEOUT_MS / 1000} s`);
  await Promise.all(clients.map((c) => c.idle()));
  return { sent: k, latencies, seconds: secs, cpuSecs, errors };
}

// ---- customers ----------------------------------------------------------------------------------

const customers: ParleyClient[] = [];
const repliesFrom = new Map<string, number>();
let lastReply = 0;

async function customersSetup(url: string, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const c = await newClient(url);
    c.on('message', (m) => {
      repliesFrom.set(m.from, (repliesFrom.get(m.from) ?? 0) + 1);
      lastReply = performance.now();
    });
    customers.push(c);
  }
}

/** Every customer queues `perCustomer` messages to `target` at once; waits for every reply. */
async function customersRound(target: string, perCustomer: number, timeoutMs: number): Promise<CustomersRound> {
  errors = {};
  const start = repliesFrom.get(target) ?? 0;
  const expected = customers.length * perCustomer;
  const got = (): number => (repliesFrom.get(target) ?? 0) - start;
  const cpu0 = processCpuSeconds();
  const t0 = performance.now();
  for (const c of customers) {
    for (let j = 0; j < perCustomer; j++) c.send(target, `message ${j}`).catch((e: unknown) => fail(`send ${codeOf(e)}`));
  }
  const end = t0 + timeoutMs;
  while (got() < expected && performance.now() < end) await sleep(2);
  const done = got() >= expected;
  if (!done) fail(`round cut after ${timeoutMs / 1000} s`);
  const seconds = ((done ? lastReply : performance.now()) - t0) / 1000;
  const cpuSecs = processCpuSeconds() - cpu0;
  // Receipts for the last replies are still leaving; let them go before the next round.
  await Promise.all(customers.map((c) => c.idle()));
  return { replies: got(), expected, seconds, cpuSecs, errors };
}

serveRequests<LoadRequest>(
  async (req) => {
    switch (req.op) {
      case 'latencySetup':
        return latencySetup(req.url, req.pairs);
      case 'latencyRun':
        return latencyRun(req.rate, req.seconds);
      case 'customersSetup':
        return customersSetup(req.url, req.customers);
      case 'customersRound':
        return customersRound(req.target, req.perCustomer, req.timeoutMs);
    }
  },
  async () => {
    await Promise.allSettled(clients.map((c) => c.close()));
  },
);
