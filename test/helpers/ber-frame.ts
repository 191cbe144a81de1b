/**
 * The length of the BER TLV at the start of `buf` (an LDAP message: tag, definite length,
 * content), or 0 while it has not arrived whole. For the test proxies that split LDAP streams.
 */
export function tlvLength(buf: Buffer): number {
  if (buf.length < 2) return 0;
  let len = buf[1]!;
  let header = 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (buf.length < 2 + n) return 0;
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[2 + i]!;
    header = 2 + n;
  }
  return buf.length < header + len ? 0 : header + len;
}

/** Where the content of the TLV at the start of `buf` begins (its tag and length octets skipped). */
export function tlvHeader(buf: Buffer): number {
  return buf[1]! & 0x80 ? 2 + (buf[1]! & 0x7f) : 2;
}
