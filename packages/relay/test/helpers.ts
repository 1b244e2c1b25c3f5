/** Test helpers: a relay with captured logs, devices that log in over real sockets. */
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { io, type Socket } from 'socket.io-client';
import { initCrypto, signedPrekeyPayload, type PrekeyUpload } from '@parley/protocol/verify';
import { relayAuthPayload, type ClientToServerEvents, type RelayHello, type RelayMessage, type ServerToClientEvents } from '@parley/protocol/wire';
import { IdentityKeyPair } from '../../protocol/src/identity.js';
import { createRelay, type Relay, type RelayOptions } from '../src/index.js';
import { main as complianceMain } from '../src/compliance/cli.js';

export type ClientSocket = Socket<ServerToClientEvents, ClientToServerEvents>;

/** Loads a crypto backend once ('node' when present, else sodium). */
export async function setupCrypto(): Promise<void> {
  try {
    await initCrypto('node');
  } catch {
    await initCrypto('sodium');
  }
}

/** Connection limits high enough that tests opening many sockets from 127.0.0.1 are not throttled. */
export const TEST_LIMITS = { connectBurst: 10_000, connectsPerSecondPerAddress: 10_000, maxConnectionsPerAddress: 10_000 };

/** A relay whose pino output is captured in `logs()`. */
export async function startRelay(options: RelayOptions = {}): Promise<Relay & { logs(): string }> {
  const chunks: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString('utf8'));
      cb();
    },
  });
  const logger = pino({ level: 'debug' }, sink);
  const relay = await createRelay({ logger, ...options, limits: { ...TEST_LIMITS, ...options.limits } });
  return Object.assign(relay, { logs: () => chunks.join('') });
}

export function newDevice(): IdentityKeyPair {
  return IdentityKeyPair.generate();
}

/** Opens a socket and waits for `hello` (the listener is registered before connecting). */
export function open(url: string, opts: { transports?: string[] } = {}): Promise<{ socket: ClientSocket; hello: RelayHello; inbox: RelayMessage[] }> {
  const socket: ClientSocket = io(url, {
    transports: opts.transports ?? ['websocket'],
    autoConnect: false,
    reconnection: false,
    forceNew: true,
  });
  // Collect from the start: the backlog is pushed right after the auth ack.
  const inbox: RelayMessage[] = [];
  socket.on('message', (m) => inbox.push(m));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no hello')), 5000);
    socket.once('hello', (hello) => {
      clearTimeout(timer);
      resolve({ socket, hello, inbox });
    });
    socket.once('connect_error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    socket.connect();
  });
}

/** Emits with an ack and a timeout; resolves with whatever the relay acked. */
export function call(socket: ClientSocket, event: string, ...args: unknown[]): Promise<any> {
  return (socket.timeout(5000) as any).emitWithAck(event, ...args);
}

export interface AnswerOptions {
  origin?: string;
  timestamp?: number;
  apiKey?: string;
  /** Sign with this key pair but present `identity`'s public keys. */
  signer?: IdentityKeyPair;
  serverNonce?: Uint8Array;
}

/** Builds a correct (or deliberately wrong) auth answer. */
export function answer(device: IdentityKeyPair, hello: RelayHello, origin: string, o: AnswerOptions = {}) {
  const clientNonce = new Uint8Array(randomBytes(32));
  const timestamp = o.timestamp ?? Date.now();
  const payload = relayAuthPayload({
    serverNonce: o.serverNonce ?? hello.serverNonce,
    clientNonce,
    origin: o.origin ?? origin,
    timestamp,
    deviceId: device.deviceId,
  });
  const signature = (o.signer ?? device).sign('relayAuth', payload);
  const a = { identity: device.publicIdentity, clientNonce, timestamp, signature };
  return o.apiKey === undefined ? a : { ...a, apiKey: o.apiKey };
}

/** Connects and logs in; throws if the relay refuses. */
export async function login(relay: Relay, device: IdentityKeyPair, o: AnswerOptions & { transports?: string[] } = {}) {
  const { socket, hello, inbox } = await open(relay.url, o);
  const r = await call(socket, 'auth', answer(device, hello, relay.origin, o));
  if (!r.ok) {
    socket.disconnect();
    throw new Error(`auth refused: ${r.error.code}`);
  }
  return { socket, inbox, auth: r as { ok: true; deviceId: string; role: string } };
}

/** A valid prekey upload with `opkIds` one-time prekeys (random public keys: the relay never uses them). */
export function upload(device: IdentityKeyPair, opkIds: number[], spkId = 1): PrekeyUpload {
  const spk = { id: spkId, createdAt: Date.now(), publicKey: new Uint8Array(randomBytes(32)) };
  return {
    identity: device.publicIdentity,
    signedPrekey: { ...spk, signature: device.sign('signedPrekey', signedPrekeyPayload(spk)) },
    oneTimePrekeys: opkIds.map((id) => ({ id, publicKey: new Uint8Array(randomBytes(32)) })),
  };
}

/** Waits until `predicate` holds, polling; fails after `ms`. */
export async function until(predicate: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Resolves when the socket is disconnected (or after `ms`, with false). */
export function disconnected(socket: ClientSocket, ms = 3000): Promise<boolean> {
  if (!socket.connected) return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    socket.once('disconnect', () => {
      clearTimeout(t);
      resolve(true);
    });
  });
}

export const msgId = (): string => randomBytes(16).toString('hex');

/** Runs `parley-compliance` in-process with these arguments; its exit code and output. */
export async function complianceCli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await complianceMain(['node', 'parley-compliance', ...args], { out: (s) => void (out += s), err: (s) => void (err += s) });
  return { code, out, err };
}
