/**
 * Encoding helpers for the client's own records (payloads, outbox and inbox entries, org
 * certificates): the protocol's bounds-checked big-endian writer/reader (every read checks the
 * length first and fails with the code its owner chooses), and base64 without Node's Buffer.
 */

import { ParleyError } from '@parley/protocol';

/** The protocol's bounds-checked codec, under the names the client's records use. */
export { ByteWriter as Writer, ByteReader as Reader } from '@parley/protocol';

/** Base64 (standard alphabet, padded) without Node's Buffer, so the core runs in browsers and workers. */
export function toBase64(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

/** Parses base64 (standard or URL-safe alphabet); throws `USAGE` on bad input. */
export function fromBase64(text: string): Uint8Array {
  const clean = text.trim().replace(/-/g, '+').replace(/_/g, '/');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(clean)) throw new ParleyError('USAGE', 'invalid base64');
  let bin: string;
  try {
    bin = atob(clean);
  } catch {
    throw new ParleyError('USAGE', 'invalid base64');
  }
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}
