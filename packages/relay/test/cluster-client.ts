/**
 * A test device for several relay nodes, built on the helpers' real-socket login: it acks what
 * it receives, drops duplicates by `(from, id)` as the client SDK does (so `app` is what the
 * application would see), reconnects to another node when its node dies, and retries a send
 * with the same id until a node acks it.
 */
import type { RelayMessage } from '@parley/protocol/wire';
import type { IdentityKeyPair } from '../../protocol/src/identity.js';
import type { Relay } from '../src/index.js';
import { call, login, type ClientSocket } from './helpers.js';

/** Where a node listens and the origin every node shares. */
export interface NodeRef {
  readonly url: string;
  readonly origin: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class ClusterClient {
  readonly deviceId: string;
  socket: ClientSocket | undefined;
  /** Index in `nodes` of the node this client is connected to. */
  node = -1;
  /** First deliveries, in arrival order: what the app sees. */
  readonly app: RelayMessage[] = [];
  /** `${from}\n${id}` of every delivered message. */
  readonly seen = new Set<string>();
  /** Deliveries dropped by the dedupe (at-least-once redeliveries). */
  transportDuplicates = 0;
  reconnects = 0;
  /** Called with each first delivery. */
  onMessage: ((m: RelayMessage) => void) | undefined;
  #closed = false;
  #ready: Promise<void> | undefined;
  #acks: number[] = [];
  #ackTimer: NodeJS.Timeout | undefined;

  /**
   * @param nodes the cluster's nodes (read at each (re)connect, so the caller may replace dead ones)
   * @param preferred index of the node to try first
   */
  constructor(readonly device: IdentityKeyPair, readonly nodes: () => readonly NodeRef[], readonly preferred: number) {
    this.deviceId = device.deviceId;
  }

  /** Connects and logs in, trying each node from `preferred` on, until `deadlineMs`. */
  connect(deadlineMs = 30_000): Promise<void> {
    this.#ready = this.#connect(this.preferred, deadlineMs);
    return this.#ready;
  }

  async #connect(start: number, deadlineMs: number): Promise<void> {
    const end = Date.now() + deadlineMs;
    for (let i = 0; !this.#closed; i++) {
      const nodes = this.nodes();
      const index = (start + i) % nodes.length;
      try {
        const { socket, inbox } = await login(nodes[index] as Relay, this.device);
        if (this.#closed) {
          socket.disconnect();
          return;
        }
        this.socket = socket;
        this.node = index;
        const take = () => {
          for (const m of inbox.splice(0)) this.#deliver(socket, m);
        };
        socket.on('message', take);
        take();
        socket.on('disconnect', () => {
          if (this.#closed || this.socket !== socket) return;
          this.socket = undefined;
          this.reconnects++;
          // Start with the next node: the one we were on is probably gone.
          this.#ready = this.#connect(index + 1, deadlineMs);
          this.#ready.catch(() => undefined);
        });
        return;
      } catch {
        if (Date.now() > end) throw new Error(`${this.deviceId.slice(0, 8)}: no node accepted a login within ${deadlineMs} ms`);
        await sleep(i < nodes.length ? 0 : 100);
      }
    }
  }

  #deliver(socket: ClientSocket, m: RelayMessage): void {
    const key = `${m.from}\n${m.id}`;
    if (this.seen.has(key)) this.transportDuplicates++;
    else {
      this.seen.add(key);
      this.app.push(m);
      this.onMessage?.(m);
    }
    // Ack duplicates too: they are still in the store until acked.
    this.#acks.push(m.seq);
    this.#ackTimer ??= setTimeout(() => {
      this.#ackTimer = undefined;
      const seqs = this.#acks.splice(0);
      const current = this.socket ?? socket;
      for (let i = 0; i < seqs.length; i += 256) {
        // A lost ack means a redelivery later, which the dedupe drops.
        call(current, 'ack', { seqs: seqs.slice(i, i + 256) }).catch(() => undefined);
      }
    }, 5);
  }

  /** Sends until a node acks (same id on every retry). Resolves with the ack, rejects after `deadlineMs`. */
  async send(to: string, id: string, envelope: Uint8Array, deadlineMs = 30_000): Promise<{ seq: number; duplicate: boolean; attempts: number }> {
    const end = Date.now() + deadlineMs;
    for (let attempts = 1; ; attempts++) {
      if (this.#closed) throw new Error('closed');
      const socket = this.socket;
      if (socket?.connected) {
        const r = await call(socket, 'send', { to, id, envelope }).catch(() => undefined);
        if (r?.ok) return { seq: r.seq, duplicate: r.duplicate, attempts };
      } else {
        await this.#ready?.catch(() => undefined);
      }
      if (Date.now() > end) throw new Error(`send ${id} not acked within ${deadlineMs} ms`);
      await sleep(50);
    }
  }

  /** Asks the node to push the backlog again (what the SDK does after a long silence). */
  async fetchQueue(): Promise<void> {
    if (this.socket?.connected) await call(this.socket, 'fetchQueue', {}).catch(() => undefined);
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#ackTimer);
    this.socket?.disconnect();
  }
}
