/**
 * The handler's limits and dev mode as `createBot` takes them (README "Handler limits and
 * failures"), checked and turned into the supervisor's options. Runs in the host.
 */
import { ParleyError } from '@parley/protocol/errors';
import { encodeContent, type OutgoingContent } from '@parley/protocol/wire';
import { MAX_FAILURE_REPLY_BYTES, MAX_HANDLER_FAILURES, MAX_HANDLER_TIMEOUT_MS, MIN_HANDLER_TIMEOUT_MS } from '../rpc/messages.js';

/** Default `handlerTimeoutMs`. */
export const DEFAULT_HANDLER_TIMEOUT_MS = 30_000;
/** Default `maxHandlerFailures`. */
export const DEFAULT_MAX_HANDLER_FAILURES = 3;
/** Default `failureReply`. */
export const DEFAULT_FAILURE_REPLY = 'Sorry, something went wrong on our side. Please try again.';
/** Default `handoffUnclaimedReply`. */
export const DEFAULT_HANDOFF_UNCLAIMED_REPLY = 'Everyone is busy right now. You are still in the queue; an agent will join as soon as one is free.';

/** The options of `createBot` this module reads. */
export interface HandlerOptions {
  handlerTimeoutMs?: number;
  failureReply?: OutgoingContent | false | null;
  maxHandlerFailures?: number;
  dev?: boolean;
  handoffUnclaimedReply?: OutgoingContent | null;
}

/** What the supervisor takes. */
export interface CheckedHandlerOptions {
  handlerTimeoutMs: number;
  maxHandlerFailures: number;
  failureReply?: { type: 'text' | 'json' | 'binary'; body: Uint8Array };
  handoffUnclaimedReply?: { type: 'text' | 'json' | 'binary'; body: Uint8Array };
  dev?: boolean;
}

/**
 * Checks the handler options and applies the defaults.
 * @throws ParleyError `USAGE` naming the option when one is out of range or of the wrong type.
 */
export function checkHandlerOptions(o: HandlerOptions): CheckedHandlerOptions {
  const timeout = o.handlerTimeoutMs ?? DEFAULT_HANDLER_TIMEOUT_MS;
  if (!Number.isSafeInteger(timeout) || timeout < MIN_HANDLER_TIMEOUT_MS || timeout > MAX_HANDLER_TIMEOUT_MS) {
    throw new ParleyError('USAGE', `handlerTimeoutMs must be an integer of ${MIN_HANDLER_TIMEOUT_MS}..${MAX_HANDLER_TIMEOUT_MS} (ms)`);
  }
  const max = o.maxHandlerFailures ?? DEFAULT_MAX_HANDLER_FAILURES;
  if (!Number.isSafeInteger(max) || max < 1 || max > MAX_HANDLER_FAILURES) throw new ParleyError('USAGE', `maxHandlerFailures must be an integer of 1..${MAX_HANDLER_FAILURES}`);
  if (o.dev !== undefined && typeof o.dev !== 'boolean') throw new ParleyError('USAGE', 'dev must be a boolean');
  const failureReply = configuredReply('failureReply', o.failureReply === undefined ? DEFAULT_FAILURE_REPLY : o.failureReply, 'false');
  const unclaimed = configuredReply('handoffUnclaimedReply', o.handoffUnclaimedReply === undefined ? DEFAULT_HANDOFF_UNCLAIMED_REPLY : o.handoffUnclaimedReply, 'null');
  return {
    handlerTimeoutMs: timeout,
    maxHandlerFailures: max,
    ...(failureReply ? { failureReply } : {}),
    ...(unclaimed ? { handoffUnclaimedReply: unclaimed } : {}),
    ...(o.dev ? { dev: true } : {}),
  };
}

/**
 * A reply the host configures, encoded for the enclave; `undefined` for none (`false`/`null`).
 * @throws ParleyError `USAGE` naming `option` when it is empty, not content, or too large.
 */
function configuredReply(option: string, reply: OutgoingContent | false | null, none: string): CheckedHandlerOptions['failureReply'] {
  if (reply === false || reply === null) return undefined;
  if (typeof reply === 'string' && reply.length === 0) throw new ParleyError('USAGE', `${option} must not be empty (use ${none} for none)`);
  let encoded: { type: 'text' | 'json' | 'binary'; body: Uint8Array };
  try {
    encoded = encodeContent(reply);
  } catch {
    throw new ParleyError('USAGE', `${option} must be text, a JSON value or bytes (or ${none} for none)`);
  }
  if (encoded.body.length > MAX_FAILURE_REPLY_BYTES) throw new ParleyError('USAGE', `${option} must be at most ${MAX_FAILURE_REPLY_BYTES} bytes`);
  return { type: encoded.type, body: encoded.body.slice() };
}
