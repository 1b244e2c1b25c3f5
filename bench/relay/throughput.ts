/**
 * Case 1, relay throughput: sender → receiver pairs of raw socket.io clients pushing opaque
 * 100-byte envelopes through a server (the relay, or the bare forwarder) as fast as it takes
 * them. No crypto in the loop: this measures the server, not the protocol.
 *
 * - Each sender keeps a window of sends in flight ({@link DEFAULT_SEND_WINDOW}); a send is done
 *   when the server acks it (the relay acks after the durable commit).
 * - Each receiver acks deliveries in batches, as the client SDK does: when
 *   {@link ACK_BATCH} have arrived or {@link ACK_DELAY_MS} after the first unacked one.
 * - The rate is deliveries counted at the receivers per wall-clock second of a sample.
 */
import { io } from 'socket.io-client';
import type { RelayMessage, RelayResult } from '@parley/protocol/wire';
import { answer, call, newDevice, open, setupCrypto, type ClientSocket } from '../../packages/relay/test/helpers.js';
import { cpuSecondsSince, sleep, type ServerProcess } from './common.js';

/**
 * Sends in flight per sender, by default (`--window`). One at a time would measure 50 round
 * trips rather than the server; 16 keeps every server here 100 % busy while the queue per
 * recipient stays far below the relay's 10,000-message quota. A larger window helps the bare
 * forwarder more than the relay (socket.io writes more packets per syscall): see the README.
 */
export const DEFAULT_SEND_WINDOW = 16;
/** A receiver acks after this many deliveries… */
export const ACK_BATCH = 32;
/** …or this long after the first unacked one (the client SDK batches for 25 ms). */
export const ACK_DELAY_MS = 10;
/** Bytes of every envelope (opaque to both servers). */
export const ENVELOPE_BYTES = 100;
/** Longest wait for in-flight sends and deliveries after a sample stops sending. */
const DRAIN_TIMEOUT_MS = 10_000;

export interface ThroughputSample {
  /** Deliveries counted at the receivers during the sample. */
  readonly messages: number;
  readonly wallSecs: number;
  /**
   * The server's own view, over its own clock: it is asked just before and just after the
   * sample, so its window (`serverWallSecs`) is a little wider than `wallSecs`; use the ratios.
   */
  readonly serverWallSecs: number;
  /** CPU seconds of the server process. */
  readonly serverCpuSecs: number;
  /** Seconds the server's event loop was busy (includes blocking fsyncs). */
  readonly serverLoopSecs: number;
  /** CPU seconds of this (load-generating) process during the sample. */
  readonly clientCpuSecs: number;
}

interface Pair {
  readonly sender: ClientSocket;
  readonly receiver: ClientSocket;
  readonly to: string;
  next: number;
}

/** The pairs connected to one server, and the loop that drives them. */
export class PairLoad {
  readonly #pairs: Pair[] = [];
  readonly #envelope = new Uint8Array(ENVELOPE_BYTES).fill(0x5a);
  #running = false;
  #inFlight = 0;
  #accepted = 0;
  received = 0;
  readonly errors = new Map<string, number>();

  private constructor(readonly server: ServerProcess, readonly window: number) {}

  /**
   * Connects `pairs` sender/receiver pairs. Against the relay every socket logs in (a fresh
   * identity each, through the relay tests' helpers); against the bare forwarder a receiver
   * just names its room.
   */
  static async connect(server: ServerProcess, pairs: number, window = DEFAULT_SEND_WINDOW): Promise<PairLoad> {
    const load = new PairLoad(server, window);
    const authed = server.kind !== 'bare';
    if (authed) await setupCrypto();
    for (let i = 0; i < pairs; i++) {
      const s = newDevice();
      const r = newDevice();
      const sender = authed ? await login(server, s) : await bareSocket(server.url, s.deviceId);
      const receiver = authed ? await login(server, r) : await bareSocket(server.url, r.deviceId);
      load.#pairs.push({ sender, receiver, to: r.deviceId, next: 0 });
      load.#receive(receiver);
    }
    return load;
  }

  #receive(receiver: ClientSocket): void {
    let pending: number[] = [];
    let timer: ReturnType<typeof setTimeout> | undefined;
    const flush = (): void => {
      clearTimeout(timer);
      timer = undefined;
      if (pending.length === 0) return;
      const seqs = pending;
      pending = [];
      receiver.emit('ack', { seqs }, (r: RelayResult) => {
        if (!r.ok) this.#error(`ack ${r.error.code}`);
      });
    };
    receiver.on('message', (m: RelayMessage) => {
      this.received++;
      pending.push(m.seq);
      if (pending.length >= ACK_BATCH) flush();
      else timer ??= setTimeout(flush, ACK_DELAY_MS);
    });
  }

  #error(what: string): void {
    this.errors.set(what, (this.errors.get(what) ?? 0) + 1);
  }

  #send(p: Pair): void {
    if (!this.#running) return;
    this.#inFlight++;
    p.sender.emit('send', { to: p.to, id: `m${(p.next++).toString(36)}`, envelope: this.#envelope }, (r: RelayResult) => {
      this.#inFlight--;
      if (r.ok) this.#accepted++;
      else this.#error(`send ${r.error.code}`);
      this.#send(p);
    });
  }

  /** Runs the load for `seconds` and measures it; sends stop at the end and are drained. */
  async sample(seconds: number): Promise<ThroughputSample> {
    this.#running = true;
    for (const p of this.#pairs) for (let i = 0; i < this.window; i++) this.#send(p);
    // Let the pipeline fill before the clock starts.
    await sleep(100);
    const cpu0 = process.cpuUsage();
    const server0 = await this.server.usage();
    const n0 = this.received;
    const t0 = performance.now();
    await sleep(seconds * 1000);
    const n1 = this.received;
    const t1 = performance.now();
    const server1 = await this.server.usage();
    const clientCpuSecs = cpuSecondsSince(cpu0);
    await this.#drain();
    return {
      messages: n1 - n0,
      wallSecs: (t1 - t0) / 1000,
      serverWallSecs: server1.atSecs - server0.atSecs,
      serverCpuSecs: server1.cpuSecs - server0.cpuSecs,
      serverLoopSecs: server1.loopActiveSecs - server0.loopActiveSecs,
      clientCpuSecs,
    };
  }

  /** Stops sending and waits until every accepted send was delivered (bounded). */
  async #drain(): Promise<void> {
    this.#running = false;
    const end = Date.now() + DRAIN_TIMEOUT_MS;
    while ((this.#inFlight > 0 || this.received < this.#accepted) && Date.now() < end) await sleep(5);
    if (this.#inFlight > 0 || this.received < this.#accepted) {
      this.#error(`undelivered after ${DRAIN_TIMEOUT_MS / 1000} s drain`);
    }
    // Let the last ack batches go out, so the next sample starts with empty queues.
    await sleep(ACK_DELAY_MS * 3);
  }

  close(): void {
    for (const p of this.#pairs) {
      p.sender.disconnect();
      p.receiver.disconnect();
    }
  }
}

/** Logs a device in to the relay with the relay tests' helpers (hello → signed answer → ack). */
async function login(server: ServerProcess, device: ReturnType<typeof newDevice>): Promise<ClientSocket> {
  const { socket, hello } = await open(server.url);
  const r = await call(socket, 'auth', answer(device, hello, server.origin));
  if (!r.ok) throw new Error(`relay refused the bench's login: ${r.error.code}`);
  // `open` keeps an inbox for tests; the bench counts deliveries itself.
  socket.off('message');
  return socket;
}

/** A socket of the bare forwarder, joined to `room`. */
function bareSocket(url: string, room: string): Promise<ClientSocket> {
  const socket: ClientSocket = io(url, { transports: ['websocket'], auth: { room }, forceNew: true, reconnection: false });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('bare forwarder: no connect')), 5_000);
    socket.once('connect', () => {
      clearTimeout(timer);
      resolve(socket);
    });
    socket.once('connect_error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}
