import type { NetstringDecoder } from '../../src/socketmap/netstring.js';

/** The frames one chunk completes, copied out of feed()'s callback (views die with the chunk). */
export function framesOf(decoder: NetstringDecoder, chunk: Uint8Array | string): Buffer[] {
  const out: Buffer[] = [];
  decoder.feed(chunk, (frame, view) => out.push(view ? Buffer.from(frame) : frame));
  return out;
}

/** `LEN:DATA,` for any bytes: what a socketmap client sends. */
export function netstring(data: string | Uint8Array): Buffer {
  const payload = typeof data === 'string' ? Buffer.from(data, 'utf8') : Buffer.from(data);
  return Buffer.concat([Buffer.from(`${payload.length}:`, 'ascii'), payload, Buffer.from(',', 'ascii')]);
}
