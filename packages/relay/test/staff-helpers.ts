/** Test helpers for staff roles: an org, an issuer, credentials and revocation lists, logins that present a credential. */
import { randomBytes } from 'node:crypto';
import {
  encodeStaffCredential, generateIssuerKey, signIssuerCertificate, signRevocationList, signStaffCertificate, type StaffRole,
} from '@parley/protocol';
import type { IdentityKeyPair } from '../../protocol/src/identity.js';
import type { Relay } from '../src/index.js';
import { answer, call, open, type ClientSocket } from './helpers.js';

export const HOUR = 3_600_000;

/** An org root and one issuer it certified (roles agent and supervisor, 12 h at most). */
export function newOrg(policy: { roles: StaffRole[]; maxLifetimeMs: number } = { roles: ['agent', 'supervisor'], maxLifetimeMs: 12 * HOUR }) {
  const org = generateIssuerKey(); // an Ed25519 key pair, as the org root's
  const issuer = generateIssuerKey();
  const issuerCertificate = signIssuerCertificate(org.seed, { issuerKey: issuer.publicKey, name: 'test issuer', policy, expiresAt: Date.now() + 365 * 24 * HOUR });
  let sequence = 0;
  return {
    orgKey: org.publicKey,
    issuerKey: issuer.publicKey,
    /** A credential for `device`; by default an agent for 1 h. */
    credential(device: IdentityKeyPair, o: { roles?: StaffRole[]; personId?: string; issuedAt?: number; lifetimeMs?: number } = {}): Uint8Array {
      const issuedAt = o.issuedAt ?? Date.now() - 1000;
      const staff = signStaffCertificate(issuer.seed, {
        signingKey: device.publicIdentity.signingKey, dhKey: device.publicIdentity.dhKey,
        personId: o.personId ?? 'alice', displayName: 'Alice', roles: o.roles ?? ['agent'],
        issuedAt, expiresAt: issuedAt + (o.lifetimeMs ?? HOUR), serial: new Uint8Array(randomBytes(16)),
      });
      return encodeStaffCredential(issuerCertificate, staff);
    },
    /** A signed revocation list with the next sequence of this helper (or the one given, which leaves the helper's count as it is). */
    revocations(o: { persons?: string[]; devices?: string[]; sequence?: number }): Uint8Array {
      return signRevocationList(issuer.seed, {
        issuerCertificate, sequence: o.sequence ?? ++sequence, issuedAt: Date.now(), persons: o.persons ?? [], devices: o.devices ?? [],
      });
    },
  };
}

/** Opens a socket and sends an auth answer with `credential`; resolves with the ack (not thrown on refusal). */
export async function loginWith(relay: Pick<Relay, 'url' | 'origin'>, device: IdentityKeyPair, credential?: Uint8Array, apiKey?: string) {
  const { socket, hello, inbox } = await open(relay.url);
  const a = answer(device, hello, relay.origin, apiKey === undefined ? {} : { apiKey });
  const r = await call(socket, 'auth', credential === undefined ? a : { ...a, credential });
  if (!r.ok) socket.disconnect();
  return { socket: socket as ClientSocket, inbox, r };
}

/** POSTs a revocation list; resolves with the status. */
export async function postList(url: string, body: Uint8Array): Promise<number> {
  const res = await fetch(`${url}/v1/revocations`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: Buffer.from(body) });
  await res.arrayBuffer();
  return res.status;
}
