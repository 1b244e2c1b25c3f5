/**
 * `@parley/issuer`: the staff identity issuer. Keeps the staff directory, enrols staff by
 * one-time invitation (password + passkey or TOTP), signs them in (password + second factor +
 * proof of possession of the device identity key) and certifies the device's identity key with
 * roles and a short lifetime, under an issuer key certified by the offline org key. Revocation
 * lists go to the relay; everything is in a hash-chained audit log.
 *
 * @example
 * const issuer = await createIssuer({ db: 'issuer.db', key: readIssuerKey('issuer.key'), issuerCertificate, origin: 'https://issuer.example.com' });
 */
export { createIssuer, type CreateIssuerOptions, type RunningIssuer } from './server.js';
export { IssuerService, DEFAULT_LIFETIME_MS, SIGNIN_TTL_MS, type IssuerServiceOptions, type IssuedCredential, type SignInFailure } from './service.js';
export { buildHttp, DEFAULT_IP_RATE_LIMIT, type HttpOptions, type IpRateLimit } from './http.js';
export { openIssuerDb, SCHEMA_VERSION, type IssuerDb } from './db.js';
export { AuditLog, verifyAudit, auditHash, canonicalJson, AUDIT_GENESIS, type AuditEntry, type AuditEvent, type AuditType, type AuditVerdict } from './audit.js';
export { Directory, checkRoles, INVITATION_TTL_MS, USERNAME_PATTERN, type Person } from './directory.js';
export { Lockout, DEFAULT_LOCKOUT, type LockoutPolicy } from './lockout.js';
export { Passwords, DEFAULT_PASSWORD_COST, MIN_PASSWORD_LENGTH, MAX_PASSWORD_LENGTH, type PasswordCost } from './passwords.js';
export { Passkeys, type RelyingParty } from './passkeys.js';
export { Revocations, type CurrentList } from './revocations.js';
export { readIssuerKey, writeIssuerKey, loadSealingKey, ISSUER_KEY_FORMAT, SEALING_KEY_BYTES, type IssuerKey } from './keys.js';
export { totpCode, totpStep, totpUrl, newTotpSecret, TOTP_PERIOD } from './totp.js';
export { IssuerError } from './errors.js';
