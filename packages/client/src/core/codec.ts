/**
 * A tiny bounds-checked big-endian writer/reader for the client's own records (payloads,
 * outbox and inbox entries, org certificates). Every read checks the length first and fails with
 * the error code its owner chooses (wire data: `MALFORMED_MESSAGE`, storage: `STORAGE_INTEGRITY`).
 */
import { ParleyError, type ParleyErrorCode } from '@parley/protocol';

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

export class Writer {
  readonly #parts: Uint8Array[] = [];
  #length = 0;

  #push(bytes: Uint8Array): this {
    this.#parts.push(bytes);
    this.#length += bytes.length;
    return this;
  }
  u8(v: number): this {
    return this.#push(new Uint8Array([v & 0xff]));
  }
  u32(v: number): this {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v >>> 0);
    return this.#push(b);
  }
  u64(v: number): this {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt(Math.max(0, Math.floor(v))));
    return this.#push(b);
  }
  fixed(bytes: Uint8Array): this {
    return this.#push(bytes.slice());
  }
  /** u8 length then UTF-8 (at most 255 bytes). */
  shortString(s: string): this {
    const b = encoder.encode(s);
    if (b.length > 255) throw new ParleyError('USAGE', 'string too long for a short field', { details: { length: b.length } });
    return this.u8(b.length).#push(b);
  }
  /** u32 length then bytes. */
  bytes(b: Uint8Array): this {
    return this.u32(b.length).fixed(b);
  }
  finish(): Uint8Array {
    const out = new Uint8Array(this.#length);
    let at = 0;
    for (const p of this.#parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }
}

export class Reader {
  readonly #buf: Uint8Array;
  readonly #view: DataView;
  readonly #code: ParleyErrorCode;
  #pos = 0;

  constructor(buf: Uint8Array, code: ParleyErrorCode) {
    this.#buf = buf;
    this.#view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    this.#code = code;
  }
  get offset(): number {
    return this.#pos;
  }
  get remaining(): number {
    return this.#buf.length - this.#pos;
  }
  fail(message: string): never {
    throw new ParleyError(this.#code, message, { details: { offset: this.#pos, length: this.#buf.length } });
  }
  #take(n: number): number {
    if (n > this.remaining) this.fail('input is truncated');
    const at = this.#pos;
    this.#pos += n;
    return at;
  }
  u8(): number {
    return this.#view.getUint8(this.#take(1));
  }
  u32(): number {
    return this.#view.getUint32(this.#take(4));
  }
  u64(): number {
    const v = this.#view.getBigUint64(this.#take(8));
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) this.fail('integer out of range');
    return Number(v);
  }
  fixed(n: number): Uint8Array {
    const at = this.#take(n);
    return this.#buf.slice(at, at + n);
  }
  shortString(): string {
    return this.utf8(this.fixed(this.u8()));
  }
  bytes(max: number): Uint8Array {
    const n = this.u32();
    if (n > max) this.fail('length field too large');
    return this.fixed(n);
  }
  rest(): Uint8Array {
    return this.fixed(this.remaining);
  }
  utf8(b: Uint8Array): string {
    try {
      return decoder.decode(b);
    } catch {
      return this.fail('invalid UTF-8');
    }
  }
  end(): void {
    if (this.remaining !== 0) this.fail('trailing bytes');
  }
}

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
