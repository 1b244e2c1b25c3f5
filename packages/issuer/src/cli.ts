/**
 * `parley-issuer` command line: `keygen`, `serve`, `staff add|list|roles|disable|reset-factor|revoke-device`
 * and `audit verify|list` on the same SQLite file. Operator mistakes end with one line on stderr
 * and exit code 1, never a stack trace (set PARLEY_ISSUER_DEBUG for one).
 */
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { pino } from 'pino';
import { fromBase64, generateIssuerKey, initCrypto, toHex } from '@parley/protocol';
import { AuditLog } from './audit.js';
import { openIssuerDb } from './db.js';
import { Directory } from './directory.js';
import { readIssuerKey, writeIssuerKey } from './keys.js';
import { DEFAULT_LOCKOUT } from './lockout.js';
import { DEFAULT_IP_RATE_LIMIT } from './http.js';
import { createIssuer } from './server.js';

const DEFAULT_DB = 'parley-issuer.db';
const DEFAULT_PORT = 8090;
const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/** Ends the process with one line on stderr. */
function fail(e: unknown): never {
  const err = e as NodeJS.ErrnoException & { address?: string; port?: number };
  let message = e instanceof Error ? e.message : String(e);
  if (err?.code === 'EADDRINUSE') message = `${err.address ?? '?'}:${err.port ?? '?'} is already in use: stop the other program, or choose another --port`;
  if (err?.code === 'EADDRNOTAVAIL') message = `${err.address ?? '?'} is not an address of this machine: check --host`;
  process.stderr.write(`parley-issuer: ${message.split('\n')[0] ?? 'error'}\n`);
  if (process.env['PARLEY_ISSUER_DEBUG'] && e instanceof Error) process.stderr.write(`${e.stack ?? ''}\n`);
  process.exit(1);
}

const port = (v: string): number => {
  const n = Number(v);
  if (v.trim() === '' || !Number.isInteger(n) || n < 0 || n > 65535) throw new Error(`invalid --port ${v}: expected 0..65535`);
  return n;
};

/** Durations like 90s, 15m, 12h, 7d, or ms. */
function duration(flag: string) {
  return (v: string): number => {
    const m = /^(\d+)(ms|s|m|h|d)?$/.exec(v.trim());
    if (!m) throw new Error(`invalid ${flag} ${v}: e.g. 15m, 12h`);
    const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] ?? 'ms'] ?? 1;
    return Number(m[1]) * unit;
  };
}

/** Reads --certificate: base64 text or a file holding it. */
function readCertificate(v: string): Uint8Array {
  const text = existsSync(v) ? readFileSync(v, 'utf8').trim() : v.trim();
  try {
    const bytes = fromBase64(text);
    if (bytes.length < 64) throw new Error('short');
    return bytes;
  } catch {
    throw new Error('--certificate must be the base64 issuer certificate printed by parley-org certify-issuer (or a file holding it)');
  }
}

const dbOption = () => new Option('--db <path>', 'issuer SQLite database').env('PARLEY_ISSUER_DB').default(DEFAULT_DB);

/** Opens the database for a CLI command (it must exist unless `create`). */
async function openCli(db: string, create = false) {
  await initCrypto();
  if (!create && db !== ':memory:' && !existsSync(db)) throw new Error(`no database at ${db}: give the issuer's --db (or PARLEY_ISSUER_DB), or add --create`);
  const handle = openIssuerDb(db);
  const audit = new AuditLog(handle.db);
  return { handle, audit, directory: new Directory(handle.db, audit) };
}

function writeReadyFile(path: string, content: object): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(content)}\n`, { mode: 0o644 });
  renameSync(tmp, path);
}

const program = new Command('parley-issuer')
  .description('Parley issuer: enrols staff, signs them in with a second factor and certifies their devices for a few hours.')
  .version(VERSION, '-V, --version', 'print the version');

program
  .command('keygen')
  .description('create the issuer signing key (mode 0600; never overwritten); prints its public key for parley-org certify-issuer')
  .requiredOption('--out <file>', 'where to write the key')
  .action(async (o: { out: string }) => {
    await initCrypto();
    const key = generateIssuerKey();
    writeIssuerKey(o.out, key);
    key.seed.fill(0);
    process.stdout.write(`${toHex(key.publicKey)}\n`);
  });

program
  .command('serve')
  .description('run the issuer HTTP API')
  .addOption(new Option('--key <file>', 'issuer key file (from keygen)').env('PARLEY_ISSUER_KEY').makeOptionMandatory())
  .addOption(new Option('--certificate <base64|file>', 'issuer certificate from parley-org certify-issuer').env('PARLEY_ISSUER_CERTIFICATE').makeOptionMandatory())
  .addOption(dbOption())
  .addOption(new Option('--sealing-key <file>', 'key that seals TOTP secrets and passkeys at rest (default <db>.sealing.key, created on first start)').env('PARLEY_ISSUER_SEALING_KEY'))
  .addOption(new Option('--host <host>', 'interface to listen on').env('PARLEY_ISSUER_HOST').default('127.0.0.1'))
  .addOption(new Option('--port <port>', 'port (0 = any free port)').env('PARLEY_ISSUER_PORT').default(String(DEFAULT_PORT)))
  .addOption(new Option('--origin <origin>', 'the issuer\'s public origin (device proofs; passkey RP ID = its hostname); default the listening URL').env('PARLEY_ISSUER_ORIGIN'))
  .addOption(new Option('--rp-id <domain>', 'WebAuthn RP ID (default: the hostname of --origin)').env('PARLEY_ISSUER_RP_ID'))
  .addOption(new Option('--console-origin <origin>', 'agent console origin: CORS and passkey origin (repeatable)').default([] as string[])
    .argParser((v: string, prev: string[]) => [...prev, v]))
  .addOption(new Option('--relay <url>', 'relay base URL that receives revocation lists (POST /v1/revocations)').env('PARLEY_ISSUER_RELAY'))
  .addOption(new Option('--lockout <n/window/lock>', `failed sign-ins that lock an account, e.g. 5/15m/15m (default ${DEFAULT_LOCKOUT.maxFailures}/15m/15m)`).env('PARLEY_ISSUER_LOCKOUT'))
  .addOption(new Option('--ip-rate-limit <n/window>', `enrolment and sign-in requests per IP, e.g. ${DEFAULT_IP_RATE_LIMIT.max}/1m`).env('PARLEY_ISSUER_IP_RATE_LIMIT'))
  .addOption(new Option('--trust-proxy <addresses>', 'comma-separated proxy addresses/CIDRs whose X-Forwarded-For gives the client address (per-IP limit, audit)')
    .env('PARLEY_ISSUER_TRUST_PROXY'))
  .addOption(new Option('--revocation-check <duration>', 'how often to sign a list for revocations made with the CLI and retry publishing').env('PARLEY_ISSUER_REVOCATION_CHECK').default('30s'))
  .addOption(new Option('--log-level <level>', 'pino level').env('PARLEY_ISSUER_LOG_LEVEL').default('info')
    .choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']))
  .addOption(new Option('--ready-file <path>', 'once listening, write {"url","origin","port","pid"} as JSON there (removed on exit)').env('PARLEY_ISSUER_READY_FILE'))
  .addHelpText('after', '\nOnce listening, stdout gets one line:  parley-issuer listening on <url> (origin <origin>)\n')
  .action(async (o: {
    key: string; certificate: string; db: string; sealingKey?: string; host: string; port: string; origin?: string; rpId?: string; consoleOrigin: string[];
    relay?: string; lockout?: string; ipRateLimit?: string; logLevel: string; readyFile?: string; revocationCheck: string; trustProxy?: string;
  }) => {
    await initCrypto();
    const key = readIssuerKey(o.key);
    const issuerCertificate = readCertificate(o.certificate);
    const { loadSealingKey } = await import('./keys.js');
    const lockout = o.lockout === undefined ? undefined : (() => {
      const [n, w, l] = o.lockout.split('/');
      const maxFailures = Number(n);
      if (!Number.isInteger(maxFailures) || maxFailures < 1 || !w || !l) throw new Error(`invalid --lockout ${o.lockout}: e.g. 5/15m/15m`);
      return { maxFailures, windowMs: duration('--lockout')(w), lockMs: duration('--lockout')(l) };
    })();
    const ipRateLimit = o.ipRateLimit === undefined ? undefined : (() => {
      const [n, w] = o.ipRateLimit.split('/');
      const max = Number(n);
      if (!Number.isInteger(max) || max < 1 || !w) throw new Error(`invalid --ip-rate-limit ${o.ipRateLimit}: e.g. 30/1m`);
      return { max, windowMs: duration('--ip-rate-limit')(w) };
    })();
    const issuer = await createIssuer({
      db: o.db, key, issuerCertificate, host: o.host, port: port(o.port), logger: pino({ level: o.logLevel }),
      ...(o.sealingKey ? { sealingKey: loadSealingKey(o.sealingKey, false) } : {}),
      ...(o.origin ? { origin: o.origin } : {}), ...(o.rpId ? { rpId: o.rpId } : {}), consoleOrigins: o.consoleOrigin,
      ...(o.relay ? { relay: o.relay } : {}), ...(lockout ? { lockout } : {}), ...(ipRateLimit ? { ipRateLimit } : {}),
      revocationCheckMs: Math.max(100, duration('--revocation-check')(o.revocationCheck)),
      ...(o.trustProxy ? { trustProxy: o.trustProxy.split(',').map((a) => a.trim()).filter(Boolean) } : {}),
    });
    // The seed stays in memory while serving: the issuer signs with it (no fill(0) here).
    if (issuer.service.certificate.expiresAt < Date.now()) process.stderr.write('WARNING: the issuer certificate has expired: verifiers refuse every credential it issues\n');
    if (o.readyFile) writeReadyFile(o.readyFile, { url: issuer.url, origin: issuer.origin, port: issuer.port, pid: process.pid });
    process.stdout.write(`parley-issuer listening on ${issuer.url} (origin ${issuer.origin})\n`);
    const stop = () => void issuer.close().then(() => {
      if (o.readyFile) rmSync(o.readyFile, { force: true });
      process.exit(0);
    });
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });

const staff = program.command('staff').description('manage the staff directory (works while the issuer runs; revocations are published by it within 30 s)');

staff
  .command('add')
  .description('add a person; prints their one-time enrolment invitation (valid 72 h)')
  .addOption(dbOption())
  .option('--create', 'create the database if it does not exist')
  .requiredOption('--username <name>', 'what they type to sign in')
  .requiredOption('--display-name <name>', 'the name customers see')
  .requiredOption('--roles <list>', 'comma-separated: agent, supervisor, compliance, admin')
  .action(async (o: { db: string; create?: boolean; username: string; displayName: string; roles: string }) => {
    const { handle, directory } = await openCli(o.db, o.create === true);
    try {
      const r = directory.add({ username: o.username, displayName: o.displayName, roles: o.roles.split(',').map((s) => s.trim()).filter(Boolean) }, 'cli');
      process.stdout.write(`personId:   ${r.personId}\ninvitation: ${r.invitation}\n(give the invitation to ${o.username}; it is stored hashed, used once, and expires in 72 h)\n`);
    } finally {
      handle.close();
    }
  });

staff
  .command('list')
  .description('list people (never secrets)')
  .addOption(dbOption())
  .option('--json', 'one JSON object per line')
  .action(async (o: { db: string; json?: boolean }) => {
    const { handle, directory } = await openCli(o.db);
    for (const p of directory.list()) {
      process.stdout.write(o.json ? `${JSON.stringify(p)}\n`
        : `${p.personId}\t${p.username}\t${p.roles.join(',')}\t${p.disabled ? 'disabled' : 'active'}\t${p.factors.join(',') || 'not enrolled'}\t${p.displayName}\n`);
    }
    handle.close();
  });

const personCommand = (name: string, description: string) => staff.command(name).description(description).addOption(dbOption()).argument('<personId>');

personCommand('roles', "replace a person's roles (issued certificates keep theirs until they expire)")
  .requiredOption('--roles <list>', 'comma-separated roles')
  .action(async (personId: string, o: { db: string; roles: string }) => {
    const { handle, directory } = await openCli(o.db);
    try {
      const p = directory.setRoles(personId, o.roles.split(',').map((s) => s.trim()).filter(Boolean), 'cli');
      process.stdout.write(`${p.personId}\t${p.roles.join(',')}\n`);
    } finally {
      handle.close();
    }
  });

personCommand('disable', 'disable a person: no more sign-ins; the person goes on the next revocation list')
  .action(async (personId: string, o: { db: string }) => {
    const { handle, directory } = await openCli(o.db);
    try {
      directory.disable(personId, 'cli');
      process.stdout.write(`disabled ${personId} (the running issuer signs and publishes the revocation list within 30 s)\n`);
    } finally {
      handle.close();
    }
  });

personCommand('reset-factor', "remove a person's password and second factors; prints a new invitation")
  .action(async (personId: string, o: { db: string }) => {
    const { handle, directory } = await openCli(o.db);
    try {
      process.stdout.write(`invitation: ${directory.resetFactor(personId, 'cli')}\n`);
    } finally {
      handle.close();
    }
  });

personCommand('revoke-device', 'put one of the person\'s devices on the revocation list')
  .requiredOption('--device <deviceId>', 'device id (32 hex chars)')
  .action(async (personId: string, o: { db: string; device: string }) => {
    const { handle, directory } = await openCli(o.db);
    try {
      const owner = (handle.db.prepare('SELECT person_id FROM issuances WHERE device_id = ? LIMIT 1').get(o.device) as { person_id: string } | undefined)?.person_id;
      if (owner !== personId) throw new Error(`device ${o.device} was not issued to ${personId}`); // ct-ok: public ids
      directory.revokeDevice(o.device, 'cli');
      process.stdout.write(`revoked device ${o.device} (the running issuer signs and publishes the revocation list within 30 s)\n`);
    } finally {
      handle.close();
    }
  });

const audit = program.command('audit').description('the hash-chained audit log');

audit
  .command('verify')
  .description('check the chain; exits 1 naming the first deleted, reordered or altered entry')
  .addOption(dbOption())
  .option('--head <hash>', 'also require this head hash (printed by an earlier verify) to be in the chain: detects a cut-off end')
  .action(async (o: { db: string; head?: string }) => {
    const { handle, audit: log } = await openCli(o.db);
    const v = log.verify();
    if (v.ok && o.head && !log.list().some((e) => e.hash === o.head)) { // ct-ok: public hashes
      handle.close();
      process.stderr.write(`parley-issuer: audit log broken: the head ${o.head} is not in the chain (entries were cut off or replaced)\n`);
      process.exit(1);
    }
    handle.close();
    if (!v.ok) {
      const what = { sequence: 'deleted or moved entries', prevHash: 'chain broken (an entry before it was deleted, reordered or altered)', hash: 'altered' }[v.why];
      process.stderr.write(`parley-issuer: audit log broken at entry ${v.brokenAt} (position ${v.position} of ${v.entries}): ${what}\n`);
      process.exit(1);
    }
    process.stdout.write(`ok: ${v.entries} entries, head ${v.head}\n`);
  });

audit
  .command('list')
  .description('print entries (no secrets are ever recorded)')
  .addOption(dbOption())
  .option('--from <seq>', 'first entry', '1')
  .option('--json', 'one JSON object per line')
  .action(async (o: { db: string; from: string; json?: boolean }) => {
    const { handle, audit: log } = await openCli(o.db);
    for (const e of log.list({ fromSeq: Number(o.from) })) {
      process.stdout.write(o.json ? `${JSON.stringify(e)}\n`
        : `${e.seq}\t${new Date(e.time).toISOString()}\t${e.type}\t${e.actor}\t${e.subject}\t${e.reason}\t${JSON.stringify(e.details)}\n`);
    }
    handle.close();
  });

try {
  await program.parseAsync(process.argv);
} catch (e) {
  fail(e);
}
