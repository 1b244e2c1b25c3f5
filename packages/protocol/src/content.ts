/**
 * The one message-content model, the same on every side (a customer's `ParleyClient`, an
 * agent's console, a bot handler): a message is text, JSON or binary, and carries exactly one of
 * `text`, `json` or `binary`.
 *
 * Sending: a `string` is text, a `Uint8Array` is binary, anything else is JSON
 * (`JSON.stringify`). Receiving: text and JSON bodies are decoded; one that does not decode
 * (invalid UTF-8 or JSON, though authenticated) is handed over as `binary`, so nothing is lost.
 */
import { ParleyError } from './errors.js';

/** The kinds of content a message carries. */
export type ContentType = 'text' | 'json' | 'binary';

/**
 * What an app can send: text, bytes, or any JSON-serialisable value (the union documents the
 * forms; TypeScript reads it as `unknown`, since any JSON value is allowed).
 */
export type OutgoingContent = string | Uint8Array | unknown;

/**
 * A received message's content: exactly one of `text`, `json`, `binary` is set, per `type`
 * (the others are declared `undefined`, so `m.text ?? m.json` reads without narrowing).
 */
export type MessageContent =
  | { readonly type: 'text'; readonly text: string; readonly json?: undefined; readonly binary?: undefined }
  | { readonly type: 'json'; readonly json: unknown; readonly text?: undefined; readonly binary?: undefined }
  | { readonly type: 'binary'; readonly binary: Uint8Array; readonly text?: undefined; readonly json?: undefined };

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/**
 * The payload type and body of `content`.
 * @throws ParleyError `USAGE` for a value that is not a string, bytes or JSON-serialisable.
 */
export function encodeContent(content: OutgoingContent): { type: ContentType; body: Uint8Array } {
  if (typeof content === 'string') return { type: 'text', body: encoder.encode(content) };
  if (content instanceof Uint8Array) return { type: 'binary', body: content };
  let json: string | undefined;
  try {
    json = JSON.stringify(content);
  } catch (cause) {
    throw new ParleyError('USAGE', 'content is not JSON-serialisable', { cause });
  }
  if (json === undefined) throw new ParleyError('USAGE', 'content must be a string, bytes or a JSON value');
  return { type: 'json', body: encoder.encode(json) };
}

/** The content of a decrypted body of `type`. */
export function decodeContent(type: ContentType, body: Uint8Array): MessageContent {
  try {
    if (type === 'text') return { type, text: decoder.decode(body) };
    if (type === 'json') return { type, json: JSON.parse(decoder.decode(body)) as unknown };
  } catch {
    // Authenticated but not valid UTF-8/JSON: handed over as binary rather than dropped.
  }
  return { type: 'binary', binary: body };
}
