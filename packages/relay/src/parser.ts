/**
 * The socket.io packet decoder, with two bounds that fit the relay protocol (docs/threats.md R6, R7).
 *
 * socket.io-parser allows 10 binary attachments per packet; a prekey upload carries one per
 * one-time prekey (up to {@link RELAY_MAX_OPKS_PER_UPLOAD}) plus five, so the count is raised.
 * Raising it alone would let a packet grow to (attachments × maxHttpBufferSize), so this
 * decoder also caps the total bytes of one packet (JSON part plus attachments) at the frame
 * limit. Going over throws; socket.io then closes that connection, and only that one.
 */
import * as parser from 'socket.io-parser';
import { RELAY_MAX_OPKS_PER_UPLOAD } from '@parley/protocol/wire';

/** identity (3) + signed prekey (2) + one per OPK, with room to spare. */
export const MAX_ATTACHMENTS = RELAY_MAX_OPKS_PER_UPLOAD + 8;

/** What socket.io's `parser` option takes. */
export interface SocketIoParser {
  readonly protocol: number;
  readonly PacketType: typeof parser.PacketType;
  readonly Encoder: typeof parser.Encoder;
  readonly Decoder: typeof parser.Decoder;
}

/** A parser object for socket.io's `parser` option. */
export function boundedParser(maxPacketBytes: number): SocketIoParser {
  class BoundedDecoder extends parser.Decoder {
    #bytes = 0;
    constructor() {
      super({ maxAttachments: MAX_ATTACHMENTS });
    }
    override add(obj: unknown): void {
      // A string starts a new packet; binary frames belong to the packet being rebuilt.
      if (typeof obj === 'string') this.#bytes = obj.length;
      else if (obj instanceof ArrayBuffer || ArrayBuffer.isView(obj)) this.#bytes += obj.byteLength;
      if (this.#bytes > maxPacketBytes) throw new Error('packet too large');
      super.add(obj);
    }
  }
  return { protocol: parser.protocol, PacketType: parser.PacketType, Encoder: parser.Encoder, Decoder: BoundedDecoder };
}
