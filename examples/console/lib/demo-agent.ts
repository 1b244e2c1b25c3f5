/**
 * The demo's ready-made staff: a person enrolled with a password and an authenticator app (TOTP)
 * without a browser, so someone trying the demo can sign in to the console at once (no hardware
 * key, no phone: the console's demo banner shows the current code). Tests use the same steps for
 * their agents.
 *
 * Demo-grade on purpose: the TOTP secret and the password sit in the data dir
 * (`demo-agent.json`, mode 0600) and are served to the console's demo banner. A real deployment
 * enrols people from their invitation link, on their own devices (README "Staff sign-in").
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { totpCode, TOTP_PERIOD } from '@parley/issuer';
import type { StaffRole } from '@parley/protocol';
import type { Route } from '../../web/lib/static-server.js';
import type { ConsoleIssuer } from './issuer.js';

/** A person enrolled with password + TOTP. */
export interface TotpStaff {
  readonly username: string;
  readonly displayName: string;
  readonly roles: readonly StaffRole[];
  readonly password: string;
  /** The TOTP secret (base32): what an authenticator app would hold. */
  readonly secret: string;
}

/** The demo agent's defaults. */
export const DEMO_AGENT = { username: 'agent', displayName: 'Dana Agent', roles: ['agent'] as StaffRole[], password: 'demo agent password' } as const;

/**
 * Adds a person and completes their enrolment as their browser would (password, TOTP secret,
 * first code). The first code is the previous period's (the window accepts it), so the current
 * code signs in right away.
 */
export async function enrolTotpStaff(issuer: ConsoleIssuer, f: { username: string; displayName: string; roles: readonly StaffRole[]; password: string }): Promise<TotpStaff> {
  const service = issuer.running.service;
  const invitation = await issuer.addStaff({ username: f.username, displayName: f.displayName, roles: f.roles });
  await service.enrolPassword(invitation, f.password);
  const { secret } = service.enrolTotpStart(invitation);
  service.enrolTotpVerify(invitation, totpCode(secret, Date.now() - TOTP_PERIOD * 1000));
  return { ...f, secret };
}

/** The demo agent of `dataDir`: enrolled on first start, read back afterwards. */
export async function demoAgentIn(dataDir: string, issuer: ConsoleIssuer): Promise<TotpStaff> {
  const file = join(dataDir, 'demo-agent.json');
  if (existsSync(file)) return JSON.parse(readFileSync(file, 'utf8')) as TotpStaff;
  const agent = await enrolTotpStaff(issuer, DEMO_AGENT);
  writeFileSync(file, JSON.stringify(agent), { mode: 0o600 });
  return agent;
}

/** What the console's demo banner shows (`GET <path>`): the sign-in details and the current code. */
export interface DemoAgentInfo {
  username: string;
  displayName: string;
  password: string;
  code: string;
  /** Milliseconds until the code changes. */
  validForMs: number;
}

/** The route of the console's demo banner (demo servers only; `pnpm console` has none). */
export function demoAgentRoute(agent: TotpStaff, path = '/api/demo-agent'): Route {
  return (_req, res, url) => {
    if (url.pathname !== path) return false;
    const now = Date.now();
    const period = TOTP_PERIOD * 1000;
    const info: DemoAgentInfo = { username: agent.username, displayName: agent.displayName, password: agent.password, code: totpCode(agent.secret, now), validForMs: period - (now % period) };
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(JSON.stringify(info));
    return true;
  };
}
