/**
 * `signInStaff` (staff-signin.ts) over real HTTP against a small stand-in for the issuer's two
 * sign-in endpoints (the real issuer is exercised in test/e2e/staff-trust.test.ts with TOTP;
 * passkeys need a browser authenticator, test/browser/console.test.ts): the passkey path hands
 * the issuer's request options to the callback and sends its assertion back with a device proof
 * that verifies for the issuer's origin; the credential ends up in the client; the issuer's
 * refusals keep their codes; a second factor the account does not have is `USAGE`.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import {
  encodeStaffCredential,
  fromHex,
  generateIssuerKey,
  generateOrgKey,
  isParleyError,
  signIssuerCertificate,
  signStaffCertificate,
  toBase64,
  verifyStaffSignInProof,
} from '@parley/protocol';
import { MemoryStore } from '@parley/engine';
import { ParleyClient, signInStaff } from '../src/index.js';
import { setupCrypto } from '../../engine/test/helpers/engines.js';

const HOUR = 3600_000;
let server: Server;
let base = '';
let factors: string[] = ['passkey'];
let status = 200;
const seen: Record<string, unknown>[] = [];
const challenge = new Uint8Array(32).fill(7);
let org: ReturnType<typeof generateOrgKey>;
let issuer: ReturnType<typeof generateIssuerKey>;
let issuerCert: Uint8Array;

const readJson = (req: IncomingMessage) =>
  new Promise<Record<string, unknown>>((resolve) => {
    let text = '';
    req.on('data', (c: Buffer) => (text += c.toString()));
    req.on('end', () => resolve(JSON.parse(text) as Record<string, unknown>));
  });

before(async () => {
  await setupCrypto();
  org = generateOrgKey();
  issuer = generateIssuerKey();
  issuerCert = signIssuerCertificate(org.seed, { issuerKey: issuer.publicKey, name: 'Test issuer', policy: { roles: ['agent'], maxLifetimeMs: 12 * HOUR }, expiresAt: Date.now() + 24 * HOUR });
  let identity = { signingKey: '', dhKey: '' };
  server = createServer(async (req, res) => {
    const body = await readJson(req);
    seen.push({ path: req.url, ...body });
    res.setHeader('content-type', 'application/json');
    if (status !== 200) {
      res.statusCode = status;
      res.end(JSON.stringify({ code: 'RATE_LIMITED', message: 'too many attempts: wait 15 minutes' }));
      return;
    }
    if (req.url === '/v1/signin/start') {
      identity = body.identity as typeof identity;
      res.end(JSON.stringify({ signinId: 's1', challenge: Buffer.from(challenge).toString('hex'), factors, ...(factors.includes('passkey') ? { passkeyOptions: { challenge: 'webauthn-challenge', rpId: '127.0.0.1' } } : {}) }));
      return;
    }
    const now = Date.now();
    const credential = encodeStaffCredential(issuerCert, signStaffCertificate(issuer.seed, {
      signingKey: fromHex(identity.signingKey), dhKey: fromHex(identity.dhKey), personId: 'p-9', displayName: 'Grace Agent', roles: ['agent'],
      issuedAt: now, expiresAt: now + 12 * HOUR, serial: new Uint8Array(16).fill(1),
    }));
    res.end(JSON.stringify({ credential: toBase64(credential), personId: 'p-9', displayName: 'Grace Agent', roles: ['agent'], expiresAt: now + 12 * HOUR, sessionToken: 'tok' }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => new Promise<void>((resolve) => server.close(() => resolve())));

describe('signInStaff', () => {
  it('passkey: the callback gets the issuer options, its assertion and a valid device proof go back, the credential is set', async () => {
    const client = await ParleyClient.create({ relayUrl: 'http://127.0.0.1:9', store: new MemoryStore(), trust: { orgKey: org.publicKey, requireCertificate: 'none' } });
    try {
      const offered: unknown[] = [];
      const me = await signInStaff(client, {
        issuerUrl: base, username: 'grace', password: 'pw',
        passkey: async (o) => {
          offered.push(o);
          return { id: 'cred', rawId: 'cred', type: 'public-key', response: { signature: 'sig' } };
        },
      });
      assert.deepEqual({ ...me, expiresAt: typeof me.expiresAt }, { personId: 'p-9', displayName: 'Grace Agent', roles: ['agent'], expiresAt: 'number', sessionToken: 'tok' });
      assert.deepEqual(offered, [{ challenge: 'webauthn-challenge', rpId: '127.0.0.1' }]);
      const finish = seen.find((s) => s.path === '/v1/signin/finish')!;
      assert.deepEqual(finish.passkey, { id: 'cred', rawId: 'cred', type: 'public-key', response: { signature: 'sig' } });
      assert.equal(finish.totp, undefined);
      // The proof: this device's key, over the challenge and the issuer's origin (not another).
      const proof = fromHex(String(finish.proof));
      assert.ok(verifyStaffSignInProof(client.publicIdentity.signingKey, challenge, base, proof));
      assert.ok(!verifyStaffSignInProof(client.publicIdentity.signingKey, challenge, 'https://evil.example', proof));
      assert.equal(client.staffCredential?.displayName, 'Grace Agent');

      // Only a passkey is enrolled, a TOTP code was given: USAGE, nothing finished.
      seen.length = 0;
      await assert.rejects(signInStaff(client, { issuerUrl: base, username: 'grace', password: 'pw', totp: '123456' }), (e: unknown) => isParleyError(e, 'USAGE'));
      assert.deepEqual(seen.map((s) => s.path), ['/v1/signin/start']);
      // The issuer's refusal keeps its code.
      status = 429;
      await assert.rejects(signInStaff(client, { issuerUrl: base, username: 'grace', password: 'pw', totp: '123456' }), (e: unknown) => isParleyError(e, 'RATE_LIMITED') && /too many attempts/.test(e.message));
      status = 200;
      // TOTP when that is the account's factor.
      factors = ['totp'];
      seen.length = 0;
      await signInStaff(client, { issuerUrl: base, username: 'grace', password: 'pw', totp: '123456' });
      assert.equal(seen.find((s) => s.path === '/v1/signin/finish')?.totp, '123456');
      // A credential for another device, or one beyond the pinned org's trust, is refused by setStaffCredential.
      const other = await ParleyClient.create({ relayUrl: 'http://127.0.0.1:9', store: new MemoryStore() });
      const now = Date.now();
      const staff = (identity: { signingKey: Uint8Array; dhKey: Uint8Array }, expiresAt = now + HOUR) =>
        encodeStaffCredential(issuerCert, signStaffCertificate(issuer.seed, { ...identity, personId: 'p-9', displayName: 'Grace Agent', roles: ['agent'], issuedAt: now, expiresAt, serial: new Uint8Array(16) }));
      try {
        await assert.rejects(client.setStaffCredential(staff(other.publicIdentity)), (e: unknown) => isParleyError(e, 'USAGE') && /another device/.test(e.message));
        await assert.rejects(client.setStaffCredential(staff(client.publicIdentity, now + 30 * 24 * HOUR)), (e: unknown) => isParleyError(e, 'UNTRUSTED_IDENTITY') && e.details?.reason === 'issuerPolicy');
        await assert.rejects(client.setStaffCredential(new Uint8Array([0x01, 0, 0])), (e: unknown) => isParleyError(e, 'USAGE'));
      } finally {
        await other.close();
      }
    } finally {
      await client.close();
    }
  });
});
