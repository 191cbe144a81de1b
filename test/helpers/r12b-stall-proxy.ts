import net from 'node:net';
import { once } from 'node:events';
import { tlvHeader, tlvLength } from './ber-frame.js';

/**
 * A loopback TCP proxy in front of an LDAP server that never forwards the answer to a search whose
 * entries match `stalls` (its entries and its SearchResultDone are dropped, per connection, by
 * message ID): one search hangs on the server while every other search on the same connection is
 * answered, as a search stuck on a slow disk or a lock would be.
 */
export interface StallProxy {
  readonly url: string;
  /** Searches stalled so far. */
  readonly stalled: number;
  close(): Promise<void>;
}

function messageId(msg: Buffer): number {
  const at = tlvHeader(msg);
  let id = 0;
  for (let i = 0; i < msg[at + 1]!; i++) id = id * 256 + msg[at + 2 + i]!;
  return id;
}

export async function startStallProxy(upstreamPort: number, stalls: (message: Buffer) => boolean): Promise<StallProxy> {
  const sockets = new Set<net.Socket>();
  let stalled = 0;
  const server = net.createServer((client) => {
    const upstream = net.connect({ host: '127.0.0.1', port: upstreamPort });
    const held = new Set<number>();
    let buf = Buffer.alloc(0);
    sockets.add(client).add(upstream);
    client.on('data', (chunk: Buffer) => upstream.write(chunk));
    upstream.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      for (let n = tlvLength(buf); n > 0; n = tlvLength(buf)) {
        const msg = buf.subarray(0, n);
        buf = buf.subarray(n);
        const id = messageId(msg);
        if (!held.has(id) && stalls(msg)) {
          held.add(id);
          stalled++;
        }
        if (!held.has(id)) client.write(msg);
      }
    });
    for (const s of [client, upstream]) {
      s.on('error', () => undefined);
      s.on('close', () => {
        sockets.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `ldap://127.0.0.1:${port}`,
    get stalled() {
      return stalled;
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      server.close();
      await once(server, 'close');
    },
  };
}
