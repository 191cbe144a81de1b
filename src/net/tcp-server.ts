/**
 * The one TCP listener shared by the socketmap, policy and milter front ends (STYLE.md point 3).
 * It owns the socket lifecycle; the protocol lives in a handler.
 *
 * Handler contract
 * ----------------
 * `handler(ctx)` is called once, synchronously, for every accepted connection. It owns the
 * protocol: it reads `ctx.socket` ('data'), parses, writes answers. It must:
 *  - call `ctx.busy()` when it starts work on a request and `ctx.idle()` once every answer it
 *    owes has been written (`socket.write` called). The base closes a draining or timed-out
 *    connection at the first `idle()`, so an answer in flight is never cut off.
 *  - not start new requests once `ctx.draining` is true (the base also pauses the socket).
 *  - call `ctx.close()` (graceful: pending writes flushed) or `ctx.destroy()` to drop a peer,
 *    e.g. after a protocol error. It need not listen for 'error': the base logs socket errors
 *    and a socket error never crashes the process. It may listen for 'close' to clean up.
 * A handler that throws synchronously gets its connection destroyed; the server keeps running.
 *
 * The base does: connection tracking, the `rcptgate_connections{frontend}` gauge, refusing
 * connections over `maxConnections` (destroyed at once, `rcptgate_connections_rejected_total`),
 * the idle timeout, and `close(drainMs)`: stop accepting, close idle connections now and busy
 * ones after their current answer, destroy whatever is left after `drainMs`.
 */
import net, { type AddressInfo, type Socket } from 'node:net';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { Frontend, RecipientValidator } from '../recipient/types.js';

export interface ConnectionContext {
  /** Increasing per server, for logs. */
  readonly id: number;
  readonly socket: Socket;
  /** Peer address as "ip:port". */
  readonly remote: string;
  /** Child logger carrying frontend, connection id and peer. */
  readonly logger: Logger;
  /** True once the server is closing (or the idle timeout fired while busy). */
  readonly draining: boolean;
  /** Work on a request started. */
  busy(): void;
  /** Every answer owed has been written. Closes the connection if it is draining. */
  idle(): void;
  /** Graceful close: flush pending writes, then FIN. */
  close(): void;
  /** Drop the connection now. */
  destroy(): void;
}

export type ConnectionHandler = (ctx: ConnectionContext) => void;

/** What every socket front end (socketmap, policy, milter) is built from. */
export interface FrontendServerOptions {
  validator: RecipientValidator;
  metrics: Metrics;
  logger: Logger;
  /** Open connections allowed at once; more are refused at accept. */
  maxConnections: number;
  /** A connection with no traffic for this long is closed (ms; 0 disables). */
  idleTimeoutMs: number;
}

export interface TcpServerOptions {
  frontend: Frontend;
  metrics: Metrics;
  logger: Logger;
  /** Open connections allowed at once; more are refused at accept. */
  maxConnections: number;
  /** A connection with no traffic for this long is closed (ms; 0 disables). */
  idleTimeoutMs: number;
  handler: ConnectionHandler;
}

interface Connection {
  ctx: ConnectionContext;
  socket: Socket;
  isBusy: boolean;
  isDraining: boolean;
}

/** Splits "host:port", "[v6]:port". */
export function parseHostPort(hostPort: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^\s:]+)):(\d{1,5})$/.exec(hostPort);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new TypeError(`expected "host:port", got ${JSON.stringify(hostPort)}`);
  return { host: (m[1] ?? m[2])!, port };
}

export class TcpServer {
  readonly frontend: Frontend;
  private readonly server: net.Server;
  private readonly connections = new Set<Connection>();
  private readonly options: TcpServerOptions;
  private nextId = 1;
  private closing: Promise<void> | null = null;

  constructor(options: TcpServerOptions) {
    this.options = options;
    this.frontend = options.frontend;
    this.server = net.createServer({ noDelay: true }, (socket) => this.accept(socket));
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
    const { frontend, metrics, logger, maxConnections, idleTimeoutMs } = this.options;
    // Errors on a refused or half-set-up socket must not become uncaught exceptions.
    socket.on('error', (err) => logger.debug({ err, frontend }, 'socket error'));
    if (this.closing) {
      socket.destroy();
      return;
    }
    if (this.connections.size >= maxConnections) {
      metrics.connectionsRejected.inc({ frontend });
      logger.warn({ frontend, maxConnections, remote: socket.remoteAddress }, 'connection limit reached, refusing');
      socket.destroy();
      return;
    }
    const id = this.nextId++;
    const remote = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    const connLogger = logger.child({ frontend, conn: id, remote });
    const conn: Connection = { socket, isBusy: false, isDraining: false, ctx: undefined as unknown as ConnectionContext };
    conn.ctx = {
      id,
      socket,
      remote,
      logger: connLogger,
      get draining() {
        return conn.isDraining;
      },
      busy: () => {
        conn.isBusy = true;
      },
      idle: () => {
        conn.isBusy = false;
        if (conn.isDraining) this.endGracefully(conn);
      },
      close: () => this.endGracefully(conn),
      destroy: () => socket.destroy(),
    };
    this.connections.add(conn);
    metrics.connections.inc({ frontend });
    socket.once('close', () => {
      this.connections.delete(conn);
      metrics.connections.dec({ frontend });
      connLogger.debug('connection closed');
    });
    if (idleTimeoutMs > 0) {
      socket.setTimeout(idleTimeoutMs, () => {
        connLogger.debug({ idleTimeoutMs }, 'idle timeout');
        this.drain(conn);
      });
    }
    connLogger.debug('connection accepted');
    try {
      this.options.handler(conn.ctx);
    } catch (err) {
      connLogger.error({ err }, 'connection handler failed');
      socket.destroy();
    }
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
    // that never closes its side cannot keep the connection (and close()) waiting.
    socket.end(() => socket.destroy());
  }
}
