/**
 * The one reader of an org statement as an operator hands it to the bot (a certificate or a
 * release manifest): bytes, base64 as `parley-org` prints it, or the JSON that `parley-org … --json`
 * prints, whose `field` holds the base64.
 */
import { ParleyError } from '@parley/protocol/verify';

/**
 * Parses `value` into the statement's bytes (not yet checked as that statement).
 * @param what  the statement's name in messages, e.g. `certificate`.
 * @param field the JSON output's field that holds the base64.
 * @throws ParleyError `USAGE`.
 */
export function parseStatementInput(value: Uint8Array | string, what: string, field: string, fromBase64: (text: string) => Uint8Array): Uint8Array {
  if (value instanceof Uint8Array) return value.slice();
  if (typeof value !== 'string') throw new ParleyError('USAGE', `${what} must be bytes or a base64 string`);
  let text = value.trim();
  if (text.startsWith('{')) {
    let parsed: Record<string, unknown>;
    try {
      parsed = JSON.parse(text) as Record<string, unknown>;
    } catch {
      throw new ParleyError('USAGE', `${what} JSON does not parse`);
    }
    const inner = parsed[field];
    if (typeof inner !== 'string') throw new ParleyError('USAGE', `${what} JSON has no "${field}" field`);
    text = inner;
  }
  try {
    return fromBase64(text);
  } catch {
    throw new ParleyError('USAGE', `${what} is not valid base64`);
  }
}
