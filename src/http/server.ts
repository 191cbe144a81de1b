/**
 * The HTTP listeners: the node:http server around the express app (timeouts, connection limits
 * overall and per client address, the connections gauge) and its drain-then-force close; and the
 * probe handler of `listen.metrics`, which serves /metrics, /healthz and /readyz only, so that
 * probes and scrapes answer even while the lookup port is flooded (README "Probes and metrics").
 */
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { peerAddress, peerClient, parseHostPort } from '../net/host-port.js';
import type { LogLimiter } from '../net/log-limiter.js';
import type { HealthReport } from '../recipient/types.js';
import { publicHealth } from './health-view.js';
import { problemBody } from './problem.js';
import { ConnectionRequests } from './connection-requests.js';

export interface HttpListenerOptions {
  /** The request handler (an express app or a plain listener). */
  handler: http.RequestListener;
  metrics: Metrics;
  logger: Logger;
  /** Open connections allowed at once. */
  maxConnections: number;
  /** Open connections one client address (an IPv6 client: its network, net/host-port.ts) may hold (default: no per-address limit). */
  maxConnectionsPerClient?: number;
  /** Leading bits of an IPv6 address that name one client (default 64; 128 counts each address). */
  clientIpv6PrefixBits?: number;
  /** Rate-limits the warning for refused connections. */
  logLimiter?: LogLimiter;
  /** Label for logs (default "http"). */
  name?: string;
  /** Requests read and not yet answered on one connection; a client further ahead is closed (default: no bound). */
  maxPipeline?: number;
}

export interface HttpListener {
  readonly server: http.Server;
  readonly address: AddressInfo;
  /** Stop accepting, close idle keep-alive connections, force the rest after `drainMs`. */
  close(drainMs: number): Promise<void>;
}

/** Starts one HTTP listener on "host:port"; resolves once it is bound. */
export async function startHttpListener(hostPort: string, options: HttpListenerOptions): Promise<HttpListener> {
  const { logger } = options;
  // Node checks the header/request timeouts only every connectionsCheckingInterval (30 s by
  // default): a slow client would hold its socket far longer than headersTimeout says.
  const name = options.name ?? 'http';
  const requests = new ConnectionRequests(options.maxPipeline ?? Infinity, (socket) => tooFarAhead(socket, name, options));
  const server = http.createServer({ connectionsCheckingInterval: 1_000 }, requests.handler(options.handler));
  // A client that sends its request and then FIN still gets the answer, then our FIN. Node's
  // default ends the socket at the client's FIN: an answer not ready yet (any uncached lookup)
  // was lost. (The property is Node's own switch for this, kept from its first releases.)
  (server as http.Server & { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true;
  server.maxConnections = options.maxConnections;
  // Node closes a connection past maxConnections by itself: counted and logged like a per-client refusal.
  server.on('drop', (data?: { remoteAddress?: string }) => {
    options.metrics.connectionsRejected.inc({ frontend: name });
    const fields = { frontend: 'http', listener: name, remote: data?.remoteAddress, maxConnections: options.maxConnections };
    options.logLimiter?.warn(logger, `${name}_connection_refused`, fields, 'connection limit reached, refusing');
  });
  server.keepAliveTimeout = 5_000;
  server.requestTimeout = 30_000;
  server.headersTimeout = 10_000;
  countConnections(server, name, options);
  server.on('clientError', (err: Error, socket: Duplex) => requests.clientError(err, socket as Socket));
  // Node drops a CONNECT (a proxy tunnel request) without a word when no one listens for it.
  server.on('connect', (_req: http.IncomingMessage, socket: Duplex) => {
    const body = JSON.stringify(problemBody('method-not-allowed', 'CONNECT is not supported: this is no proxy.'));
    socket.end(`HTTP/1.1 405 Method Not Allowed\r\nContent-Type: application/problem+json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`, () => socket.destroy());
  });
  const { host, port } = parseHostPort(hostPort);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  logger.info({ frontend: 'http', listener: name, address: `${address.address}:${address.port}` }, 'listening');
  return { server, address, close: (drainMs) => closeHttp(server, drainMs) };
}

/**
 * The connections gauge and the per-client cap, attached before the first connection. Counted
 * under the listener's name: the probe listener's scrapes and probes are no API clients (every
 * scrape read one open "http" connection, itself, and a flood of the probe port showed as
 * refusals of the lookup API).
 */
function countConnections(server: http.Server, name: string, options: HttpListenerOptions): void {
  const { metrics, logger } = options;
  const perClient = new Map<string, number>();
  const maxPerClient = options.maxConnectionsPerClient ?? Infinity;
  server.on('connection', (socket) => {
    const peer = peerClient(socket, options.clientIpv6PrefixBits);
    const held = perClient.get(peer) ?? 0;
    if (held >= maxPerClient) {
      metrics.connectionsRejected.inc({ frontend: name });
      options.logLimiter?.warn(logger, `${name}_connection_refused`, { frontend: 'http', listener: name, remote: peer, maxConnectionsPerClient: maxPerClient }, 'per-client connection limit reached, refusing');
      socket.destroy();
      return;
    }
    perClient.set(peer, held + 1);
    metrics.connections.inc({ frontend: name });
    socket.once('close', () => {
      const n = (perClient.get(peer) ?? 1) - 1;
      if (n === 0) perClient.delete(peer);
      else perClient.set(peer, n);
      metrics.connections.dec({ frontend: name });
    });
  });
}

function tooFarAhead(socket: Socket, name: string, options: HttpListenerOptions): void {
  options.metrics.connectionsClosed.inc({ frontend: 'http', reason: 'pipeline' });
  const fields = { frontend: 'http', listener: name, remote: peerAddress(socket), maxPipeline: options.maxPipeline };
  options.logLimiter?.warn(options.logger, `${name}_pipeline_exceeded`, fields, 'client pipelined more requests than server.maxPipeline (or 64 kB of request heads) without reading the answers, closing connection');
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

/** The `listen.metrics` handler: /metrics, /healthz and /readyz, nothing else. */
export function probeHandler(metrics: Metrics, health: () => HealthReport): http.RequestListener {
  const json = (res: http.ServerResponse, status: number, body: unknown): void => {
    res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff' });
    res.end(JSON.stringify(body));
  };
  return (req, res) => {
    const path = (req.url ?? '/').split('?', 1)[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain' });
      res.end('method not allowed\n');
      return;
    }
    if (path === '/healthz') return json(res, 200, { status: 'ok' });
    if (path === '/readyz') {
      // No admin token here: the public view (state and reason code, no directory internals).
      const report = health();
      return json(res, report.ready ? 200 : 503, publicHealth(report));
    }
    if (path === '/metrics') {
      metrics.render().then(
        (text) => {
          res.writeHead(200, { 'Content-Type': metrics.registry.contentType });
          res.end(text);
        },
        () => {
          res.writeHead(500, { 'Content-Type': 'text/plain' });
          res.end('metrics unavailable\n');
        },
      );
      return;
    }
    res.writeHead(404, { 'Content-Type': 'text/plain' });
    res.end('not found: this listener serves /metrics, /healthz and /readyz\n');
  };
}

/**
 * Limits of the `listen.metrics` listener: enough for kubelet probes and a few Prometheus
 * servers, and one address cannot take them all.
 */
export const PROBE_LISTENER_LIMITS = Object.freeze({ maxConnections: 128, maxConnectionsPerClient: 32 });
