/**
 * The enclave's end of the host channel in process mode (README "Enclave modes: worker and
 * process"): the IPC channel of a child process, with the interface `parentPort` has in worker
 * mode, so `entry.ts` runs the same RPC (the same messages, validated the same way) in both
 * modes. The channel uses Node's `advanced` serialization (structured clone), so byte arrays and
 * the sealing secret's `ArrayBuffer` arrive as they do over a worker port; a `MessagePort`
 * cannot cross it (the key-exposing test hook is worker mode only).
 */

/** What `entry.ts` needs of its channel to the host: `parentPort` has it too. */
export interface EnclavePort {
  postMessage(message: unknown): void;
  on(event: 'message', listener: (message: unknown) => void): unknown;
}

/**
 * The IPC channel of this process as an {@link EnclavePort}. When the host goes away (the
 * channel closes), the enclave exits: it never runs without its host.
 * @throws Error when this process has no IPC channel (the entry was started some other way).
 */
export function processPort(): EnclavePort {
  const send = process.send?.bind(process);
  if (!send) throw new Error('the enclave entry must run in a worker thread or in a child process with an IPC channel');
  process.on('disconnect', () => process.exit(0));
  return {
    postMessage: (message) => {
      send(message);
    },
    on: (_event, listener) => process.on('message', listener),
  };
}

/** Node options a worker thread accepts, with their value (the loaders: `--import`, …). */
const PER_THREAD_WITH_VALUE = new Set(['--import', '--loader', '--experimental-loader', '--require', '-r', '--conditions', '-C']);

/**
 * The `execArgv` for the handler worker: this process's options. Under the permission model
 * (process mode) only the per-thread ones (the loaders): a worker refuses the process-wide
 * `--experimental-permission`, `--allow-*` and heap options, which apply to it anyway.
 */
export function handlerWorkerExecArgv(): string[] {
  const argv = process.execArgv;
  if (!argv.includes('--experimental-permission')) return argv;
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const eq = a.indexOf('=');
    const name = eq > 0 ? a.slice(0, eq) : a;
    if (!PER_THREAD_WITH_VALUE.has(name)) continue;
    if (eq > 0) out.push(a);
    else if (i + 1 < argv.length) out.push(a, argv[++i]!);
  }
  return out;
}
