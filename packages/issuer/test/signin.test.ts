/**
 * Issuer end to end over HTTP (one issuer for the file, a controlled clock): enrolment by
 * invitation (password + TOTP), sign-in issuing a credential every verifier accepts, and the
 * THREATS rows S1 (no certificate without the second factor; wrong, replayed, expired TOTP;
 * lock-out) and S3 (roles or lifetime beyond the policy or the person).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { fromBase64, fromHex, verifyStaffCredential } from '@parley/protocol';
import { createIssuer, totpCode, type RunningIssuer } from '../src/index.js';
import { HOUR, get, makeDevice, makeIssuerKeys, post, tempDir } from './helpers.js';

let issuer: RunningIssuer;
let keys: Awaited<ReturnType<typeof makeIssuerKeys>>;
let tmp: ReturnType<typeof tempDir>;
let clock = Date.now();
const PASSWORD = 'correct horse battery staple';
let aliceSecret = '';

before(async () => {
  keys = await makeIssuerKeys();
  tmp = tempDir();
  issuer = await createIssuer({
    db: `${tmp.dir}/issuer.db`, key: keys.key, issuerCertificate: keys.certificate, port: 0, now: () => clock,
    passwordCost: { memoryCost: 4096, timeCost: 1 }, ipRateLimit: { max: 80, windowMs: 60_000 },
  });
});
after(async () => {
  await issuer.close();
  tmp.remove();
});

/** Adds a person and enrols them with password + TOTP through the HTTP API; returns the TOTP secret. */
async function enrolWithTotp(username: string, roles: string[]): Promise<{ personId: string; secret: string }> {
  const { personId, invitation } = issuer.service.directory.add({ username, displayName: `${username} (Support)`, roles }, 'test');
  const start = await post(issuer.url, '/v1/enrol/start', { invitation });
  assert.equal(start.status, 200);
  assert.equal(start.body['username'], username);
  assert.equal((await post(issuer.url, '/v1/enrol/password', { invitation, password: PASSWORD })).status, 200);
  const totp = await post(issuer.url, '/v1/enrol/totp/start', { invitation });
  assert.match(String(totp.body['otpauthUrl']), /^otpauth:\/\/totp\//);
  const secret = String(totp.body['secret']);
  assert.equal((await post(issuer.url, '/v1/enrol/totp/verify', { invitation, code: '000000' === totpCode(secret, clock) ? '111111' : '000000' })).status, 401, 'a wrong enrolment code is refused');
  assert.equal((await post(issuer.url, '/v1/enrol/totp/verify', { invitation, code: totpCode(secret, clock) })).status, 200);
  // The invitation is consumed: password + one factor are set.
  assert.equal((await post(issuer.url, '/v1/enrol/start', { invitation })).status, 401);
  clock += 30_000; // the enrolment code's step is used up
  return { personId, secret };
}

async function signIn(username: string, code: (secret: string) => string | undefined, extra: Record<string, unknown> = {}, password = PASSWORD) {
  const device = makeDevice();
  const start = await post(issuer.url, '/v1/signin/start', { username, password, identity: device.identity, ...extra });
  if (start.status !== 200) return { start, finish: undefined, device };
  const totp = code(aliceSecret);
  const finish = await post(issuer.url, '/v1/signin/finish', {
    signinId: start.body['signinId'], proof: device.proof(String(start.body['challenge']), issuer.origin), ...(totp === undefined ? {} : { totp }),
  });
  return { start, finish, device };
}

const auditReasons = (from: number) => issuer.service.audit.list({ fromSeq: from }).filter((e) => e.type === 'signin.failure').map((e) => e.reason);
const auditHead = () => issuer.service.audit.list().length + 1;

test('enrol with an invitation (password + TOTP), sign in: a credential every verifier accepts, right roles, 12 h', async () => {
  ({ secret: aliceSecret } = await enrolWithTotp('alice', ['agent', 'supervisor']));
  const { start, finish, device } = await signIn('alice', (s) => totpCode(s, clock));
  assert.deepEqual(start.body['factors'], ['totp']);
  assert.equal(finish?.status, 200, JSON.stringify(finish?.body));
  const body = finish!.body;
  const v = verifyStaffCredential(fromBase64(String(body['credential'])), {
    orgKey: keys.org.publicKey, identity: { signingKey: fromHex(device.identity.signingKey), dhKey: fromHex(device.identity.dhKey) }, now: clock + 1000,
  });
  assert.deepEqual([...v.roles].sort(), ['agent', 'supervisor']);
  assert.equal(v.displayName, 'alice (Support)');
  assert.equal(v.expiresAt - v.issuedAt, 12 * HOUR);
  assert.equal(body['expiresAt'], v.expiresAt);
  assert.equal(typeof body['sessionToken'], 'string');
  // The credential certifies this device only.
  const other = makeDevice();
  assert.throws(() => verifyStaffCredential(fromBase64(String(body['credential'])), {
    orgKey: keys.org.publicKey, identity: { signingKey: fromHex(other.identity.signingKey), dhKey: fromHex(other.identity.dhKey) }, now: clock,
  }), /identity|certif/i);
  const types = issuer.service.audit.list().map((e) => e.type);
  for (const t of ['person.add', 'enrol.password', 'enrol.totp', 'enrol.complete', 'issue', 'signin.success']) assert.ok(types.includes(t), t);
  // No secret in the audit log.
  const dump = JSON.stringify(issuer.service.audit.list());
  assert.ok(!dump.includes(PASSWORD) && !dump.includes(aliceSecret) && !dump.includes(String(body['sessionToken'])));
});

test('S1: right password but no second factor, a wrong code, a replayed code, an expired code, a bad device proof: no certificate', async () => {
  clock += 30_000;
  const from = auditHead();
  const none = await signIn('alice', () => undefined);
  assert.equal(none.finish?.status, 401);
  assert.equal(none.finish?.body['credential'], undefined);
  const wrong = await signIn('alice', (s) => (totpCode(s, clock) === '123456' ? '654321' : '123456'));
  assert.equal(wrong.finish?.status, 401);
  const expired = await signIn('alice', (s) => totpCode(s, clock - 5 * 30_000));
  assert.equal(expired.finish?.status, 401);
  const first = await signIn('alice', (s) => totpCode(s, clock));
  assert.equal(first.finish?.status, 200, 'the right code is accepted once');
  const replay = await signIn('alice', (s) => totpCode(s, clock));
  assert.equal(replay.finish?.status, 401, 'the same code again is a replay');
  // A device proof for another origin (or by another key) is refused even with a good code.
  clock += 30_000;
  const device = makeDevice();
  const s = await post(issuer.url, '/v1/signin/start', { username: 'alice', password: PASSWORD, identity: device.identity });
  const bad = await post(issuer.url, '/v1/signin/finish', { signinId: s.body['signinId'], proof: device.proof(String(s.body['challenge']), 'https://evil.example'), totp: totpCode(aliceSecret, clock) });
  assert.equal(bad.status, 401);
  // The sign-in id is single use.
  const again = await post(issuer.url, '/v1/signin/finish', { signinId: s.body['signinId'], proof: device.proof(String(s.body['challenge']), issuer.origin), totp: totpCode(aliceSecret, clock) });
  assert.equal(again.status, 401);
  assert.deepEqual(auditReasons(from), ['noSecondFactor', 'badTotp', 'badTotp', 'replayedTotp', 'badProof', 'badChallenge']);
});

test('S3: a role the person lacks or the policy does not grant is refused; a 30-day lifetime is capped to the policy', async () => {
  const { secret: carolSecret } = await enrolWithTotp('carol', ['agent', 'compliance']); // compliance: not in this issuer's policy
  const carol = issuer.service.directory.byUsername('carol')!.person;
  const from = auditHead();
  const lacks = await post(issuer.url, '/v1/signin/start', { username: 'carol', password: PASSWORD, identity: makeDevice().identity, roles: ['supervisor'] });
  assert.equal(lacks.status, 403);
  assert.equal(lacks.body['code'], 'FORBIDDEN');
  const beyond = await post(issuer.url, '/v1/signin/start', { username: 'carol', password: PASSWORD, identity: makeDevice().identity, roles: ['compliance'] });
  assert.equal(beyond.status, 403);
  assert.deepEqual(auditReasons(from), ['policy', 'policy']);
  // Without a request: the roles both allow (agent), and a 30-day request is capped at 12 h.
  const granted = issuer.service.grant(carol, undefined, 30 * 24 * HOUR);
  assert.deepEqual(granted, { roles: ['agent'], lifetimeMs: 12 * HOUR });
  const device = makeDevice();
  clock += 30_000;
  const start = await post(issuer.url, '/v1/signin/start', { username: 'carol', password: PASSWORD, identity: device.identity, lifetimeMs: 30 * 24 * HOUR });
  assert.equal(start.status, 200);
  const finish = await post(issuer.url, '/v1/signin/finish', {
    signinId: start.body['signinId'], proof: device.proof(String(start.body['challenge']), issuer.origin), totp: totpCode(carolSecret, clock),
  });
  assert.equal(finish.status, 200, JSON.stringify(finish.body));
  const v = verifyStaffCredential(fromBase64(String(finish.body['credential'])), {
    orgKey: keys.org.publicKey, identity: { signingKey: fromHex(device.identity.signingKey), dhKey: fromHex(device.identity.dhKey) }, now: clock,
  });
  assert.deepEqual(v.roles, ['agent']);
  assert.equal(v.expiresAt - v.issuedAt, 12 * HOUR, 'capped at the policy maximum');
});

test('100 wrong passwords: lock-out after 5, then the per-IP limit; every attempt audited; the right password is refused while locked', async () => {
  await enrolWithTotp('dave', ['agent']);
  const from = auditHead();
  const statuses: number[] = [];
  for (let i = 0; i < 100; i++) {
    const right = i === 6;
    const r = await post(issuer.url, '/v1/signin/start', { username: 'dave', password: right ? PASSWORD : `wrong password ${i}`, identity: makeDevice().identity });
    statuses.push(r.status);
    if (i < 5) assert.equal(r.status, 401);
    if (i === 5) {
      assert.equal(r.status, 429);
      assert.equal(r.body['code'], 'RATE_LIMITED');
      assert.ok(Number((r.body['details'] as Record<string, number>)['retryAfterMs']) > 0);
    }
    if (right) assert.equal(r.status, 429, 'locked: even the right password');
  }
  assert.equal(statuses.at(-1), 429);
  const reasons = auditReasons(from);
  assert.equal(reasons.length, 100, 'each attempt audited');
  assert.deepEqual(reasons.slice(0, 5), ['badPassword', 'badPassword', 'badPassword', 'badPassword', 'badPassword']);
  assert.ok(reasons.includes('locked') && reasons.includes('rateLimited'), reasons.join());
  assert.ok(!JSON.stringify(issuer.service.audit.list({ fromSeq: from })).includes('wrong password'), 'no password in the audit log');
  // An unknown username locks the same way (the lock-out does not tell real usernames apart).
  void get;
});
