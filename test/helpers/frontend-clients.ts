/** Raw socket clients for the socket front ends: enough to pipeline, flood and half-close. */
import net from 'node:net';
import { once } from 'node:events';
import { encodeMilterPacket } from '../../src/milter/codec.js';
import { Cmd } from '../../src/milter/constants.js';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Connects from `localAddress` (another loopback address stands for another peer). */
export async function connectFrom(port: number, localAddress = '127.0.0.1'): Promise<net.Socket> {
  const s = net.connect({ host: '127.0.0.1', port, localAddress });
  s.on('error', () => undefined);
  await once(s, 'connect');
  return s;
}

/** Resolves once the socket is closed (by either side), with how long that took. */
export function closedWithin(s: net.Socket): Promise<number> {
  const started = Date.now();
  return s.closed ? Promise.resolve(0) : new Promise((r) => s.once('close', () => r(Date.now() - started)));
}

/** Everything a socket receives until it closes. */
export function readUntilClose(s: net.Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  s.on('data', (c: Buffer) => chunks.push(c));
  return new Promise((r) => s.once('close', () => r(Buffer.concat(chunks))));
}

export function netstring(text: string): string {
  return `${Buffer.byteLength(text)}:${text},`;
}

/** Netstring payloads in `buf`, in order. */
export function netstrings(buf: Buffer): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < buf.length) {
    const colon = buf.indexOf(0x3a, i);
    if (colon < 0) break;
    const len = Number(buf.subarray(i, colon).toString('ascii'));
    if (colon + 1 + len >= buf.length) break;
    out.push(buf.subarray(colon + 1, colon + 1 + len).toString('utf8'));
    i = colon + 2 + len;
  }
  return out;
}

export function policyRequest(recipient: string, clientAddress = '192.0.2.1', extra = ''): string {
  return `request=smtpd_access_policy\nprotocol_state=RCPT\nclient_address=${clientAddress}\nrecipient=${recipient}\n${extra}\n`;
}

/** `action=` lines in `buf`, in order. */
export function policyActions(buf: Buffer): string[] {
  return [...buf.toString('utf8').matchAll(/^action=(.*)$/gm)].map((m) => m[1]!);
}

export function milterOptneg(): Buffer {
  const optneg = Buffer.alloc(12);
  optneg.writeUInt32BE(6, 0);
  optneg.writeUInt32BE(0x1ff, 4);
  optneg.writeUInt32BE(0x1fffff, 8);
  return encodeMilterPacket(Cmd.OPTNEG, optneg);
}

export function milterRcpt(recipient: string, ...esmtpArgs: string[]): Buffer {
  return encodeMilterPacket(Cmd.RCPT, Buffer.from([`<${recipient}>`, ...esmtpArgs].map((a) => `${a}\0`).join(''), 'utf8'));
}

/** Writes chunks from `next` for `ms`, honouring backpressure, never reading replies. */
export async function streamFor(s: net.Socket, ms: number, next: (i: number) => string | Buffer): Promise<number> {
  const until = Date.now() + ms;
  let i = 0;
  while (Date.now() < until && !s.destroyed) {
    if (!s.write(next(i++))) {
      await Promise.race([once(s, 'drain').catch(() => undefined), once(s, 'close').catch(() => undefined), sleep(Math.max(0, until - Date.now()))]);
    }
  }
  return i;
}
