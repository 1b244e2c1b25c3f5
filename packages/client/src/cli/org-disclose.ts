/**
 * `parley-org disclose`: the organisation turns the compliance archive on for a bot or agent
 * label by signing an archive disclosure (`@parley/protocol` archive.ts), and `parley-org
 * inspect` of one.
 *
 * ```
 * parley-org disclose --org-key org.key --label support --archive-key <64 hex> --retention-days 365 [--openers compliance] [--until <date>] [--json]
 *     prints the signed disclosure (base64) for the bot or agent to publish with its statements.
 * ```
 * The archive key is the compliance X25519 public key (`parley-compliance keygen` prints it).
 */
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import {
  ParleyError,
  archiveDisclosureToBase64,
  decodeArchiveDisclosure,
  describeArchiveDisclosure,
  fromHex,
  signArchiveDisclosure,
  verifyArchiveDisclosure,
  ARCHIVE_OPENER_PATTERN,
  MAX_ARCHIVE_RETENTION_DAYS,
} from '@parley/protocol';

/** What the disclose command needs from the org CLI. */
export interface DiscloseCliDeps {
  readonly out: (s: string) => void;
  readonly now?: () => number;
  readonly readOrgKey: (path: string) => Promise<{ seed: Uint8Array; publicKey: Uint8Array }>;
}

function hexKey(v: string): string {
  if (!/^[0-9a-fA-F]{64}$/.test(v)) throw new InvalidArgumentError('archive key must be 64 hex chars (X25519 public key)');
  return v.toLowerCase();
}

function days(v: string): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 1 || n > MAX_ARCHIVE_RETENTION_DAYS) throw new InvalidArgumentError(`retention must be 1-${MAX_ARCHIVE_RETENTION_DAYS} days`);
  return n;
}

function openers(v: string): string[] {
  const list = v.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (list.length === 0 || !list.every((o) => ARCHIVE_OPENER_PATTERN.test(o))) throw new InvalidArgumentError('openers: comma-separated roles of [a-z0-9_-]');
  return list;
}

function date(v: string): number {
  const ms = /^\d+$/.test(v) ? Number(v) : Date.parse(v);
  if (!Number.isSafeInteger(ms) || ms < 0) throw new InvalidArgumentError('expected an ISO 8601 date or ms since the epoch');
  return ms;
}

/** Adds `disclose` to the `parley-org` program. */
export function addDiscloseCommand(program: Command, deps: DiscloseCliDeps): void {
  program
    .command('disclose')
    .description('turn the compliance archive on for a bot or agent label (a signed archive disclosure); prints it as base64')
    .requiredOption('--org-key <file>', 'org key file from keygen')
    .requiredOption('--label <label>', 'the bot or agent label, as in its certificate')
    .requiredOption('--archive-key <hex>', 'the compliance X25519 public key (64 hex chars)', hexKey)
    .requiredOption('--retention-days <n>', 'how long archive entries are kept', days)
    .option('--openers <roles>', 'who may open the archive (comma-separated roles)', openers, ['compliance'])
    .option('--until <date>', 'the disclosure expires then (ISO 8601 or ms; default no end)', date)
    .option('--json', 'print JSON with the fields and the base64 disclosure')
    .action(async (opts: { orgKey: string; label: string; archiveKey: string; retentionDays: number; openers: string[]; until?: number; json?: boolean }) => {
      const org = await deps.readOrgKey(opts.orgKey);
      let bytes: Uint8Array;
      try {
        bytes = signArchiveDisclosure(org.seed, {
          label: opts.label,
          archiveKey: fromHex(opts.archiveKey),
          retentionDays: opts.retentionDays,
          openers: opts.openers,
          issuedAt: deps.now?.() ?? Date.now(),
          ...(opts.until !== undefined ? { expiresAt: opts.until } : {}),
        });
      } finally {
        org.seed.fill(0);
      }
      const b64 = archiveDisclosureToBase64(bytes);
      if (opts.json) deps.out(`${JSON.stringify({ ...describeArchiveDisclosure(decodeArchiveDisclosure(bytes)), disclosure: b64 }, null, 2)}\n`);
      else deps.out(`${b64}\n`);
    });
}

/** True when `bytes` decode as an archive disclosure. */
export function isArchiveDisclosure(bytes: Uint8Array): boolean {
  try {
    decodeArchiveDisclosure(bytes);
    return true;
  } catch {
    return false;
  }
}

/**
 * `parley-org inspect` of a disclosure: its fields; with the org public key, whether it verifies now.
 * @throws ParleyError `FORBIDDEN` (reason `archiveNotDisclosed`) after printing, when refused (exit 1).
 */
export function inspectDisclosure(bytes: Uint8Array, opts: { orgKeyPublic?: string }, deps: Pick<DiscloseCliDeps, 'out' | 'now'>): void {
  const d = decodeArchiveDisclosure(bytes);
  const view: Record<string, unknown> = { type: 'archive-disclosure', ...describeArchiveDisclosure(d) };
  if (opts.orgKeyPublic !== undefined) {
    if (!/^[0-9a-fA-F]{64}$/.test(opts.orgKeyPublic)) throw new ParleyError('USAGE', '--org-key-public must be 64 hex chars');
    try {
      verifyArchiveDisclosure(bytes, { orgKey: fromHex(opts.orgKeyPublic), now: deps.now?.() ?? Date.now() });
      view.valid = true;
    } catch (e) {
      if (!(e instanceof ParleyError) || e.code !== 'FORBIDDEN') throw e;
      view.valid = false;
      view.reason = e.details?.why ?? e.code;
    }
  }
  deps.out(`${JSON.stringify(view, null, 2)}\n`);
  if (view.valid === false) throw new ParleyError('FORBIDDEN', `the archive disclosure is not valid (${String(view.reason)})`, { details: { reason: 'archiveNotDisclosed' } });
}
