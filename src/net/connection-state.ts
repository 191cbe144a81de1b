/** One accepted connection as the TCP base (tcp-server.ts) tracks it, and the timeouts it can run out of. */
import type { Socket } from 'node:net';
import type { ConnectionContext } from './connection.js';

export interface Connection {
  ctx: ConnectionContext;
  socket: Socket;
  isBusy: boolean;
  isDraining: boolean;
  /** The peer sent FIN: close once every answer owed is written. */
  peerEnded: boolean;
  idleTimeoutMs: number;
  /** Time of the last completed request (or of accept). */
  lastRequestAt: number;
  /** Since when part of a request has waited for the rest; 0 when none. */
  partialSince: number;
  /** Since when our replies have waited for the peer to read them (first seen by the sweep); 0 when none. */
  stalledSince: number;
}

/**
 * The timeout `conn` has run out of at `now`, if any:
 * - `request_timeout`: part of a request has waited longer than the request timeout for the rest;
 * - `write_timeout`: our replies have waited in a full write buffer for as long (first seen by a
 *   sweep; the socket's 'drain' resets it). The peer reads nothing: an MTA reads each reply at
 *   once. Reading from it is paused meanwhile, and requests owed keep it busy, so neither other
 *   timeout would close it: it would hold its buffers and its connection slot for ever;
 * - `idle`: no complete request for the idle timeout, and nothing owed.
 */
export function expiry(conn: Connection, now: number, requestTimeoutMs: number): 'request_timeout' | 'write_timeout' | 'idle' | null {
  if (requestTimeoutMs > 0 && conn.partialSince > 0 && now - conn.partialSince > requestTimeoutMs) return 'request_timeout';
  if (requestTimeoutMs > 0 && conn.socket.writableNeedDrain) {
    if (conn.stalledSince === 0) conn.stalledSince = now;
    if (now - conn.stalledSince > requestTimeoutMs) return 'write_timeout';
  } else {
    conn.stalledSince = 0;
  }
  if (conn.idleTimeoutMs > 0 && !conn.isBusy && now - conn.lastRequestAt > conn.idleTimeoutMs) return 'idle';
  return null;
}
