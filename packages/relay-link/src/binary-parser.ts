/**
 * socket.io-client hands binary fields to the app as `ArrayBuffer` in browsers (as `Buffer`, a
 * `Uint8Array`, in Node). The relay contract uses `Uint8Array` everywhere, so the transport
 * decodes packets with the stock socket.io parser and turns every `ArrayBuffer` in them into a
 * `Uint8Array`, at the one place every event and acknowledgement passes through.
 */
import { Decoder as StockDecoder, Encoder } from 'socket.io-parser';

/** Replaces every ArrayBuffer (at any depth of arrays and plain objects) with a Uint8Array view. */
export function toUint8Arrays(value: unknown, depth = 0): unknown {
  if (depth > 32) return value;
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  if (ArrayBuffer.isView(value)) return value instanceof Uint8Array ? value : new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  if (Array.isArray(value)) return value.map((v) => toUint8Arrays(v, depth + 1));
  if (value !== null && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = toUint8Arrays(v, depth + 1);
    return out;
  }
  return value;
}

interface Packet {
  type: number;
  nsp: string;
  data?: unknown;
  id?: number;
}

/** The part of the decoder interface socket.io-client's Manager uses: `on`/`off`, `add`, `destroy`. */
class Decoder {
  readonly #inner = new StockDecoder();
  readonly #listeners = new Set<(packet: Packet) => void>();
  constructor() {
    this.#inner.on('decoded', (packet: Packet) => {
      const fixed = { ...packet, data: toUint8Arrays(packet.data) };
      for (const l of [...this.#listeners]) l(fixed);
    });
  }
  on(event: string, listener: (packet: Packet) => void): this {
    if (event === 'decoded') this.#listeners.add(listener);
    return this;
  }
  off(event?: string, listener?: (packet: Packet) => void): this {
    if (event === undefined || listener === undefined) this.#listeners.clear();
    else if (event === 'decoded') this.#listeners.delete(listener);
    return this;
  }
  add(chunk: unknown): void {
    this.#inner.add(chunk);
  }
  destroy(): void {
    this.#inner.destroy();
  }
}

/** The parser to pass as socket.io-client's `parser` option. */
export const uint8ArrayParser = { Encoder, Decoder };
