/**
 * The issuer's HTTP API (fastify): JSON bodies, errors as `{ code, message, details? }` with the
 * status of {@link IssuerError}, CORS for the agent console's origins (`@fastify/cors`), a per-IP
 * rate limit on the enrolment and sign-in routes (`@fastify/rate-limit`; refusals audited).
 */
import cors from '@fastify/cors';
import rateLimit from '@fastify/rate-limit';
import { fastify, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { toBase64 } from '@parley/protocol';
import { IssuerError } from './errors.js';
import type { IssuerService } from './service.js';

/** Per-IP limit on the public (enrolment and sign-in) routes. */
export interface IpRateLimit {
  /** Requests per window (default 30). */
  readonly max: number;
  /** Window (default 60 s). */
  readonly windowMs: number;
}

export const DEFAULT_IP_RATE_LIMIT: IpRateLimit = { max: 30, windowMs: 60_000 };

/** Options of {@link buildHttp}. */
export interface HttpOptions {
  readonly service: IssuerService;
  /** Origins allowed by CORS (the agent console). */
  readonly consoleOrigins: readonly string[];
  readonly ipRateLimit?: IpRateLimit;
  readonly logger?: Logger;
  /**
   * Addresses (or CIDRs) of reverse proxies whose `X-Forwarded-For` is believed, so the per-IP
   * limit and the audit see the client's address (default: none; every request is its socket's).
   */
  readonly trustProxy?: readonly string[];
  /** Called after a revocation changed the list (sign + publish). */
  readonly onRevocation: () => void;
}

type Body = Record<string, unknown>;
const body = (req: FastifyRequest): Body => (req.body !== null && typeof req.body === 'object' ? req.body as Body : {});

/** Builds the fastify app (not listening). */
export async function buildHttp(o: HttpOptions): Promise<FastifyInstance> {
  const s = o.service;
  // No request logging (fastify's logger stays off): errors are logged below, without bodies.
  const app = fastify({ logger: false, bodyLimit: 64 * 1024, trustProxy: o.trustProxy?.length ? [...o.trustProxy] : false });
  await app.register(cors, { origin: [...o.consoleOrigins], methods: ['GET', 'POST'], allowedHeaders: ['content-type', 'authorization'] });
  const limit = o.ipRateLimit ?? DEFAULT_IP_RATE_LIMIT;
  await app.register(rateLimit, {
    global: false,
    max: limit.max,
    timeWindow: limit.windowMs,
    onExceeded: (req) => s.auditRateLimited(req.ip, req.url.split('?')[0] ?? ''),
    errorResponseBuilder: (_req, ctx) => ({ statusCode: 429, code: 'RATE_LIMITED', message: `too many requests from this address: retry in ${Math.ceil(ctx.ttl / 1000)} s` }),
  });

  app.setErrorHandler((e: unknown, req, reply: FastifyReply) => {
    if (e instanceof IssuerError) {
      return reply.status(e.status).send(e.details ? { code: e.code, message: e.message, details: e.details } : { code: e.code, message: e.message });
    }
    const fe = e as { statusCode?: number; code?: string; message?: string };
    if (fe.statusCode === 429) return reply.status(429).send({ code: 'RATE_LIMITED', message: fe.message ?? 'too many requests' });
    if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
      return reply.status(fe.statusCode).send({ code: 'USAGE', message: fe.message ?? 'bad request' });
    }
    o.logger?.error({ event: 'internalError', route: req.routeOptions.url, err: e instanceof Error ? e.message : String(e) }, 'issuer error');
    return reply.status(500).send({ code: 'INTERNAL', message: 'internal error' });
  });

  const limited = { config: { rateLimit: { max: limit.max, timeWindow: limit.windowMs } } };
  const inv = (req: FastifyRequest) => body(req)['invitation'];

  app.post('/v1/enrol/start', limited, async (req) => s.enrolStart(inv(req)));
  app.post('/v1/enrol/password', limited, async (req) => {
    await s.enrolPassword(inv(req), body(req)['password']);
    return { ok: true };
  });
  app.post('/v1/enrol/passkey/options', limited, async (req) => s.enrolPasskeyOptions(inv(req)));
  app.post('/v1/enrol/passkey/verify', limited, async (req) => {
    await s.enrolPasskeyVerify(inv(req), body(req)['response']);
    return { ok: true };
  });
  app.post('/v1/enrol/totp/start', limited, async (req) => s.enrolTotpStart(inv(req)));
  app.post('/v1/enrol/totp/verify', limited, async (req) => {
    s.enrolTotpVerify(inv(req), body(req)['code']);
    return { ok: true };
  });
  app.post('/v1/signin/start', limited, async (req) => s.signInStart(body(req), req.ip));
  app.post('/v1/signin/finish', limited, async (req) => s.signInFinish(body(req), req.ip));

  app.get('/v1/revocations', async () => {
    const list = s.revocations.current();
    return { lists: list ? [toBase64(list.bytes)] : [] };
  });
  app.get('/v1/issuer', async () => ({ certificate: toBase64(s.issuerCertificateBytes), origin: s.origin }));

  // ---- admin (bearer session token of a signed-in admin) ----
  const actor = (req: FastifyRequest) => `person:${s.admin(req.headers.authorization).personId}`;
  const pid = (req: FastifyRequest) => (req.params as { personId: string }).personId;
  app.get('/v1/admin/staff', async (req) => {
    actor(req);
    return { staff: s.directory.list() };
  });
  app.post('/v1/admin/staff', async (req) => {
    const b = body(req);
    return s.directory.add({ username: String(b['username'] ?? ''), displayName: String(b['displayName'] ?? ''), roles: Array.isArray(b['roles']) ? b['roles'] : [] }, actor(req));
  });
  app.post('/v1/admin/staff/:personId/roles', async (req) => {
    const roles = body(req)['roles'];
    return { person: s.directory.setRoles(pid(req), Array.isArray(roles) ? roles : [], actor(req)) };
  });
  app.post('/v1/admin/staff/:personId/disable', async (req) => {
    s.directory.disable(pid(req), actor(req));
    o.onRevocation();
    return { ok: true };
  });
  app.post('/v1/admin/staff/:personId/reset-factor', async (req) => ({ invitation: s.directory.resetFactor(pid(req), actor(req)) }));
  app.post('/v1/admin/staff/:personId/revoke-device', async (req) => {
    const a = actor(req);
    const deviceId = String(body(req)['deviceId'] ?? '');
    const owner = s.deviceOwner(deviceId);
    if (owner !== pid(req)) throw new IssuerError('USAGE', `device ${deviceId} was not issued to ${pid(req)}`, 404); // ct-ok: public ids
    s.directory.revokeDevice(deviceId, a);
    o.onRevocation();
    return { ok: true };
  });
  return app;
}
