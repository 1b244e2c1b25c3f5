/**
 * `ctx.state`'s record: one conversation's handler state, as the enclave seals it and as the
 * handler worker holds it during a run. Shared by both sides (no key, no host code: part of the
 * handler worker's key-free import closure).
 *
 * Format: the UTF-8 JSON text of `[[key, value], …]` (pairs, not an object, so a key such as
 * `__proto__` is just a key). In memory each value is kept as its own JSON text, so a handler that
 * changes an object it got from `get` changes nothing until it calls `set` again.
 */
import { ParleyError } from '@parley/protocol/errors';

/** Largest state of one conversation: the UTF-8 bytes of its record (all keys and values, JSON). */
export const MAX_STATE_BYTES = 64 * 1024;
/** Longest key (UTF-16 code units). */
export const MAX_STATE_KEY_LENGTH = 200;

/** One conversation's state: key → the value's JSON text. */
export type StateEntries = Map<string, string>;

const encoder = new TextEncoder();

/** The record text of `entries` (`''` when empty: no record). */
export function encodeState(entries: StateEntries): string {
  if (entries.size === 0) return '';
  const parts: string[] = [];
  for (const [k, v] of entries) parts.push(`[${JSON.stringify(k)},${v}]`);
  return `[${parts.join(',')}]`;
}

/** UTF-8 size of a record text. */
export function stateBytes(text: string): number {
  return encoder.encode(text).length;
}

/**
 * @throws ParleyError `USAGE` (`details.reason: 'stateKey'`) for a key that is not a string of
 *   1..{@link MAX_STATE_KEY_LENGTH} characters.
 */
export function checkStateKey(key: unknown): string {
  if (typeof key !== 'string' || key.length === 0 || key.length > MAX_STATE_KEY_LENGTH) {
    throw new ParleyError('USAGE', `ctx.state keys are strings of 1..${MAX_STATE_KEY_LENGTH} characters`, { details: { reason: 'stateKey' } });
  }
  return key;
}

/**
 * The JSON text of a state value.
 * @throws ParleyError `USAGE` (`details.reason: 'stateValue'`) when `value` has no JSON form
 *   (`undefined`, a function, a `BigInt`, a cycle).
 */
export function stateValueText(value: unknown): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch {
    text = undefined;
  }
  if (typeof text !== 'string') throw new ParleyError('USAGE', 'ctx.state values must be JSON values (not undefined, a function, a BigInt or a cycle)', { details: { reason: 'stateValue' } });
  return text;
}

/** The error for a state over {@link MAX_STATE_BYTES}. */
export function stateTooLarge(bytes: number): ParleyError {
  return new ParleyError('USAGE', `ctx.state of one conversation is limited to ${MAX_STATE_BYTES} bytes of JSON (this write would make it ${bytes})`, {
    details: { reason: 'stateTooLarge', bytes, limit: MAX_STATE_BYTES },
  });
}

/**
 * Reads a record text back (`''`: empty), checking every limit: the enclave calls this on what
 * the handler worker hands back, which the handler's own code could have forged.
 * @throws ParleyError `USAGE` when the text is not a valid state record or breaks a limit.
 */
export function decodeState(text: string): StateEntries {
  const out: StateEntries = new Map();
  if (text === '') return out;
  const bytes = stateBytes(text);
  if (bytes > MAX_STATE_BYTES) throw stateTooLarge(bytes);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  if (!Array.isArray(parsed)) throw new ParleyError('USAGE', 'the handler state record is malformed', { details: { reason: 'stateMalformed' } });
  for (const pair of parsed as unknown[]) {
    if (!Array.isArray(pair) || pair.length !== 2) throw new ParleyError('USAGE', 'the handler state record is malformed', { details: { reason: 'stateMalformed' } });
    const key = checkStateKey(pair[0]);
    if (out.has(key)) throw new ParleyError('USAGE', 'the handler state record is malformed', { details: { reason: 'stateMalformed' } });
    out.set(key, stateValueText(pair[1]));
  }
  return out;
}
