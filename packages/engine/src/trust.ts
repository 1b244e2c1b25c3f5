/**
 * Who the engine will talk to (docs/threats.md C12, C17, C18).
 *
 * - **Device level.** A device id is a hash of the identity keys (protocol `deviceIdOf`), so the
 *   identity behind a device id cannot change. A bundle or prekey message whose identity does not
 *   hash to the device id it claims is a forgery and fails with `UNTRUSTED_IDENTITY`; it is never
 *   something the user could accept. The first identity seen for a device is recorded (TOFU) and
 *   is the one safety numbers are computed from.
 * - **Label level.** People and apps address peers by names ("support", "bob"). A label resolves
 *   to a device only through authenticated data: a verified org certificate, or an explicit
 *   `bindLabel` by the app. A known label that now points at another device is an identity
 *   change: `IDENTITY_CHANGED`, and sending to the new device is blocked until
 *   `acceptIdentityChange(peer)`. Messages already encrypted to the old device stay addressed to
 *   it; nothing is re-encrypted to the new key.
 * - **Organisation level.** With `orgKey` pinned, peers that must be the company's bots or
 *   agents (by default every peer) are accepted only with a valid org certificate (org-cert.ts),
 *   or a valid staff credential (staff-cert.ts): the org key certified an issuer, whose policy
 *   allows the roles and lifetime of the certificate it gave the staff device. A staff peer is
 *   checked again before every send and receive: expired, or named by a revocation list the
 *   engine holds (`setRevocationLists`, fetched from the relay by the client), it is refused
 *   with `UNTRUSTED_IDENTITY` reason `expired` or `revoked`.
 * - **Bot code level** (THREATS B3). With `botMeasurement` pinned (one or several) or
 *   `releaseManifests` on, peers that must be attested (by default every peer whose org
 *   certificate says `bot`) are accepted only with a bot attestation that verifies under the
 *   peer's identity, is fresh, and names an accepted measurement (`@parley/protocol/attestation`):
 *   a pinned one, or one that an org-signed release manifest published by the bot allows for
 *   its certified label now (`@parley/protocol` release-manifest.ts). Checked before the first
 *   message is encrypted to them; failures are `ATTESTATION_INVALID` and nothing is sent.
 */
import { DEFAULT_ATTESTATION_MAX_AGE_MS, ParleyError, fromHex } from '@parley/protocol';
import { STAFF_ROLES, type OrgRole, type StaffRole } from '@parley/protocol';

/** Trust configuration of a {@link ConversationEngine}. */
export interface TrustOptions {
  /** The pinned organisation Ed25519 public key: 32 bytes or 64 hex chars. */
  readonly orgKey?: Uint8Array | string;
  /**
   * Peers that must present a valid org certificate: `'all'` (the default when `orgKey` is set:
   * a customer talks only to the company), `'none'` (the default without `orgKey`), a list of
   * device ids, or a predicate.
   */
  readonly requireCertificate?: 'all' | 'none' | readonly string[] | ((peer: string) => boolean);
  /** Roles accepted from certificates. Default: `['bot', 'agent']`. */
  readonly roles?: readonly OrgRole[];
  /**
   * Staff roles accepted from staff credentials: a staff peer must hold at least one. Default:
   * every role (`agent`, `supervisor`, `compliance`, `admin`); `[]` accepts no staff device.
   */
  readonly staffRoles?: readonly StaffRole[];
  /**
   * A certified label ("support") moving to another certified device: `'accept'` (default: the
   * org vouches for the new device; an `identityChanged` trust event with `blocked: false` is
   * reported) or `'block'` (`IDENTITY_CHANGED` until `acceptIdentityChange`).
   */
  readonly onCertifiedChange?: 'accept' | 'block';
  /**
   * The pinned bot enclave measurement(s): 64 hex chars or 32 bytes each (`bot.measurement`,
   * `parley-bot measure <handler>`, or `computeMeasurement(handler)` from `@parley/bot`); several
   * during a rollout. Re-pin on every bot deploy, or use `releaseManifests` instead.
   */
  readonly botMeasurement?: string | Uint8Array | readonly (string | Uint8Array)[];
  /**
   * `true`: also accept a bot whose attested measurement is allowed by a release manifest it
   * publishes, signed by `orgKey` for the label of its org certificate and valid now
   * (`parley-org manifest`). Then pinning `orgKey` alone is enough and bot deploys need no client
   * release; `peerAttestation(peer).releaseVersion` names the accepted release. Needs `orgKey`.
   * Default `false`.
   */
  readonly releaseManifests?: boolean;
  /**
   * Peers that must present a valid attestation: `'bots'` (the default when `botMeasurement` or
   * `releaseManifests` is set: peers whose verified org certificate has role `bot`, so it needs
   * `orgKey` to mean anything), `'all'`, `'none'` (the default otherwise), a list of device ids,
   * or a predicate.
   */
  readonly requireAttestation?: 'bots' | 'all' | 'none' | readonly string[] | ((peer: string) => boolean);
  /** Oldest attestation accepted when a session starts. Default 24 h (bots re-attest every 12 h). */
  readonly attestationMaxAgeMs?: number;
}

/** Reported through `onTrustEvent`. */
export interface IdentityChangedEvent {
  readonly type: 'identityChanged';
  /** The new device. */
  readonly peer: string;
  /** The label that moved (`org:<role>:<label>` for certified labels). */
  readonly label: string;
  /** The device the label pointed at before. */
  readonly previous: string;
  /** True when sending to `peer` is blocked until `acceptIdentityChange(peer)`. */
  readonly blocked: boolean;
}

export type TrustEvent = IdentityChangedEvent;

/** Resolved, validated trust settings. */
export interface TrustPolicy {
  readonly orgKey: Uint8Array | undefined;
  readonly roles: readonly OrgRole[];
  /** Staff roles accepted from staff credentials (a staff peer must hold one). */
  readonly staffRoles: readonly StaffRole[];
  readonly onCertifiedChange: 'accept' | 'block';
  requiresCertificate(peer: string): boolean;
  /** The first pinned bot measurement (32 bytes), if any. */
  readonly botMeasurement: Uint8Array | undefined;
  /** Every pinned bot measurement (32 bytes each). */
  readonly botMeasurements: readonly Uint8Array[];
  /** Whether org-signed release manifests may allow a bot's measurement. */
  readonly releaseManifests: boolean;
  readonly attestationMaxAgeMs: number;
  /** Whether `peer` (with the role of its verified certificate, if any) must be attested. */
  requiresAttestation(peer: string, role: OrgRole | undefined): boolean;
}

/** @throws ParleyError `USAGE` for a malformed org key or option. */
export function resolveTrust(options: TrustOptions = {}): TrustPolicy {
  let orgKey: Uint8Array | undefined;
  if (options.orgKey !== undefined) {
    if (typeof options.orgKey === 'string') {
      if (!/^[0-9a-fA-F]{64}$/.test(options.orgKey)) throw new ParleyError('USAGE', 'trust.orgKey must be 64 hex chars');
      orgKey = fromHex(options.orgKey);
    } else if (options.orgKey instanceof Uint8Array && options.orgKey.length === 32) {
      orgKey = options.orgKey.slice();
    } else {
      throw new ParleyError('USAGE', 'trust.orgKey must be 32 bytes');
    }
  }
  const req = options.requireCertificate ?? (orgKey ? 'all' : 'none');
  let requiresCertificate: (peer: string) => boolean;
  if (req === 'all') requiresCertificate = () => true;
  else if (req === 'none') requiresCertificate = () => false;
  else if (typeof req === 'function') requiresCertificate = req;
  else if (Array.isArray(req)) {
    const set = new Set<string>(req);
    requiresCertificate = (peer) => set.has(peer);
  } else throw new ParleyError('USAGE', 'trust.requireCertificate is invalid');
  if (req !== 'none' && !orgKey) throw new ParleyError('USAGE', 'trust.requireCertificate needs trust.orgKey');
  const roles = options.roles ?? ['bot', 'agent'];
  const staffRoles = options.staffRoles ?? STAFF_ROLES;
  if (!Array.isArray(staffRoles) || staffRoles.some((r) => !STAFF_ROLES.includes(r as StaffRole))) {
    throw new ParleyError('USAGE', `trust.staffRoles must list roles among ${STAFF_ROLES.join(', ')}`);
  }
  const onCertifiedChange = options.onCertifiedChange ?? 'accept';
  if (onCertifiedChange !== 'accept' && onCertifiedChange !== 'block') throw new ParleyError('USAGE', 'trust.onCertifiedChange is invalid');

  const pins = options.botMeasurement === undefined ? [] : Array.isArray(options.botMeasurement) ? options.botMeasurement : [options.botMeasurement];
  const botMeasurements = (pins as readonly (string | Uint8Array)[]).map(measurementPin);
  const botMeasurement = botMeasurements[0];
  const releaseManifests = options.releaseManifests ?? false;
  if (typeof releaseManifests !== 'boolean') throw new ParleyError('USAGE', 'trust.releaseManifests must be a boolean');
  if (releaseManifests && !orgKey) throw new ParleyError('USAGE', 'trust.releaseManifests needs trust.orgKey (the key that signs them)');
  const attests = botMeasurement !== undefined || releaseManifests;
  const att = options.requireAttestation ?? (attests ? 'bots' : 'none');
  let requiresAttestation: (peer: string, role: OrgRole | undefined) => boolean;
  if (att === 'bots') requiresAttestation = (_peer, role) => role === 'bot';
  else if (att === 'all') requiresAttestation = () => true;
  else if (att === 'none') requiresAttestation = () => false;
  else if (typeof att === 'function') requiresAttestation = (peer) => att(peer);
  else if (Array.isArray(att)) {
    const set = new Set<string>(att);
    requiresAttestation = (peer) => set.has(peer);
  } else throw new ParleyError('USAGE', 'trust.requireAttestation is invalid');
  if (att !== 'none' && !attests) throw new ParleyError('USAGE', 'trust.requireAttestation needs trust.botMeasurement or trust.releaseManifests');
  const attestationMaxAgeMs = options.attestationMaxAgeMs ?? DEFAULT_ATTESTATION_MAX_AGE_MS;
  if (!Number.isSafeInteger(attestationMaxAgeMs) || attestationMaxAgeMs <= 0) throw new ParleyError('USAGE', 'trust.attestationMaxAgeMs must be a positive integer');
  return { orgKey, roles, staffRoles, onCertifiedChange, requiresCertificate, botMeasurement, botMeasurements, releaseManifests, attestationMaxAgeMs, requiresAttestation };
}

/** One pinned measurement as 32 bytes. @throws ParleyError `USAGE`. */
function measurementPin(m: string | Uint8Array): Uint8Array {
  if (typeof m === 'string') {
    if (!/^[0-9a-fA-F]{64}$/.test(m)) throw new ParleyError('USAGE', 'trust.botMeasurement must be 64 hex chars');
    return fromHex(m);
  }
  if (m instanceof Uint8Array && m.length === 32) return m.slice();
  throw new ParleyError('USAGE', 'trust.botMeasurement must be 32 bytes');
}
