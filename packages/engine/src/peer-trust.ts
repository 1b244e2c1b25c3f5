/**
 * The trust decisions about one peer, on a copy of its record (the engine persists the copy
 * and then applies it): is this identity the device id it claims; is the peer certified by the
 * pinned org key (docs/threats.md C17, C18); is it the pinned bot code (B3). Checks throw typed
 * errors; `apply…` verify a statement into the record and plan what follows.
 */
import {
  ParleyError,
  deviceIdOf,
  isParleyError,
  sameIdentity,
  toHex,
  verifyAttestation,
  verifyOrgCertificate,
  type PublicIdentity,
} from '@parley/protocol';
import { K, identityFromRecord, identityToRecord, type PeerRecord, type StoredAttestation, type StoredCertificate } from './records.js';
import type { TrustEvent, TrustPolicy } from './trust.js';

export interface PeerTrustOptions {
  /** This device's id (a peer may not be this device). */
  readonly selfId: string;
  readonly policy: TrustPolicy;
  readonly now: () => number;
  /** Certified labels (`org:<role>:<label>`) → device id; the engine's live view, updated after commits. */
  readonly labels: Map<string, string>;
  readonly onTrustEvent: (e: TrustEvent) => void;
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

  /** Org-level check for a peer that must be certified. */
  checkCertified(peer: string, rec: PeerRecord): void {
    if (!this.#o.policy.requiresCertificate(peer)) return;
    const cert = rec.cert;
    if (!cert) throw new ParleyError('UNTRUSTED_IDENTITY', 'peer has no org certificate', { details: { reason: 'missing', peer } });
    if (this.#o.now() >= cert.expiresAt) {
      throw new ParleyError('UNTRUSTED_IDENTITY', 'org certificate refused: expired', { details: { reason: 'expired', peer } });
    }
  }

  /**
   * Verifies a bot attestation into `rec` when the policy requires one for `peer` (given the role
   * of its verified certificate): against `identity`, the clock and the pinned measurement.
   * Does nothing for peers that need none.
   */
  applyAttestation(peer: string, rec: PeerRecord, identity: PublicIdentity, attestation: Uint8Array | undefined): void {
    const pinned = this.#o.policy.botMeasurement;
    if (!pinned || !this.#o.policy.requiresAttestation(peer, rec.cert?.role)) return;
    if (!attestation) {
      throw new ParleyError('ATTESTATION_INVALID', 'peer published no bot attestation', { details: { reason: 'missing', peer } });
    }
    let verified;
    try {
      verified = verifyAttestation(attestation, pinned, identity, { now: this.#o.now(), maxAgeMs: this.#o.policy.attestationMaxAgeMs });
    } catch (e) {
      if (isParleyError(e, 'ATTESTATION_INVALID')) {
        throw new ParleyError('ATTESTATION_INVALID', e.message, { details: { ...e.details, reason: 'invalid', peer } });
      }
      throw e;
    }
    const stored: StoredAttestation = { measurement: toHex(verified.measurement), issuedAt: verified.issuedAt, bytes: toHex(attestation) };
    rec.att = stored;
  }

  /** Bot-code check for a peer that must be attested: a verified attestation of the pinned measurement. */
  checkAttested(peer: string, rec: PeerRecord): void {
    const pinned = this.#o.policy.botMeasurement;
    if (!pinned || !this.#o.policy.requiresAttestation(peer, rec.cert?.role)) return;
    if (!rec.att) throw new ParleyError('ATTESTATION_INVALID', 'peer has no verified bot attestation', { details: { reason: 'missing', peer } });
    // A re-pinned measurement (new deploy) invalidates what was verified against the old pin.
    if (rec.att.measurement !== toHex(pinned)) {
      throw new ParleyError('ATTESTATION_INVALID', 'peer attested another measurement than the pinned one', { details: { reason: 'measurement', peer } });
    }
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
}
