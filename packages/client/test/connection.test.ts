/**
 * `connect` always settles with a typed error naming what went wrong (refused, DNS, TLS,
 * timeout, login refused), `ca` trusts a private CA, the connection events, and the
 * unsafe-default warning. Real sockets: a closed port, a `.invalid` host, an HTTPS relay with a
 * throwaway CA, a TCP server that never answers.
 */
import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { isParleyError } from '@parley/protocol';
import { MemoryStore, ParleyClient, type ParleyClientOptions } from '../src/index.js';
import { setupCrypto } from '../../engine/test/helpers/engines.js';
import { FAST, startRelay, until } from './helpers/relay.js';
import { closedPort, makeTestCertificates } from './helpers/tls.js';

const TIMEOUT_MS = 8_000;
const clients: ParleyClient[] = [];

function capture() {
  const lines: Record<string, unknown>[] = [];
  const push = (level: string) => (obj: object, msg?: string) => void lines.push({ level, ...obj, msg });
  return { lines, debug: push('debug'), info: push('info'), warn: push('warn'), error: push('error') };
}

async function newClient(relayUrl: string, extra: Partial<ParleyClientOptions> = {}): Promise<ParleyClient> {
  const c = await ParleyClient.create({
    relayUrl,
    store: new MemoryStore(),
    logger: capture(),
    connectTimeoutMs: TIMEOUT_MS,
    ...extra,
    transport: { ...FAST, ...extra.transport },
  });
  clients.push(c);
  return c;
}

/** The rejection of `p` and how long it took. */
async function rejection(p: Promise<unknown>): Promise<{ error: unknown; ms: number }> {
  const start = Date.now();
  try {
    await p;
  } catch (error) {
    return { error, ms: Date.now() - start };
  }
  throw new Error('expected a rejection');
}

async function authFailures(relay: { metrics: { metrics(): Promise<string> } }): Promise<number> {
  const m = /auth_total\{result="failure"\} (\d+)/.exec(await relay.metrics.metrics());
  return m ? Number(m[1]) : 0;
}

before(setupCrypto);
after(async () => {
  for (const c of clients) await c.close();
});

describe('ParleyClient.connect always settles with a typed error', () => {
  it('a closed port: TRANSPORT / refused (ECONNREFUSED) at the first attempt', async () => {
    const port = await closedPort();
    const c = await newClient(`http://127.0.0.1:${port}`);
    const { error, ms } = await rejection(c.connect());
    assert.ok(isParleyError(error, 'TRANSPORT'), String(error));
    assert.equal(error.details?.reason, 'refused');
    assert.equal(error.details?.cause, 'ECONNREFUSED');
    assert.match(error.message, new RegExp(`relay http://127\\.0\\.0\\.1:${port} refused the connection \\(ECONNREFUSED\\): is parley-relay running`));
    assert.ok(ms < TIMEOUT_MS / 4, `rejected after ${ms} ms`);
  });

  it('an unknown host: TRANSPORT / dns', async () => {
    const c = await newClient('http://parley-relay.invalid:4000');
    const { error, ms } = await rejection(c.connect());
    assert.ok(isParleyError(error, 'TRANSPORT'), String(error));
    assert.equal(error.details?.reason, 'dns');
    assert.match(String(error.details?.cause), /^(ENOTFOUND|EAI_AGAIN)$/);
    assert.match(error.message, /"parley-relay\.invalid" does not resolve/);
    assert.ok(ms < TIMEOUT_MS / 2, `rejected after ${ms} ms`);
  });

  it('a server that never answers: TRANSPORT / timeout after connectTimeoutMs', async () => {
    const held: Socket[] = [];
    const silent = createServer((s) => void held.push(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const { port } = silent.address() as { port: number };
    try {
      const c = await newClient(`http://127.0.0.1:${port}`, { connectTimeoutMs: 600 });
      const { error, ms } = await rejection(c.connect());
      assert.ok(isParleyError(error, 'TRANSPORT'), String(error));
      assert.equal(error.details?.reason, 'timeout');
      assert.ok(ms >= 550 && ms < 3_000, `rejected after ${ms} ms`);
      assert.match(error.message, /within 600 ms/);
    } finally {
      for (const s of held) s.destroy();
      await new Promise<void>((r) => silent.close(() => r()));
    }
  });
});

describe('TLS trust: the ca option', () => {
  it('an untrusted certificate is TRANSPORT / tls naming the fix; with ca it connects', async () => {
    const certs = makeTestCertificates();
    const relay = await startRelay({ tls: { cert: certs.cert, key: certs.key } });
    try {
      assert.match(relay.url, /^https:/);
      const untrusted = await newClient(relay.url);
      const { error, ms } = await rejection(untrusted.connect());
      assert.ok(isParleyError(error, 'TRANSPORT'), String(error));
      assert.equal(error.details?.reason, 'tls');
      assert.match(String(error.details?.cause), /^(UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_GET_ISSUER_CERT_LOCALLY)$/);
      assert.match(error.message, /is not trusted .*pass its CA with the `ca` option/);
      assert.ok(ms < TIMEOUT_MS / 4, `rejected after ${ms} ms`);

      const trusted = await newClient(relay.url, { ca: certs.ca });
      await trusted.connect();
      assert.equal(trusted.connected, true);
    } finally {
      await relay.close();
    }
  });

  it('an https:// URL to a plain-HTTP relay is TRANSPORT / tls, asking whether it serves HTTPS', async () => {
    const relay = await startRelay();
    try {
      const c = await newClient(relay.url.replace(/^http:/, 'https:'));
      const { error, ms } = await rejection(c.connect());
      assert.ok(isParleyError(error, 'TRANSPORT'), String(error));
      assert.equal(error.details?.reason, 'tls');
      assert.match(error.message, /is it serving HTTPS on that port/);
      assert.ok(ms < TIMEOUT_MS / 4, `rejected after ${ms} ms`);
    } finally {
      await relay.close();
    }
  });
});

describe('connection events', () => {
  it('connected, disconnected when the relay stops, connected again after its restart', async () => {
    let relay = await startRelay();
    const port = relay.port;
    const c = await newClient(relay.url);
    const seen: string[] = [];
    c.on('connected', ({ deviceId }) => seen.push(`connected:${deviceId === c.deviceId}`));
    c.on('disconnected', () => seen.push('disconnected'));
    try {
      await c.connect();
      await until(() => seen.length === 1, 5_000, 'connected');
      await relay.close();
      await until(() => seen.length === 2, 5_000, 'disconnected');
      relay = await startRelay({ port });
      await until(() => seen.length === 3, 5_000, 'connected again');
      assert.deepEqual(seen, ['connected:true', 'disconnected', 'connected:true']);
    } finally {
      await relay.close();
    }
  });

  it('a login refusal rejects connect with UNAUTHENTICATED, emits authFailed and stops retrying', async () => {
    const relay = await startRelay();
    try {
      // Signs another origin than the relay's: refused at every login, so retrying is pointless.
      const c = await newClient(relay.url, { transport: { origin: 'https://not-the-relay.example' } });
      const failed: unknown[] = [];
      c.on('authFailed', ({ error }) => failed.push(error));
      const { error, ms } = await rejection(c.connect());
      assert.ok(isParleyError(error, 'UNAUTHENTICATED'), String(error));
      assert.match(error.message, /refused the login/);
      assert.equal(error.details?.reason, 'origin');
      assert.equal(error.details?.signedOrigin, 'https://not-the-relay.example');
      assert.match(error.message, /dial the relay's public URL/);
      assert.ok(ms < TIMEOUT_MS / 4, `rejected after ${ms} ms`);
      assert.deepEqual(failed, [error]);
      const attempts = await authFailures(relay);
      assert.equal(attempts, 1);
      // FAST reconnects every 50-300 ms: a loop would have tried several times by now.
      await new Promise((r) => setTimeout(r, 1_000));
      assert.equal(await authFailures(relay), 1, 'no retry after a final refusal');
      assert.equal(c.connected, false);
    } finally {
      await relay.close();
    }
  });
});

describe('unsafe default: no trust settings', () => {
  it('says so exactly once, through the logger, with the fix; a pinned org key silences it', async () => {
    const logger = capture();
    await newClient('http://127.0.0.1:1', { logger });
    const warned = logger.lines.filter((l) => l['event'] === 'unsafeDefault');
    assert.equal(warned.length, 1);
    assert.equal(warned[0]!['level'], 'warn');
    assert.equal(warned[0]!['option'], 'trust');
    assert.match(String(warned[0]!['fix']), /orgKey/);

    const pinned = capture();
    await newClient('http://127.0.0.1:1', { logger: pinned, trust: { orgKey: 'ab'.repeat(32) } });
    assert.equal(pinned.lines.filter((l) => l['event'] === 'unsafeDefault').length, 0);
  });
});
