/**
 * The trust decisions about one peer, on a copy of its record (the engine persists the copy
 * and then applies it): is this identity the device id it claims; is the peer certified by the
 * pinned org key (docs/threats.md C17, C18), with an org certificate or a staff credential (org
 * key → issuer → device, checked again against expiry and the revocation lists on every send
 * and receive); is it accepted bot code (B3): a pinned measurement, or one an org-signed release
 * manifest allows for its certified label. Checks throw typed errors; `apply…` verify a
 * statement into the record and plan what follows.
 */
import {
  ParleyError,
  constantTimeEqual,
  decodeAttestation,
  decodeReleaseManifestList,
  deviceIdOf,
  isParleyError,
  isStaffCredential,
  sameIdentity,
  selectReleaseManifest,
  toHex,
  verifyAttestation,
  verifyOrgCertificate,
  verifyStaffCredential,
  type PublicIdentity,
  type RevocationList,
} from '@parley/protocol';
import {
  K,
  identityFromRecord,
  identityToRecord,
  type PeerRecord,
  type StoredAttestation,
  type StoredCertificate,
  type StoredRelease,
  type StoredStaff,
} from './records.js';
import type { TrustEvent, TrustPolicy } from './trust.js';

export interface PeerTrustOptions {
  /** This device's id (a peer may not be this device). */
  readonly selfId: string;
  readonly policy: TrustPolicy;
  readonly now: () => number;
  /** Certified labels (`org:<role>:<label>`) → device id; the engine's live view, updated after commits. */
  readonly labels: Map<string, string>;
  readonly onTrustEvent: (e: TrustEvent) => void;
  /** The verified staff revocation lists held now. */
  readonly revocations: () => readonly RevocationList[];
}

export class PeerTrust {
  readonly #o: PeerTrustOptions;

  constructor(options: PeerTrustOptions) {
    this.#o = options;
  }

  /** Device-level check: the identity must hash to the device id, and match what was recorded. */
  checkIdentity(peer: string, identity: PublicIdentity, rec: PeerRecord): void {
    if (peer === this.#o.selfId) throw new ParleyError('USAGE', 'cannot open a conversation with this device itself');
    if (deviceIdOf(identity) !== peer) {
      throw new ParleyError('UNTRUSTED_IDENTITY', 'identity does not belong to the device id it claims', { details: { peer } });
    }
    if (rec.identity && !sameIdentity(identityFromRecord(rec.identity), identity)) {
      // Unreachable unless the device-id hash collides; kept as a belt-and-braces check.
      throw new ParleyError('UNTRUSTED_IDENTITY', 'identity differs from the one recorded for this device', { details: { peer } });
    }
    rec.identity ??= identityToRecord(identity);
  }

  /**
   * Verifies a certificate into `rec` and the label it names; pushes label writes. Returns a
   * callback to run after the commit (in-memory label update and trust event).
   */
  applyCertificate(peer: string, rec: PeerRecord, identity: PublicIdentity, certificate: Uint8Array, writes: [string, Uint8Array][]): () => void {
    const orgKey = this.#o.policy.orgKey;
    if (!orgKey) throw new ParleyError('USAGE', 'no trust.orgKey pinned; cannot verify an org certificate');
    if (isStaffCredential(certificate)) {
      this.#applyStaff(peer, rec, identity, certificate, orgKey);
      return () => undefined;
    }
    const cert = verifyOrgCertificate(certificate, { orgKey, identity, now: this.#o.now(), roles: this.#o.policy.roles });
    const stored: StoredCertificate = { role: cert.role, label: cert.label, expiresAt: cert.expiresAt, bytes: toHex(certificate) };
    rec.cert = stored;
    const label = `org:${cert.role}:${cert.label}`;
    const previous = this.#o.labels.get(label);
    if (previous === peer) return () => undefined;
    if (previous !== undefined && this.#o.policy.onCertifiedChange === 'block') {
      rec.blocked = { label, previous };
      return () => this.#o.onTrustEvent({ type: 'identityChanged', peer, label, previous, blocked: true });
    }
    writes.push([K.label(label), new TextEncoder().encode(peer)]);
    return () => {
      this.#o.labels.set(label, peer);
      if (previous !== undefined) this.#o.onTrustEvent({ type: 'identityChanged', peer, label, previous, blocked: false });
    };
  }

  /**
   * Verifies a staff credential (org key → issuer → device, policy, expiry, identity, the
   * revocation lists held) into `rec`. Staff devices get no certified label: a person's name is
   * shown from the credential, and each of their devices is its own peer.
   */
  #applyStaff(peer: string, rec: PeerRecord, identity: PublicIdentity, credential: Uint8Array, orgKey: Uint8Array): void {
    let staff;
    try {
      staff = verifyStaffCredential(credential, { orgKey, identity, now: this.#o.now(), revocations: this.#o.revocations() });
    } catch (e) {
      if (isParleyError(e, 'UNTRUSTED_IDENTITY')) throw new ParleyError('UNTRUSTED_IDENTITY', e.message, { details: { ...e.details, peer } });
      throw e;
    }
    if (!staff.roles.some((r) => this.#o.policy.staffRoles.includes(r))) {
      throw new ParleyError('UNTRUSTED_IDENTITY', 'staff credential refused: none of its roles is accepted here (trust.staffRoles)', { details: { reason: 'role', peer } });
    }
    const stored: StoredStaff = {
      personId: staff.personId,
      displayName: staff.displayName,
      roles: staff.roles,
      issuedAt: staff.issuedAt,
      expiresAt: staff.expiresAt,
      serial: staff.serial,
      issuerKey: toHex(staff.issuerKey),
      issuerName: staff.issuerName,
      bytes: toHex(credential),
    };
    rec.staff = stored;
  }

  /**
   * A verified staff peer, checked again now: expired, or named by a revocation list held
   * (the device, or the person for the issuer that certified them), it is refused.
   */
  #checkStaff(peer: string, staff: StoredStaff): void {
    if (this.#o.now() >= staff.expiresAt) {
      throw new ParleyError('UNTRUSTED_IDENTITY', 'staff credential refused: expired', { details: { reason: 'expired', peer } });
    }
    for (const list of this.#o.revocations()) {
      const person = toHex(list.issuerKey) === staff.issuerKey && list.persons.includes(staff.personId); // ct-ok: public keys
      if (person || list.devices.includes(peer)) {
        throw new ParleyError('UNTRUSTED_IDENTITY', `staff credential refused: the ${person ? 'person' : 'device'} is revoked`, { details: { reason: 'revoked', peer } });
      }
    }
  }

  /** Org-level check for a peer that must be certified (a staff peer is checked whenever it has a credential). */
  checkCertified(peer: string, rec: PeerRecord): void {
    if (rec.staff) {
      this.#checkStaff(peer, rec.staff);
      return;
    }
    if (!this.#o.policy.requiresCertificate(peer)) return;
    const cert = rec.cert;
    if (!cert) throw new ParleyError('UNTRUSTED_IDENTITY', 'peer has no org certificate', { details: { reason: 'missing', peer } });
    if (this.#o.now() >= cert.expiresAt) {
      throw new ParleyError('UNTRUSTED_IDENTITY', 'org certificate refused: expired', { details: { reason: 'expired', peer } });
    }
  }

  /** True when the policy checks bot code at all (a pinned measurement, or release manifests). */
  #attests(peer: string, rec: PeerRecord): boolean {
    const p = this.#o.policy;
    return (p.botMeasurements.length > 0 || p.releaseManifests) && p.requiresAttestation(peer, rec.cert?.role);
  }

  /**
   * Verifies a bot attestation into `rec` when the policy requires one for `peer` (given the role
   * of its verified certificate): against `identity`, the clock, and the accepted measurements:
   * a pinned one, or (trust `releaseManifests`) one that a release manifest in `manifests` (the
   * bot's published list) allows for its certified label now. Does nothing for peers that need none.
   */
  applyAttestation(peer: string, rec: PeerRecord, identity: PublicIdentity, attestation: Uint8Array | undefined, manifests?: Uint8Array): void {
    if (!this.#attests(peer, rec)) return;
    if (!attestation) {
      throw new ParleyError('ATTESTATION_INVALID', 'peer published no bot attestation', { details: { reason: 'missing', peer } });
    }
    const policy = this.#o.policy;
    let verified;
    try {
      // Signature under the peer's identity, device id and age are verified here; against its own
      // measurement, because which measurements are accepted is decided below (pins, manifests).
      const decoded = decodeAttestation(attestation);
      const pinned = policy.botMeasurements.some((m) => constantTimeEqual(m, decoded.measurement));
      if (!pinned && !policy.releaseManifests) {
        // Only direct pins: refused as before (the pinned value is what the attestation must name).
        verifyAttestation(decoded, policy.botMeasurements[0]!, identity, { now: this.#o.now(), maxAgeMs: policy.attestationMaxAgeMs });
      }
      verified = verifyAttestation(decoded, decoded.measurement, identity, { now: this.#o.now(), maxAgeMs: policy.attestationMaxAgeMs });
    } catch (e) {
      if (isParleyError(e, 'ATTESTATION_INVALID')) {
        throw new ParleyError('ATTESTATION_INVALID', e.message, { details: { ...e.details, reason: 'invalid', peer } });
      }
      throw e;
    }
    const release = this.#release(peer, rec, verified.measurement, manifests);
    const stored: StoredAttestation = {
      measurement: toHex(verified.measurement),
      issuedAt: verified.issuedAt,
      bytes: toHex(attestation),
      ...(release ? { release } : {}),
    };
    rec.att = stored;
  }

  /**
   * The release manifest allowing `measurement`, when release manifests are on. For a pinned
   * measurement it is only looked up for its version (a refused one changes nothing); otherwise
   * it is required.
   * @throws ParleyError `ATTESTATION_INVALID` reason `measurement` (no manifest names it, or the
   *   peer has no certified label) or `manifest` (those that name it are all refused, `refusal`).
   */
  #release(peer: string, rec: PeerRecord, measurement: Uint8Array, manifests: Uint8Array | undefined): StoredRelease | undefined {
    const policy = this.#o.policy;
    const pinned = policy.botMeasurements.some((m) => constantTimeEqual(m, measurement));
    if (!policy.releaseManifests || !policy.orgKey) return undefined;
    try {
      if (!rec.cert) {
        throw new ParleyError('ATTESTATION_INVALID', 'peer has no certified label to check its release manifests against', { details: { reason: 'measurement' } });
      }
      let list: Uint8Array[];
      try {
        list = manifests && manifests.length > 0 ? decodeReleaseManifestList(manifests) : [];
      } catch {
        throw new ParleyError('ATTESTATION_INVALID', 'release manifest refused: malformed list', { details: { reason: 'manifest', refusal: 'malformed' } });
      }
      const m = selectReleaseManifest(list, { orgKey: policy.orgKey, label: rec.cert.label, measurement, now: this.#o.now() });
      return {
        version: m.releaseVersion,
        label: m.label,
        orgKey: toHex(m.orgKey),
        validFrom: m.validFrom,
        ...(m.validUntil !== undefined ? { validUntil: m.validUntil } : {}),
      };
    } catch (e) {
      if (pinned) return undefined;
      if (isParleyError(e, 'ATTESTATION_INVALID')) {
        const message = e.details?.reason === 'measurement' ? 'peer attested a measurement that is neither pinned nor allowed by a valid release manifest' : e.message;
        throw new ParleyError('ATTESTATION_INVALID', message, { details: { ...e.details, peer } });
      }
      throw e;
    }
  }

  /** Bot-code check for a peer that must be attested: a verified attestation of an accepted measurement. */
  checkAttested(peer: string, rec: PeerRecord): void {
    if (!this.#attests(peer, rec)) return;
    if (!rec.att) throw new ParleyError('ATTESTATION_INVALID', 'peer has no verified bot attestation', { details: { reason: 'missing', peer } });
    // A re-pinned measurement (new deploy) invalidates what was verified against the old pin.
    const policy = this.#o.policy;
    const pinned = policy.botMeasurements.some((m) => toHex(m) === rec.att!.measurement); // ct-ok: public measurements
    if (!pinned) this.#checkRelease(peer, rec, rec.att);
    // Checked on every send and receive, not only when the session started (issue 10, finding 6):
    // a bot re-attests every 12 h, so a stale one means the bot stopped proving what code it runs.
    // Fetch its current attestation (a changed measurement is then refused) and try again.
    const ageMs = this.#o.now() - rec.att.issuedAt;
    if (ageMs > this.#o.policy.attestationMaxAgeMs) {
      throw new ParleyError('ATTESTATION_INVALID', 'the stored bot attestation is older than the accepted age; fetch its current one', {
        details: { reason: 'expired', peer, ageMs, maxAgeMs: this.#o.policy.attestationMaxAgeMs },
      });
    }
  }

  /** A stored attestation that was not pinned must still be allowed by its release manifest now. */
  #checkRelease(peer: string, rec: PeerRecord, att: StoredAttestation): void {
    const policy = this.#o.policy;
    const r = att.release;
    // No manifest, another org key pinned since, or another certified label: fetch its current statements.
    if (!policy.releaseManifests || !r || !policy.orgKey || r.orgKey !== toHex(policy.orgKey) || r.label !== rec.cert?.label) { // ct-ok: public keys and labels
      throw new ParleyError('ATTESTATION_INVALID', 'peer attested another measurement than the pinned one', { details: { reason: 'measurement', peer } });
    }
    const now = this.#o.now();
    if (now < r.validFrom || (r.validUntil !== undefined && now >= r.validUntil)) {
      throw new ParleyError('ATTESTATION_INVALID', 'the release manifest that allowed the peer\'s code is no longer valid; fetch its current one', {
        details: { reason: 'manifest', refusal: now < r.validFrom ? 'notYetValid' : 'expired', peer },
      });
    }
  }
}
