/**
 * `parley-issuer serve` as operators run it (a spawned process): the ready line and ready file,
 * a second server on the same database refused in one line, and a person disabled with the CLI
 * while it runs: the server signs a revocation list with its key (still in memory after start)
 * and POSTs it to the relay (a local stand-in here).
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { toBase64, verifyRevocationList } from '@parley/protocol';
import { writeIssuerKey } from '../src/index.js';
import { makeIssuerKeys, tempDir } from './helpers.js';

const bin = join(import.meta.dirname, '..', 'bin', 'parley-issuer.mjs');

test('serve: ready line and file; one server per database; a CLI disable is signed and published by the running server', async (t) => {
  const tmp = tempDir();
  t.after(() => tmp.remove());
  const keys = await makeIssuerKeys();
  writeIssuerKey(join(tmp.dir, 'issuer.key'), keys.key);
  writeFileSync(join(tmp.dir, 'issuer.cert'), `${toBase64(keys.certificate)}\n`);
  const received: Uint8Array[] = [];
  const relay = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push(new Uint8Array(Buffer.concat(chunks)));
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r));
  t.after(() => relay.close());
  const db = join(tmp.dir, 'issuer.db');
  const ready = join(tmp.dir, 'ready.json');
  const args = ['serve', '--key', join(tmp.dir, 'issuer.key'), '--certificate', join(tmp.dir, 'issuer.cert'), '--db', db, '--port', '0',
    '--relay', `http://127.0.0.1:${(relay.address() as { port: number }).port}`, '--revocation-check', '200ms', '--log-level', 'silent', '--ready-file', ready];
  const server: ChildProcess = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => server.kill('SIGKILL'));
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: server.stdout! }).once('line', resolve);
    server.once('exit', (code) => reject(new Error(`serve exited ${code}`)));
  });
  assert.match(line, /^parley-issuer listening on http:\/\/127\.0\.0\.1:\d+ \(origin http:\/\/127\.0\.0\.1:\d+\)$/);
  const info = JSON.parse(readFileSync(ready, 'utf8')) as { url: string; port: number; pid: number };
  assert.equal(info.pid, server.pid);
  assert.ok(line.includes(info.url));

  const second = spawnSync(process.execPath, [bin, ...args.slice(0, -2)], { encoding: 'utf8' });
  assert.equal(second.status, 1);
  assert.match(second.stderr, /^parley-issuer: the database .* is in use by another issuer/);

  const add = spawnSync(process.execPath, [bin, 'staff', 'add', '--db', db, '--username', 'kim', '--display-name', 'Kim', '--roles', 'agent'], { encoding: 'utf8' });
  const personId = /personId: +([0-9a-f]{32})/.exec(add.stdout)?.[1];
  assert.ok(personId, add.stderr);
  const disable = spawnSync(process.execPath, [bin, 'staff', 'disable', personId, '--db', db], { encoding: 'utf8' });
  assert.equal(disable.status, 0, disable.stderr);
  const end = Date.now() + 5000;
  while (received.length === 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
  assert.equal(received.length, 1, 'the running server published the list');
  const list = verifyRevocationList(received[0]!, { orgKey: keys.org.publicKey, now: Date.now() });
  assert.deepEqual(list.persons, [personId]);
  assert.equal(list.sequence, 1);
  server.kill('SIGTERM');
  await new Promise((r) => server.once('exit', r));
});
