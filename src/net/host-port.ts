import type { Socket } from 'node:net';

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
