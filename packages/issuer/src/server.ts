/**
 * Starts an issuer: opens the database (holding its lock), loads the sealing key, builds the
 * service and the HTTP API, listens (127.0.0.1 by default), signs and publishes a pending
 * revocation list, and retries publishing every 30 s until the relay has the current one.
 */
import { initCrypto } from '@parley/protocol';
import type { Logger } from 'pino';
import { openIssuerDb, type IssuerDb } from './db.js';
import { buildHttp, type IpRateLimit } from './http.js';
import { loadSealingKey, type IssuerKey } from './keys.js';
import type { LockoutPolicy } from './lockout.js';
import type { PasswordCost } from './passwords.js';
import { IssuerService } from './service.js';

/** Options of {@link createIssuer}. */
export interface CreateIssuerOptions {
  /** SQLite file (created with mode 0600), or `:memory:`. */
  readonly db: string;
  readonly key: IssuerKey;
  /** The issuer certificate from `parley-org certify-issuer` (binary). */
  readonly issuerCertificate: Uint8Array;
  /** Sealing key (32 bytes); default: read or create `<db>.sealing.key` (mode 0600). */
  readonly sealingKey?: Uint8Array;
  /** The issuer's public origin (device proofs, default passkey RP ID); default the listening URL. */
  readonly origin?: string;
  /** The agent console's origins: CORS and the origins passkey assertions may come from. */
  readonly consoleOrigins?: readonly string[];
  /** WebAuthn RP ID (default: the hostname of `origin`). */
  readonly rpId?: string;
  /** Relay base URL that receives revocation lists (`POST /v1/revocations`). */
  readonly relay?: string;
  readonly host?: string;
  /** 0 = any free port. */
  readonly port?: number;
  readonly lockout?: LockoutPolicy;
  readonly ipRateLimit?: IpRateLimit;
  /** Reverse proxies whose `X-Forwarded-For` is believed (addresses or CIDRs). */
  readonly trustProxy?: readonly string[];
  readonly passwordCost?: PasswordCost;
  readonly logger?: Logger;
  readonly now?: () => number;
  /** How often the server signs a list for revocations made by the CLI and retries publishing (default 30 s). */
  readonly revocationCheckMs?: number;
}

/** A running issuer. */
export interface RunningIssuer {
  readonly url: string;
  readonly origin: string;
  readonly port: number;
  readonly service: IssuerService;
  close(): Promise<void>;
}

/** Starts an issuer. */
export async function createIssuer(o: CreateIssuerOptions): Promise<RunningIssuer> {
  await initCrypto();
  const handle: IssuerDb = openIssuerDb(o.db, { lock: true });
  try {
    const sealingKey = o.sealingKey ?? (o.db === ':memory:' ? crypto.getRandomValues(new Uint8Array(32)) : loadSealingKey(`${o.db}.sealing.key`, true));
    const host = o.host ?? '127.0.0.1';
    // The origin is needed before listening when port 0 is asked for: listen first, then build.
    const probe = await import('node:net').then(({ createServer }) => new Promise<number>((resolve, reject) => {
      if (o.port !== undefined && o.port !== 0) return resolve(o.port);
      const srv = createServer();
      srv.once('error', reject);
      srv.listen(0, host, () => {
        const port = (srv.address() as { port: number }).port;
        srv.close(() => resolve(port));
      });
    }));
    const url = `http://${host.includes(':') ? `[${host}]` : host}:${probe}`;
    const origin = new URL(o.origin ?? url).origin;
    const warn = (msg: string) => o.logger?.warn({ event: 'revocationPublish' }, msg);
    const service = new IssuerService({
      db: handle.db, sealingKey, key: o.key, issuerCertificate: o.issuerCertificate, origin,
      ...(o.rpId ? { rpId: o.rpId } : {}), passkeyOrigins: o.consoleOrigins?.length ? o.consoleOrigins : [origin],
      ...(o.lockout ? { lockout: o.lockout } : {}), ...(o.passwordCost ? { passwordCost: o.passwordCost } : {}),
      ...(o.relay ? { relay: o.relay } : {}), ...(o.now ? { now: o.now } : {}), warn,
    });
    let publishing: Promise<boolean> = Promise.resolve(true);
    const update = () => {
      publishing = publishing.then(() => service.revocations.update()).catch((e: unknown) => {
        o.logger?.error({ event: 'revocationUpdate', err: e instanceof Error ? e.message : String(e) }, 'cannot sign or publish the revocation list');
        return false;
      });
      return publishing;
    };
    const app = await buildHttp({
      service, consoleOrigins: o.consoleOrigins ?? [], ...(o.ipRateLimit ? { ipRateLimit: o.ipRateLimit } : {}), ...(o.logger ? { logger: o.logger } : {}),
      ...(o.trustProxy ? { trustProxy: o.trustProxy } : {}),
      onRevocation: () => void update(),
    });
    await app.listen({ host, port: probe });
    void update();
    const timer = setInterval(() => void update(), o.revocationCheckMs ?? 30_000);
    timer.unref();
    return {
      url, origin, port: probe, service,
      async close() {
        clearInterval(timer);
        await app.close();
        await publishing;
        handle.close();
      },
    };
  } catch (e) {
    handle.close();
    throw e;
  }
}
