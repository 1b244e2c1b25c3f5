/**
 * Shared pieces of the cross-package tests: a relay with captured logs and a store that counts
 * what each sender got stored, the org key CLI run in-process, a bot with the FAQ handler, and
 * customers (`ParleyClient`) that record what reaches the app. Everything on 127.0.0.1.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import {
  encodeStaffCredential,
  generateIssuerKey,
  generateOrgKey,
  initCrypto,
  isParleyError,
  signIssuerCertificate,
  signOrgCertificate,
  signStaffCertificate,
  type OrgRole,
  type ParleyError,
  type ParleyErrorCode,
  type PublicIdentity,
  type StaffRole,
} from '@parley/protocol';
import { ConversationEngine } from '@parley/engine';
import { RelayLink } from '@parley/relay-link';
import { createRelay, MemoryStore as RelayMemoryStore, type Relay, type RelayOptions } from '@parley/relay';
import { ParleyClient, type IncomingMessage, type ParleyClientOptions } from '@parley/client';
import { MemoryStore, type TrustOptions } from '@parley/client';
import type { Bot, BotOptions } from '@parley/bot';
import { createBotForTesting, type BotTestingHooks } from '@parley/bot/testing';
import { main as orgCli } from '../../packages/client/src/cli/org.js';

export const FAQ_HANDLER = new URL('./fixtures/faq-handler.ts', import.meta.url);

/** Limits high enough that a test's burst from 127.0.0.1 is never throttled. */
export const TEST_LIMITS = {
  connectBurst: 10_000,
  connectsPerSecondPerAddress: 10_000,
  maxConnectionsPerAddress: 10_000,
  eventsPerSecond: 100_000,
  eventBurst: 100_000,
  bundleFetchesPerMinute: 10_000,
};

/** Fast reconnects for clients whose relay goes away. */
export const FAST = { reconnectDelayMs: 50, maxReconnectDelayMs: 400 };

export async function setupCrypto(): Promise<void> {
  await initCrypto('node');
}

const dirs: string[] = [];
process.on('exit', () => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A temp dir removed when the test process exits (after every bot using it is closed). */
export function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'parley-e2e-'));
  dirs.push(dir);
  return dir;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `cond` every 10 ms until it holds; fails after `ms`. */
export async function until(cond: () => boolean, ms = 10_000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

export type TakenBundle = NonNullable<Awaited<ReturnType<RelayMemoryStore['takeBundle']>>>;

/** A relay memory store that counts, per sender, the envelopes it stored (what "nothing was sent" means at the relay). */
export class CountingStore extends RelayMemoryStore {
  readonly stored = new Map<string, number>();
  /**
   * A malicious relay: when set, rewrites what `fetchBundle` hands out (bundle, certificate,
   * attestation). Nothing a client checks is signed by the relay, so this is exactly its power.
   */
  rewriteBundle: ((deviceId: string, taken: TakenBundle | undefined) => TakenBundle | undefined) | undefined;
  override async takeBundle(...args: Parameters<RelayMemoryStore['takeBundle']>): Promise<TakenBundle | undefined> {
    const taken = await super.takeBundle(...args);
    return this.rewriteBundle ? this.rewriteBundle(args[0], taken) : taken;
  }
  /** The honest store's answer, bypassing {@link rewriteBundle}. */
  takeHonestBundle(deviceId: string): Promise<TakenBundle | undefined> {
    return super.takeBundle(deviceId);
  }
  override async enqueue(...args: Parameters<RelayMemoryStore['enqueue']>): Promise<{ seq: number; duplicate: boolean }> {
    const [message] = args;
    const r = await super.enqueue(...args);
    if (!r.duplicate) this.stored.set(message.from, (this.stored.get(message.from) ?? 0) + 1);
    return r;
  }
  storedFrom(deviceId: string): number {
    return this.stored.get(deviceId) ?? 0;
  }
}

/** A relay on 127.0.0.1 whose pino output (debug level) is kept in `logs()`. */
export async function startRelay(options: RelayOptions = {}): Promise<Relay & { logs(): string }> {
  const chunks: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString('utf8'));
      cb();
    },
  });
  const relay = await createRelay({ logger: pino({ level: 'debug' }, sink), ...options, limits: { ...TEST_LIMITS, ...options.limits } });
  return Object.assign(relay, { logs: () => chunks.join('') });
}

/** `parley-org`, run in-process exactly as its bin runs it. */
export async function parleyOrg(...args: string[]): Promise<string> {
  let out = '';
  let err = '';
  const code = await orgCli(['node', 'parley-org', ...args], { out: (s) => void (out += s), err: (s) => void (err += s) });
  if (code !== 0) throw new Error(`parley-org ${args[0]} failed (${code}): ${err}`);
  return out.trim();
}

/** An organisation key made with `parley-org keygen`; `certify` runs `parley-org certify`. */
export async function orgKey(dir: string): Promise<{ publicKeyHex: string; certify(identityHex: string, role?: 'bot' | 'agent'): Promise<string> }> {
  const keyPath = join(dir, 'org.key');
  const publicKeyHex = await parleyOrg('keygen', '--out', keyPath);
  return {
    publicKeyHex,
    certify: (identityHex, role = 'bot') => parleyOrg('certify', '--org-key', keyPath, '--identity', identityHex, '--role', role, '--label', 'support', '--days', '30'),
  };
}

/** A bot logger that keeps its lines (what would reach the host's log sink). */
export function botLogger(): NonNullable<BotOptions['logger']> & { lines: string[]; text(): string } {
  const lines: string[] = [];
  const push = (level: string) => (obj: object, msg?: string) => void lines.push(JSON.stringify({ level, ...obj, msg }));
  return { lines, info: push('info'), warn: push('warn'), error: push('error'), text: () => lines.join('\n') };
}

/** Starts a bot with the FAQ handler. */
export async function startBot(relayUrl: string, apiKey: string, stateDir: string, extra: Partial<BotOptions> = {}, hooks: BotTestingHooks = {}): Promise<Bot> {
  return createBotForTesting({ relayUrl, apiKey, handler: FAQ_HANDLER, stateDir, logger: botLogger(), oneTimePrekeys: 20, ...extra }, hooks);
}

/** A customer: a `ParleyClient` on a memory store, recording every app-level `message` event. */
export async function customer(relayUrl: string, trust: TrustOptions, extra: Partial<ParleyClientOptions> = {}) {
  const store = (extra.store as MemoryStore | undefined) ?? new MemoryStore();
  const client = await ParleyClient.create({ relayUrl, store, trust, ...extra, transport: { ...FAST, ...extra.transport } });
  const got: IncomingMessage[] = [];
  /** App-level `message` events per `(from, id)`: every count must be 1 (THREATS I5). */
  const seen = new Map<string, number>();
  const errors: string[] = [];
  client.on('message', (m) => {
    got.push(m);
    const key = `${m.from}/${m.id}`;
    seen.set(key, (seen.get(key) ?? 0) + 1);
  });
  client.on('error', (e) => void errors.push(e.error.code));
  await client.connect();
  return { client, store, got, seen, errors, duplicates: () => [...seen.values()].filter((n) => n > 1).length };
}

/**
 * An organisation for conversation tests: its org key, an issuer it certified (agent and
 * supervisor, 12 h), and devices: `staff` signs a device's staff credential (what the issuer's
 * sign-in hands out), `certifiedClient` starts a `ParleyClient` whose device the org certified
 * (role `bot` by default; its certificate is published with its prekeys before it starts).
 */
export function testOrg() {
  const org = generateOrgKey();
  const issuerKey = generateIssuerKey();
  const HOUR = 3600_000;
  const issuerCertificate = signIssuerCertificate(org.seed, {
    issuerKey: issuerKey.publicKey, name: 'Acme support', policy: { roles: ['agent', 'supervisor'], maxLifetimeMs: 12 * HOUR }, expiresAt: Date.now() + 24 * HOUR,
  });
  let serial = 0;
  return {
    publicKey: org.publicKey,
    /** A staff credential for `identity`, as the issuer's sign-in would give it. */
    credential(identity: PublicIdentity, personId: string, displayName: string, roles: StaffRole[] = ['agent']): Uint8Array {
      const s = new Uint8Array(16);
      s[15] = ++serial;
      return encodeStaffCredential(issuerCertificate, signStaffCertificate(issuerKey.seed, {
        signingKey: identity.signingKey, dhKey: identity.dhKey, personId, displayName, roles, issuedAt: Date.now() - 1_000, expiresAt: Date.now() + 8 * HOUR, serial: s,
      }));
    },
    /** An org certificate for `identity`. */
    certificate(identity: PublicIdentity, role: OrgRole = 'bot', label = 'support'): Uint8Array {
      return signOrgCertificate(org.seed, { role, label, signingKey: identity.signingKey, dhKey: identity.dhKey, expiresAt: Date.now() + 24 * HOUR });
    },
  };
}

/** A staff device (agent by default) signed in with a credential of `org`, connected, recording its messages like {@link customer}. */
export async function staffClient(relayUrl: string, org: ReturnType<typeof testOrg>, personId: string, displayName: string, roles: StaffRole[] = ['agent'], extra: Partial<ParleyClientOptions> = {}) {
  const store = new MemoryStore();
  const client = await ParleyClient.create({ relayUrl, store, trust: { orgKey: org.publicKey, requireCertificate: 'none' }, ...extra, transport: { ...FAST, ...extra.transport } });
  await client.setStaffCredential(org.credential(client.publicIdentity, personId, displayName, roles));
  const errors: ParleyError[] = [];
  client.on('error', (e) => void errors.push(e.error));
  await client.connect();
  return { client, store, errors };
}

/** A `ParleyClient` whose device `org` certified (role `bot` unless told), its certificate published before it starts. */
export async function certifiedClient(relayUrl: string, org: ReturnType<typeof testOrg>, o: { apiKey?: string; trust?: TrustOptions; role?: OrgRole; label?: string; extra?: Partial<ParleyClientOptions> } = {}) {
  const store = new MemoryStore();
  const engine = await ConversationEngine.open({ store });
  const link = new RelayLink({ url: relayUrl, credentials: { answer: (c) => engine.relayLoginAnswer(c), ...(o.apiKey ? { apiKey: o.apiKey } : {}) } });
  await link.connect({ timeoutMs: 5_000 });
  await link.uploadPrekeys({ ...(await engine.prekeyUpload(0)), certificate: org.certificate(engine.publicIdentity, o.role, o.label) });
  await link.close();
  await engine.close();
  const client = await ParleyClient.create({
    relayUrl, store, trust: o.trust ?? { orgKey: org.publicKey, requireCertificate: 'none' }, ...(o.apiKey ? { apiKey: o.apiKey } : {}), ...o.extra, transport: { ...FAST, ...o.extra?.transport },
  });
  const errors: ParleyError[] = [];
  client.on('error', (e) => void errors.push(e.error));
  await client.connect();
  return { client, store, errors };
}

/** An assertion helper for rejections with a Parley error code. */
export function refused(code: ParleyErrorCode, reason?: string) {
  return (e: unknown): boolean => {
    if (!isParleyError(e)) throw new Error(`expected a ParleyError ${code}, got ${String(e)}`);
    if (e.code !== code) throw new Error(`expected ${code}, got ${e.code}: ${e.message}`);
    if (reason !== undefined && e.details?.reason !== reason) throw new Error(`expected reason ${reason}, got ${String(e.details?.reason)}`);
    return true;
  };
}
