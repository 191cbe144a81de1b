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
  /** Since when our replies have filled the write buffer (until its 'drain'); 0 when they do not. */
  stalledSince: number;
}

/**
 * The timeout `conn` has run out of at `now`, if any:
 * - `request_timeout`: part of a request has waited longer than the request timeout for the rest;
 * - `write_timeout`: our replies have filled the write buffer for as long. The peer reads
 *   nothing (an MTA reads each reply at once); reading from it is paused meanwhile, and requests
 *   owed keep it busy, so neither other timeout would close it: it would hold its buffers and its
 *   connection slot for ever;
 * - `idle`: no complete request for the idle timeout, and nothing owed.
 */
export function expiry(conn: Connection, now: number, requestTimeoutMs: number): 'request_timeout' | 'write_timeout' | 'idle' | null {
  if (requestTimeoutMs > 0 && conn.partialSince > 0 && now - conn.partialSince > requestTimeoutMs) return 'request_timeout';
  if (requestTimeoutMs > 0 && conn.stalledSince > 0 && now - conn.stalledSince > requestTimeoutMs) return 'write_timeout';
  if (conn.idleTimeoutMs > 0 && !conn.isBusy && now - conn.lastRequestAt > conn.idleTimeoutMs) return 'idle';
  return null;
}

/**
 * Connections of a listener whose replies fill their write buffer may be at most this many at
 * once; one more is closed at once. Each holds a read or two and a write of replies (about 400 kB
 * of process memory measured): 900 of them took RSS to about 480 MB. An MTA reads each reply
 * before it asks again, so it never gets here.
 */
export const MAX_STALLED = 32;

/** The connections of a listener whose replies fill their write buffer, since when. */
export class Stalls {
  private readonly stalled = new Set<Connection>();

  /** `conn`'s replies fill its write buffer: its write timeout starts. False when it is one too many. */
  begin(conn: Connection): boolean {
    if (conn.stalledSince !== 0) return true;
    if (this.stalled.size >= MAX_STALLED) return false;
    conn.stalledSince = performance.now();
    this.stalled.add(conn);
    return true;
  }

  /** Its write buffer drained, or it closed. */
  end(conn: Connection): void {
    conn.stalledSince = 0;
    this.stalled.delete(conn);
  }
}
