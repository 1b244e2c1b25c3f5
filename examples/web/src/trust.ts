/**
 * The badge: is the peer really Acme's support bot, running the code we pinned?
 *
 * - the bot's identity hashes to the device id the widget talks to (the engine enforces the
 *   same for every bundle and prekey message, so this is the identity the session uses);
 * - an organisation certificate for that identity, role `bot`, label `support`, verifies under
 *   the org key pinned in this bundle at build time;
 * - the enclave's attestation verifies under that identity and carries the measurement pinned
 *   at build time.
 *
 * The certificate and the attestation come from the demo server's `/api/config`, an untrusted
 * channel: everything is checked cryptographically against the pins, never taken on its word.
 */
import { deviceIdOf, fromHex, type PublicIdentity } from '@parley/protocol';
import { verifyAttestation, type BotAttestation } from '@parley/bot/attestation';
import { fromBase64, verifyOrgCertificate } from '@parley/client/core';

/** What `/api/config` returns. */
export interface DemoConfig {
  botDeviceId: string;
  botIdentity: { signingKey: string; dhKey: string; binding: string };
  certificate: string;
  attestation: { version: 1; deviceId: string; measurement: string; issuedAt: number; signature: string };
}

export interface TrustVerdict {
  readonly verified: boolean;
  /** Why not, in words. */
  readonly reason: string;
  readonly measurement: string;
  readonly identity: PublicIdentity;
}

const hex = (b: Uint8Array): string => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');

/** Checks the bot against the pins. Never throws: a failure is an unverified verdict. */
export function checkBot(cfg: DemoConfig, pins: { orgKey: string; measurement: string; label: string }): TrustVerdict {
  const identity: PublicIdentity = {
    signingKey: fromBase64(cfg.botIdentity.signingKey),
    dhKey: fromBase64(cfg.botIdentity.dhKey),
    binding: fromBase64(cfg.botIdentity.binding),
  };
  const attestation: BotAttestation = {
    version: cfg.attestation.version,
    deviceId: cfg.attestation.deviceId,
    measurement: fromBase64(cfg.attestation.measurement),
    issuedAt: cfg.attestation.issuedAt,
    signature: fromBase64(cfg.attestation.signature),
  };
  const measurement = hex(attestation.measurement);
  try {
    if (deviceIdOf(identity) !== cfg.botDeviceId) return { verified: false, reason: 'identity does not match the bot device id', measurement, identity };
    verifyOrgCertificate(fromBase64(cfg.certificate), { orgKey: fromHex(pins.orgKey), identity, now: Date.now(), roles: ['bot'], label: pins.label });
    verifyAttestation(attestation, pins.measurement, identity);
    return { verified: true, reason: 'certified by Acme, enclave measurement matches the pinned value', measurement, identity };
  } catch (e) {
    const code = (e as { code?: string }).code ?? 'ERROR';
    return { verified: false, reason: `${code}: ${(e as Error).message}`, measurement, identity };
  }
}
