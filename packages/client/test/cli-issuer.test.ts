/**
 * `parley-org certify-issuer` and `parley-org inspect` of issuer certificates and staff
 * credentials (org-issuer.ts): the certificate printed is one the protocol verifies with the
 * requested policy; a staff credential under it is accepted within the policy and refused
 * beyond it, by `inspect` (exit 1) as by the verifier.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  IdentityKeyPair,
  encodeStaffCredential,
  fromBase64,
  fromHex,
  generateIssuerKey,
  signStaffCertificate,
  toBase64,
  toHex,
  verifyIssuerCertificate,
} from '@parley/protocol';
import { orgCli } from './helpers/org-cli.js';
import { setupCrypto } from '../../engine/test/helpers/engines.js';

const NOW = Date.UTC(2030, 0, 1);
const HOUR = 3600_000;
let dir: string;
before(async () => {
  await setupCrypto();
  dir = await mkdtemp(join(tmpdir(), 'parley-org-issuer-'));
});
after(() => rm(dir, { recursive: true, force: true }));

const run = orgCli(() => NOW);

describe('parley-org certify-issuer', () => {
  it('certifies an issuer key with its policy; inspect decodes and verifies it and the staff credentials under it', async () => {
    const keyPath = join(dir, 'org.key');
    const k = await run('keygen', '--out', keyPath);
    assert.equal(k.code, 0, k.err);
    const orgKey = k.out.trim();
    const issuer = generateIssuerKey();
    const c = await run('certify-issuer', '--org-key', keyPath, '--issuer', toHex(issuer.publicKey), '--name', 'Acme staff', '--roles', 'agent,supervisor', '--max-lifetime', '12h', '--expires', '30d');
    assert.equal(c.code, 0, c.err);
    const certBytes = fromBase64(c.out.trim());
    const cert = verifyIssuerCertificate(certBytes, { orgKey: fromHex(orgKey), now: NOW });
    assert.deepEqual(cert.policy, { roles: ['agent', 'supervisor'], maxLifetimeMs: 12 * HOUR });
    assert.equal(cert.name, 'Acme staff');
    assert.equal(cert.expiresAt, NOW + 30 * 24 * HOUR);
    assert.equal(toHex(cert.issuerKey), toHex(issuer.publicKey));

    const j = await run('certify-issuer', '--org-key', keyPath, '--issuer', toHex(issuer.publicKey), '--name', 'Acme staff', '--roles', 'agent', '--max-lifetime', '8h', '--json');
    assert.equal(j.code, 0, j.err);
    const view = JSON.parse(j.out) as Record<string, unknown>;
    assert.equal(view.roles, 'agent');
    assert.equal(view.maxLifetimeMs, 8 * HOUR);
    assert.equal(view.orgKey, orgKey);

    // Bad arguments are refused before anything is signed.
    assert.equal((await run('certify-issuer', '--org-key', keyPath, '--issuer', 'zz', '--name', 'x', '--roles', 'agent', '--max-lifetime', '12h')).code, 1);
    assert.equal((await run('certify-issuer', '--org-key', keyPath, '--issuer', toHex(issuer.publicKey), '--name', 'x', '--roles', 'janitor', '--max-lifetime', '12h')).code, 1);
    assert.equal((await run('certify-issuer', '--org-key', keyPath, '--issuer', toHex(issuer.publicKey), '--name', 'x', '--roles', 'agent', '--max-lifetime', '400d')).code, 1);

    // inspect: the issuer certificate.
    const ic = await run('inspect', c.out.trim(), '--org-key-public', orgKey);
    assert.equal(ic.code, 0, ic.err);
    assert.deepEqual(
      (({ type, name, roles, valid }) => ({ type, name, roles, valid }))(JSON.parse(ic.out) as Record<string, unknown>),
      { type: 'issuer-certificate', name: 'Acme staff', roles: 'agent,supervisor', valid: true },
    );
    const otherOrg = toHex(generateIssuerKey().publicKey);
    const wrong = await run('inspect', c.out.trim(), '--org-key-public', otherOrg);
    assert.equal(wrong.code, 1);
    assert.equal((JSON.parse(wrong.out) as { reason: string }).reason, 'issuerSignature');

    // inspect: staff credentials under it, within and beyond the policy.
    const device = IdentityKeyPair.generate();
    const staff = (expiresAt: number, roles: ('agent' | 'admin')[] = ['agent']) => toBase64(encodeStaffCredential(certBytes, signStaffCertificate(issuer.seed, {
      ...device.publicIdentity, personId: 'p-7', displayName: 'Ada Agent', roles, issuedAt: NOW - HOUR, expiresAt, serial: new Uint8Array(16).fill(1),
    })));
    const ok = await run('inspect', staff(NOW + 11 * HOUR), '--org-key-public', orgKey);
    assert.equal(ok.code, 0, ok.err);
    const okView = JSON.parse(ok.out) as Record<string, unknown>;
    assert.deepEqual(
      { type: okView.type, displayName: okView.displayName, personId: okView.personId, device: okView.device, roles: okView.roles, valid: okView.valid },
      { type: 'staff-credential', displayName: 'Ada Agent', personId: 'p-7', device: device.deviceId, roles: 'agent', valid: true },
    );
    const long = await run('inspect', staff(NOW + 30 * 24 * HOUR), '--org-key-public', orgKey);
    assert.equal(long.code, 1);
    assert.equal((JSON.parse(long.out) as { reason: string }).reason, 'issuerPolicy');
    const admin = await run('inspect', staff(NOW + HOUR, ['agent', 'admin']), '--org-key-public', orgKey);
    assert.equal(admin.code, 1);
    assert.equal((JSON.parse(admin.out) as { reason: string }).reason, 'issuerPolicy');
    // Without the org key: decoded, and refused only when expired.
    const expired = await run('inspect', staff(NOW - 1));
    assert.equal(expired.code, 1);
    assert.equal((JSON.parse(expired.out) as { reason: string }).reason, 'expired');
  });
});
