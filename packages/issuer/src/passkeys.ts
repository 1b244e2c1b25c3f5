/**
 * Passkeys (WebAuthn) with `@simplewebauthn/server`: registration at enrolment, assertion at
 * sign-in. The credential record (public key, signature counter, transports) is sealed at rest
 * under the sealing key, with `passkey:<credential id>` as the record key.
 */
import { openRecord, sealRecord } from '@parley/engine';
import { fromBase64, toBase64, utf8 } from '@parley/protocol';
import {
  generateAuthenticationOptions, generateRegistrationOptions, verifyAuthenticationResponse, verifyRegistrationResponse,
  type AuthenticationResponseJSON, type AuthenticatorTransportFuture, type PublicKeyCredentialCreationOptionsJSON,
  type PublicKeyCredentialRequestOptionsJSON, type RegistrationResponseJSON,
} from '@simplewebauthn/server';
import type Database from 'better-sqlite3';

export type { AuthenticationResponseJSON, PublicKeyCredentialCreationOptionsJSON, PublicKeyCredentialRequestOptionsJSON, RegistrationResponseJSON };

/** Relying party settings. */
export interface RelyingParty {
  /** Shown by the authenticator. */
  readonly name: string;
  /** The RP ID (a registrable domain of the origins, e.g. `localhost`). */
  readonly id: string;
  /** Origins the browser may report (the agent console's). */
  readonly origins: readonly string[];
}

interface PasskeyRecord { publicKey: string; counter: number; transports: AuthenticatorTransportFuture[] }

const recordKey = (credentialId: string) => `passkey:${credentialId}`;

/** The passkeys of the directory, sealed at rest. */
export class Passkeys {
  readonly #db: Database.Database;
  readonly #key: Uint8Array;
  readonly #rp: RelyingParty;

  constructor(db: Database.Database, sealingKey: Uint8Array, rp: RelyingParty) {
    this.#db = db;
    this.#key = sealingKey;
    this.#rp = rp;
  }

  #ids(personId: string): { id: string; transports: AuthenticatorTransportFuture[] }[] {
    const rows = this.#db.prepare('SELECT credential_id, record FROM passkeys WHERE person_id = ?').all(personId) as { credential_id: string; record: Buffer }[];
    return rows.map((r) => ({ id: r.credential_id, transports: this.#open(r.credential_id, r.record).transports }));
  }

  #open(credentialId: string, sealed: Buffer): PasskeyRecord {
    return JSON.parse(new TextDecoder().decode(openRecord(this.#key, recordKey(credentialId), new Uint8Array(sealed)))) as PasskeyRecord;
  }

  #seal(credentialId: string, r: PasskeyRecord): Buffer {
    return Buffer.from(sealRecord(this.#key, recordKey(credentialId), utf8(JSON.stringify(r))));
  }

  /** Options for `navigator.credentials.create` (the challenge is the caller's to remember). */
  registrationOptions(person: { personId: string; username: string; displayName: string }): Promise<PublicKeyCredentialCreationOptionsJSON> {
    return generateRegistrationOptions({
      rpName: this.#rp.name, rpID: this.#rp.id, userName: person.username, userDisplayName: person.displayName,
      userID: new Uint8Array(utf8(person.personId)), attestationType: 'none', timeout: 120_000,
      excludeCredentials: this.#ids(person.personId),
      authenticatorSelection: { residentKey: 'preferred', userVerification: 'required' },
    });
  }

  /** Verifies a registration and stores the credential. @returns false when it does not verify. */
  async register(personId: string, response: RegistrationResponseJSON, expectedChallenge: string, now: number): Promise<boolean> {
    let verified;
    try {
      verified = await verifyRegistrationResponse({
        response, expectedChallenge, expectedOrigin: [...this.#rp.origins], expectedRPID: this.#rp.id, requireUserVerification: true,
      });
    } catch {
      return false;
    }
    if (!verified.verified) return false;
    const c = verified.registrationInfo.credential;
    const record: PasskeyRecord = { publicKey: toBase64(c.publicKey), counter: c.counter, transports: c.transports ?? [] };
    this.#db.prepare('INSERT OR REPLACE INTO passkeys (credential_id, person_id, record, created_at) VALUES (?, ?, ?, ?)').run(c.id, personId, this.#seal(c.id, record), now);
    return true;
  }

  /** Options for `navigator.credentials.get` limited to the person's passkeys. */
  authenticationOptions(personId: string): Promise<PublicKeyCredentialRequestOptionsJSON> {
    return generateAuthenticationOptions({ rpID: this.#rp.id, allowCredentials: this.#ids(personId), userVerification: 'required', timeout: 120_000 });
  }

  /**
   * Verifies an assertion by one of the person's passkeys for `expectedChallenge` from one of the
   * origins; updates the counter. @returns false for anything that does not verify (wrong
   * origin, another challenge, unknown credential, counter not increasing).
   */
  async authenticate(personId: string, response: AuthenticationResponseJSON, expectedChallenge: string): Promise<boolean> {
    if (typeof response?.id !== 'string') return false;
    const row = this.#db.prepare('SELECT record FROM passkeys WHERE credential_id = ? AND person_id = ?').get(response.id, personId) as { record: Buffer } | undefined;
    if (!row) return false;
    const record = this.#open(response.id, row.record);
    try {
      const v = await verifyAuthenticationResponse({
        response, expectedChallenge, expectedOrigin: [...this.#rp.origins], expectedRPID: this.#rp.id, requireUserVerification: true,
        credential: { id: response.id, publicKey: new Uint8Array(fromBase64(record.publicKey)), counter: record.counter, transports: record.transports },
      });
      if (!v.verified) return false;
      this.#db.prepare('UPDATE passkeys SET record = ? WHERE credential_id = ?').run(this.#seal(response.id, { ...record, counter: v.authenticationInfo.newCounter }), response.id);
      return true;
    } catch {
      return false;
    }
  }
}
