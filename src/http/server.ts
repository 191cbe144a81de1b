/**
 * The HTTP listeners: the node:http server around the express app (timeouts, connection limit,
 * the connections gauge) and its drain-then-force close. The app itself (routes) does not listen.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { parseHostPort } from '../net/host-port.js';

export interface HttpListenerOptions {
  /** The request handler (an express app or a plain listener). */
  handler: http.RequestListener;
  metrics: Metrics;
  logger: Logger;
  /** Open connections allowed at once. */
  maxConnections: number;
}

export interface HttpListener {
  readonly server: http.Server;
  readonly address: AddressInfo;
  /** Stop accepting, close idle keep-alive connections, force the rest after `drainMs`. */
  close(drainMs: number): Promise<void>;
}

/** Starts one HTTP listener on "host:port"; resolves once it is bound. */
export async function startHttpListener(hostPort: string, options: HttpListenerOptions): Promise<HttpListener> {
  const { metrics, logger } = options;
  // Node checks the header/request timeouts only every connectionsCheckingInterval (30 s by
  // default): a slow client would hold its socket far longer than headersTimeout says.
  const server = http.createServer({ connectionsCheckingInterval: 1_000 }, options.handler);
  server.maxConnections = options.maxConnections;
  server.keepAliveTimeout = 5_000;
  server.requestTimeout = 30_000;
  server.headersTimeout = 10_000;
  const { host, port } = parseHostPort(hostPort);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('connection', (socket) => {
    metrics.connections.inc({ frontend: 'http' });
    socket.once('close', () => metrics.connections.dec({ frontend: 'http' }));
  });
  const address = server.address() as AddressInfo;
  logger.info({ frontend: 'http', address: `${address.address}:${address.port}` }, 'listening');
  return { server, address, close: (drainMs) => closeHttp(server, drainMs) };
}

function closeHttp(server: http.Server, drainMs: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const force = setTimeout(() => server.closeAllConnections(), drainMs);
    force.unref();
    server.close(() => {
      clearTimeout(force);
      resolve();
    });
    server.closeIdleConnections();
  });
}
