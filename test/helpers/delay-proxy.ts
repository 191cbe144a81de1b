import net from 'node:net';
import { once } from 'node:events';

/**
 * A loopback TCP proxy that holds every chunk `delayMs` in each direction, in order: a directory
 * that is healthy but far away (kernel traffic shaping is not available on the test machines).
 */
export interface DelayProxy {
  readonly url: string;
  close(): Promise<void>;
}

export async function startDelayProxy(upstreamPort: number, delayMs: number): Promise<DelayProxy> {
  const sockets = new Set<net.Socket>();
  const timers = new Set<NodeJS.Timeout>();
  const forward = (from: net.Socket, to: net.Socket): void => {
    from.on('data', (chunk: Buffer) => {
      const timer = setTimeout(() => {
        timers.delete(timer);
        if (!to.destroyed) to.write(chunk);
      }, delayMs);
      timers.add(timer);
    });
  };
  const server = net.createServer((client) => {
    const upstream = net.connect({ host: '127.0.0.1', port: upstreamPort });
    sockets.add(client).add(upstream);
    forward(client, upstream);
    forward(upstream, client);
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
    close: async () => {
      for (const t of timers) clearTimeout(t);
      for (const s of sockets) s.destroy();
      server.close();
      await once(server, 'close');
    },
  };
}
