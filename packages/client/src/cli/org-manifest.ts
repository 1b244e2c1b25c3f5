/**
 * `parley-org manifest`: the organisation allows a bot label to run a measurement (a release
 * manifest, `@parley/protocol` release-manifest.ts), and `parley-org inspect` of one.
 *
 * ```
 * parley-org manifest --org-key org.key --label support --measurement <64 hex> --release 2.4.0 [--from <date>] [--until <date>] [--json]
 *     prints the signed manifest (base64; with --json, also its fields) for the bot to publish
 *     (`manifests` option of createBot). Dates: ISO 8601 (2030-01-31, 2030-01-31T12:00Z) or ms.
 *     --from defaults to now; without --until the manifest has no end.
 * ```
 * The release version is `--release`, not `--version` (that one prints the tool's version).
 */
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import {
  ParleyError,
  decodeReleaseManifest,
  describeReleaseManifest,
  fromHex,
  releaseManifestToBase64,
  signReleaseManifest,
  toHex,
  verifyReleaseManifest,
  RELEASE_VERSION_PATTERN,
} from '@parley/protocol';

/** What the manifest command needs from the org CLI. */
export interface ManifestCliDeps {
  readonly out: (s: string) => void;
  readonly now?: () => number;
  readonly readOrgKey: (path: string) => Promise<{ seed: Uint8Array; publicKey: Uint8Array }>;
}

function date(v: string): number {
  const ms = /^\d+$/.test(v) ? Number(v) : Date.parse(v);
  if (!Number.isSafeInteger(ms) || ms < 0) throw new InvalidArgumentError('expected an ISO 8601 date (2030-01-31T12:00Z) or ms since the epoch');
  return ms;
}

function measurement(v: string): string {
  if (!/^[0-9a-fA-F]{64}$/.test(v)) throw new InvalidArgumentError('measurement must be 64 hex chars (`parley-bot measure <handler>`)');
  return v.toLowerCase();
}

function release(v: string): string {
  if (!RELEASE_VERSION_PATTERN.test(v)) throw new InvalidArgumentError('release version must be 1-64 chars of [A-Za-z0-9._+-]');
  return v;
}

/** Adds `manifest` to the `parley-org` program. */
export function addManifestCommand(program: Command, deps: ManifestCliDeps): void {
  program
    .command('manifest')
    .description('allow a bot label to run a measurement (a release manifest); prints it as base64')
    .requiredOption('--org-key <file>', 'org key file from keygen')
    .requiredOption('--label <label>', 'the bot label, as in its certificate, e.g. support')
    .requiredOption('--measurement <hex>', 'the measurement (64 hex chars; parley-bot measure <handler>)', measurement)
    .requiredOption('--release <version>', 'the release version shown to customers, e.g. 2.4.0', release)
    .option('--from <date>', 'valid from (ISO 8601 or ms; default now)', date)
    .option('--until <date>', 'valid until, exclusive (ISO 8601 or ms; default no end)', date)
    .option('--json', 'print JSON with the fields and the base64 manifest')
    .action(async (opts: { orgKey: string; label: string; measurement: string; release: string; from?: number; until?: number; json?: boolean }) => {
      const org = await deps.readOrgKey(opts.orgKey);
      let bytes: Uint8Array;
      try {
        bytes = signReleaseManifest(org.seed, {
          label: opts.label,
          measurement: fromHex(opts.measurement),
          releaseVersion: opts.release,
          validFrom: opts.from ?? deps.now?.() ?? Date.now(),
          ...(opts.until !== undefined ? { validUntil: opts.until } : {}),
        });
      } finally {
        org.seed.fill(0);
      }
      const b64 = releaseManifestToBase64(bytes);
      if (opts.json) deps.out(`${JSON.stringify({ ...describeReleaseManifest(decodeReleaseManifest(bytes)), manifest: b64 }, null, 2)}\n`);
      else deps.out(`${b64}\n`);
    });
}

/** True when `bytes` decode as a release manifest (what `inspect` was given). */
export function isReleaseManifest(bytes: Uint8Array): boolean {
  try {
    decodeReleaseManifest(bytes);
    return true;
  } catch {
    return false;
  }
}

/**
 * `parley-org inspect` of a manifest: prints its fields; with the org public key, also whether
 * it verifies and is valid now.
 * @throws ParleyError `ATTESTATION_INVALID` after printing, when it was checked and refused (exit 1).
 */
export function inspectManifest(bytes: Uint8Array, opts: { orgKeyPublic?: string }, deps: Pick<ManifestCliDeps, 'out' | 'now'>): void {
  const m = decodeReleaseManifest(bytes);
  const view: Record<string, unknown> = { type: 'release-manifest', ...describeReleaseManifest(m) };
  const now = deps.now?.() ?? Date.now();
  if (opts.orgKeyPublic !== undefined) {
    try {
      if (!/^[0-9a-fA-F]{64}$/.test(opts.orgKeyPublic)) throw new ParleyError('USAGE', '--org-key-public must be 64 hex chars');
      verifyReleaseManifest(bytes, { orgKey: fromHex(opts.orgKeyPublic), label: m.label, now });
      view.valid = true;
    } catch (e) {
      if (e instanceof ParleyError && e.code === 'USAGE') throw e;
      view.valid = false;
      view.reason = e instanceof ParleyError ? (e.details?.refusal ?? e.code) : 'error';
    }
  } else if (now < m.validFrom || (m.validUntil !== undefined && now >= m.validUntil)) {
    view.valid = false;
    view.reason = now < m.validFrom ? 'notYetValid' : 'expired';
  }
  deps.out(`${JSON.stringify(view, null, 2)}\n`);
  if (view.valid === false) {
    throw new ParleyError('ATTESTATION_INVALID', `the release manifest is not valid (${String(view.reason)}; org key ${toHex(m.orgKey)})`);
  }
}
