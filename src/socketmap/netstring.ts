/**
 * Netstrings (`LEN:DATA,`, D. J. Bernstein) as Postfix socketmap_table(5) uses them.
 * Pure and incremental: the decoder is fed whatever the socket delivered and returns the complete
 * frames; it never touches a socket. Every byte it holds is bounded by `maxPayload`: an
 * oversized length is refused while its digits arrive, before any payload is buffered.
 */
import { ErrorCodes, ProtocolError } from '../errors.js';

/** README "Reliability and limits": socketmap requests over 10,000 bytes are refused. */
export const MAX_NETSTRING_PAYLOAD = 10_000;

const COLON = 0x3a;
const COMMA = 0x2c;
const ZERO = 0x30;
const NINE = 0x39;

const EMPTY = Buffer.alloc(0);

type State = 'length' | 'payload' | 'comma' | 'failed';

export class NetstringDecoder {
  readonly maxPayload: number;
  private readonly maxDigits: number;
  private state: State = 'length';
  private lengthDigits = 0;
  private length = 0;
  private payload: Buffer = EMPTY;
  private filled = 0;

  constructor(maxPayload = MAX_NETSTRING_PAYLOAD) {
    if (!Number.isSafeInteger(maxPayload) || maxPayload < 0) throw new RangeError('maxPayload must be a non-negative integer');
    this.maxPayload = maxPayload;
    this.maxDigits = String(maxPayload).length;
  }

  /** Bytes held for an incomplete frame (payload so far). Never more than maxPayload. */
  get buffered(): number {
    return this.filled;
  }

  /** True between frames: nothing partial is held. */
  get atBoundary(): boolean {
    return this.state === 'length' && this.lengthDigits === 0;
  }

  /**
   * Calls `onFrame` for each complete frame, in order, then throws ProtocolError at a malformed
   * byte (after the frames before it, so they can still be answered); the decoder is then
   * unusable (the connection must close: the stream has lost framing). A frame that lies whole in
   * `chunk` is passed as a view of it (`view` true, valid only during the call), not a copy.
   */
  feed(chunk: Uint8Array | string, onFrame: (frame: Buffer, view: boolean) => void): void {
    if (this.state === 'failed') throw new ProtocolError('netstring decoder already failed');
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    const end = bytes.length;
    let i = 0;
    while (i < end) {
      switch (this.state) {
        case 'length': {
          const b = bytes[i++]!;
          if (b === COLON) {
            if (this.lengthDigits === 0) this.fail('netstring length is empty');
            const length = this.length;
            // Whole payload and its comma in this chunk: hand out a view, copy nothing.
            if (end - i > length) {
              const after = bytes[i + length]!;
              if (after !== COMMA) {
                this.state = 'comma';
                i += length;
                break;
              }
              this.lengthDigits = 0;
              this.length = 0;
              onFrame(bytes.subarray(i, i + length), true);
              i += length + 1;
              break;
            }
            this.startPayload();
            if (length === 0) this.state = 'comma';
          } else if (b >= ZERO && b <= NINE) {
            if (this.lengthDigits === 1 && this.length === 0) this.fail('netstring length has a leading zero');
            this.lengthDigits++;
            this.length = this.length * 10 + (b - ZERO);
            if (this.lengthDigits > this.maxDigits || this.length > this.maxPayload) {
              this.fail(`netstring longer than ${this.maxPayload} bytes`, ErrorCodes.FRAME_TOO_LARGE);
            }
          } else {
            this.fail(`netstring length contains ${describeByte(b)}`);
          }
          break;
        }
        case 'payload': {
          const n = Math.min(this.length - this.filled, end - i);
          this.payload.set(bytes.subarray(i, i + n), this.filled);
          this.filled += n;
          i += n;
          if (this.filled === this.length) this.state = 'comma';
          break;
        }
        case 'comma': {
          const b = bytes[i++]!;
          if (b !== COMMA) this.fail(`netstring not terminated by ',' (got ${describeByte(b)})`);
          const frame = this.payload;
          this.reset();
          onFrame(frame, false);
          break;
        }
      }
    }
  }

  private startPayload(): void {
    this.payload = Buffer.allocUnsafe(this.length);
    this.filled = 0;
    this.state = 'payload';
  }

  private reset(): void {
    this.state = 'length';
    this.lengthDigits = 0;
    this.length = 0;
    this.payload = EMPTY;
    this.filled = 0;
  }

  private fail(message: string, code: 'RCPTGATE_PROTOCOL' | 'RCPTGATE_FRAME_TOO_LARGE' = ErrorCodes.PROTOCOL): never {
    this.state = 'failed';
    this.payload = EMPTY;
    this.filled = 0;
    throw new ProtocolError(message, code);
  }
}

/** `LEN:DATA,` as a string, for replies written as text (the socket encodes it as UTF-8). */
export function netstringText(data: string): string {
  return `${Buffer.byteLength(data, 'utf8')}:${data},`;
}

function describeByte(b: number): string {
  return b >= 0x21 && b <= 0x7e ? `'${String.fromCharCode(b)}'` : `byte 0x${b.toString(16).padStart(2, '0')}`;
}
