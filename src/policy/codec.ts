/**
 * Postfix policy delegation framing (SMTPD_POLICY_README): a request is `name=value` lines, each
 * ended by "\n", closed by an empty line; the reply is `action=...` plus an empty line.
 *
 * The decoder is pure and incremental (feed it whatever the socket delivers) and size-capped so
 * a peer that never sends a newline cannot grow memory:
 *  - a line holds at most `maxLineBytes` (default 2048). A longer value is kept as its first and
 *    last bytes, not refused: smtpd passes client text on as it came, and `helo_name=` plus an
 *    EHLO argument of Postfix's 2,048-byte line_length_limit is 2,053 bytes. Refusing it failed
 *    the whole request, so every recipient of that session got "451 4.3.5 Server configuration
 *    problem". Cut, no value we read changes meaning: an address over 254 octets is invalid
 *    either way (its domain, at the end, is kept), as is a client address or state that long;
 *  - a request may hold at most `maxRequestBytes` (default 16384, counted as received; Postfix
 *    3.7 sends ~1–2 kB, and at most about 8 kB with every client-chosen value at its limit).
 * Anything else malformed (a line without `=` among its first bytes, an empty name, an empty
 * request) is a ProtocolError; after one, the decoder refuses further input and the connection
 * should close.
 */
import { ErrorCodes, ProtocolError } from '../errors.js';

/** Attribute name → value. Later duplicates win (Postfix never sends any). */
export type PolicyRequest = ReadonlyMap<string, string>;

export interface PolicyLimits {
  maxLineBytes: number;
  maxRequestBytes: number;
}

export const DEFAULT_POLICY_LIMITS: Readonly<PolicyLimits> = Object.freeze({ maxLineBytes: 2048, maxRequestBytes: 16_384 });

const NEWLINE = 0x0a;
const CR = 0x0d;
const EMPTY = Buffer.alloc(0);

export class PolicyRequestDecoder {
  private readonly limits: PolicyLimits;
  /** Bytes of an unfinished line (never more than maxLineBytes; its head once the line is cut). */
  private partial: Buffer = EMPTY;
  /** A line past maxLineBytes: its last bytes so far (the head stays in `partial`), else null. */
  private tail: Buffer | null = null;
  /** Bytes received of the unfinished line (kept or not). */
  private lineBytes = 0;
  /** Bytes of complete lines in the current request. */
  private requestBytes = 0;
  private attrs = new Map<string, string>();
  private failed: ProtocolError | null = null;

  constructor(limits: Partial<PolicyLimits> = {}) {
    this.limits = { ...DEFAULT_POLICY_LIMITS, ...limits };
  }

  /** Bytes held between calls (the unfinished line). */
  get bufferedBytes(): number {
    return this.partial.length + (this.tail?.length ?? 0);
  }

  /** True between requests: nothing of a next request has arrived yet. */
  get atBoundary(): boolean {
    return this.lineBytes === 0 && this.requestBytes === 0;
  }

  /**
   * Feeds bytes; returns every request they complete, in order. Throws ProtocolError. With
   * `onRequest`, each request is handed to it as it completes instead (and [] returned), so the
   * requests before a malformed line are delivered before the throw and can still be answered.
   */
  push(chunk: Uint8Array, onRequest?: (request: PolicyRequest) => void): PolicyRequest[] {
    if (this.failed) throw this.failed;
    const out: PolicyRequest[] = [];
    try {
      this.consume(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength), onRequest ?? ((r) => out.push(r)));
      return out;
    } catch (err) {
      this.failed = err as ProtocolError;
      this.partial = EMPTY;
      this.tail = null;
      this.attrs = new Map();
      throw err;
    }
  }

  private consume(chunk: Buffer, deliver: (request: PolicyRequest) => void): void {
    const { maxRequestBytes } = this.limits;
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(NEWLINE, start);
      const end = nl === -1 ? chunk.length : nl;
      this.lineBytes += end - start;
      if (this.requestBytes + this.lineBytes > maxRequestBytes) {
        throw new ProtocolError(`policy request larger than ${maxRequestBytes} bytes`, ErrorCodes.FRAME_TOO_LARGE);
      }
      const whole = nl !== -1 && this.lineBytes === end - start && this.lineBytes <= this.limits.maxLineBytes;
      // The usual line arrives whole in one read: no copy.
      if (!whole) this.keep(chunk.subarray(start, end));
      if (nl === -1) return;
      const line = whole ? chunk.subarray(start, end) : this.tail === null ? this.partial : Buffer.concat([this.partial, this.tail]);
      const cut = this.tail !== null ? this.partial.length : -1;
      this.requestBytes += this.lineBytes + 1;
      this.partial = EMPTY;
      this.tail = null;
      this.lineBytes = 0;
      start = nl + 1;
      const request = this.line(line, cut);
      if (request) deliver(request);
    }
  }

  /** Adds bytes of the unfinished line: whole up to maxLineBytes, then its head and last bytes. */
  private keep(bytes: Buffer): void {
    if (bytes.length === 0) return;
    const max = this.limits.maxLineBytes;
    if (this.tail === null && this.partial.length + bytes.length <= max) {
      this.partial = this.partial.length === 0 ? Buffer.from(bytes) : Buffer.concat([this.partial, bytes]);
      return;
    }
    const headBytes = Math.ceil(max / 2);
    const tailBytes = max - headBytes;
    if (this.tail === null) {
      const all = Buffer.concat([this.partial, bytes]);
      this.partial = Buffer.from(all.subarray(0, headBytes));
      this.tail = Buffer.from(all.subarray(all.length - tailBytes));
      return;
    }
    const joined = bytes.length >= tailBytes ? bytes : Buffer.concat([this.tail, bytes]);
    this.tail = Buffer.from(joined.subarray(joined.length - tailBytes));
  }

  /**
   * One complete line (without "\n"); returns the request it ends, if any. `cut` is where the
   * kept head of an over-long line ends (-1 when whole): its name must lie within the head.
   */
  private line(raw: Buffer, cut: number): PolicyRequest | null {
    // Postfix sends bare "\n"; tolerate "\r\n" from hand-written clients.
    const line = raw.length > 0 && raw[raw.length - 1] === CR ? raw.subarray(0, raw.length - 1) : raw;
    if (line.length === 0) {
      if (this.attrs.size === 0) throw new ProtocolError('empty policy request');
      const request = this.attrs;
      this.attrs = new Map();
      this.requestBytes = 0;
      return request;
    }
    const eq = line.indexOf(0x3d); // '='
    if (eq <= 0 || (cut >= 0 && eq >= cut)) throw new ProtocolError(eq === 0 ? 'policy attribute with an empty name' : 'policy attribute line without "="');
    const name = line.subarray(0, eq).toString('utf8');
    if (/[\s\x00-\x1f\x7f]/.test(name)) throw new ProtocolError('policy attribute name with control or space characters');
    this.attrs.set(name, line.subarray(eq + 1).toString('utf8'));
    return null;
  }
}

/** The reply to one request: `action=...` and the empty line that ends it. */
export function encodePolicyReply(action: string): string {
  if (/[\r\n]/.test(action)) throw new TypeError('policy action must be one line');
  return `action=${action}\n\n`;
}
