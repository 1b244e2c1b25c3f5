/**
 * `parley-bot`: the bot developer's tool.
 *
 * ```
 * parley-bot measure <handler> [--egress host1,host2] [--org-key <hex>] [--json]
 *     prints the measurement (64 hex chars) an enclave running this handler attests to: the value
 *     to pin (`trust.botMeasurement`) or to sign (`parley-org manifest --measurement`). With
 *     --json, also the handler path, the egress policy and every measured file with its SHA-256.
 * parley-bot --version
 * ```
 * Run it where the bot runs, with the same installed packages: the measurement covers the
 * SDK's enclave code in the form it runs (sources in this repository, compiled `dist/` once
 * installed), the handler and every file it imports (`measurement.ts`).
 */
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { computeMeasurement, handlerPath } from '../measurement.js';

/** This package's version (package.json is two folders up from src/cli and from dist/cli). */
function packageVersion(): string {
  return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}

/** `--egress a.example.com,b.example.com:8443` as a list (repeatable). */
function egressList(value: string, previous: string[] = []): string[] {
  return [...previous, ...value.split(',').map((e) => e.trim()).filter((e) => e !== '')];
}

/** Builds the CLI. `out`/`err` are injectable for tests. */
export function buildProgram(io: { out: (s: string) => void; err: (s: string) => void }): Command {
  const program = new Command('parley-bot')
    .description('Parley bot tools: compute the measurement clients pin or the org signs')
    .configureOutput({ writeOut: io.out, writeErr: io.err })
    .version(packageVersion(), '-V, --version', 'print the version')
    .exitOverride();

  program
    .command('measure')
    .description('print the measurement an enclave running <handler> attests to')
    .argument('<handler>', 'the handler module: a path (relative to the working directory), a file: URL or a package specifier')
    .option('--egress <hosts>', 'the egress policy, as the bot\'s `egress` option: host names or origins, comma-separated (repeatable)', egressList)
    .option('--org-key <hex>', 'the org root public key, as the bot\'s `orgKey` option (64 hex chars)')
    .option('--json', 'print JSON: measurement, handler, egress and the measured files')
    .action(async (handler: string, opts: { egress?: string[]; orgKey?: string; json?: boolean }) => {
      const m = await computeMeasurement(handler, { ...(opts.egress ? { egress: opts.egress } : {}), ...(opts.orgKey !== undefined ? { orgKey: opts.orgKey } : {}) });
      if (!opts.json) {
        io.out(`${m.hex}\n`);
        return;
      }
      io.out(`${JSON.stringify({ measurement: m.hex, handler: handlerPath(handler), egress: m.egress, files: m.files }, null, 2)}\n`);
    });
  return program;
}

/** Entry point; returns the exit code. */
export async function main(
  argv: string[],
  io: { out: (s: string) => void; err: (s: string) => void } = { out: (s) => void process.stdout.write(s), err: (s) => void process.stderr.write(s) },
): Promise<number> {
  const program = buildProgram(io);
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (e) {
    const code = (e as { exitCode?: number }).exitCode;
    if (typeof code === 'number' && (e as { code?: string }).code?.startsWith('commander.')) return code;
    io.err(`parley-bot: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  }
}
