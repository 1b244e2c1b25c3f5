/**
 * `parley-org certify-issuer`: the organisation root certifies an issuer service's key with a
 * policy (the staff roles it may grant, the longest certificate lifetime it may give;
 * `@parley/protocol` staff-cert.ts), and `parley-org inspect` of an issuer certificate or a staff
 * credential.
 *
 * ```
 * parley-org certify-issuer --org-key org.key --issuer <64 hex> --name "Acme staff" --roles agent,supervisor --max-lifetime 12h [--expires 365d] [--json]
 *     prints the issuer certificate (base64; with --json, also its fields) for
 *     `parley-issuer serve --certificate`. Durations: <n>m, <n>h or <n>d.
 * ```
 */
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import {
  MAX_ISSUER_POLICY_LIFETIME_MS,
  MIN_ISSUER_POLICY_LIFETIME_MS,
  ParleyError,
  decodeIssuerCertificate,
  decodeStaffCredential,
  describeIssuerCertificate,
  describeStaffCredential,
  fromHex,
  isStaffCredential,
  parseStaffRoles,
  signIssuerCertificate,
  toBase64,
  verifyIssuerCertificate,
  verifyStaffCredential,
  type StaffRole,
} from '@parley/protocol';

/** What the issuer commands need from the org CLI. */
export interface IssuerCliDeps {
  readonly out: (s: string) => void;
  readonly now?: () => number;
  readonly readOrgKey: (path: string) => Promise<{ seed: Uint8Array; publicKey: Uint8Array }>;
}

const UNIT_MS: Record<string, number> = { m: 60_000, h: 3600_000, d: 24 * 3600_000 };
/** Longest issuer certificate the tool issues (re-certify the issuer yearly or so). */
const MAX_ISSUER_EXPIRY_MS = 3 * 365 * UNIT_MS.d!;

/** Parses `<n>m|h|d` into ms. */
export function parseDuration(v: string): number {
  const m = /^(\d{1,6})([mhd])$/.exec(v.trim());
  if (!m) throw new InvalidArgumentError('expected a duration like 30m, 12h or 365d');
  return Number(m[1]) * UNIT_MS[m[2]!]!;
}

function lifetime(v: string): number {
  const ms = parseDuration(v);
  if (ms < MIN_ISSUER_POLICY_LIFETIME_MS || ms > MAX_ISSUER_POLICY_LIFETIME_MS) throw new InvalidArgumentError('max lifetime must be from 1m to 366d');
  return ms;
}

function expiry(v: string): number {
  const ms = parseDuration(v);
  if (ms <= 0 || ms > MAX_ISSUER_EXPIRY_MS) throw new InvalidArgumentError('expiry must be from 1m to 1095d');
  return ms;
}

function roles(v: string): StaffRole[] {
  try {
    return parseStaffRoles(v);
  } catch (e) {
    throw new InvalidArgumentError(e instanceof Error ? e.message : String(e));
  }
}

function publicKey(v: string): string {
  if (!/^[0-9a-fA-F]{64}$/.test(v)) throw new InvalidArgumentError('issuer key must be 64 hex chars (parley-issuer keygen prints it)');
  return v.toLowerCase();
}

/** Adds `certify-issuer` to the `parley-org` program. */
export function addIssuerCommand(program: Command, deps: IssuerCliDeps): void {
  program
    .command('certify-issuer')
    .description('certify an issuer service key with a policy (roles it may grant, longest lifetime); prints it as base64')
    .requiredOption('--org-key <file>', 'org key file from keygen')
    .requiredOption('--issuer <hex>', 'the issuer public key (64 hex chars; parley-issuer keygen)', publicKey)
    .requiredOption('--name <name>', 'the issuer name shown beside staff names, e.g. "Acme staff"')
    .requiredOption('--roles <list>', 'roles it may grant: agent,supervisor,compliance,admin', roles)
    .requiredOption('--max-lifetime <duration>', 'longest staff certificate it may issue, e.g. 12h', lifetime)
    .option('--expires <duration>', 'the issuer certificate\'s own validity, e.g. 365d', expiry, 365 * UNIT_MS.d!)
    .option('--json', 'print JSON with the fields and the base64 certificate')
    .action(async (opts: { orgKey: string; issuer: string; name: string; roles: StaffRole[]; maxLifetime: number; expires: number; json?: boolean }) => {
      const org = await deps.readOrgKey(opts.orgKey);
      let bytes: Uint8Array;
      try {
        bytes = signIssuerCertificate(org.seed, {
          issuerKey: fromHex(opts.issuer),
          name: opts.name,
          policy: { roles: opts.roles, maxLifetimeMs: opts.maxLifetime },
          expiresAt: (deps.now?.() ?? Date.now()) + opts.expires,
        });
      } finally {
        org.seed.fill(0);
      }
      const b64 = toBase64(bytes);
      if (opts.json) deps.out(`${JSON.stringify({ type: 'issuer-certificate', ...describeIssuerCertificate(decodeIssuerCertificate(bytes)), certificate: b64 }, null, 2)}\n`);
      else deps.out(`${b64}\n`);
    });
}

/** True when `bytes` decode as an issuer certificate. */
export function isIssuerCertificate(bytes: Uint8Array): boolean {
  try {
    decodeIssuerCertificate(bytes);
    return true;
  } catch {
    return false;
  }
}

/**
 * `parley-org inspect` of an issuer certificate or a staff credential: prints its fields; with
 * the org public key, also whether it verifies now (a staff credential: root → issuer → device,
 * policy and expiry, against the identity it names; revocation is the relay's and clients' check).
 * @returns false when it was not one of these (the caller tries the other formats).
 * @throws ParleyError `UNTRUSTED_IDENTITY` after printing, when it is not valid (exit 1).
 */
export function inspectStaff(bytes: Uint8Array, opts: { orgKeyPublic?: string }, deps: Pick<IssuerCliDeps, 'out' | 'now'>): boolean {
  const now = deps.now?.() ?? Date.now();
  let view: Record<string, unknown>;
  let verify: (orgKey: Uint8Array) => void;
  let expiresAt: number;
  if (isStaffCredential(bytes)) {
    const cred = decodeStaffCredential(bytes);
    view = { type: 'staff-credential', ...describeStaffCredential(cred) };
    verify = (orgKey) => void verifyStaffCredential(bytes, { orgKey, identity: cred.staff, now });
    expiresAt = Math.min(cred.staff.expiresAt, cred.issuer.expiresAt);
  } else if (isIssuerCertificate(bytes)) {
    const cert = decodeIssuerCertificate(bytes);
    view = { type: 'issuer-certificate', ...describeIssuerCertificate(cert) };
    verify = (orgKey) => void verifyIssuerCertificate(bytes, { orgKey, now });
    expiresAt = cert.expiresAt;
  } else {
    return false;
  }
  if (opts.orgKeyPublic !== undefined) {
    if (!/^[0-9a-fA-F]{64}$/.test(opts.orgKeyPublic)) throw new ParleyError('USAGE', '--org-key-public must be 64 hex chars');
    try {
      verify(fromHex(opts.orgKeyPublic));
      view.valid = true;
    } catch (e) {
      if (!(e instanceof ParleyError) || e.code !== 'UNTRUSTED_IDENTITY') throw e;
      view.valid = false;
      view.reason = e.details?.reason ?? e.code;
    }
  } else if (now >= expiresAt) {
    view.valid = false;
    view.reason = 'expired';
  }
  deps.out(`${JSON.stringify(view, null, 2)}\n`);
  if (view.valid === false) throw new ParleyError('UNTRUSTED_IDENTITY', `the ${String(view.type)} is not valid (${String(view.reason)})`);
  return true;
}
