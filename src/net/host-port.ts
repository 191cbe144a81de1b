import type { Socket } from 'node:net';
import { ipv6Network } from '../gate/ipv6-network.js';

/** Splits "host:port", "[v6]:port". */
export function parseHostPort(hostPort: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^\s:]+)):(\d{1,5})$/.exec(hostPort);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new TypeError(`expected "host:port", got ${JSON.stringify(hostPort)}`);
  return { host: (m[1] ?? m[2])!, port };
}

/** "::ffff:192.0.2.1" and "192.0.2.1" are one client. */
export function peerAddress(socket: Socket): string {
  const a = socket.remoteAddress ?? '?';
  return a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a;
}

/** IPv6 networks counted as one client by default: a host or customer holds at least a /64. */
export const CLIENT_IPV6_PREFIX_BITS = 64;

/**
 * The client a connection counts against for per-client limits: its IPv4 address, or its IPv6
 * network of `ipv6Bits` (as harvest protection keys it, gate/ipv6-network.ts). Per address, a
 * client rotating through its /64 had 2^64 shares. Addresses that embed an IPv4 client (NAT64,
 * mapped) count per address.
 */
export function peerClient(socket: Socket, ipv6Bits = CLIENT_IPV6_PREFIX_BITS): string {
  const address = peerAddress(socket);
  return ipv6Network(address, ipv6Bits) ?? address;
}
