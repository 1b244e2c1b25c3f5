/** Test setup for the issuer: an org key, an issuer key and certificate, devices, and a JSON client. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  IdentityKeyPair, generateIssuerKey, generateOrgKey, initCrypto, signIssuerCertificate, staffSignInPayload, fromHex, toHex, type StaffRole,
} from '@parley/protocol';

export const HOUR = 3600_000;

/** An org key and an issuer certified by it for `roles` and `maxLifetimeMs`. */
export async function makeIssuerKeys(policy: { roles: StaffRole[]; maxLifetimeMs: number } = { roles: ['agent', 'supervisor', 'admin'], maxLifetimeMs: 12 * HOUR }) {
  await initCrypto();
  const org = generateOrgKey();
  const key = generateIssuerKey();
  const certificate = signIssuerCertificate(org.seed, { issuerKey: key.publicKey, name: 'Test issuer', policy, expiresAt: Date.now() + 30 * 24 * HOUR });
  return { org, key, certificate };
}

/** A temporary folder, removed by the returned function. */
export function tempDir(): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'parley-issuer-'));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A device: its identity as the sign-in body wants it, and its proof for a challenge. */
export function makeDevice() {
  const keys = IdentityKeyPair.generate();
  return {
    keys,
    identity: { signingKey: toHex(keys.publicIdentity.signingKey), dhKey: toHex(keys.publicIdentity.dhKey) },
    proof: (challengeHex: string, origin: string) => toHex(keys.sign('staffSignIn', staffSignInPayload(fromHex(challengeHex), origin))),
  };
}

/** POSTs JSON; resolves to status and parsed body. */
export async function post(base: string, path: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

export async function get(base: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${base}${path}`, { headers });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}
