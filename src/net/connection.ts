/**
 * What the shared TCP base (tcp-server.ts) hands a protocol handler.
 *
 * `handler(ctx)` is called once, synchronously, for every accepted connection. It owns the
 * protocol: it reads `ctx.socket` ('data'), parses, writes answers. It must:
 *  - call `ctx.busy()` when it starts work on a request and `ctx.idle()` once every answer it
 *    owes has been written (`socket.write` called). The base closes a draining, timed-out or
 *    half-closed connection at the first `idle()`, so an answer in flight is never cut off.
 *  - not start new requests once `ctx.draining` is true (the base also pauses the socket).
 *  - call `ctx.progress(completed, partial)` after each read: whether it completed a request and
 *    whether part of one is still buffered. The idle timeout counts from the last completed
 *    request (not the last byte), and a request begun must be whole within the request timeout:
 *    a peer trickling bytes (slowloris) is closed either way.
 *  - call `ctx.close()` (graceful: pending writes flushed) or `ctx.destroy()` to drop a peer,
 *    e.g. after a protocol error. It need not listen for 'error': the base logs socket errors
 *    and a socket error never crashes the process. It may listen for 'close' to clean up.
 * A handler that throws synchronously gets its connection destroyed; the server keeps running.
 */
import type { Socket } from 'node:net';
import type { Logger } from '../log.js';
import type { Peer } from './peers.js';

export interface ConnectionContext {
  /** Increasing per server, for logs. */
  readonly id: number;
  readonly socket: Socket;
  /** Peer address as "ip:port". */
  readonly remote: string;
  /** The peer's address (IPv4-mapped IPv6 as plain IPv4) and its shared per-address limits. */
  readonly peer: Peer;
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
  /** Our replies fill the socket's write buffer: the peer is not reading them (reading pauses meanwhile). */
  stalled?(): void;
  /** After a read: did it complete a request, is part of one still buffered. */
  progress(completed: boolean, partial: boolean): void;
  /** This connection's idle timeout from now on (ms; 0 disables). */
  setIdleTimeout(ms: number): void;
  /** Rate-limited warnings shared by the listener. */
  readonly warn: (event: string, fields: Record<string, unknown>, msg: string) => void;
}

export type ConnectionHandler = (ctx: ConnectionContext) => void;
