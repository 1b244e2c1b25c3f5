/**
 * The messages between the enclave (`handler.ts`) and its handler worker (`handler-worker.ts`).
 * Types only.
 *
 * The handler worker is a separate V8 isolate that holds no key: what it gets is the decrypted
 * message, the bot's device id and, on request, the conversation's safety number and current
 * members; what it can ask for is a reply to the message it is running, or (in a conversation)
 * a handoff to a human, a consent request or a form request to the customer's device. The enclave validates everything the worker
 * posts (`parseFromHandler` in `handler.ts`): the handler's own code can post anything on that
 * port.
 */
import type { MessagePort } from 'node:worker_threads';
import type { SerializedParleyError } from '@parley/protocol/errors';
import type { ContentType } from '@parley/protocol/wire';
import type { BotConsentEntry, BotConsentRequest, BotMessage, Member } from '../handler-api.js';
import type { EgressAnswerMessage, EgressRequestMessage } from './handler-egress-api.js';

/** `workerData` of the handler worker: nothing secret. */
export interface HandlerWorkerData {
  /** The handler module (`file:` URL). */
  readonly handlerUrl: string;
  /** Every file the worker may load after it started: real path and SHA-256 (hex) as measured. */
  readonly measured: readonly (readonly [path: string, sha256: string])[];
  /** `ctx.safetyNumber()` is synchronous: the worker asks on `port` and waits on `flag` (a 4-byte flag, nothing else shared). */
  readonly sync: { readonly port: MessagePort; readonly flag: Int32Array };
  /** `dev: true` (README "Handler limits and failures"): a failure report carries the error's message and stack. */
  readonly dev?: boolean;
}

/** An error the enclave answered a request of one run with; `echo` numbers it within the run. */
export interface EchoedError {
  readonly error: SerializedParleyError;
  readonly echo: number;
}

/** Enclave → handler worker. */
export type ToHandler =
  | {
      readonly t: 'run';
      readonly run: number;
      readonly botDeviceId: string;
      readonly message: BotMessage;
      /** The conversation's `ctx.state` record as committed (`handler-state.ts`; `''`: empty). */
      readonly state: string;
    }
  /** Liveness probe after a run's time limit: a worker that does not answer is stuck (a busy loop). */
  | { readonly t: 'ping'; readonly n: number }
  /** The answer to a `reply`, `handoff`, `consentRequest` or `formRequest` (`id`: the request's or form's id). */
  | { readonly t: 'replied'; readonly run: number; readonly seq: number; readonly error?: EchoedError; readonly id?: string }
  /** The answer to a `ctx.fetch` (`handler-egress-api.ts`). */
  | EgressAnswerMessage;

/** Why a handler run failed, as the worker may say it: never the error's message. */
export interface HandlerFailure {
  /** The thrown error's `name` (`TypeError`), or `non-error value`. */
  readonly name: string;
  /** The `code` of a thrown `ParleyError`. */
  readonly code?: string;
  /** The handler rethrew the error the enclave answered request `echo` of this run with. */
  readonly echo?: number;
  /** Only in dev mode: the error's message, stack, and the handler file and line it was thrown at (may carry plaintext). */
  readonly dev?: HandlerDevReport;
}

/** What dev mode reports of a handler's error (bounded: {@link MAX_DEV_MESSAGE}, {@link MAX_DEV_STACK}). */
export interface HandlerDevReport {
  readonly message: string;
  readonly stack?: string;
  readonly file?: string;
  readonly line?: number;
}

/** Longest error message dev mode reports. */
export const MAX_DEV_MESSAGE = 1000;
/** Longest stack dev mode reports. */
export const MAX_DEV_STACK = 4000;

/** Handler worker → enclave. */
export type FromHandler =
  | { readonly t: 'loaded' }
  | { readonly t: 'loadFailed'; readonly message: string; readonly details?: { readonly reason: string; readonly file: string } }
  | { readonly t: 'reply'; readonly run: number; readonly seq: number; readonly type: ContentType; readonly body: Uint8Array }
  /** `ctx.handoff`: answered like a reply (`replied`, same `seq` numbering: ordered with the replies). */
  | { readonly t: 'handoff'; readonly run: number; readonly seq: number; readonly queue: string; readonly reason: string }
  /** `ctx.requestConsent`: answered like a handoff (`replied` with the request's `id`). */
  | { readonly t: 'consentRequest'; readonly run: number; readonly seq: number; readonly request: BotConsentRequest }
  /** `ctx.requestForm`: answered like a handoff (`replied` with the form's `id`). */
  | { readonly t: 'formRequest'; readonly run: number; readonly seq: number; readonly fields: readonly string[]; readonly consentRequest: string }
  /**
   * The handler returned (or threw: `failure`). `state`: the conversation's `ctx.state` record
   * after the run, only when the run changed it; committed with the message's consumption.
   */
  | { readonly t: 'done'; readonly run: number; readonly failure?: HandlerFailure; readonly state?: string }
  /** The worker refused a reply of run `run` for its size (the run fails as `oversize`). */
  | { readonly t: 'oversize'; readonly run: number }
  /** Answer to `ping`. */
  | { readonly t: 'pong'; readonly n: number }
  /** A `ctx.fetch` request (checked by `parseEgressRequest` in `egress.ts`). */
  | EgressRequestMessage;

/** `ctx.safetyNumber()` (`what` absent), `ctx.members()` (`what: 'members'`) or `ctx.consents()` (`what: 'consents'`): worker → enclave on the sync port. */
export interface SyncRequest {
  readonly call: number;
  readonly run: number;
  readonly what?: 'members' | 'consents';
}

/** Enclave → worker on the sync port; the enclave sets the flag after posting it. */
export type SyncAnswer =
  | { readonly call: number; readonly ok: true; readonly value: string }
  | { readonly call: number; readonly ok: true; readonly members: readonly Member[] }
  | { readonly call: number; readonly ok: true; readonly consents: readonly BotConsentEntry[] }
  | { readonly call: number; readonly ok: false; readonly error: EchoedError };

/** A reply body larger than this is refused before it leaves the handler worker (the engine allows far less). */
export const MAX_REPLY_BODY_BYTES = 1024 * 1024;

/** What the ESM load guard throws for a file outside the measurement (the worker turns it into a typed error). */
export const UNMEASURED_MARK = 'parley-unmeasured-import:';
/** What the ESM load guard throws for a measured file whose bytes changed since. */
export const CHANGED_MARK = 'parley-changed-import:';
