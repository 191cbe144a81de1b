/**
 * The few BER primitives the lookup path needs: the tags search-encoder.ts writes and
 * lookup-reader.ts reads, and writing in the exact forms ldapts writes (minimal definite lengths
 * and minimal two's-complement integers).
 */

export const BOOLEAN = 0x01;
export const INTEGER = 0x02;
export const OCTET_STRING = 0x04;
export const ENUMERATED = 0x0a;
export const SEQUENCE = 0x30;
export const SET = 0x31;
/** LDAP application tags (RFC 4511 §4.5): the search request and its answers. */
export const SEARCH_REQUEST = 0x63;
export const SEARCH_ENTRY = 0x64;
export const SEARCH_DONE = 0x65;
export const SEARCH_REFERENCE = 0x73;

/** Octets of a BER length (minimal form, as ldapts writes it). */
export function lengthSize(n: number): number {
  return n <= 0x7f ? 1 : n <= 0xff ? 2 : n <= 0xffff ? 3 : 4;
}

/** Writes a length at `off`; returns the offset after it. */
export function writeLength(buf: Buffer, off: number, n: number): number {
  if (n <= 0x7f) {
    buf[off++] = n;
  } else if (n <= 0xff) {
    buf[off++] = 0x81;
    buf[off++] = n;
  } else if (n <= 0xffff) {
    buf[off++] = 0x82;
    buf[off++] = n >> 8;
    buf[off++] = n & 0xff;
  } else {
    if (n > 0xffffff) throw new RangeError('LDAP message too long');
    buf[off++] = 0x83;
    buf[off++] = n >> 16;
    buf[off++] = (n >> 8) & 0xff;
    buf[off++] = n & 0xff;
  }
  return off;
}

/** Content octets of a non-negative INTEGER (ldapts' minimal two's complement). */
export function intSize(n: number): number {
  return n <= 0x7f ? 1 : n <= 0x7fff ? 2 : n <= 0x7fffff ? 3 : 4;
}

/** Writes an INTEGER element (tag 0x02) at `off`; returns the offset after it. */
export function writeInt(buf: Buffer, off: number, n: number): number {
  const size = intSize(n);
  buf[off++] = INTEGER;
  buf[off++] = size;
  for (let shift = (size - 1) * 8; shift >= 0; shift -= 8) buf[off++] = (n >>> shift) & 0xff;
  return off;
}

/** A whole element: tag, length, content (for constants built once). */
export function element(tag: number, content: Buffer): Buffer {
  const head = Buffer.alloc(1 + lengthSize(content.length));
  head[0] = tag;
  writeLength(head, 1, content.length);
  return Buffer.concat([head, content]);
}
