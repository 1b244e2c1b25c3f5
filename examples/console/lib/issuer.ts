/**
 * The console demo's issuer: `@parley/issuer`'s `createIssuer`, with the console's origin as
 * its public origin (WebAuthn RP ID `localhost`, the origin passkey assertions and device proofs
 * must name) and the relay as the place its revocation lists go.
 */
import { join } from 'node:path';
import { createIssuer, totpCode, type CreateIssuerOptions, type RunningIssuer } from '@parley/issuer';
import type { StaffRole } from '@parley/protocol';

export interface ConsoleIssuer {
  readonly url: string;
  readonly port: number;
  readonly running: RunningIssuer;
  /** Adds a person (as the operator, like `parley-issuer staff add`); returns the one-time invitation. */
  addStaff(f: { username: string; displayName: string; roles: readonly StaffRole[] }): Promise<string>;
  close(): Promise<void>;
}

export async function startIssuerService(o: {
  dataDir: string;
  issuerSeed: Uint8Array;
  issuerPublicKey: Uint8Array;
  certificate: Uint8Array;
  origin: string;
  relayUrl: string;
  options?: Partial<CreateIssuerOptions>;
}): Promise<ConsoleIssuer> {
  const running = await createIssuer({
    db: join(o.dataDir, 'issuer.db'),
    key: { seed: o.issuerSeed, publicKey: o.issuerPublicKey },
    issuerCertificate: o.certificate,
    origin: o.origin,
    consoleOrigins: [o.origin],
    relay: o.relayUrl,
    port: 0,
    ...o.options,
  });
  return {
    url: running.url,
    port: running.port,
    running,
    async addStaff(f) {
      return running.service.directory.add(f, 'operator').invitation;
    },
    close: () => running.close(),
  };
}

/** The current code of a TOTP secret (base32), for tests standing in for an authenticator app. */
export function totpCodeFor(secret: string, time: number): string {
  return totpCode(secret, time);
}
