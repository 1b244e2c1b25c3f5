/**
 * The audit chain detects deleted, reordered and altered entries (library and `parley-issuer audit
 * verify` exit codes); the CLI prints invitations and its version; the admin API needs an admin
 * session; disabling a person or revoking a device signs a new revocation list (sequence + 1)
 * that is POSTed to the relay (a local stand-in server here) and served at GET /v1/revocations.
 */
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import Database from 'better-sqlite3';
import { deviceIdOf, fromBase64, fromHex, initCrypto, verifyRevocationList } from '@parley/protocol';
import { AuditLog, checkRoles, createIssuer, openIssuerDb, totpCode, verifyAudit, type RunningIssuer } from '../src/index.js';
import { get, makeDevice, makeIssuerKeys, post, tempDir } from './helpers.js';

const bin = join(import.meta.dirname, '..', 'bin', 'parley-issuer.mjs');
const run = (...args: string[]) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8' });
const runAsync = (...args: string[]) => new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
  execFile(process.execPath, [bin, ...args], { encoding: 'utf8' }, (e, stdout, stderr) => resolve({ status: e ? (typeof e.code === 'number' ? e.code : 1) : 0, stdout, stderr }));
});

let tmp: ReturnType<typeof tempDir>;
before(async () => {
  await initCrypto();
  tmp = tempDir();
});
after(() => tmp.remove());

/** A database with `n` audit entries, and a writer that can bypass the append-only triggers (an attacker with the file). */
function auditDb(name: string, n: number): { path: string; tamper: (sql: string) => void } {
  const path = join(tmp.dir, name);
  const h = openIssuerDb(path);
  const log = new AuditLog(h.db);
  for (let i = 0; i < n; i++) log.append({ type: 'signin.failure', actor: 'ip:127.0.0.1', subject: `user${i}`, reason: 'badPassword' }, 1_700_000_000_000 + i);
  h.close();
  return {
    path,
    tamper: (sql: string) => {
      const db = new Database(path);
      db.exec('DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete;');
      db.exec(sql);
      db.close();
    },
  };
}

test('audit log: append-only in the database; verify finds deleted, reordered and altered entries', () => {
  const { path } = auditDb('ok.db', 5);
  const h = openIssuerDb(path);
  assert.throws(() => h.db.exec('DELETE FROM audit WHERE seq = 2'), /append-only/);
  assert.throws(() => h.db.exec("UPDATE audit SET reason = '' WHERE seq = 2"), /append-only/);
  const log = new AuditLog(h.db);
  const v = log.verify();
  assert.equal(v.ok, true);
  h.close();

  const cases: [string, string, number][] = [
    ['deleted', 'DELETE FROM audit WHERE seq = 3', 4],
    // Swap entries 2 and 3 (content moved, seq kept in place), as a reordering attacker would.
    ['reordered', `UPDATE audit SET seq = -2 WHERE seq = 2; UPDATE audit SET seq = 2 WHERE seq = 3; UPDATE audit SET seq = 3 WHERE seq = -2;`, 2],
    ['altered', "UPDATE audit SET subject = 'someone else' WHERE seq = 4", 4],
  ];
  for (const [name, sql, brokenAt] of cases) {
    const t = auditDb(`${name}.db`, 5);
    t.tamper(sql);
    const h2 = openIssuerDb(t.path);
    const verdict = new AuditLog(h2.db).verify();
    h2.close();
    assert.equal(verdict.ok, false, name);
    assert.equal(verdict.ok === false && verdict.brokenAt, brokenAt, name);
    if (name === 'deleted') {
      const cli = run('audit', 'verify', '--db', t.path);
      assert.equal(cli.status, 1, `${name}: ${cli.stdout}${cli.stderr}`);
      assert.match(cli.stderr, new RegExp(`^parley-issuer: audit log broken at entry ${brokenAt} `), name);
    }
  }
  // The library verdict on a list with entries reordered in memory.
  const h3 = openIssuerDb(path);
  const entries = new AuditLog(h3.db).list();
  h3.close();
  assert.equal(verifyAudit([entries[0]!, entries[2]!, entries[1]!, ...entries.slice(3)]).ok, false);
});

test('CLI: --version, keygen, staff add prints an invitation, audit verify exits 0 with the head (1 when broken: above)', async () => {
  const db = join(tmp.dir, 'cli.db');
  // Independent commands side by side (each is a tsx start-up).
  const [version, key, add] = await Promise.all([
    runAsync('--version'),
    runAsync('keygen', '--out', join(tmp.dir, 'issuer.key')),
    runAsync('staff', 'add', '--db', db, '--create', '--username', 'erin', '--display-name', 'Erin', '--roles', 'agent,supervisor'),
  ]);
  assert.match(version.stdout, /^\d+\.\d+\.\d+/);
  assert.equal(key.status, 0, key.stderr);
  assert.match(key.stdout, /^[0-9a-f]{64}\n$/);
  assert.equal(add.status, 0, add.stderr);
  assert.match(add.stdout, /^personId: {3}[0-9a-f]{32}\ninvitation: [A-Za-z0-9_-]{32}\n/);
  assert.throws(() => checkRoles(['agent', 'janitor']), /unknown role janitor/);
  const verify = run('audit', 'verify', '--db', db);
  assert.equal(verify.status, 0, verify.stderr);
  assert.match(verify.stdout, /^ok: 1 entries, head [0-9a-f]{64}\n$/);
  // --head: the head printed earlier must still be in the chain (a cut-off end is caught).
  const head = /head ([0-9a-f]{64})/.exec(verify.stdout)![1]!;
  const [kept, cut] = await Promise.all([runAsync('audit', 'verify', '--db', db, '--head', head), runAsync('audit', 'verify', '--db', db, '--head', 'f'.repeat(64))]);
  assert.equal(kept.status, 0, kept.stderr);
  assert.equal(cut.status, 1);
  assert.match(cut.stderr, /^parley-issuer: audit log broken: the head f{64} is not in the chain/);
});

test('admin API and revocation: disable / revoke-device sign sequence+1 lists, POSTed to the relay and served', async () => {
  const received: Uint8Array[] = [];
  const relay: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method === 'POST' && req.url === '/v1/revocations' && req.headers['content-type'] === 'application/octet-stream') {
        received.push(new Uint8Array(Buffer.concat(chunks)));
        res.writeHead(204).end();
      } else res.writeHead(404).end();
    });
  });
  await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r));
  const keys = await makeIssuerKeys();
  let clock = Date.now();
  const issuer: RunningIssuer = await createIssuer({
    db: join(tmp.dir, 'rev.db'), key: keys.key, issuerCertificate: keys.certificate, port: 0, now: () => clock,
    relay: `http://127.0.0.1:${(relay.address() as { port: number }).port}`, passwordCost: { memoryCost: 4096, timeCost: 1 },
  });
  try {
    const dir = issuer.service.directory;
    const PASSWORD = 'a long admin password';
    // Enrol an admin and an agent directly on the service, sign both in over HTTP.
    const enrol = async (username: string, roles: string[]) => {
      const { personId, invitation } = dir.add({ username, displayName: username, roles }, 'test');
      await issuer.service.enrolPassword(invitation, PASSWORD);
      const { secret } = issuer.service.enrolTotpStart(invitation);
      issuer.service.enrolTotpVerify(invitation, totpCode(secret, clock));
      return { personId, secret };
    };
    const admin = await enrol('root', ['admin', 'agent']);
    const agent = await enrol('gina', ['agent']);
    clock += 30_000;
    const signIn = async (username: string, secret: string) => {
      const device = makeDevice();
      const s = await post(issuer.url, '/v1/signin/start', { username, password: PASSWORD, identity: device.identity });
      const f = await post(issuer.url, '/v1/signin/finish', { signinId: s.body['signinId'], proof: device.proof(String(s.body['challenge']), issuer.origin), totp: totpCode(secret, clock) });
      assert.equal(f.status, 200, JSON.stringify(f.body));
      return { device, token: String(f.body['sessionToken']) };
    };
    const adminSession = await signIn('root', admin.secret);
    const agentSession = await signIn('gina', agent.secret);
    const auth = (t: string) => ({ authorization: `Bearer ${t}` });
    assert.equal((await get(issuer.url, '/v1/admin/staff')).status, 401);
    assert.equal((await get(issuer.url, '/v1/admin/staff', auth(agentSession.token))).status, 403, 'an agent is not an admin');
    const list = await get(issuer.url, '/v1/admin/staff', auth(adminSession.token));
    assert.equal((list.body['staff'] as unknown[]).length, 2);
    const added = await post(issuer.url, '/v1/admin/staff', { username: 'hank', displayName: 'Hank', roles: ['agent'] }, auth(adminSession.token));
    assert.equal(added.status, 200);
    assert.equal(typeof added.body['invitation'], 'string');
    assert.equal((await post(issuer.url, '/v1/admin/staff', { username: 'ivy', displayName: 'Ivy', roles: ['agent'] }, auth(agentSession.token))).status, 403);

    assert.deepEqual((await get(issuer.url, '/v1/revocations')).body, { lists: [] });
    // Revoke the agent's device: list 1 names it, and reaches the relay.
    const deviceId = deviceIdOf({ signingKey: fromHex(agentSession.device.identity.signingKey), dhKey: fromHex(agentSession.device.identity.dhKey) });
    const r1 = await post(issuer.url, `/v1/admin/staff/${agent.personId}/revoke-device`, { deviceId }, auth(adminSession.token));
    assert.equal(r1.status, 200, JSON.stringify(r1.body));
    await waitFor(() => received.length === 1);
    const l1 = verifyRevocationList(received[0]!, { orgKey: keys.org.publicKey, now: clock });
    assert.equal(l1.sequence, 1);
    assert.deepEqual(l1.devices, [deviceId]);
    // Disable the agent: list 2 names the person too.
    assert.equal((await post(issuer.url, `/v1/admin/staff/${agent.personId}/disable`, {}, auth(adminSession.token))).status, 200);
    await waitFor(() => received.length === 2);
    const l2 = verifyRevocationList(received[1]!, { orgKey: keys.org.publicKey, now: clock });
    assert.equal(l2.sequence, 2);
    assert.deepEqual(l2.persons, [agent.personId]);
    assert.deepEqual(l2.devices, [deviceId]);
    const served = await get(issuer.url, '/v1/revocations');
    assert.deepEqual(served.body, { lists: [Buffer.from(received[1]!).toString('base64')] });
    assert.equal(verifyRevocationList(fromBase64(String((served.body['lists'] as string[])[0])), { orgKey: keys.org.publicKey, now: clock }).sequence, 2);
    // A disabled person cannot sign in any more; their session is gone.
    clock += 30_000;
    const again = await post(issuer.url, '/v1/signin/start', { username: 'gina', password: PASSWORD, identity: makeDevice().identity });
    assert.equal(again.status, 403);
    assert.equal((await get(issuer.url, '/v1/admin/staff', auth(agentSession.token))).status, 401);
    const types = issuer.service.audit.list().map((e) => e.type);
    for (const t of ['revoke.device', 'person.disable', 'revocation.sign', 'revocation.publish']) assert.ok(types.includes(t), t);
    assert.equal(issuer.service.audit.verify().ok, true);
  } finally {
    await issuer.close();
    await new Promise<void>((r) => relay.close(() => r()));
  }
});

async function waitFor(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}
