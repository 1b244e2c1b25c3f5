/** Operations: /healthz, /metrics, TLS, clean close, and the import graph (the relay reaches no key or session code). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { io } from 'socket.io-client';
import { call, login, msgId, newDevice, setupCrypto, startRelay } from './helpers.js';

test('/healthz answers 200 JSON and /metrics exposes the relay counters', async () => {
  await setupCrypto();
  const relay = await startRelay();
  try {
    const h = await fetch(`${relay.url}/healthz`);
    assert.equal(h.status, 200);
    assert.deepEqual(await h.json(), { status: 'ok' });
    const d = newDevice();
    const s = await login(relay, d);
    await call(s.socket, 'send', { to: d.deviceId, id: msgId(), envelope: new Uint8Array(8) });
    await call(s.socket, 'send', { to: d.deviceId, id: 'bad id', envelope: new Uint8Array(8) });
    const m = await (await fetch(`${relay.url}/metrics`)).text();
    for (const name of ['parley_relay_connections 1', 'parley_relay_authenticated_sockets 1', 'parley_relay_messages_stored_total 1',
      'parley_relay_queue_depth 1', 'parley_relay_errors_total{code="MALFORMED_MESSAGE"} 1', 'parley_relay_auth_total{result="success"} 1']) {
      assert.ok(m.includes(name), `${name} in\n${m}`);
    }
    assert.equal((await fetch(`${relay.url}/nope`)).status, 404);
    s.socket.disconnect();
  } finally {
    await relay.close();
  }
  await assert.rejects(fetch(`${relay.url}/healthz`), 'closed relay no longer listens');
});

test('TLS: with a certificate the relay serves HTTPS and WSS only', async (t) => {
  await setupCrypto();
  const dir = mkdtempSync(join(tmpdir(), 'parley-tls-'));
  try {
    try {
      execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1',
        '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
    } catch {
      t.skip('openssl not available');
      return;
    }
    const cert = readFileSync(join(dir, 'cert.pem'));
    const relay = await startRelay({ tls: { cert, key: readFileSync(join(dir, 'key.pem')) } });
    try {
      assert.ok(relay.url.startsWith('https://'));
      assert.equal(relay.origin, relay.url);
      const status = await new Promise<number>((resolve, reject) => {
        request(`${relay.url}/healthz`, { ca: cert }, (res) => resolve(res.statusCode ?? 0)).on('error', reject).end();
      });
      assert.equal(status, 200);
      const socket = io(relay.url, { transports: ['websocket'], ca: cert, reconnection: false, forceNew: true, autoConnect: false } as never);
      const hello = new Promise((r) => socket.once('hello', r));
      socket.connect();
      await hello;
      socket.disconnect();
      await assert.rejects(fetch(relay.url.replace('https', 'http') + '/healthz'));
    } finally {
      await relay.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('import graph: packages/relay/src imports only @parley/protocol/verify and /wire from the protocol', () => {
  const src = join(import.meta.dirname, '..', 'src');
  const files: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name));
      else if (e.name.endsWith('.ts')) files.push(join(d, e.name));
    }
  };
  walk(src);
  assert.ok(files.length > 5);
  for (const f of files) {
    const text = readFileSync(f, 'utf8');
    for (const m of text.matchAll(/(?:from|import)\s*\(?\s*['"]([^'"]+)['"]/g)) {
      const spec = m[1]!;
      if (spec.startsWith('@parley/')) assert.ok(['@parley/protocol/verify', '@parley/protocol/wire'].includes(spec), `${f}: ${spec}`);
      assert.ok(!spec.includes('protocol/src'), `${f}: reaches into protocol sources (${spec})`);
      assert.ok(!/libsodium|@noble|@parley\/(client|bot)/.test(spec), `${f}: ${spec}`);
    }
  }
});
