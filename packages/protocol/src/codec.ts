/**
 * Bounds-checked big-endian byte writer and reader, used by the wire format and the pickles.
 * The reader checks every length against the buffer before reading and reports problems
 * with the error code its owner chooses (wire: MALFORMED_MESSAGE, pickles: STORAGE_INTEGRITY).
 */
import { ParleyError, type ParleyErrorCode } from './errors.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/** Appends fields into a growing buffer. */
export class ByteWriter {
  #buf: Uint8Array;
  #view: DataView;
  #len = 0;

  constructor(initialCapacity = 256) {
    this.#buf = new Uint8Array(initialCapacity);
    this.#view = new DataView(this.#buf.buffer);
  }

  /**
   * Makes room for `n` bytes and returns their offset. Callers must take the offset before
   * touching `#buf`/`#view`: growing replaces both, and `this.#view.setX(this.#reserve(k), …)`
   * would write through the old, too-small view (JS evaluates the receiver first).
   */
  #reserve(n: number): number {
    if (this.#len + n > this.#buf.length) {
      const next = new Uint8Array(Math.max(this.#buf.length * 2, this.#len + n));
      next.set(this.#buf.subarray(0, this.#len));
      this.#buf = next;
      this.#view = new DataView(next.buffer);
    }
    const at = this.#len;
    this.#len += n;
    return at;
  }

  u8(v: number): this {
    const at = this.#reserve(1);
    this.#view.setUint8(at, v);
    return this;
  }
  u16(v: number): this {
    const at = this.#reserve(2);
    this.#view.setUint16(at, v);
    return this;
  }
  u32(v: number): this {
    const at = this.#reserve(4);
    this.#view.setUint32(at, v >>> 0);
    return this;
  }
  /** A non-negative safe integer as u64. */
  u64(v: number): this {
    const at = this.#reserve(8);
    this.#view.setBigUint64(at, BigInt(v));
    return this;
  }
  /** Raw bytes of a length both sides know. */
  fixed(bytes: Uint8Array): this {
    const at = this.#reserve(bytes.length);
    this.#buf.set(bytes, at);
    return this;
  }
  /** u32 length prefix then bytes. */
  bytes(bytes: Uint8Array): this {
    return this.u32(bytes.length).fixed(bytes);
  }
  /** u8 length then UTF-8 (at most 255 bytes). */
  shortString(s: string): this {
    const b = encoder.encode(s);
    if (b.length > 255) throw new ParleyError('USAGE', 'string too long for a short field', { details: { length: b.length } });
    return this.u8(b.length).fixed(b);
  }
  /** 0 for absent, 1 then the bytes (u32 length) for present. */
  optionalBytes(bytes: Uint8Array | null | undefined): this {
    return bytes ? this.u8(1).bytes(bytes) : this.u8(0);
  }
  /** The written bytes as a standalone array (no copy when the capacity was exact). */
  finish(): Uint8Array {
    return this.#len === this.#buf.length ? this.#buf : this.#buf.slice(0, this.#len);
  }
}

/** Reads fields from a buffer, throwing a typed error on any overrun. */
export class ByteReader {
  readonly #buf: Uint8Array;
  readonly #view: DataView;
  readonly #code: ParleyErrorCode;
  #pos = 0;

  constructor(buf: Uint8Array, errorCode: ParleyErrorCode) {
    this.#buf = buf;
    this.#view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    this.#code = errorCode;
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
    if (!Number.isInteger(n) || n < 0 || n > this.remaining) this.fail('input is truncated');
    const at = this.#pos;
    this.#pos += n;
    return at;
  }

  u8(): number {
    return this.#view.getUint8(this.#take(1));
  }
  u16(): number {
    return this.#view.getUint16(this.#take(2));
  }
  u32(): number {
    return this.#view.getUint32(this.#take(4));
  }
  u64(): number {
    const v = this.#view.getBigUint64(this.#take(8));
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) this.fail('integer out of range');
    return Number(v);
  }
  /** A copy of the next `n` bytes. */
  fixed(n: number): Uint8Array {
    const at = this.#take(n);
    return this.#buf.slice(at, at + n);
  }
  /** u32 length prefix then bytes; `max` bounds the length before anything is read. */
  bytes(max = 1 << 20): Uint8Array {
    const n = this.u32();
    if (n > max) this.fail('length field too large');
    return this.fixed(n);
  }
  optionalBytes(max?: number): Uint8Array | null {
    const flag = this.u8();
    if (flag === 0) return null;
    if (flag !== 1) this.fail('invalid presence flag');
    return this.bytes(max);
  }
  /** A u8-length-prefixed UTF-8 string. */
  shortString(): string {
    return this.utf8(this.fixed(this.u8()));
  }
  /** Decodes UTF-8, failing with this reader's error code on invalid input. */
  utf8(bytes: Uint8Array): string {
    try {
      return decoder.decode(bytes);
    } catch {
      return this.fail('invalid UTF-8');
    }
  }
  /** The rest of the buffer (a copy). */
  rest(): Uint8Array {
    return this.fixed(this.remaining);
  }
  /** Throws unless every byte was consumed. */
  end(): void {
    if (this.remaining !== 0) this.fail('trailing bytes');
  }
}
