/**
 * Node's own floor for the cold socketmap path: the plainest `node:net` server that turns each
 * netstring into one LDAP search on one directory connection and answers `OK <first value>` or
 * `NOTFOUND ` when the search is done. It sends the same search as rcptgate's openldap preset and
 * native `ldap:` (the OR of mail and mailAlternateAddress, both attributes asked), but has no
 * cache, no limits, no batching, no failover, no TLS and no bind, and trusts the server's framing.
 * Set against native `ldap:` and slapd it shows what any Node server in between pays per cold
 * lookup: the two socket round trips and the BER, before any of rcptgate's work. It is a
 * reference, not a product path: it answers `TEMP` for any result code but success.
 *
 *   node --import tsx bench/servers/ldap-forwarder.ts PORT LDAP_PORT BASE_DN
 */
import net from 'node:net';
import { takeRequests } from './netstring-requests.js';

const [port, ldapPort, baseDN] = [Number(process.argv[2]), Number(process.argv[3]), process.argv[4] ?? ''];

const length = (n: number): number[] => (n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : [0x82, n >> 8, n & 0xff]);
const tlv = (tag: number, ...parts: Buffer[]): Buffer => {
  const body = Buffer.concat(parts);
  return Buffer.concat([Buffer.from([tag, ...length(body.length)]), body]);
};
const octets = (s: string): Buffer => tlv(0x04, Buffer.from(s, 'utf8'));
/** A positive INTEGER below 2^31 in as few octets as keep its top bit clear. */
const integer = (n: number): Buffer => {
  const bytes = [n & 0xff];
  for (let v = n >>> 8; v > 0 || bytes[0]! & 0x80; v >>>= 8) bytes.unshift(v & 0xff);
  return tlv(0x02, Buffer.from(bytes));
};
// scope wholeSubtree, derefAliases never, sizeLimit 16, timeLimit 10, typesOnly false
const fixed = Buffer.concat([Buffer.from([0x0a, 1, 2, 0x0a, 1, 0]), integer(16), integer(10), Buffer.from([0x01, 1, 0])]);
const base = octets(baseDN);
const attributes = tlv(0x30, octets('mail'), octets('mailAlternateAddress'));
const equality = (attribute: string, value: string): Buffer => tlv(0xa3, octets(attribute), octets(value));
/** BER needs no filter escaping: the assertion value travels as raw octets. */
const searchRequest = (id: number, key: string): Buffer =>
  tlv(0x30, integer(id), tlv(0x63, base, fixed, tlv(0xa1, equality('mail', key), equality('mailAlternateAddress', key)), attributes));

/** [length, offset of the contents] of the TLV whose length octets start at `at`; null if incomplete. */
function lengthAt(b: Buffer, at: number): [number, number] | null {
  if (at >= b.length) return null;
  const first = b[at]!;
  if (first < 0x80) return [first, at + 1];
  const n = first & 0x7f;
  if (at + 1 + n > b.length) return null;
  let v = 0;
  for (let i = 0; i < n; i++) v = v * 256 + b[at + 1 + i]!;
  return [v, at + 1 + n];
}

/** The first value of the first attribute of a SearchResultEntry whose contents start at `at`. */
function firstValue(b: Buffer, at: number): string {
  let p = at;
  const dn = lengthAt(b, p + 1)!; // objectName
  p = dn[1] + dn[0];
  p = lengthAt(b, p + 1)![1]; // attributes SEQUENCE
  p = lengthAt(b, p + 1)![1]; // first PartialAttribute
  const type = lengthAt(b, p + 1)!;
  p = lengthAt(b, type[1] + type[0] + 1)![1]; // vals SET
  const value = lengthAt(b, p + 1)!;
  return b.toString('utf8', value[1], value[1] + value[0]);
}

interface Owed {
  reply: string | null;
  found: string | null;
  flush: () => void;
}
const owed = new Map<number, Owed>();
let nextId = 0;

const ldap = net.connect(ldapPort, '127.0.0.1');
ldap.setNoDelay(true);
ldap.on('error', (err) => {
  process.stderr.write(`LDAP connection: ${err.message}\n`);
  process.exit(1);
});
let input: Buffer = Buffer.alloc(0);
ldap.on('data', (chunk: Buffer) => {
  input = input.length ? Buffer.concat([input, chunk]) : chunk;
  for (;;) {
    const message = lengthAt(input, 1);
    if (!message || message[1] + message[0] > input.length) break;
    const idLength = lengthAt(input, message[1] + 1)!;
    let id = 0;
    for (let i = 0; i < idLength[0]; i++) id = id * 256 + input[idLength[1] + i]!;
    const op = idLength[1] + idLength[0];
    const o = owed.get(id);
    if (o && input[op] === 0x64 && o.found === null) o.found = firstValue(input, lengthAt(input, op + 1)![1]);
    else if (o && input[op] === 0x65) {
      const resultCode = input[lengthAt(input, op + 1)![1] + 2];
      o.reply = resultCode !== 0 ? 'TEMP directory error' : o.found !== null ? `OK ${o.found}` : 'NOTFOUND ';
      owed.delete(id);
      o.flush();
    }
    input = input.subarray(message[1] + message[0]);
  }
});

net
  .createServer((socket) => {
    socket.setNoDelay(true);
    let pending: Buffer = Buffer.alloc(0);
    const order: Owed[] = [];
    // Replies in request order, as socketmap requires.
    const flush = (): void => {
      let out = '';
      while (order.length > 0 && order[0]!.reply !== null) {
        const reply = order.shift()!.reply!;
        out += `${Buffer.byteLength(reply)}:${reply},`;
      }
      if (out) socket.write(out);
    };
    socket.on('data', (chunk: Buffer) => {
      pending = takeRequests(pending.length ? Buffer.concat([pending, chunk]) : chunk, (key) => {
        const o: Owed = { reply: null, found: null, flush };
        order.push(o);
        nextId = nextId >= 0x7fffffff ? 1 : nextId + 1;
        owed.set(nextId, o);
        ldap.write(searchRequest(nextId, key));
      });
    });
    socket.on('error', () => socket.destroy());
  })
  .listen(port, '127.0.0.1', () => process.send?.('ready'));
process.on('SIGTERM', () => process.exit(0));
