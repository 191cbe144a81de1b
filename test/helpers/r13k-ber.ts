/**
 * Writing LDAP messages a real server sends only when broken or hostile (a SearchResultEntry with
 * 100,000 values or a value of 40 MB, an answer under a message ID nobody asked), for the fault
 * proxy to put in front of a real slapd's own answers. Definite lengths, minimal form.
 */

export function tlv(tag: number, content: Buffer): Buffer {
  const n = content.length;
  let head: Buffer;
  if (n < 0x80) head = Buffer.from([tag, n]);
  else if (n < 0x100) head = Buffer.from([tag, 0x81, n]);
  else if (n < 0x10000) head = Buffer.from([tag, 0x82, n >> 8, n & 0xff]);
  else if (n < 0x1000000) head = Buffer.from([tag, 0x83, n >> 16, (n >> 8) & 0xff, n & 0xff]);
  else head = Buffer.from([tag, 0x84, (n >>> 24) & 0xff, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff]);
  return Buffer.concat([head, content]);
}

const str = (s: string | Buffer): Buffer => tlv(0x04, Buffer.isBuffer(s) ? s : Buffer.from(s));

function int(n: number): Buffer {
  const bytes: number[] = [];
  do {
    bytes.unshift(n & 0xff);
    n = Math.floor(n / 256);
  } while (n > 0);
  if (bytes[0]! & 0x80) bytes.unshift(0);
  return tlv(0x02, Buffer.from(bytes));
}

/** The message ID of a whole LDAP message. */
export function messageIdOf(msg: Buffer): number {
  const header = msg[1]! & 0x80 ? 2 + (msg[1]! & 0x7f) : 2;
  let id = 0;
  for (let i = 0; i < msg[header + 1]!; i++) id = id * 256 + msg[header + 2 + i]!;
  return id;
}

/** A SearchResultEntry (0x64) under message `id`. */
export function searchEntry(id: number, dn: string, attributes: Record<string, (string | Buffer)[]>): Buffer {
  const list = Object.entries(attributes).map(([type, values]) => tlv(0x30, Buffer.concat([str(type), tlv(0x31, Buffer.concat(values.map(str)))])));
  return tlv(0x30, Buffer.concat([int(id), tlv(0x64, Buffer.concat([str(dn), tlv(0x30, Buffer.concat(list))]))]));
}

/** A SearchResultDone (0x65) under message `id` with result `code`. */
export function searchDone(id: number, code: number, diagnostic = ''): Buffer {
  return tlv(0x30, Buffer.concat([int(id), tlv(0x65, Buffer.concat([tlv(0x0a, Buffer.from([code])), str(''), str(diagnostic)]))]));
}
