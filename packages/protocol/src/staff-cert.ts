/**
 * Staff credentials (issue 12): the offline organisation root key certifies an **issuer** key
 * with a policy (the roles it may grant, the longest lifetime it may give); the issuer certifies
 * a staff device's identity keys with a person, a display name, roles and a short lifetime.
 * Verifiers (clients, the bot enclave, the relay) pin only the org key and check
 * root → issuer → device, the policy, expiry and the issuer's signed revocation lists.
 *
 * Every signature is Ed25519 under its own context (contexts.ts), so none of them verifies as
 * another kind of statement (an org certificate, a relay login, a prekey).
 *
 * Issuer certificate (version 1), signed by the org key:
 * ```
 *  size  field
 *  1     version = 0x01
 *  32    org Ed25519 public key (the signer)
 *  32    issuer Ed25519 public key
 *  1+N   name: length N (1..64), UTF-8 (NFC, no control or format characters)
 *  1     roles it may grant: bit set (agent 1, supervisor 2, compliance 4, admin 8), non-zero
 *  8     maxLifetimeMs: the longest staff certificate it may issue (u64 BE, 1 min .. 366 days)
 *  8     expiresAt, ms since the epoch (u64 BE)
 *  64    signature over "parley/v1/issuer-cert" || 0x00 || every byte above
 * ```
 * Staff certificate (version 1), signed by the issuer key:
 * ```
 *  1     version = 0x01
 *  32    issuer Ed25519 public key (the signer)
 *  16    serial (random, names this certificate in logs)
 *  32    certified Ed25519 identity key (signingKey)
 *  32    certified X25519 identity key (dhKey)
 *  1+P   personId: length P (1..64), [A-Za-z0-9._@-]
 *  1+D   displayName: length D (1..128), UTF-8 (NFC, no control or format characters)
 *  1     roles: bit set as above, non-zero
 *  8     issuedAt, ms (u64 BE)
 *  8     expiresAt, ms (u64 BE), after issuedAt
 *  64    signature over "parley/v1/staff-cert" || 0x00 || every byte above
 * ```
 * Staff credential (what a device presents at relay login and publishes as its `certificate`
 * statement), at most {@link MAX_STAFF_CREDENTIAL_BYTES}:
 * `0x02 || u16 length || issuer certificate || u16 length || staff certificate`.
 * Its first byte (0x02) tells it apart from a v1 org certificate (first byte 0x01).
 *
 * Revocation list (version 1), signed by the issuer key, at most {@link MAX_REVOCATION_LIST_BYTES}:
 * ```
 *  1     version = 0x01
 *  2+I   u16 length, issuer certificate (so the list verifies against the org key alone)
 *  8     sequence (u64 BE; a newer list has a higher one)
 *  8     issuedAt, ms (u64 BE)
 *  2     person count (≤ MAX_REVOKED_ENTRIES), then each: 1+P personId
 *  2     device count (≤ MAX_REVOKED_ENTRIES), then each: 16-byte device id
 *  64    signature over "parley/v1/revocation-list" || 0x00 || every byte above
 * ```
 * A revoked device id is refused whichever org-certified issuer listed it (revoking only
 * removes trust); a revoked person id only by lists of the issuer that certified the person
 * (person ids are the issuer's names).
 *
 * Sign-in proof: the device identity key signs `challenge (32 bytes) || issuer origin (UTF-8)`
 * under "parley/v1/staff-signin", so the issuer learns the device holds the key it certifies,
 * for this issuer and this sign-in only.
 */
import { constantTimeEqual, fromHex, toHex } from './bytes.js';
import { ByteReader as Reader, ByteWriter as Writer } from './codec.js';
import { contextMessage } from './contexts.js';
import { getCrypto } from './crypto/index.js';
import { ParleyError } from './errors.js';
import { deviceIdOf, type PublicIdentity } from './identity-public.js';

export const ISSUER_CERT_VERSION = 0x01;
export const STAFF_CERT_VERSION = 0x01;
export const REVOCATION_LIST_VERSION = 0x01;
/** First byte of a staff credential (a v1 org certificate starts with 0x01). */
export const STAFF_CREDENTIAL_TAG = 0x02;
/** Largest encoded staff credential (a maximal one is 604 bytes). */
export const MAX_STAFF_CREDENTIAL_BYTES = 1024;
/**
 * Most persons, and most devices, one revocation list names. An entry only matters while a
 * certificate it covers may still be valid, so an issuer drops entries older than its policy's
 * `maxLifetimeMs` (a disabled person cannot sign in again).
 */
export const MAX_REVOKED_ENTRIES = 512;
/** Largest encoded revocation list (≤ 64 KiB, the relay's `RELAY_MAX_REVOCATION_LIST_BYTES`). */
export const MAX_REVOCATION_LIST_BYTES = 1 + 2 + 512 + 16 + 2 + MAX_REVOKED_ENTRIES * 65 + 2 + MAX_REVOKED_ENTRIES * 16 + 64;
/** Longest lifetime an issuer policy may allow. */
export const MAX_ISSUER_POLICY_LIFETIME_MS = 366 * 24 * 3600 * 1000;
/** Shortest lifetime an issuer policy may allow. */
export const MIN_ISSUER_POLICY_LIFETIME_MS = 60 * 1000;
/** Person ids are short public names: letters, digits and `._@-`. */
export const PERSON_ID_PATTERN = /^[A-Za-z0-9._@-]{1,64}$/;
/** Bytes of the sign-in challenge. */
export const STAFF_SIGNIN_CHALLENGE_BYTES = 32;

/** A staff member's role (relay README has the role × operation table). */
export type StaffRole = 'agent' | 'supervisor' | 'compliance' | 'admin';
/** Every staff role, in their canonical (bit) order. */
export const STAFF_ROLES: readonly StaffRole[] = Object.freeze(['agent', 'supervisor', 'compliance', 'admin'] as const);
const ROLE_BITS: Record<StaffRole, number> = { agent: 1, supervisor: 2, compliance: 4, admin: 8 };

/** What the org root allows an issuer to certify. */
export interface IssuerPolicy {
  /** The roles the issuer may grant. */
  readonly roles: readonly StaffRole[];
  /** The longest `expiresAt - issuedAt` of a staff certificate it issues. */
  readonly maxLifetimeMs: number;
}

/** A decoded issuer certificate. */
export interface IssuerCertificate {
  readonly version: number;
  /** The org key that signed it (checked against the pinned one when verified). */
  readonly orgKey: Uint8Array;
  readonly issuerKey: Uint8Array;
  readonly name: string;
  readonly policy: IssuerPolicy;
  readonly expiresAt: number;
  readonly signature: Uint8Array;
}

/** What the issuer certifies about a staff device. */
export interface StaffCertificateFields {
  /** The device's identity public keys. */
  readonly signingKey: Uint8Array;
  readonly dhKey: Uint8Array;
  /** The issuer's id of the person ({@link PERSON_ID_PATTERN}). */
  readonly personId: string;
  /** The name customers see (1-128 UTF-8 bytes). */
  readonly displayName: string;
  readonly roles: readonly StaffRole[];
  /** ms since the epoch. */
  readonly issuedAt: number;
  /** ms since the epoch; refused from this instant on. */
  readonly expiresAt: number;
  /** 16 random bytes naming this certificate. */
  readonly serial: Uint8Array;
}

/** A decoded staff certificate. */
export interface StaffCertificate extends StaffCertificateFields {
  readonly version: number;
  /** The issuer key that signed it. */
  readonly issuerKey: Uint8Array;
  readonly signature: Uint8Array;
}

/** A decoded (unverified) staff credential. */
export interface StaffCredential {
  readonly issuer: IssuerCertificate;
  readonly staff: StaffCertificate;
  /** The encoded issuer certificate (as embedded). */
  readonly issuerCertificate: Uint8Array;
  /** The encoded staff certificate (as embedded). */
  readonly staffCertificate: Uint8Array;
}

/** A staff credential that verified. */
export interface VerifiedStaff {
  readonly personId: string;
  readonly displayName: string;
  readonly roles: readonly StaffRole[];
  readonly issuedAt: number;
  readonly expiresAt: number;
  /** The certificate serial, 32 hex chars. */
  readonly serial: string;
  readonly issuerKey: Uint8Array;
  readonly issuerName: string;
}

/** A verified revocation list. */
export interface RevocationList {
  readonly issuerKey: Uint8Array;
  readonly sequence: number;
  readonly issuedAt: number;
  /** Revoked person ids (of this issuer). */
  readonly persons: readonly string[];
  /** Revoked device ids (32 hex chars each). */
  readonly devices: readonly string[];
}

/**
 * Why a staff credential was refused (`details.reason` of the `UNTRUSTED_IDENTITY` error):
 * `malformed`; `issuerSignature` (the issuer certificate is not signed by the pinned org key);
 * `issuerExpired`; `issuerPolicy` (a role the issuer may not grant, or a lifetime longer than it
 * may give); `signature` (the staff certificate is not signed by the issuer); `notYetValid`
 * (issued more than {@link STAFF_CLOCK_SKEW_MS} in the future); `expired`; `identity` (it
 * certifies other keys); `revoked` (a revocation list names the device or the person).
 */
export type StaffCredentialRefusal =
  | 'malformed'
  | 'issuerSignature'
  | 'issuerExpired'
  | 'issuerPolicy'
  | 'signature'
  | 'notYetValid'
  | 'expired'
  | 'identity'
  | 'revoked';

/** How far in the future a staff certificate's `issuedAt` may be (clock differences). */
export const STAFF_CLOCK_SKEW_MS = 5 * 60 * 1000;

function refuse(reason: StaffCredentialRefusal | 'revocationList', message: string): never {
  const what = reason === 'revocationList' ? 'revocation list' : 'staff credential';
  throw new ParleyError('UNTRUSTED_IDENTITY', `${what} refused: ${message}`, { details: { reason } });
}

function usage(message: string): never {
  throw new ParleyError('USAGE', message);
}

// ---------------------------------------------------------------------------------------------
// Field rules

/** Bytes a display text may carry: NFC, no control (Cc) or format (Cf: bidi overrides…) characters. */
function validText(s: string, maxBytes: number): boolean {
  if (typeof s !== 'string' || s.length === 0) return false;
  const n = new TextEncoder().encode(s).length;
  return n <= maxBytes && s === s.normalize('NFC') && !/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u.test(s) && s.trim() === s; // ct-ok: public text
}

function rolesToBits(roles: readonly StaffRole[]): number {
  if (!Array.isArray(roles) || roles.length === 0) usage('roles must be a non-empty list');
  let bits = 0;
  for (const r of roles as readonly StaffRole[]) {
    const bit = ROLE_BITS[r] as number | undefined;
    if (bit === undefined) usage(`unknown staff role ${JSON.stringify(r)}; one of ${STAFF_ROLES.join(', ')}`);
    bits |= bit;
  }
  return bits;
}

function bitsToRoles(bits: number): StaffRole[] | undefined {
  if (bits === 0 || (bits & ~0x0f) !== 0) return undefined;
  return STAFF_ROLES.filter((r) => (bits & ROLE_BITS[r]) !== 0);
}

/**
 * Parses a comma-separated role list (`agent,supervisor`).
 * @throws ParleyError `USAGE` for an empty list or an unknown role.
 */
export function parseStaffRoles(text: string): StaffRole[] {
  const roles = text.split(',').map((s) => s.trim()).filter((s) => s.length > 0) as StaffRole[];
  return bitsToRoles(rolesToBits(roles))!;
}

function key32(k: unknown, name: string): Uint8Array {
  if (!(k instanceof Uint8Array) || k.length !== 32) usage(`${name} must be 32 bytes`);
  return k;
}

function time(t: unknown, name: string): number {
  if (!Number.isSafeInteger(t) || (t as number) <= 0) usage(`${name} must be a positive integer (ms)`);
  return t as number;
}

function validPolicyLifetime(ms: number): boolean {
  return Number.isSafeInteger(ms) && ms >= MIN_ISSUER_POLICY_LIFETIME_MS && ms <= MAX_ISSUER_POLICY_LIFETIME_MS;
}

// ---------------------------------------------------------------------------------------------
// Issuer certificate

/** A fresh issuer key: the 32-byte Ed25519 seed (secret) and its public key. */
export function generateIssuerKey(): { seed: Uint8Array; publicKey: Uint8Array } {
  const kp = getCrypto().ed25519Generate();
  return { seed: kp.privateKey, publicKey: kp.publicKey };
}

/**
 * The org root certifies an issuer key with a policy. Run offline (`parley-org certify-issuer`).
 * @throws ParleyError `USAGE` for bad fields or a seed that is not 32 bytes.
 * @example
 * const cert = signIssuerCertificate(org.seed, { issuerKey, name: 'Acme staff', policy: { roles: ['agent'], maxLifetimeMs: 12 * 3600_000 }, expiresAt });
 */
export function signIssuerCertificate(orgSeed: Uint8Array, f: { issuerKey: Uint8Array; name: string; policy: IssuerPolicy; expiresAt: number }): Uint8Array {
  key32(orgSeed, 'org seed');
  key32(f.issuerKey, 'issuerKey');
  if (!validText(f.name, 64)) usage('issuer name must be 1-64 UTF-8 bytes of printable text');
  const bits = rolesToBits(f.policy?.roles);
  if (!validPolicyLifetime(f.policy.maxLifetimeMs)) usage('policy.maxLifetimeMs must be an integer between 1 minute and 366 days');
  time(f.expiresAt, 'expiresAt');
  const c = getCrypto();
  const payload = new Writer()
    .u8(ISSUER_CERT_VERSION)
    .fixed(c.ed25519PublicKey(orgSeed))
    .fixed(f.issuerKey)
    .shortString(f.name)
    .u8(bits)
    .u64(f.policy.maxLifetimeMs)
    .u64(f.expiresAt)
    .finish();
  return new Writer().fixed(payload).fixed(c.ed25519Sign(orgSeed, contextMessage('issuerCertificate', payload))).finish();
}

/**
 * Decodes an issuer certificate without verifying it (for display).
 * @throws ParleyError `UNTRUSTED_IDENTITY` reason `malformed`.
 */
export function decodeIssuerCertificate(bytes: Uint8Array): IssuerCertificate {
  if (!(bytes instanceof Uint8Array) || bytes.length > 512) refuse('malformed', 'not an issuer certificate');
  return strict(() => {
    const r = new Reader(bytes, 'MALFORMED_MESSAGE');
    const version = r.u8();
    if (version !== ISSUER_CERT_VERSION) refuse('malformed', 'unsupported issuer certificate version');
    const orgKey = r.fixed(32);
    const issuerKey = r.fixed(32);
    const name = r.shortString();
    if (!validText(name, 64)) refuse('malformed', 'invalid issuer name');
    const roles = bitsToRoles(r.u8());
    if (!roles) refuse('malformed', 'invalid issuer roles');
    const maxLifetimeMs = r.u64();
    if (!validPolicyLifetime(maxLifetimeMs)) refuse('malformed', 'invalid issuer lifetime');
    const expiresAt = r.u64();
    const signature = r.fixed(64);
    r.end();
    return { version, orgKey, issuerKey, name, policy: { roles, maxLifetimeMs }, expiresAt, signature };
  });
}

/** Runs a decoder; any codec error becomes a `malformed` refusal. */
function strict<T>(decode: () => T, reason: StaffCredentialRefusal | 'revocationList' = 'malformed'): T {
  try {
    return decode();
  } catch (e) {
    if (e instanceof ParleyError && e.code === 'UNTRUSTED_IDENTITY') throw e;
    return refuse(reason, 'truncated, trailing or invalid bytes');
  }
}

/**
 * Verifies an issuer certificate against the pinned org key and the clock.
 * @throws ParleyError `UNTRUSTED_IDENTITY` reason `malformed`, `issuerSignature` or `issuerExpired`.
 */
export function verifyIssuerCertificate(bytes: Uint8Array, check: { orgKey: Uint8Array; now: number }): IssuerCertificate {
  const cert = decodeIssuerCertificate(bytes);
  key32(check.orgKey, 'orgKey');
  const payload = bytes.subarray(0, bytes.length - 64);
  if (!constantTimeEqual(cert.orgKey, check.orgKey) || !getCrypto().ed25519Verify(check.orgKey, contextMessage('issuerCertificate', payload), cert.signature)) {
    refuse('issuerSignature', 'the issuer certificate is not signed by the pinned organisation key');
  }
  if (check.now >= cert.expiresAt) refuse('issuerExpired', 'the issuer certificate expired');
  return cert;
}

// ---------------------------------------------------------------------------------------------
// Staff certificate and credential

/**
 * The issuer certifies a staff device. The issuer service checks its own policy before calling
 * this; verifiers check it again.
 * @throws ParleyError `USAGE` for bad fields or a seed that is not 32 bytes.
 */
export function signStaffCertificate(issuerSeed: Uint8Array, f: StaffCertificateFields): Uint8Array {
  key32(issuerSeed, 'issuer seed');
  key32(f.signingKey, 'signingKey');
  key32(f.dhKey, 'dhKey');
  if (typeof f.personId !== 'string' || !PERSON_ID_PATTERN.test(f.personId)) usage('personId must be 1-64 chars of [A-Za-z0-9._@-]');
  if (!validText(f.displayName, 128)) usage('displayName must be 1-128 UTF-8 bytes of printable text');
  const bits = rolesToBits(f.roles);
  time(f.issuedAt, 'issuedAt');
  time(f.expiresAt, 'expiresAt');
  if (f.expiresAt <= f.issuedAt) usage('expiresAt must be after issuedAt');
  if (!(f.serial instanceof Uint8Array) || f.serial.length !== 16) usage('serial must be 16 bytes');
  const c = getCrypto();
  const payload = new Writer()
    .u8(STAFF_CERT_VERSION)
    .fixed(c.ed25519PublicKey(issuerSeed))
    .fixed(f.serial)
    .fixed(f.signingKey)
    .fixed(f.dhKey)
    .shortString(f.personId)
    .shortString(f.displayName)
    .u8(bits)
    .u64(f.issuedAt)
    .u64(f.expiresAt)
    .finish();
  return new Writer().fixed(payload).fixed(c.ed25519Sign(issuerSeed, contextMessage('staffCertificate', payload))).finish();
}

function decodeStaffCertificate(bytes: Uint8Array): StaffCertificate {
  return strict(() => {
    const r = new Reader(bytes, 'MALFORMED_MESSAGE');
    const version = r.u8();
    if (version !== STAFF_CERT_VERSION) refuse('malformed', 'unsupported staff certificate version');
    const issuerKey = r.fixed(32);
    const serial = r.fixed(16);
    const signingKey = r.fixed(32);
    const dhKey = r.fixed(32);
    const personId = r.shortString();
    if (!PERSON_ID_PATTERN.test(personId)) refuse('malformed', 'invalid person id');
    const displayName = r.shortString();
    if (!validText(displayName, 128)) refuse('malformed', 'invalid display name');
    const roles = bitsToRoles(r.u8());
    if (!roles) refuse('malformed', 'invalid roles');
    const issuedAt = r.u64();
    const expiresAt = r.u64();
    if (issuedAt === 0 || expiresAt <= issuedAt) refuse('malformed', 'invalid validity');
    const signature = r.fixed(64);
    r.end();
    return { version, issuerKey, serial, signingKey, dhKey, personId, displayName, roles, issuedAt, expiresAt, signature };
  });
}

/**
 * The credential a staff device presents and publishes: issuer certificate + staff certificate.
 * @throws ParleyError `USAGE` when either part is empty or the whole is too large.
 */
export function encodeStaffCredential(issuerCertificate: Uint8Array, staffCertificate: Uint8Array): Uint8Array {
  if (!(issuerCertificate instanceof Uint8Array) || issuerCertificate.length === 0) usage('issuer certificate is empty');
  if (!(staffCertificate instanceof Uint8Array) || staffCertificate.length === 0) usage('staff certificate is empty');
  const out = new Writer()
    .u8(STAFF_CREDENTIAL_TAG)
    .u16(issuerCertificate.length)
    .fixed(issuerCertificate)
    .u16(staffCertificate.length)
    .fixed(staffCertificate)
    .finish();
  if (out.length > MAX_STAFF_CREDENTIAL_BYTES) usage(`a staff credential is at most ${MAX_STAFF_CREDENTIAL_BYTES} bytes`);
  return out;
}

/** True when `bytes` is framed as a staff credential (first byte 0x02); says nothing of its validity. */
export function isStaffCredential(bytes: Uint8Array): boolean {
  return bytes instanceof Uint8Array && bytes.length > 0 && bytes[0] === STAFF_CREDENTIAL_TAG; // ct-ok: public framing byte
}

/**
 * Decodes a staff credential without verifying it (for display).
 * @throws ParleyError `UNTRUSTED_IDENTITY` reason `malformed`.
 */
export function decodeStaffCredential(bytes: Uint8Array): StaffCredential {
  if (!(bytes instanceof Uint8Array) || bytes.length > MAX_STAFF_CREDENTIAL_BYTES || !isStaffCredential(bytes)) {
    refuse('malformed', 'not a staff credential');
  }
  const { issuerCertificate, staffCertificate } = strict(() => {
    const r = new Reader(bytes, 'MALFORMED_MESSAGE');
    r.u8();
    const issuerCertificate = r.fixed(r.u16());
    const staffCertificate = r.fixed(r.u16());
    r.end();
    return { issuerCertificate, staffCertificate };
  });
  return { issuer: decodeIssuerCertificate(issuerCertificate), staff: decodeStaffCertificate(staffCertificate), issuerCertificate, staffCertificate };
}

/** What {@link verifyStaffCredential} expects. */
export interface StaffCredentialCheck {
  /** The pinned organisation public key (32 bytes). */
  readonly orgKey: Uint8Array;
  /** The identity the credential must certify (the peer's keys as used in the session). */
  readonly identity: Pick<PublicIdentity, 'signingKey' | 'dhKey'>;
  /** Current time, ms since the epoch. */
  readonly now: number;
  /** Verified revocation lists ({@link verifyRevocationList}). */
  readonly revocations?: readonly RevocationList[];
}

/**
 * Root → issuer → device: the issuer certificate is signed by `orgKey` and unexpired; the staff
 * certificate is signed by the issuer key; its roles are within the issuer's policy and its
 * lifetime (`expiresAt - issuedAt`) no longer than the policy allows; it is valid now; it
 * certifies `identity`; no revocation list names the device or (for its issuer) the person.
 * @throws ParleyError `UNTRUSTED_IDENTITY` with `details.reason` one of {@link StaffCredentialRefusal};
 *   `USAGE` for a malformed `orgKey`.
 */
export function verifyStaffCredential(bytes: Uint8Array, check: StaffCredentialCheck): VerifiedStaff {
  const cred = decodeStaffCredential(bytes);
  const issuer = verifyIssuerCertificate(cred.issuerCertificate, check);
  const staff = cred.staff;
  const payload = cred.staffCertificate.subarray(0, cred.staffCertificate.length - 64);
  if (!constantTimeEqual(staff.issuerKey, issuer.issuerKey) || !getCrypto().ed25519Verify(issuer.issuerKey, contextMessage('staffCertificate', payload), staff.signature)) {
    refuse('signature', 'the staff certificate is not signed by its issuer');
  }
  const outside = staff.roles.filter((r) => !issuer.policy.roles.includes(r));
  if (outside.length > 0) refuse('issuerPolicy', `the issuer may not grant the role(s) ${outside.join(', ')}`);
  if (staff.expiresAt - staff.issuedAt > issuer.policy.maxLifetimeMs) refuse('issuerPolicy', 'the certificate lives longer than the issuer may allow');
  if (!constantTimeEqual(staff.signingKey, check.identity.signingKey) || !constantTimeEqual(staff.dhKey, check.identity.dhKey)) {
    refuse('identity', 'certifies another identity');
  }
  if (staff.issuedAt > check.now + STAFF_CLOCK_SKEW_MS) refuse('notYetValid', 'issued in the future');
  if (check.now >= staff.expiresAt) refuse('expired', 'expired');
  if (check.revocations && check.revocations.length > 0) {
    const device = deviceIdOf(staff);
    for (const list of check.revocations) {
      if (list.devices.includes(device)) refuse('revoked', 'the device is revoked');
      if (constantTimeEqual(list.issuerKey, issuer.issuerKey) && list.persons.includes(staff.personId)) refuse('revoked', 'the person is revoked');
    }
  }
  return {
    personId: staff.personId,
    displayName: staff.displayName,
    roles: staff.roles,
    issuedAt: staff.issuedAt,
    expiresAt: staff.expiresAt,
    serial: toHex(staff.serial),
    issuerKey: issuer.issuerKey,
    issuerName: issuer.name,
  };
}

// ---------------------------------------------------------------------------------------------
// Revocation lists

/**
 * The issuer signs the list of revoked persons and devices. `sequence` must grow with every
 * list it publishes (the relay keeps only the highest per issuer).
 * @throws ParleyError `USAGE` for bad fields, too many entries, or an issuer certificate that
 *   does not name this seed's key.
 */
export function signRevocationList(
  issuerSeed: Uint8Array,
  f: { issuerCertificate: Uint8Array; sequence: number; issuedAt: number; persons: readonly string[]; devices: readonly string[] },
): Uint8Array {
  key32(issuerSeed, 'issuer seed');
  const c = getCrypto();
  let issuer: IssuerCertificate;
  try {
    issuer = decodeIssuerCertificate(f.issuerCertificate);
  } catch {
    return usage('issuerCertificate is not an issuer certificate');
  }
  if (!constantTimeEqual(issuer.issuerKey, c.ed25519PublicKey(issuerSeed))) usage('issuerCertificate certifies another issuer key');
  if (!Number.isSafeInteger(f.sequence) || f.sequence < 0) usage('sequence must be an integer ≥ 0');
  time(f.issuedAt, 'issuedAt');
  const persons = [...new Set(f.persons)].sort();
  const devices = [...new Set(f.devices)].sort();
  if (persons.length > MAX_REVOKED_ENTRIES || devices.length > MAX_REVOKED_ENTRIES) usage(`at most ${MAX_REVOKED_ENTRIES} persons and ${MAX_REVOKED_ENTRIES} devices per list`);
  const w = new Writer(1024)
    .u8(REVOCATION_LIST_VERSION)
    .u16(f.issuerCertificate.length)
    .fixed(f.issuerCertificate)
    .u64(f.sequence)
    .u64(f.issuedAt)
    .u16(persons.length);
  for (const p of persons) {
    if (typeof p !== 'string' || !PERSON_ID_PATTERN.test(p)) usage('person ids must be 1-64 chars of [A-Za-z0-9._@-]');
    w.shortString(p);
  }
  w.u16(devices.length);
  for (const d of devices) {
    if (typeof d !== 'string' || !/^[0-9a-f]{32}$/.test(d)) usage('device ids must be 32 lower-case hex chars');
    w.fixed(fromHex(d));
  }
  const payload = w.finish();
  return new Writer(payload.length + 64).fixed(payload).fixed(c.ed25519Sign(issuerSeed, contextMessage('revocationList', payload))).finish();
}

/** A decoded (unverified) revocation list. */
export interface DecodedRevocationList extends RevocationList {
  readonly version: number;
  readonly issuer: IssuerCertificate;
  readonly issuerCertificate: Uint8Array;
  readonly signature: Uint8Array;
}

/**
 * Decodes a revocation list without verifying it (for display, and for the relay to frame it).
 * @throws ParleyError `UNTRUSTED_IDENTITY` reason `revocationList`.
 */
export function decodeRevocationList(bytes: Uint8Array): DecodedRevocationList {
  if (!(bytes instanceof Uint8Array) || bytes.length > MAX_REVOCATION_LIST_BYTES) refuse('revocationList', 'not a revocation list');
  return strict(() => {
    const r = new Reader(bytes, 'MALFORMED_MESSAGE');
    const version = r.u8();
    if (version !== REVOCATION_LIST_VERSION) refuse('revocationList', 'unsupported version');
    const issuerCertificate = r.fixed(r.u16());
    let issuer: IssuerCertificate;
    try {
      issuer = decodeIssuerCertificate(issuerCertificate);
    } catch {
      return refuse('revocationList', 'malformed issuer certificate');
    }
    const sequence = r.u64();
    const issuedAt = r.u64();
    const persons: string[] = [];
    const np = r.u16();
    if (np > MAX_REVOKED_ENTRIES) refuse('revocationList', 'too many persons');
    for (let i = 0; i < np; i++) {
      const p = r.shortString();
      if (!PERSON_ID_PATTERN.test(p) || (i > 0 && p <= persons[i - 1]!)) refuse('revocationList', 'invalid or unsorted person id'); // ct-ok: public ids
      persons.push(p);
    }
    const devices: string[] = [];
    const nd = r.u16();
    if (nd > MAX_REVOKED_ENTRIES) refuse('revocationList', 'too many devices');
    for (let i = 0; i < nd; i++) {
      const d = toHex(r.fixed(16));
      if (i > 0 && d <= devices[i - 1]!) refuse('revocationList', 'unsorted device ids'); // ct-ok: public ids
      devices.push(d);
    }
    const signature = r.fixed(64);
    r.end();
    return { version, issuer, issuerCertificate, issuerKey: issuer.issuerKey, sequence, issuedAt, persons, devices, signature };
  }, 'revocationList');
}

/**
 * Verifies a revocation list against the pinned org key alone: its embedded issuer certificate
 * is signed by `orgKey` and unexpired, and the list is signed by that issuer.
 * @throws ParleyError `UNTRUSTED_IDENTITY` reason `revocationList`; `USAGE` for a malformed `orgKey`.
 */
export function verifyRevocationList(bytes: Uint8Array, check: { orgKey: Uint8Array; now: number }): RevocationList {
  const list = decodeRevocationList(bytes);
  try {
    verifyIssuerCertificate(list.issuerCertificate, check);
  } catch (e) {
    if (e instanceof ParleyError && e.code === 'UNTRUSTED_IDENTITY') refuse('revocationList', `its issuer is not trusted (${String(e.details?.reason)})`);
    throw e;
  }
  const payload = bytes.subarray(0, bytes.length - 64);
  if (!getCrypto().ed25519Verify(list.issuerKey, contextMessage('revocationList', payload), list.signature)) {
    refuse('revocationList', 'not signed by its issuer');
  }
  return { issuerKey: list.issuerKey, sequence: list.sequence, issuedAt: list.issuedAt, persons: list.persons, devices: list.devices };
}

// ---------------------------------------------------------------------------------------------
// Sign-in proof

/**
 * What a device signs (context `staffSignIn`, with its identity key) to prove at sign-in that it
 * holds the identity the issuer is about to certify: `challenge (32 bytes) || issuer origin`.
 * @throws ParleyError `USAGE` for a challenge that is not 32 bytes or an empty/over-long origin.
 */
export function staffSignInPayload(challenge: Uint8Array, issuerOrigin: string): Uint8Array {
  if (!(challenge instanceof Uint8Array) || challenge.length !== STAFF_SIGNIN_CHALLENGE_BYTES) usage('challenge must be 32 bytes');
  if (typeof issuerOrigin !== 'string' || issuerOrigin.length === 0 || issuerOrigin.length > 255) usage('issuer origin must be 1-255 chars');
  return new Writer().fixed(challenge).fixed(new TextEncoder().encode(issuerOrigin)).finish();
}

/** Verifies a sign-in proof made by the device key `signingKey`. */
export function verifyStaffSignInProof(signingKey: Uint8Array, challenge: Uint8Array, issuerOrigin: string, proof: Uint8Array): boolean {
  if (!(proof instanceof Uint8Array) || proof.length !== 64) return false;
  return getCrypto().ed25519Verify(key32(signingKey, 'signingKey'), contextMessage('staffSignIn', staffSignInPayload(challenge, issuerOrigin)), proof);
}

// ---------------------------------------------------------------------------------------------
// Display

/** A JSON view of an issuer certificate for people (public data only). */
export function describeIssuerCertificate(cert: IssuerCertificate): Record<string, string | number> {
  return {
    version: cert.version,
    orgKey: toHex(cert.orgKey),
    issuerKey: toHex(cert.issuerKey),
    name: cert.name,
    roles: cert.policy.roles.join(','),
    maxLifetimeMs: cert.policy.maxLifetimeMs,
    expiresAt: new Date(cert.expiresAt).toISOString(),
  };
}

/** A JSON view of a staff credential for people (public data only). */
export function describeStaffCredential(cred: StaffCredential): Record<string, string | number> {
  const s = cred.staff;
  return {
    issuerName: cred.issuer.name,
    issuerKey: toHex(cred.issuer.issuerKey),
    orgKey: toHex(cred.issuer.orgKey),
    issuerRoles: cred.issuer.policy.roles.join(','),
    issuerMaxLifetimeMs: cred.issuer.policy.maxLifetimeMs,
    issuerExpiresAt: new Date(cred.issuer.expiresAt).toISOString(),
    serial: toHex(s.serial),
    personId: s.personId,
    displayName: s.displayName,
    roles: s.roles.join(','),
    device: deviceIdOf(s),
    signingKey: toHex(s.signingKey),
    dhKey: toHex(s.dhKey),
    issuedAt: new Date(s.issuedAt).toISOString(),
    expiresAt: new Date(s.expiresAt).toISOString(),
  };
}
