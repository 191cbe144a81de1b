/**
 * Lookups of the HTTP API take turns at the engine as the socket front ends' do (net/peers.ts):
 * at most `maxOutstanding` lookups of the listener wait for the engine at once, one client
 * address at most `maxOutstandingPerClient` of them, and a client with none in progress may
 * always start one. Without this, one keep-alive connection pipelining GET requests started a
 * lookup per request as fast as it could send them (Node parses pipelined requests without
 * waiting for the answers): thousands of cold lookups filled the directory's queue, so the MTAs'
 * lookups on the other front ends were deferred, and its own were answered 503.
 */
import { PeerTable } from '../net/peers.js';

export interface LookupTurnLimits {
  /** Lookups of one client address waiting for the engine at once. */
  maxOutstandingPerClient: number;
  /** Lookups of all clients waiting for the engine at once; beyond it, clients take turns. */
  maxOutstanding: number;
}

/** The lookup did not run: its client went away while it waited for its turn. */
export const ABANDONED = Symbol('abandoned');

export class LookupTurns {
  private readonly table: PeerTable;

  constructor(limits: LookupTurnLimits) {
    // Connections are counted (and capped) by the HTTP listener; here a "connection" is a lookup.
    this.table = new PeerTable({ maxConnections: Infinity, maxOutstanding: limits.maxOutstandingPerClient, maxTotalOutstanding: limits.maxOutstanding });
  }

  /** Clients with lookups running or waiting (for tests and metrics). */
  get clients(): number {
    return this.table.size;
  }

  /**
   * Runs `lookup` in `client`'s turn. One whose client has gone (`gone()` true when its turn
   * comes) does not run and gives ABANDONED.
   */
  run<T>(client: string, lookup: () => Promise<T>, gone: () => boolean): Promise<T | typeof ABANDONED> {
    const peer = this.table.admit(client)!;
    const start = (): Promise<T> => {
      peer.acquire();
      const done = (): void => {
        peer.release();
        this.table.leave(peer);
      };
      let p: Promise<T>;
      try {
        p = lookup();
      } catch (err) {
        done();
        return Promise.reject(err);
      }
      return p.finally(done);
    };
    if (!peer.full) return start();
    return new Promise((resolve, reject) => {
      // Called once, when this lookup's turn comes; a waiter that does not start passes it on.
      peer.wait(() => {
        if (gone()) {
          this.table.leave(peer);
          resolve(ABANDONED);
        } else {
          start().then(resolve, reject);
        }
      });
    });
  }
}
