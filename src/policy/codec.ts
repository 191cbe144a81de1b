/**
 * Postfix policy delegation framing (SMTPD_POLICY_README): a request is `name=value` lines, each
 * ended by "\n", closed by an empty line; the reply is `action=...` plus an empty line.
 *
 * The decoder is pure and incremental (feed it whatever the socket delivers) and size-capped so
 * a peer that never sends a newline cannot grow memory:
 *  - a line may hold at most `maxLineBytes` (default 2048, Postfix's own line_length_limit);
 *  - a request may hold at most `maxRequestBytes` (default 16384; Postfix 3.7 sends ~1–2 kB).
 * Anything else malformed (a line without `=`, an empty name, an empty request) is a
 * ProtocolError; after one, the decoder refuses further input and the connection should close.
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
  /** Bytes of an unfinished line (never more than maxLineBytes). */
  private partial: Buffer = EMPTY;
  /** Bytes of complete lines in the current request. */
  private requestBytes = 0;
  private attrs = new Map<string, string>();
  private failed: ProtocolError | null = null;

  constructor(limits: Partial<PolicyLimits> = {}) {
    this.limits = { ...DEFAULT_POLICY_LIMITS, ...limits };
  }

  /** Bytes held between calls (the unfinished line). */
  get bufferedBytes(): number {
    return this.partial.length;
  }

  /** True between requests: nothing of a next request has arrived yet. */
  get atBoundary(): boolean {
    return this.partial.length === 0 && this.requestBytes === 0;
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
      this.attrs = new Map();
      throw err;
    }
  }

  private consume(chunk: Buffer, deliver: (request: PolicyRequest) => void): void {
    const { maxLineBytes, maxRequestBytes } = this.limits;
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(NEWLINE, start);
      const end = nl === -1 ? chunk.length : nl;
      const lineLength = this.partial.length + (end - start);
      if (lineLength > maxLineBytes) {
        throw new ProtocolError(`policy attribute line longer than ${maxLineBytes} bytes`, ErrorCodes.FRAME_TOO_LARGE);
      }
      if (this.requestBytes + lineLength > maxRequestBytes) {
        throw new ProtocolError(`policy request larger than ${maxRequestBytes} bytes`, ErrorCodes.FRAME_TOO_LARGE);
      }
      if (nl === -1) {
        if (end > start) this.partial = Buffer.concat([this.partial, chunk.subarray(start, end)]);
        return;
      }
      const line = this.partial.length > 0 ? Buffer.concat([this.partial, chunk.subarray(start, end)]) : chunk.subarray(start, end);
      this.partial = EMPTY;
      start = nl + 1;
      const request = this.line(line);
      if (request) deliver(request);
    }
  }

  /** One complete line (without "\n"); returns the request it ends, if any. */
  private line(raw: Buffer): PolicyRequest | null {
    // Postfix sends bare "\n"; tolerate "\r\n" from hand-written clients.
    const line = raw.length > 0 && raw[raw.length - 1] === CR ? raw.subarray(0, raw.length - 1) : raw;
    if (line.length === 0) {
      if (this.attrs.size === 0) throw new ProtocolError('empty policy request');
      const request = this.attrs;
      this.attrs = new Map();
      this.requestBytes = 0;
      return request;
    }
    this.requestBytes += raw.length + 1;
    const eq = line.indexOf(0x3d); // '='
    if (eq <= 0) throw new ProtocolError(eq === 0 ? 'policy attribute with an empty name' : 'policy attribute line without "="');
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
