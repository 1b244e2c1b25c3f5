/**
 * `parley-org`: the organisation key tool. Run it offline, on the machine that keeps the org key.
 *
 * ```
 * parley-org keygen --out org.key
 *     writes the org signing seed (mode 0600) and prints the public key (hex) to pin in clients:
 *     ParleyClient.create({ trust: { orgKey: '<hex>' }, … })
 * parley-org certify --org-key org.key --identity <hex|file> --role bot --label support --days 365 [--json]
 *     prints the certificate (base64; with --json, also its fields) for the bot or agent to publish
 * parley-org manifest --org-key org.key --label support --measurement <hex> --release 2.4.0 [--from <date>] [--until <date>] [--json]
 *     prints a release manifest (base64): the bot label may run that measurement (org-manifest.ts)
 * parley-org certify-issuer --org-key org.key --issuer <hex> --name <name> --roles agent,supervisor --max-lifetime 12h [--expires 365d] [--json]
 *     prints an issuer certificate (base64): the issuer service may certify staff devices with
 *     those roles for at most that long (org-issuer.ts)
 * parley-org disclose --org-key org.key --label support --archive-key <hex> --retention-days 365 [--openers compliance] [--json]
 *     prints an archive disclosure (base64): the compliance archive is on for that label (org-disclose.ts)
 * parley-org inspect <base64> [--org-key-public <hex>]
 *     decodes a certificate, a release manifest, an issuer certificate or a staff credential;
 *     with the public key, also verifies its signature (not the identity);
 *     exits 1 when it does not decode, does not verify or has expired
 * parley-org --version
 * ```
 * The identity is the certified device's public identity as hex: signingKey (32 bytes) followed
 * by dhKey (32 bytes), 128 hex chars, as printed by the bot or client (`identityHex`), or a file
 * holding that hex or a JSON `{ "signingKey": hex, "dhKey": hex }`.
 */
import { readFileSync } from 'node:fs';
import { open, readFile, stat } from 'node:fs/promises';
import { Command, InvalidArgumentError } from 'commander';
import { addManifestCommand, inspectManifest, isReleaseManifest } from './org-manifest.js';
import { addIssuerCommand, inspectStaff } from './org-issuer.js';
import { addDiscloseCommand, inspectDisclosure, isArchiveDisclosure } from './org-disclose.js';
import {
  ParleyError,
  fromHex,
  initCrypto,
  toHex,
  decodeOrgCertificate,
  describeOrgCertificate,
  generateOrgKey,
  orgCertificateFromBase64,
  orgCertificateToBase64,
  signOrgCertificate,
  verifyOrgCertificate,
  type OrgRole,
} from '@parley/protocol';

const KEY_FILE_FORMAT = 'parley-org-key';
const DAY_MS = 24 * 3600 * 1000;
/** Longest validity the tool issues: a leaked bot key should not stay certified for years. */
const MAX_DAYS = 3 * 365;

/** Contents of an org key file. */
interface OrgKeyFile {
  format: typeof KEY_FILE_FORMAT;
  version: 1;
  /** Ed25519 seed, hex. Secret. */
  seed: string;
  /** Public key, hex. */
  publicKey: string;
}

async function readOrgKey(path: string): Promise<{ seed: Uint8Array; publicKey: Uint8Array }> {
  const st = await stat(path);
  if (process.platform !== 'win32' && (st.mode & 0o077) !== 0) {
    throw new ParleyError('USAGE', `${path} is readable by group or others; chmod 600 it`);
  }
  const parsed = JSON.parse(await readFile(path, 'utf8')) as Partial<OrgKeyFile>;
  if (parsed.format !== KEY_FILE_FORMAT || typeof parsed.seed !== 'string' || !/^[0-9a-f]{64}$/.test(parsed.seed)) {
    throw new ParleyError('USAGE', `${path} is not a parley org key file`);
  }
  return { seed: fromHex(parsed.seed), publicKey: fromHex(parsed.publicKey ?? '') };
}

/** Parses `--identity`: 128 hex chars, or a file with hex or JSON. */
export async function readIdentityArg(value: string): Promise<{ signingKey: Uint8Array; dhKey: Uint8Array }> {
  let text = value.trim();
  if (!/^[0-9a-fA-F]{128}$/.test(text)) {
    try {
      text = (await readFile(value, 'utf8')).trim();
    } catch {
      throw new ParleyError('USAGE', '--identity must be 128 hex chars (signingKey || dhKey) or a file holding them');
    }
  }
  if (/^[0-9a-fA-F]{128}$/.test(text)) {
    const b = fromHex(text);
    return { signingKey: b.subarray(0, 32), dhKey: b.subarray(32) };
  }
  try {
    const j = JSON.parse(text) as { signingKey?: string; dhKey?: string; identity?: { signingKey?: string; dhKey?: string } };
    const id = j.identity ?? j;
    if (typeof id.signingKey === 'string' && typeof id.dhKey === 'string' && /^[0-9a-fA-F]{64}$/.test(id.signingKey) && /^[0-9a-fA-F]{64}$/.test(id.dhKey)) {
      return { signingKey: fromHex(id.signingKey), dhKey: fromHex(id.dhKey) };
    }
  } catch {
    // fall through
  }
  throw new ParleyError('USAGE', 'identity file must hold 128 hex chars or JSON { signingKey, dhKey }');
}

function positiveDays(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > MAX_DAYS) throw new InvalidArgumentError(`days must be an integer from 1 to ${MAX_DAYS}`);
  return n;
}

function role(v: string): OrgRole {
  if (v !== 'bot' && v !== 'agent') throw new InvalidArgumentError('role must be "bot" or "agent"');
  return v;
}

/** This package's version (package.json is two folders up from src/cli and from dist/cli). */
function packageVersion(): string {
  return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}

/** Builds the CLI. `out`/`err` are injectable for tests. */
export function buildProgram(io: { out: (s: string) => void; err: (s: string) => void; now?: () => number }): Command {
  const program = new Command('parley-org')
    .description('Parley organisation key: certify the identity keys of your bots and agents')
    .configureOutput({ writeOut: io.out, writeErr: io.err })
    .version(packageVersion(), '-V, --version', 'print the version')
    .exitOverride();

  program
    .command('keygen')
    .description('create an organisation signing key (keep it offline); prints the public key to pin in clients')
    .requiredOption('--out <file>', 'where to write the key (created with mode 0600; never overwritten)')
    .action(async (opts: { out: string }) => {
      const key = generateOrgKey();
      const file: OrgKeyFile = { format: KEY_FILE_FORMAT, version: 1, seed: toHex(key.seed), publicKey: toHex(key.publicKey) };
      const fh = await open(opts.out, 'wx', 0o600).catch((e: NodeJS.ErrnoException) => {
        throw new ParleyError('USAGE', e.code === 'EEXIST' ? `${opts.out} exists; refusing to overwrite a key` : `cannot create ${opts.out}`);
      });
      try {
        await fh.writeFile(`${JSON.stringify(file, null, 2)}\n`);
        await fh.sync();
      } finally {
        await fh.close();
      }
      key.seed.fill(0);
      io.out(`${file.publicKey}\n`);
    });

  program
    .command('certify')
    .description('certify a bot or agent identity; prints the certificate as base64')
    .requiredOption('--org-key <file>', 'org key file from keygen')
    .requiredOption('--identity <hex|file>', 'the device identity: signingKey||dhKey as 128 hex chars, or a file')
    .requiredOption('--role <role>', 'bot or agent', role)
    .requiredOption('--label <label>', 'public name, e.g. support')
    .option('--days <n>', 'validity in days', positiveDays, 365)
    .option('--json', 'print JSON with the fields and the base64 certificate')
    .action(async (opts: { orgKey: string; identity: string; role: OrgRole; label: string; days: number; json?: boolean }) => {
      const org = await readOrgKey(opts.orgKey);
      const identity = await readIdentityArg(opts.identity);
      const now = io.now?.() ?? Date.now();
      const cert = signOrgCertificate(org.seed, { role: opts.role, label: opts.label, ...identity, expiresAt: now + opts.days * DAY_MS });
      org.seed.fill(0);
      const b64 = orgCertificateToBase64(cert);
      if (opts.json) io.out(`${JSON.stringify({ ...describeOrgCertificate(decodeOrgCertificate(cert)), orgKey: toHex(org.publicKey), certificate: b64 }, null, 2)}\n`);
      else io.out(`${b64}\n`);
    });

  addManifestCommand(program, { out: io.out, ...(io.now ? { now: io.now } : {}), readOrgKey });
  addIssuerCommand(program, { out: io.out, ...(io.now ? { now: io.now } : {}), readOrgKey });
  addDiscloseCommand(program, { out: io.out, ...(io.now ? { now: io.now } : {}), readOrgKey });

  program
    .command('inspect')
    .description('decode a certificate, a release manifest, an issuer certificate or a staff credential; with --org-key-public, also check it')
    .argument('<certificate>', 'base64 certificate')
    .option('--org-key-public <hex>', 'the org public key to check against')
    .action((b64: string, opts: { orgKeyPublic?: string }) => {
      const bytes = orgCertificateFromBase64(b64);
      if (isReleaseManifest(bytes)) return inspectManifest(bytes, opts, { out: io.out, ...(io.now ? { now: io.now } : {}) });
      if (isArchiveDisclosure(bytes)) return inspectDisclosure(bytes, opts, { out: io.out, ...(io.now ? { now: io.now } : {}) });
      if (inspectStaff(bytes, opts, { out: io.out, ...(io.now ? { now: io.now } : {}) })) return;
      const cert = decodeOrgCertificate(bytes);
      const view: Record<string, unknown> = describeOrgCertificate(cert);
      if (opts.orgKeyPublic) {
        try {
          verifyOrgCertificate(bytes, { orgKey: fromHex(opts.orgKeyPublic), identity: cert, now: io.now?.() ?? Date.now() });
          view.valid = true;
        } catch (e) {
          view.valid = false;
          view.reason = e instanceof ParleyError ? (e.details?.reason ?? e.code) : 'error';
        }
      } else if (cert.expiresAt <= (io.now?.() ?? Date.now())) {
        view.valid = false;
        view.reason = 'expired';
      }
      io.out(`${JSON.stringify(view, null, 2)}\n`);
      // An invalid certificate is a failure for scripts too (the JSON above says why).
      if (view.valid === false) throw new ParleyError('UNTRUSTED_IDENTITY', `the certificate is not valid (${String(view.reason)})`);
    });
  return program;
}

/** Entry point; returns the exit code. */
export async function main(
  argv: string[],
  io: { out: (s: string) => void; err: (s: string) => void; now?: () => number } = { out: (s) => void process.stdout.write(s), err: (s) => void process.stderr.write(s) },
): Promise<number> {
  await initCrypto();
  const program = buildProgram(io);
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (e) {
    const code = (e as { exitCode?: number }).exitCode;
    if (typeof code === 'number' && (e as { code?: string }).code?.startsWith('commander.')) return code;
    io.err(`parley-org: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  }
}
