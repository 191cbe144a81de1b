import net from 'node:net';
import { once } from 'node:events';

/**
 * A loopback TCP relay to a directory where any one connection can be made to trickle: from then
 * on what the server sends on it reaches the client one byte every `intervalMs`, for ever (a
 * degraded path, a middlebox or a server stuck writing), while the other connections pass freely.
 */
export interface TrickleConnection {
  readonly id: number;
  closed: boolean;
  trickle(intervalMs: number): void;
}

export interface TrickleProxy {
  readonly url: string;
  /** The connection that next carries a request holding these bytes starts to trickle (null: none). */
  trickleWhenAsked: { marker: string; intervalMs: number } | null;
  readonly connections: TrickleConnection[];
  open(): TrickleConnection[];
  close(): Promise<void>;
}

export async function startTrickleProxy(upstreamPort: number): Promise<TrickleProxy> {
  const sockets = new Set<net.Socket>();
  const timers = new Set<NodeJS.Timeout>();
  const connections: TrickleConnection[] = [];
  const server = net.createServer((client) => {
    const upstream = net.connect({ host: '127.0.0.1', port: upstreamPort });
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    sockets.add(client).add(upstream);
    const queue: Buffer[] = [];
    let timer: NodeJS.Timeout | undefined;
    const conn: TrickleConnection = {
      id: connections.length + 1,
      closed: false,
      trickle(intervalMs) {
        if (timer) return;
        timer = setInterval(() => {
          const head = queue[0];
          if (!head || client.destroyed) return;
          client.write(head.subarray(0, 1));
          if (head.length === 1) queue.shift();
          else queue[0] = head.subarray(1);
        }, intervalMs);
        timers.add(timer);
      },
    };
    connections.push(conn);
    client.pipe(upstream);
    client.on('data', (chunk: Buffer) => {
      const when = proxy.trickleWhenAsked;
      if (when === null || !chunk.includes(when.marker)) return;
      proxy.trickleWhenAsked = null;
      conn.trickle(when.intervalMs);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (timer) queue.push(chunk);
      else client.write(chunk);
    });
    for (const s of [client, upstream]) {
      s.on('error', () => undefined);
      s.on('close', () => {
        conn.closed = true;
        if (timer) clearInterval(timer);
        sockets.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const proxy: TrickleProxy = {
    url: `ldap://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    trickleWhenAsked: null,
    connections,
    open: () => connections.filter((c) => !c.closed),
    close: async () => {
      for (const t of timers) clearInterval(t);
      for (const s of sockets) s.destroy();
      server.close();
      await once(server, 'close');
    },
  };
  return proxy;
}
