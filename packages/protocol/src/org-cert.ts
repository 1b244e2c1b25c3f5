/**
 * Organisation certificates (docs/architecture.md "Who may speak for the organisation", docs/threats.md C17,
 * C18, requirement 3). An organisation Ed25519 key, pinned in the client's configuration,
 * signs the identity keys of its bots and agents. A customer's client accepts a device as the
 * company's bot or agent only with a valid certificate from that pinned key, never on the
 * relay's word; the app-level label ("support") resolves to a device only through it.
 *
 * Layout (version 1):
 * ```
 *  offset  size  field
 *  0       1     version = 0x01
 *  1       1     role: 1 bot, 2 agent
 *  2       1     label length L (1..64)
 *  3       L     label, UTF-8, [A-Za-z0-9._@-]
 *  3+L     32    certified Ed25519 identity key (signingKey)
 *  35+L    32    certified X25519 identity key (dhKey)
 *  67+L    8     expiresAt, ms since the epoch (u64 BE)
 *  75+L    64    Ed25519 signature by the org key over
 *                "parley/v1/org-cert" || 0x00 || bytes[0 .. 75+L)
 * ```
 * The signature covers every other byte, under its own context, so it can't be replayed as a
 * prekey signature, a relay login or an attestation (C14), and no other signature verifies as one.
 */
import { constantTimeEqual, fromBase64, toBase64, toHex } from './bytes.js';
import { ByteReader as Reader, ByteWriter as Writer } from './codec.js';
import { contextMessage } from './contexts.js';
import { getCrypto } from './crypto/index.js';
import { ParleyError } from './errors.js';
import type { PublicIdentity } from './identity-public.js';

export const ORG_CERT_VERSION = 0x01;
/** Longest label a certificate may carry. */
export const MAX_ORG_LABEL_BYTES = 64;
/** Labels are short public names: letters, digits and `._@-`. */
export const ORG_LABEL_PATTERN = /^[A-Za-z0-9._@-]{1,64}$/;

/** What a certificate says the device is. */
export type OrgRole = 'bot' | 'agent';
const ROLE_CODES: Record<OrgRole, number> = { bot: 1, agent: 2 };
const ROLE_NAMES: Record<number, OrgRole> = { 1: 'bot', 2: 'agent' };

/** The signed statement. */
export interface OrgCertificateFields {
  readonly role: OrgRole;
  readonly label: string;
  /** The certified device's identity public keys. */
  readonly signingKey: Uint8Array;
  readonly dhKey: Uint8Array;
  /** ms since the epoch; the certificate is refused from this instant on. */
  readonly expiresAt: number;
}

/** A decoded certificate. */
export interface OrgCertificate extends OrgCertificateFields {
  readonly version: number;
  readonly signature: Uint8Array;
}

/** Why a certificate was refused (in `details.reason` of the `UNTRUSTED_IDENTITY` error). */
export type OrgCertRefusal = 'malformed' | 'signature' | 'expired' | 'identity' | 'role' | 'label';

function refuse(reason: OrgCertRefusal, message: string): never {
  throw new ParleyError('UNTRUSTED_IDENTITY', `org certificate refused: ${message}`, { details: { reason } });
}

function assertFields(f: OrgCertificateFields): void {
  if (ROLE_CODES[f.role] === undefined) throw new ParleyError('USAGE', 'role must be "bot" or "agent"');
  if (typeof f.label !== 'string' || !ORG_LABEL_PATTERN.test(f.label)) {
    throw new ParleyError('USAGE', 'label must be 1-64 chars of [A-Za-z0-9._@-]');
  }
  if (!(f.signingKey instanceof Uint8Array) || f.signingKey.length !== 32) throw new ParleyError('USAGE', 'signingKey must be 32 bytes');
  if (!(f.dhKey instanceof Uint8Array) || f.dhKey.length !== 32) throw new ParleyError('USAGE', 'dhKey must be 32 bytes');
  if (!Number.isSafeInteger(f.expiresAt) || f.expiresAt <= 0) throw new ParleyError('USAGE', 'expiresAt must be a positive integer (ms)');
}

/** The bytes the org key signs (before the context prefix). */
export function orgCertificatePayload(f: OrgCertificateFields): Uint8Array {
  assertFields(f);
  return new Writer()
    .u8(ORG_CERT_VERSION)
    .u8(ROLE_CODES[f.role])
    .shortString(f.label)
    .fixed(f.signingKey)
    .fixed(f.dhKey)
    .u64(f.expiresAt)
    .finish();
}

/** A fresh organisation key: the 32-byte Ed25519 seed (secret) and its public key. */
export function generateOrgKey(): { seed: Uint8Array; publicKey: Uint8Array } {
  const kp = getCrypto().ed25519Generate();
  return { seed: kp.privateKey, publicKey: kp.publicKey };
}

/**
 * Signs a certificate with the organisation's seed. Run this offline (the `parley-org` CLI),
 * not in a client.
 * @throws ParleyError `USAGE` for bad fields or a seed that is not 32 bytes.
 * @example
 * const cert = signOrgCertificate(org.seed, { role: 'bot', label: 'support', ...bot.publicIdentity, expiresAt });
 */
export function signOrgCertificate(orgSeed: Uint8Array, f: OrgCertificateFields): Uint8Array {
  if (!(orgSeed instanceof Uint8Array) || orgSeed.length !== 32) throw new ParleyError('USAGE', 'org seed must be 32 bytes');
  const payload = orgCertificatePayload(f);
  const signature = getCrypto().ed25519Sign(orgSeed, contextMessage('orgCertificate', payload));
  return new Writer().fixed(payload).fixed(signature).finish();
}

/**
 * Decodes without verifying (for display). Use {@link verifyOrgCertificate} to trust one.
 * @throws ParleyError `UNTRUSTED_IDENTITY` (reason `malformed`).
 */
export function decodeOrgCertificate(bytes: Uint8Array): OrgCertificate {
  if (!(bytes instanceof Uint8Array) || bytes.length > 256) refuse('malformed', 'not a certificate');
  try {
    const r = new Reader(bytes, 'MALFORMED_MESSAGE');
    const version = r.u8();
    if (version !== ORG_CERT_VERSION) refuse('malformed', 'unsupported version');
    const role = ROLE_NAMES[r.u8()];
    if (!role) refuse('malformed', 'unknown role');
    const label = r.shortString();
    if (!ORG_LABEL_PATTERN.test(label)) refuse('malformed', 'invalid label');
    const signingKey = r.fixed(32);
    const dhKey = r.fixed(32);
    const expiresAt = r.u64();
    const signature = r.fixed(64);
    r.end();
    return { version, role, label, signingKey, dhKey, expiresAt, signature };
  } catch (e) {
    if (e instanceof ParleyError && e.code === 'UNTRUSTED_IDENTITY') throw e;
    return refuse('malformed', 'truncated or trailing bytes');
  }
}

/** What the verifier expects. */
export interface OrgCertificateCheck {
  /** The pinned organisation public key (32 bytes). */
  readonly orgKey: Uint8Array;
  /** The identity the certificate must name (the peer's keys as used in the session). */
  readonly identity: Pick<PublicIdentity, 'signingKey' | 'dhKey'>;
  /** Current time, ms since the epoch. */
  readonly now: number;
  /** Acceptable roles. Default: both. */
  readonly roles?: readonly OrgRole[];
  /** If given, the certificate must carry exactly this label. */
  readonly label?: string;
}

/**
 * Verifies a certificate against the pinned org key, the peer's identity and the clock.
 * @returns the decoded certificate.
 * @throws ParleyError `UNTRUSTED_IDENTITY` with `details.reason` one of {@link OrgCertRefusal}.
 */
export function verifyOrgCertificate(bytes: Uint8Array, check: OrgCertificateCheck): OrgCertificate {
  const cert = decodeOrgCertificate(bytes);
  if (!(check.orgKey instanceof Uint8Array) || check.orgKey.length !== 32) throw new ParleyError('USAGE', 'orgKey must be 32 bytes');
  const payload = bytes.subarray(0, bytes.length - 64);
  if (!getCrypto().ed25519Verify(check.orgKey, contextMessage('orgCertificate', payload), cert.signature)) {
    refuse('signature', 'not signed by the pinned organisation key');
  }
  if (!constantTimeEqual(cert.signingKey, check.identity.signingKey) || !constantTimeEqual(cert.dhKey, check.identity.dhKey)) {
    refuse('identity', 'certifies another identity');
  }
  if (check.now >= cert.expiresAt) refuse('expired', 'expired');
  if (check.roles && !check.roles.includes(cert.role)) refuse('role', 'role not accepted here');
  if (check.label !== undefined && cert.label !== check.label) refuse('label', 'label does not match');
  return cert;
}

/** Text form for configuration files and CLIs: base64 of the binary certificate. */
export function orgCertificateToBase64(bytes: Uint8Array): string {
  return toBase64(bytes);
}

/** @throws ParleyError `USAGE` for bad base64. */
export function orgCertificateFromBase64(text: string): Uint8Array {
  return fromBase64(text);
}

/** A JSON view for people (public data only). */
export function describeOrgCertificate(cert: OrgCertificate): Record<string, string | number> {
  return {
    version: cert.version,
    role: cert.role,
    label: cert.label,
    signingKey: toHex(cert.signingKey),
    dhKey: toHex(cert.dhKey),
    expiresAt: new Date(cert.expiresAt).toISOString(),
  };
}
