/**
 * Issuer bench (issue 12 closing note): staff certificate issuance throughput and sign-in time.
 *
 *   node --import tsx bench/issuer.ts [--issuances N] [--signins N] [--runs R]
 *
 * 1. Issuance: `IssuerService.issue` in a bounded loop (N certificates, default 1000) on an
 *    on-disk SQLite database (WAL, synchronous = FULL, as `parley-issuer serve` runs it): Ed25519
 *    signature, issuance record, audit entry, session token. R runs (default 3); the median
 *    certificates/s is reported.
 * 2. Sign-in: the whole HTTP flow (signin/start with the default argon2id cost, signin/finish with
 *    a TOTP code and the device proof) against a local issuer, N sign-ins (default 20); median and
 *    p95 milliseconds.
 * Imports the issuer by path (the bench package does not depend on it).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  IdentityKeyPair, generateIssuerKey, generateOrgKey, initCrypto, signIssuerCertificate, staffSignInPayload, fromHex, toHex,
} from '@parley/protocol';
import { createIssuer, totpCode } from '../packages/issuer/src/index.ts';

const arg = (name: string, def: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const ISSUANCES = arg('issuances', 1000);
const SIGNINS = arg('signins', 20);
const RUNS = arg('runs', 3);
const HOUR = 3600_000;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const p95 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * 0.95))]!;

await initCrypto();
const org = generateOrgKey();
const key = generateIssuerKey();
const issuerCertificate = signIssuerCertificate(org.seed, { issuerKey: key.publicKey, name: 'Bench issuer', policy: { roles: ['agent', 'supervisor'], maxLifetimeMs: 12 * HOUR }, expiresAt: Date.now() + 24 * HOUR });
const dir = mkdtempSync(join(tmpdir(), 'parley-issuer-bench-'));
let clock = Date.now();
const issuer = await createIssuer({ db: join(dir, 'issuer.db'), key, issuerCertificate, port: 0, now: () => clock, ipRateLimit: { max: 10_000, windowMs: 60_000 } });
try {
  const svc = issuer.service;
  // 1. Issuance throughput.
  const { personId, invitation } = svc.directory.add({ username: 'bench', displayName: 'Bench Agent', roles: ['agent'] }, 'bench');
  const person = svc.directory.get(personId)!;
  const devices = Array.from({ length: 16 }, () => IdentityKeyPair.generate().publicIdentity);
  const rates: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    const t0 = performance.now();
    for (let i = 0; i < ISSUANCES; i++) svc.issue(person, devices[i % devices.length]!, { roles: ['agent'], lifetimeMs: 12 * HOUR });
    const s = (performance.now() - t0) / 1000;
    rates.push(ISSUANCES / s);
    process.stderr.write(`issuance run ${run + 1}: ${ISSUANCES} certificates in ${s.toFixed(2)} s = ${(ISSUANCES / s).toFixed(0)}/s\n`);
  }
  // 2. Sign-in time over HTTP (default argon2id cost, TOTP, device proof).
  const PASSWORD = 'bench password, long enough';
  await svc.enrolPassword(invitation, PASSWORD);
  const { secret } = svc.enrolTotpStart(invitation);
  svc.enrolTotpVerify(invitation, totpCode(secret, clock));
  const times: number[] = [];
  for (let i = 0; i < SIGNINS; i++) {
    clock += 30_000;
    const device = IdentityKeyPair.generate();
    const identity = { signingKey: toHex(device.publicIdentity.signingKey), dhKey: toHex(device.publicIdentity.dhKey) };
    const t0 = performance.now();
    const start = await (await fetch(`${issuer.url}/v1/signin/start`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'bench', password: PASSWORD, identity }) })).json() as { signinId: string; challenge: string };
    const proof = toHex(device.sign('staffSignIn', staffSignInPayload(fromHex(start.challenge), issuer.origin)));
    const res = await fetch(`${issuer.url}/v1/signin/finish`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ signinId: start.signinId, proof, totp: totpCode(secret, clock) }) });
    if (res.status !== 200) throw new Error(`sign-in failed: ${res.status} ${await res.text()}`);
    await res.json();
    times.push(performance.now() - t0);
  }
  process.stdout.write(`| measure | value |\n|---|---|\n`);
  process.stdout.write(`| issuance throughput (median of ${RUNS} runs × ${ISSUANCES}) | ${median(rates).toFixed(0)} certificates/s (runs: ${rates.map((r) => r.toFixed(0)).join(', ')}) |\n`);
  process.stdout.write(`| sign-in time, password + TOTP + proof over HTTP (${SIGNINS}) | median ${median(times).toFixed(1)} ms, p95 ${p95(times).toFixed(1)} ms |\n`);
} finally {
  await issuer.close();
  rmSync(dir, { recursive: true, force: true });
}
