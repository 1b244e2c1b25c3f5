/**
 * The issuer's flows, independent of HTTP: enrolment by invitation (password, then a passkey or
 * TOTP), sign-in (password, second factor, proof of possession of the device identity key,
 * policy) and issuance of short-lived staff credentials, admin operations, with lock-out and an
 * audit entry for every step.
 */
import { openRecord, sealRecord } from '@parley/engine';
import {
  decodeIssuerCertificate, deviceIdOf, encodeStaffCredential, fromHex, getCrypto, signStaffCertificate, staffSignInPayload, toBase64, toHex, utf8,
  verifyContextSignature, type IssuerCertificate, type StaffRole,
} from '@parley/protocol';
import type { IssuedCredential } from '@parley/protocol/wire';
import type Database from 'better-sqlite3';
import { AuditLog } from './audit.js';
import { Directory, checkRoles, type Person } from './directory.js';
import { IssuerError } from './errors.js';
import type { IssuerKey } from './keys.js';
import { DEFAULT_LOCKOUT, Lockout, type LockoutPolicy } from './lockout.js';
import { Passkeys, type AuthenticationResponseJSON, type PublicKeyCredentialCreationOptionsJSON, type PublicKeyCredentialRequestOptionsJSON, type RegistrationResponseJSON } from './passkeys.js';
import { MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH, Passwords, type PasswordCost } from './passwords.js';
import { Revocations } from './revocations.js';
import { newTotpSecret, totpStep, totpUrl } from './totp.js';

/** Default certificate lifetime (capped by the issuer's policy). */
export const DEFAULT_LIFETIME_MS = 12 * 3600 * 1000;
/** How long a sign-in challenge (device proof and passkey) stays valid; single use. */
export const SIGNIN_TTL_MS = 2 * 60 * 1000;

/** Why a sign-in failed, as audited (never sent to the client beyond the generic refusal). */
export type SignInFailure =
  | 'badPassword' | 'unknownUser' | 'badTotp' | 'replayedTotp' | 'badPasskey' | 'noSecondFactor' | 'badProof' | 'badChallenge'
  | 'locked' | 'disabled' | 'notEnrolled' | 'policy' | 'rateLimited';

/** Settings of {@link IssuerService}. */
export interface IssuerServiceOptions {
  readonly db: Database.Database;
  readonly sealingKey: Uint8Array;
  readonly key: IssuerKey;
  /** The issuer certificate from `parley-org certify-issuer` (binary). */
  readonly issuerCertificate: Uint8Array;
  /** The issuer's public origin (`https://issuer.example.com`): in every device proof; default passkey RP. */
  readonly origin: string;
  /** WebAuthn RP ID (default: the hostname of `origin`). */
  readonly rpId?: string;
  /** Origins passkey ceremonies may come from (the agent console's; default `[origin]`). */
  readonly passkeyOrigins?: readonly string[];
  /** Display name of the issuer (TOTP apps, passkey prompts; default the certificate's name). */
  readonly name?: string;
  readonly lockout?: LockoutPolicy;
  readonly passwordCost?: PasswordCost;
  /** Relay base URL to POST revocation lists to. */
  readonly relay?: string;
  readonly now?: () => number;
  readonly warn?: (msg: string) => void;
}

/** What sign-in returns (the wire contract, shared with the client). */
export type { IssuedCredential };

interface PendingSignIn {
  readonly account: string;
  readonly personId: string;
  readonly signingKey: Uint8Array;
  readonly dhKey: Uint8Array;
  readonly challenge: Uint8Array;
  readonly passkeyChallenge: string | undefined;
  readonly roles: readonly StaffRole[] | undefined;
  readonly lifetimeMs: number | undefined;
  readonly expiresAt: number;
}

const hexKey = (v: unknown, what: string): Uint8Array => {
  if (typeof v !== 'string' || !/^[0-9a-fA-F]{64}$/.test(v)) throw new IssuerError('USAGE', `${what}: 64 hex chars`);
  return fromHex(v.toLowerCase());
};
const refused = () => new IssuerError('UNAUTHENTICATED', 'sign-in refused: wrong username or password');
const sha256Hex = (s: string) => toHex(getCrypto().sha256(utf8(s)));

/** The issuer. */
export class IssuerService {
  readonly directory: Directory;
  readonly audit: AuditLog;
  readonly passkeys: Passkeys;
  readonly revocations: Revocations;
  readonly certificate: IssuerCertificate;
  /** The issuer certificate as given (binary). */
  readonly issuerCertificateBytes: Uint8Array;
  readonly origin: string;
  readonly #db: Database.Database;
  readonly #o: IssuerServiceOptions;
  readonly #now: () => number;
  readonly #passwords: Passwords;
  readonly #lockout: Lockout;
  readonly #pending = new Map<string, PendingSignIn>();
  readonly #enrolChallenges = new Map<string, { challenge: string; expiresAt: number }>();
  readonly #name: string;

  constructor(o: IssuerServiceOptions) {
    this.#o = o;
    this.#db = o.db;
    this.#now = o.now ?? Date.now;
    this.origin = new URL(o.origin).origin;
    this.certificate = decodeIssuerCertificate(o.issuerCertificate);
    this.issuerCertificateBytes = o.issuerCertificate;
    if (toHex(this.certificate.issuerKey) !== toHex(o.key.publicKey)) throw new Error('the issuer certificate certifies another key than --key'); // ct-ok: public keys
    this.#name = o.name ?? this.certificate.name;
    this.audit = new AuditLog(o.db);
    this.directory = new Directory(o.db, this.audit, this.#now);
    this.#passwords = new Passwords(o.passwordCost);
    this.#lockout = new Lockout(o.db, o.lockout ?? DEFAULT_LOCKOUT);
    this.passkeys = new Passkeys(o.db, o.sealingKey, {
      name: this.#name, id: o.rpId ?? new URL(this.origin).hostname, origins: o.passkeyOrigins?.length ? o.passkeyOrigins : [this.origin],
    });
    this.revocations = new Revocations({
      db: o.db, directory: this.directory, key: o.key, issuerCertificate: o.issuerCertificate, ...(o.relay ? { relay: o.relay } : {}), now: this.#now, ...(o.warn ? { warn: o.warn } : {}),
    });
  }

  // ---- enrolment ----------------------------------------------------------------------------

  #invited(invitation: unknown): Person {
    const p = typeof invitation === 'string' ? this.directory.invitation(invitation) : undefined;
    if (!p) throw new IssuerError('UNAUTHENTICATED', 'the invitation is unknown, used or expired');
    return p;
  }

  /** Who an invitation is for. */
  enrolStart(invitation: unknown): { personId: string; username: string; displayName: string } {
    const p = this.#invited(invitation);
    this.audit.append({ type: 'enrol.start', actor: `person:${p.personId}`, subject: p.personId }, this.#now());
    return { personId: p.personId, username: p.username, displayName: p.displayName };
  }

  /** Sets the password (at least {@link MIN_PASSWORD_LENGTH} characters). */
  async enrolPassword(invitation: unknown, password: unknown): Promise<void> {
    const p = this.#invited(invitation);
    if (typeof password !== 'string' || password.length < MIN_PASSWORD_LENGTH || utf8(password).length > MAX_PASSWORD_LENGTH) {
      throw new IssuerError('USAGE', `the password must have ${MIN_PASSWORD_LENGTH} to ${MAX_PASSWORD_LENGTH} characters`);
    }
    this.directory.setPasswordHash(p.personId, await this.#passwords.hash(password));
    this.audit.append({ type: 'enrol.password', actor: `person:${p.personId}`, subject: p.personId }, this.#now());
    this.#maybeComplete(invitation as string, p.personId);
  }

  /** WebAuthn registration options; the challenge is remembered for 2 minutes. */
  async enrolPasskeyOptions(invitation: unknown): Promise<PublicKeyCredentialCreationOptionsJSON> {
    const p = this.#invited(invitation);
    const options = await this.passkeys.registrationOptions(p);
    this.#enrolChallenges.set(sha256Hex(invitation as string), { challenge: options.challenge, expiresAt: this.#now() + SIGNIN_TTL_MS });
    return options;
  }

  /** Verifies the passkey registration (challenge single-use). */
  async enrolPasskeyVerify(invitation: unknown, response: unknown): Promise<void> {
    const p = this.#invited(invitation);
    const key = sha256Hex(invitation as string);
    const c = this.#enrolChallenges.get(key);
    this.#enrolChallenges.delete(key);
    if (!c || c.expiresAt <= this.#now() || !(await this.passkeys.register(p.personId, response as RegistrationResponseJSON, c.challenge, this.#now()))) {
      this.audit.append({ type: 'enrol.failure', actor: `person:${p.personId}`, subject: p.personId, reason: 'badPasskey' }, this.#now());
      throw new IssuerError('UNAUTHENTICATED', 'the passkey registration does not verify (or its challenge expired): start again');
    }
    this.audit.append({ type: 'enrol.passkey', actor: `person:${p.personId}`, subject: p.personId }, this.#now());
    this.#maybeComplete(invitation as string, p.personId);
  }

  /** A new TOTP secret (pending until a code verifies). */
  enrolTotpStart(invitation: unknown): { otpauthUrl: string; secret: string } {
    const p = this.#invited(invitation);
    const secret = newTotpSecret();
    this.#db.prepare('INSERT OR REPLACE INTO totp (person_id, secret, pending, last_step) VALUES (?, ?, 1, 0)')
      .run(p.personId, Buffer.from(sealRecord(this.#o.sealingKey, `totp:${p.personId}`, utf8(secret))));
    return { otpauthUrl: totpUrl(secret, this.#name, p.username), secret };
  }

  /** Confirms TOTP with a first code (which then cannot be used to sign in). */
  enrolTotpVerify(invitation: unknown, code: unknown): void {
    const p = this.#invited(invitation);
    const row = this.#db.prepare('SELECT secret FROM totp WHERE person_id = ? AND pending = 1').get(p.personId) as { secret: Buffer } | undefined;
    const step = row && typeof code === 'string' ? totpStep(this.#totpSecret(p.personId, row.secret), code, this.#now()) : undefined;
    if (step === undefined) {
      this.audit.append({ type: 'enrol.failure', actor: `person:${p.personId}`, subject: p.personId, reason: 'badTotp' }, this.#now());
      throw new IssuerError('UNAUTHENTICATED', 'the code does not match (check the device clock), or TOTP enrolment was not started');
    }
    this.#db.prepare('UPDATE totp SET pending = 0, last_step = ? WHERE person_id = ?').run(step, p.personId);
    this.audit.append({ type: 'enrol.totp', actor: `person:${p.personId}`, subject: p.personId }, this.#now());
    this.#maybeComplete(invitation as string, p.personId);
  }

  #totpSecret(personId: string, sealed: Buffer): string {
    return new TextDecoder().decode(openRecord(this.#o.sealingKey, `totp:${personId}`, new Uint8Array(sealed)));
  }

  #maybeComplete(invitation: string, personId: string): void {
    const p = this.directory.get(personId);
    if (p && p.hasPassword && p.factors.length > 0) {
      this.directory.consumeInvitation(invitation);
      this.audit.append({ type: 'enrol.complete', actor: `person:${personId}`, subject: personId, details: { factors: [...p.factors] } }, this.#now());
    }
  }

  // ---- sign-in ------------------------------------------------------------------------------

  #fail(account: string, reason: SignInFailure, ip: string, count = true): void {
    if (count) this.#lockout.fail(account, this.#now());
    this.audit.append({ type: 'signin.failure', actor: `ip:${ip}`, subject: account, reason }, this.#now());
  }

  /** Audits a request the per-IP rate limit refused. */
  auditRateLimited(ip: string, subject: string): void {
    this.audit.append({ type: 'signin.failure', actor: `ip:${ip}`, subject, reason: 'rateLimited' }, this.#now());
  }

  #checkLocked(account: string, ip: string): void {
    const until = this.#lockout.lockedUntil(account, this.#now());
    if (until !== undefined) {
      this.#fail(account, 'locked', ip, false);
      throw new IssuerError('RATE_LIMITED', 'too many failed sign-ins for this account: try again later', 429, { retryAfterMs: until - this.#now() });
    }
  }

  /**
   * The roles and lifetime a certificate gets: requested roles (default: all the person's roles the
   * policy allows) must be held by the person AND allowed by the issuer's policy, else refused
   * (`FORBIDDEN`); the lifetime is min(requested or 12 h, policy maximum): a longer request is capped.
   */
  grant(person: Person, roles: readonly StaffRole[] | undefined, lifetimeMs: number | undefined): { roles: StaffRole[]; lifetimeMs: number } {
    const policy = this.certificate.policy;
    const wanted = roles ?? person.roles.filter((r) => policy.roles.includes(r));
    const granted = wanted.filter((r) => person.roles.includes(r) && policy.roles.includes(r));
    if (wanted.length === 0 || granted.length !== wanted.length) {
      throw new IssuerError('FORBIDDEN', `refused: roles ${wanted.join(',') || '(none)'} are not all held by you and grantable by this issuer (${policy.roles.join(',')})`);
    }
    const requested = lifetimeMs ?? DEFAULT_LIFETIME_MS;
    return { roles: [...granted], lifetimeMs: Math.max(60_000, Math.min(requested, policy.maxLifetimeMs, DEFAULT_LIFETIME_MS * 2)) };
  }

  /** Step 1: password. Returns the challenge the device signs and the second factors to use. */
  async signInStart(body: {
    username?: unknown; password?: unknown; identity?: { signingKey?: unknown; dhKey?: unknown }; roles?: unknown; lifetimeMs?: unknown;
  }, ip: string): Promise<{ signinId: string; challenge: string; factors: ('passkey' | 'totp')[]; passkeyOptions?: PublicKeyCredentialRequestOptionsJSON }> {
    if (typeof body.username !== 'string' || body.username.length > 64 || typeof body.password !== 'string' || utf8(body.password).length > MAX_PASSWORD_LENGTH) {
      throw new IssuerError('USAGE', 'give username and password (strings)');
    }
    const signingKey = hexKey(body.identity?.signingKey, 'identity.signingKey');
    const dhKey = hexKey(body.identity?.dhKey, 'identity.dhKey');
    const roles = body.roles === undefined ? undefined : Array.isArray(body.roles) ? checkRoles(body.roles) : (() => { throw new IssuerError('USAGE', 'roles: a list'); })();
    const lifetimeMs = body.lifetimeMs === undefined ? undefined
      : typeof body.lifetimeMs === 'number' && Number.isInteger(body.lifetimeMs) && body.lifetimeMs > 0 ? body.lifetimeMs
        : (() => { throw new IssuerError('USAGE', 'lifetimeMs: a positive integer'); })();
    const account = body.username.trim().toLowerCase();
    this.#checkLocked(account, ip);
    const found = this.directory.byUsername(account);
    const ok = await this.#passwords.check(found?.passwordHash, body.password);
    if (!found) {
      this.#fail(account, 'unknownUser', ip);
      throw refused();
    }
    if (!ok) {
      this.#fail(account, 'badPassword', ip);
      throw refused();
    }
    const person = found.person;
    if (person.disabled) {
      this.#fail(account, 'disabled', ip, false);
      throw new IssuerError('FORBIDDEN', 'this account is disabled');
    }
    if (person.factors.length === 0) {
      this.#fail(account, 'notEnrolled', ip, false);
      throw new IssuerError('UNAUTHENTICATED', 'enrolment is not finished: set up a passkey or an authenticator app with your invitation');
    }
    try {
      this.grant(person, roles, lifetimeMs);
    } catch (e) {
      this.#fail(account, 'policy', ip, false);
      throw e;
    }
    const challenge = getCrypto().randomBytes(32);
    const signinId = toHex(getCrypto().randomBytes(16));
    const passkeyOptions = person.factors.includes('passkey') ? await this.passkeys.authenticationOptions(person.personId) : undefined;
    this.#sweep();
    this.#pending.set(signinId, {
      account, personId: person.personId, signingKey, dhKey, challenge, passkeyChallenge: passkeyOptions?.challenge, roles, lifetimeMs, expiresAt: this.#now() + SIGNIN_TTL_MS,
    });
    return { signinId, challenge: toHex(challenge), factors: [...person.factors], ...(passkeyOptions ? { passkeyOptions } : {}) };
  }

  #sweep(): void {
    const now = this.#now();
    for (const [id, p] of this.#pending) if (p.expiresAt <= now) this.#pending.delete(id);
    for (const [id, c] of this.#enrolChallenges) if (c.expiresAt <= now) this.#enrolChallenges.delete(id);
  }

  /** Step 2: second factor, device proof, policy; issues the credential. The sign-in id is single-use. */
  async signInFinish(body: { signinId?: unknown; proof?: unknown; passkey?: unknown; totp?: unknown }, ip: string): Promise<IssuedCredential> {
    const pending = typeof body.signinId === 'string' ? this.#pending.get(body.signinId) : undefined;
    if (typeof body.signinId === 'string') this.#pending.delete(body.signinId);
    if (!pending || pending.expiresAt <= this.#now()) {
      this.audit.append({ type: 'signin.failure', actor: `ip:${ip}`, subject: '-', reason: 'badChallenge' }, this.#now());
      throw new IssuerError('UNAUTHENTICATED', 'unknown, used or expired sign-in: start again');
    }
    const { account, personId } = pending;
    this.#checkLocked(account, ip);
    const refuse = (reason: SignInFailure, message: string): never => {
      this.#fail(account, reason, ip);
      throw new IssuerError('UNAUTHENTICATED', message);
    };
    // Second factor.
    if (body.passkey !== undefined && body.passkey !== null) {
      const ok = pending.passkeyChallenge !== undefined && await this.passkeys.authenticate(personId, body.passkey as AuthenticationResponseJSON, pending.passkeyChallenge);
      if (!ok) refuse('badPasskey', 'the passkey does not verify');
    } else if (typeof body.totp === 'string') {
      const row = this.#db.prepare('SELECT secret, last_step FROM totp WHERE person_id = ? AND pending = 0').get(personId) as { secret: Buffer; last_step: number } | undefined;
      const step = row ? totpStep(this.#totpSecret(personId, row.secret), body.totp, this.#now()) : undefined;
      if (step === undefined) refuse('badTotp', 'the code is wrong or expired');
      const taken = this.#db.prepare('UPDATE totp SET last_step = ? WHERE person_id = ? AND last_step < ?').run(step!, personId, step!).changes === 1;
      if (!taken) refuse('replayedTotp', 'this code was already used: wait for the next one');
    } else {
      refuse('noSecondFactor', 'a second factor (passkey or authenticator code) is required');
    }
    // Proof of possession of the device identity key.
    const proof = typeof body.proof === 'string' && /^[0-9a-fA-F]{128}$/.test(body.proof) ? fromHex(body.proof.toLowerCase()) : undefined;
    if (!proof || !verifyContextSignature(pending.signingKey, 'staffSignIn', staffSignInPayload(pending.challenge, this.origin), proof)) {
      refuse('badProof', 'the device proof does not verify (sign the challenge and the issuer origin with the device identity key)');
    }
    // Policy, on the person as they are now.
    const person = this.directory.get(personId);
    if (!person || person.disabled) {
      this.#fail(account, 'disabled', ip, false);
      throw new IssuerError('FORBIDDEN', 'this account is disabled');
    }
    let grant: { roles: StaffRole[]; lifetimeMs: number };
    try {
      grant = this.grant(person, pending.roles, pending.lifetimeMs);
    } catch (e) {
      this.#fail(account, 'policy', ip, false);
      throw e;
    }
    const issued = this.issue(person, { signingKey: pending.signingKey, dhKey: pending.dhKey }, grant);
    this.#lockout.clear(account);
    this.audit.append({ type: 'signin.success', actor: `ip:${ip}`, subject: personId, details: { serial: issued.serial } }, this.#now());
    return issued.result;
  }

  /** Signs a staff certificate for the device (random 16-byte serial), records and audits it. */
  issue(person: Person, identity: { signingKey: Uint8Array; dhKey: Uint8Array }, grant: { roles: StaffRole[]; lifetimeMs: number }): { serial: string; result: IssuedCredential } {
    const issuedAt = this.#now();
    const expiresAt = issuedAt + grant.lifetimeMs;
    const serial = getCrypto().randomBytes(16);
    const staff = signStaffCertificate(this.#o.key.seed, {
      signingKey: identity.signingKey, dhKey: identity.dhKey, personId: person.personId, displayName: person.displayName, roles: grant.roles, issuedAt, expiresAt, serial,
    });
    const credential = encodeStaffCredential(this.#o.issuerCertificate, staff);
    const deviceId = deviceIdOf(identity);
    const serialHex = toHex(serial);
    this.#db.prepare('INSERT INTO issuances (serial, person_id, device_id, roles, issued_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)')
      .run(serialHex, person.personId, deviceId, JSON.stringify(grant.roles), issuedAt, expiresAt);
    this.audit.append({ type: 'issue', actor: 'issuer', subject: person.personId, details: { serial: serialHex, deviceId, roles: grant.roles, expiresAt } }, issuedAt);
    const sessionToken = this.directory.createSession(person.personId, grant.roles, expiresAt);
    return {
      serial: serialHex,
      result: { credential: toBase64(credential), personId: person.personId, displayName: person.displayName, roles: grant.roles, expiresAt, sessionToken },
    };
  }

  /** The person a device's certificates were issued to. */
  deviceOwner(deviceId: string): string | undefined {
    return (this.#db.prepare('SELECT person_id FROM issuances WHERE device_id = ? LIMIT 1').get(deviceId) as { person_id: string } | undefined)?.person_id;
  }

  // ---- admin --------------------------------------------------------------------------------

  /** The admin behind a bearer token: a live session whose certificate carried `admin`, and who still holds it. */
  admin(authorization: string | undefined): Person {
    const token = authorization?.startsWith('Bearer ') ? authorization.slice(7).trim() : undefined;
    const s = token ? this.directory.session(token) : undefined;
    if (!s) throw new IssuerError('UNAUTHENTICATED', 'sign in first (Authorization: Bearer <sessionToken>)');
    if (!s.roles.includes('admin') || !s.person.roles.includes('admin')) throw new IssuerError('FORBIDDEN', 'the admin role is required');
    return s.person;
  }
}
