/**
 * The messages between the enclave (`handler.ts`) and its handler worker (`handler-worker.ts`).
 * Types only.
 *
 * The handler worker is a separate V8 isolate that holds no key: what it gets is the decrypted
 * message, the bot's device id and, on request, the conversation's safety number; what it can
 * ask for is a reply to the message it is running. The enclave validates everything the worker
 * posts (`parseFromHandler` in `handler.ts`): the handler's own code can post anything on that
 * port.
 */
import type { MessagePort } from 'node:worker_threads';
import type { SerializedParleyError } from '@parley/protocol/errors';
import type { ContentType } from '@parley/protocol/wire';
import type { BotMessage } from '../handler-api.js';

/** `workerData` of the handler worker: nothing secret. */
export interface HandlerWorkerData {
  /** The handler module (`file:` URL). */
  readonly handlerUrl: string;
  /** Every file the worker may load after it started: real path and SHA-256 (hex) as measured. */
  readonly measured: readonly (readonly [path: string, sha256: string])[];
  /** `ctx.safetyNumber()` is synchronous: the worker asks on `port` and waits on `flag` (a 4-byte flag, nothing else shared). */
  readonly sync: { readonly port: MessagePort; readonly flag: Int32Array };
}

/** An error the enclave answered a request of one run with; `echo` numbers it within the run. */
export interface EchoedError {
  readonly error: SerializedParleyError;
  readonly echo: number;
}

/** Enclave → handler worker. */
export type ToHandler =
  | { readonly t: 'run'; readonly run: number; readonly botDeviceId: string; readonly message: BotMessage }
  | { readonly t: 'replied'; readonly run: number; readonly seq: number; readonly error?: EchoedError };

/** Why a handler run failed, as the worker may say it: never the error's message. */
export interface HandlerFailure {
  /** The thrown error's `name` (`TypeError`), or `non-error value`. */
  readonly name: string;
  /** The `code` of a thrown `ParleyError`. */
  readonly code?: string;
  /** The handler rethrew the error the enclave answered request `echo` of this run with. */
  readonly echo?: number;
}

/** Handler worker → enclave. */
export type FromHandler =
  | { readonly t: 'loaded' }
  | { readonly t: 'loadFailed'; readonly message: string; readonly details?: { readonly reason: string; readonly file: string } }
  | { readonly t: 'reply'; readonly run: number; readonly seq: number; readonly type: ContentType; readonly body: Uint8Array }
  | { readonly t: 'done'; readonly run: number; readonly failure?: HandlerFailure };

/** `ctx.safetyNumber()`: worker → enclave on the sync port. */
export interface SyncRequest {
  readonly call: number;
  readonly run: number;
}

/** Enclave → worker on the sync port; the enclave sets the flag after posting it. */
export type SyncAnswer = { readonly call: number; readonly ok: true; readonly value: string } | { readonly call: number; readonly ok: false; readonly error: EchoedError };

/** A reply body larger than this is refused before it leaves the handler worker (the engine allows far less). */
export const MAX_REPLY_BODY_BYTES = 1024 * 1024;

/** What the ESM load guard throws for a file outside the measurement (the worker turns it into a typed error). */
export const UNMEASURED_MARK = 'parley-unmeasured-import:';
/** What the ESM load guard throws for a measured file whose bytes changed since. */
export const CHANGED_MARK = 'parley-changed-import:';
