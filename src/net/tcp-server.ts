/**
 * The one TCP listener shared by the socketmap, policy and milter front ends. It owns the socket
 * lifecycle; the protocol lives in a handler (contract in connection.ts).
 *
 * The base does: connection tracking, the `rcptgate_connections{frontend}` gauge, refusing
 * connections over `maxConnections` or over `maxConnectionsPerClient` from one address
 * (destroyed at once, `rcptgate_connections_rejected_total`, rate-limited warnings), the turns
 * clients take at the engine (peers.ts), the idle, request and write timeouts (connection-state.ts;
 * one sweep timer per listener, no timer work per request, which also watches the process's
 * file descriptors: descriptors.ts), and
 * `close(drainMs)`: stop accepting, close idle connections now and busy ones after their current
 * answer, destroy whatever is left after `drainMs`. Sockets are half-open: a peer that sends its
 * last request and then FIN still gets every answer, then our FIN.
 */
import net, { type AddressInfo, type Socket } from 'node:net';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { Frontend } from '../recipient/types.js';
import { LogLimiter } from './log-limiter.js';
import { Peer, PeerTable } from './peers.js';
import type { ConnectionContext, ConnectionHandler } from './connection.js';
import { parseHostPort, peerAddress } from './host-port.js';
import { expiry, MAX_STALLED, Stalls, type Connection } from './connection-state.js';
import { descriptors } from './descriptors.js';

export type { ConnectionContext, ConnectionHandler } from './connection.js';
export { parseHostPort, peerAddress } from './host-port.js';
/** Defaults of the per-address limits (README "Limits per client address"). */
export const DEFAULT_MAX_CONNECTIONS_PER_CLIENT = 300;
export const DEFAULT_MAX_OUTSTANDING_PER_CLIENT = 256;
export const DEFAULT_MAX_OUTSTANDING = 64;
export const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;

export interface TcpServerOptions {
  frontend: Frontend;
  metrics: Metrics;
  logger: Logger;
  /** Open connections allowed at once; more are refused at accept. */
  maxConnections: number;
  /** A connection with no complete request for this long is closed (ms; 0 disables). */
  idleTimeoutMs: number;
  /** Connections one client address may hold (default 300). */
  maxConnectionsPerClient?: number;
  /** Requests of one client address waiting for the engine at once (default 256). */
  maxOutstandingPerClient?: number;
  /** Requests of all clients waiting for the engine at once; beyond it clients take turns (default 64). */
  maxOutstanding?: number;
  /** A request begun must arrive whole within this (ms; default 10 s; 0 disables). */
  requestTimeoutMs?: number;
  /** Shared warning limiter (one per process); a private one otherwise. */
  logLimiter?: LogLimiter;
  handler: ConnectionHandler;
}

export class TcpServer {
  readonly frontend: Frontend;
  private readonly server: net.Server;
  private readonly connections = new Set<Connection>();
  private readonly stalls = new Stalls();
  private readonly options: TcpServerOptions;
  private readonly peers: PeerTable;
  private readonly limiter: LogLimiter;
  private readonly requestTimeoutMs: number;
  private sweepTimer: NodeJS.Timeout | null = null;
  private sweepEvery = Infinity;
  private nextId = 1;
  private closing: Promise<void> | null = null;

  constructor(options: TcpServerOptions) {
    this.options = options;
    this.frontend = options.frontend;
    this.requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.peers = new PeerTable({
      maxConnections: options.maxConnectionsPerClient ?? DEFAULT_MAX_CONNECTIONS_PER_CLIENT,
      maxOutstanding: options.maxOutstandingPerClient ?? DEFAULT_MAX_OUTSTANDING_PER_CLIENT,
      maxTotalOutstanding: options.maxOutstanding ?? DEFAULT_MAX_OUTSTANDING,
    });
    this.limiter = options.logLimiter ?? new LogLimiter(options.metrics);
    this.server = net.createServer({ noDelay: true, allowHalfOpen: true }, (socket) => this.accept(socket));
    this.server.on('error', (err) => options.logger.error({ err, frontend: this.frontend }, 'listener error'));
  }

  /** Open connections right now. */
  get connectionCount(): number {
    return this.connections.size;
  }

  /** Starts listening; resolves to the bound address (port 0 picks a free port). */
  listen(hostPort: string): Promise<AddressInfo> {
    const { host, port } = parseHostPort(hostPort);
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.server.once('error', onError);
      this.server.listen({ host, port }, () => {
        this.server.off('error', onError);
        const addr = this.server.address() as AddressInfo;
        this.startSweep();
        this.options.logger.info({ frontend: this.frontend, address: `${addr.address}:${addr.port}` }, 'listening');
        resolve(addr);
      });
    });
  }

  /** Bound address, or null before listen(). */
  address(): AddressInfo | null {
    const a = this.server.address();
    return a && typeof a === 'object' ? a : null;
  }

  /**
   * Stops accepting; idle connections close now, busy ones after their current answer;
   * whatever remains after `drainMs` is destroyed. Idempotent.
   */
  close(drainMs = 10_000): Promise<void> {
    if (this.closing) return this.closing;
    this.closing = new Promise<void>((resolve) => {
      const serverClosed = new Promise<void>((r) => {
        if (!this.server.listening) return r();
        this.server.close(() => r());
      });
      if (this.sweepTimer) clearInterval(this.sweepTimer);
      const force = setTimeout(() => {
        for (const c of this.connections) c.socket.destroy();
      }, drainMs);
      force.unref();
      const allGone = [...this.connections].map((c) =>
        c.socket.closed ? Promise.resolve() : new Promise<void>((r) => c.socket.once('close', () => r())),
      );
      for (const c of this.connections) this.drain(c);
      void Promise.all([serverClosed, ...allGone]).then(() => {
        clearTimeout(force);
        resolve();
      });
    });
    return this.closing;
  }

  private accept(socket: Socket): void {
    const { frontend, metrics, logger, maxConnections } = this.options;
    // Errors on a refused or half-set-up socket must not become uncaught exceptions.
    socket.on('error', (err) => logger.debug({ err, frontend }, 'socket error'));
    if (this.closing) {
      socket.destroy();
      return;
    }
    const address = peerAddress(socket);
    if (this.connections.size >= maxConnections) return this.refuse(socket, address, 'connection limit reached, refusing', { maxConnections });
    const peer = this.peers.admit(address);
    if (peer === null) {
      const perClient = this.peers.limits.maxConnections;
      return this.refuse(socket, address, 'per-client connection limit reached, refusing', { maxConnectionsPerClient: perClient });
    }
    const id = this.nextId++;
    const remote = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    const connLogger = logger.child({ frontend, conn: id, remote });
    const now = performance.now();
    const conn: Connection = {
      socket,
      isBusy: false,
      isDraining: false,
      peerEnded: false,
      idleTimeoutMs: this.options.idleTimeoutMs,
      lastRequestAt: now,
      partialSince: 0,
      stalledSince: 0,
      ctx: undefined as unknown as ConnectionContext,
    };
    conn.ctx = this.context(conn, id, remote, peer, connLogger);
    this.connections.add(conn);
    metrics.connections.inc({ frontend });
    socket.on('drain', () => this.stalls.end(conn));
    socket.once('close', () => {
      this.connections.delete(conn);
      this.stalls.end(conn);
      this.peers.leave(peer);
      metrics.connections.dec({ frontend });
      connLogger.debug('connection closed');
    });
    // Half-open sockets: answers owed to a peer that sent FIN are still written, then we end.
    socket.once('end', () => {
      conn.peerEnded = true;
      if (!conn.isBusy) this.endGracefully(conn);
    });
    connLogger.debug('connection accepted');
    try {
      this.options.handler(conn.ctx);
    } catch (err) {
      connLogger.error({ err }, 'connection handler failed');
      socket.destroy();
    }
  }

  private refuse(socket: Socket, remote: string, msg: string, fields: Record<string, unknown>): void {
    const { frontend, metrics, logger } = this.options;
    metrics.connectionsRejected.inc({ frontend });
    this.limiter.warn(logger, `${frontend}_connection_refused`, { frontend, remote, ...fields }, msg);
    socket.destroy();
  }

  private context(conn: Connection, id: number, remote: string, peer: Peer, logger: Logger): ConnectionContext {
    const { socket } = conn;
    const limiter = this.limiter;
    return {
      id,
      socket,
      remote,
      peer,
      logger,
      get draining() {
        return conn.isDraining;
      },
      busy: () => {
        conn.isBusy = true;
      },
      idle: () => {
        conn.isBusy = false;
        if (conn.isDraining || conn.peerEnded) this.endGracefully(conn);
      },
      close: () => this.endGracefully(conn),
      stalled: () => this.stalled(conn),
      destroy: () => socket.destroy(),
      progress: (completed, partial) => {
        if (completed) {
          const now = performance.now();
          conn.lastRequestAt = now;
          conn.partialSince = partial ? now : 0;
        } else if (!partial) {
          conn.partialSince = 0;
        } else if (conn.partialSince === 0) {
          conn.partialSince = performance.now();
        }
      },
      setIdleTimeout: (ms) => {
        conn.idleTimeoutMs = ms;
        this.startSweep();
      },
      warn: (event, fields, msg) => limiter.warn(logger, event, fields, msg),
    };
  }

  /** One timer per listener checks every connection's timeouts (and the process's descriptors). */
  private startSweep(): void {
    const timeouts = [this.requestTimeoutMs, this.options.idleTimeoutMs, ...[...this.connections].map((c) => c.idleTimeoutMs)].filter((t) => t > 0);
    if (timeouts.length === 0 || this.closing || !this.server.listening) return;
    const every = Math.min(1_000, Math.max(10, Math.floor(Math.min(...timeouts) / 4)));
    if (this.sweepTimer && every >= this.sweepEvery) return;
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.sweepEvery = every;
    this.sweepTimer = setInterval(() => this.sweep(), every);
    this.sweepTimer.unref();
  }

  private sweep(): void {
    const now = performance.now();
    const { frontend, metrics, logger } = this.options;
    const fields = { requestTimeoutMs: this.requestTimeoutMs };
    descriptors.check(logger);
    for (const conn of this.connections) {
      if (conn.isDraining || conn.socket.destroyed) continue;
      const reason = expiry(conn, now, this.requestTimeoutMs);
      if (reason === null) continue;
      metrics.connectionsClosed.inc({ frontend, reason });
      if (reason === 'idle') {
        conn.ctx.logger.debug({ idleTimeoutMs: conn.idleTimeoutMs }, 'idle timeout');
        this.drain(conn);
        continue;
      }
      if (reason === 'request_timeout') conn.ctx.warn(`${frontend}_request_timeout`, fields, 'request not complete in time (slow or stalled peer), closing connection');
      else conn.ctx.warn(`${frontend}_write_timeout`, fields, 'peer reads none of its replies, closing connection');
      conn.socket.destroy();
    }
  }

  /** `conn`'s replies fill its write buffer: its write timeout starts, or it is one too many. */
  private stalled(conn: Connection): void {
    if (conn.socket.destroyed || this.stalls.begin(conn)) return;
    this.options.metrics.connectionsClosed.inc({ frontend: this.frontend, reason: 'write_stalled' });
    conn.ctx.warn(`${this.frontend}_write_stalled`, { maxStalled: MAX_STALLED }, 'peer reads none of its replies, nor do too many others: closing connection');
    conn.socket.destroy();
  }

  /** Stop reading; close now if idle, else at the handler's next idle(). */
  private drain(conn: Connection): void {
    conn.isDraining = true;
    conn.socket.pause();
    if (!conn.isBusy) this.endGracefully(conn);
  }

  private endGracefully(conn: Connection): void {
    const { socket } = conn;
    if (socket.destroyed || socket.writableEnded) return;
    // end() flushes what the handler wrote, then sends FIN; destroy once that is done so a peer
    // that never closes its side cannot keep the connection (and close()) waiting, and destroy
    // anyway if a peer that never reads keeps the flush from finishing.
    socket.end(() => socket.destroy());
    const force = setTimeout(() => socket.destroy(), this.requestTimeoutMs || DEFAULT_REQUEST_TIMEOUT_MS);
    force.unref();
    socket.once('close', () => clearTimeout(force));
  }
}
