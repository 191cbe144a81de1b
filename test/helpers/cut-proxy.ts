import net from 'node:net';
import { once } from 'node:events';
import { tlvHeader, tlvLength } from './ber-frame.js';

/**
 * A loopback TCP proxy in front of a real LDAP server that can cut one chosen connection and
 * counts the search requests each connection carried (by LDAP message framing), so a test can
 * kill a directory connection mid-flight and see where its searches went.
 */

export interface ProxiedConnection {
  /** Search requests forwarded client → server on this connection so far. */
  searches: number;
  /** Bytes forwarded server → client so far (a bind answered shows here). */
  answered: number;
  closed: boolean;
  cut(): void;
}

export interface CutProxy {
  readonly url: string;
  readonly connections: ProxiedConnection[];
  close(): Promise<void>;
}

/** Counts LDAPMessages whose protocolOp is a SearchRequest ([APPLICATION 3], 0x63). */
function searchCounter(onSearch: () => void): (chunk: Buffer) => void {
  let buf = Buffer.alloc(0);
  return (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    for (;;) {
      if (buf[0] !== 0x30) return;
      const whole = tlvLength(buf);
      if (whole === 0) return;
      const header = tlvHeader(buf);
      const idLen = buf[header + 1]!;
      if (buf[header + 2 + idLen] === 0x63) onSearch();
      buf = buf.subarray(whole);
    }
  };
}

export async function startCutProxy(upstreamPort: number): Promise<CutProxy> {
  const connections: ProxiedConnection[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect({ host: '127.0.0.1', port: upstreamPort });
    sockets.add(client).add(upstream);
    const conn: ProxiedConnection = {
      searches: 0,
      answered: 0,
      closed: false,
      cut: () => {
        conn.closed = true;
        client.destroy();
        upstream.destroy();
      },
    };
    connections.push(conn);
    const count = searchCounter(() => conn.searches++);
    client.on('data', (chunk: Buffer) => {
      count(chunk);
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => (conn.answered += chunk.length));
    upstream.pipe(client);
    for (const s of [client, upstream]) {
      s.on('error', () => undefined);
      s.on('close', () => {
        sockets.delete(s);
        conn.cut();
      });
    }
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `ldap://127.0.0.1:${port}`,
    connections,
    close: async () => {
      for (const s of sockets) s.destroy();
      server.close();
      await once(server, 'close');
    },
  };
}
