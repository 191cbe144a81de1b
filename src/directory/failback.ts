import type { DirectoryError } from '../errors.js';
import type { Logger } from '../log.js';
import type { LdapConnection } from './connection.js';

/**
 * Failback to the first URL. A pooled connection that reached a later URL (the first was down,
 * busy or hung) tries the first again `failbackMs` after it opened: a connection to it is opened
 * beside the one in service, so no lookup waits for the attempt, and must answer a lookup's own
 * search within half the timeout, not just bind (a server restored without its indexes binds at
 * once and answers searches seconds late). Then it takes the old one's place. One attempt at a
 * time per pool, so failing back holds at most one connection more than the pool's size; each
 * failure in a row doubles the wait, up to 16 times. Postfix's own ldap: table fails back as its
 * processes are recycled; a long-running service must do it itself.
 */

export interface FailbackOptions {
  urls: readonly string[];
  /** 0: never. */
  failbackMs: number;
  timeoutMs: number;
  /** Sends a lookup's search on a fresh connection; rejects unless answered by `deadline`. */
  verify?: (conn: LdapConnection, deadline: number) => Promise<void>;
  log: Logger;
}

/** What failback needs of the pool. */
export interface FailbackPool {
  readonly isClosed: boolean;
  isResting(url: string): boolean;
  rest(url: string): void;
  connect(deadline: number, urls: readonly string[]): Promise<LdapConnection>;
  /** Puts `fresh` in service in place of `old` (or, `old` gone, beside the others if there is room). */
  swap(fresh: LdapConnection, old: LdapConnection): void;
}

const MAX_BACKOFF = 16;

export class Failback {
  private running = false;
  private failures = 0;

  constructor(
    private readonly o: FailbackOptions,
    private readonly pool: FailbackPool,
  ) {}

  /** When a connection just opened to `url` should try the first URL (Infinity: never). */
  dueAt(url: string): number {
    return this.o.failbackMs > 0 && url !== this.o.urls[0] ? performance.now() + this.wait() : Infinity;
  }

  /** `conn` is due (its failbackAt passed): tries the first URL in the background. */
  attempt(conn: LdapConnection): void {
    conn.failbackAt = Infinity;
    const first = this.o.urls[0]!;
    if (this.pool.isClosed) return;
    if (this.running || this.pool.isResting(first)) {
      conn.failbackAt = performance.now() + this.wait();
      return;
    }
    this.running = true;
    const started = performance.now();
    this.pool
      .connect(started + this.o.timeoutMs, [first])
      .then(async (fresh) => {
        try {
          await this.o.verify?.(fresh, performance.now() + this.o.timeoutMs / 2);
        } catch (err) {
          fresh.destroy();
          throw err;
        }
        return fresh;
      })
      .then(
        (fresh) => {
          this.running = false;
          this.failures = 0;
          if (this.pool.isClosed) return void fresh.destroy();
          this.o.log.info({ from: conn.url, to: first }, 'LDAP failback: the first URL answers again; a connection moves back to it');
          this.pool.swap(fresh, conn);
        },
        (err: DirectoryError) => {
          this.running = false;
          this.failures++;
          // Seen once per streak at warn (why failback does not happen), then at debug.
          const fields = { url: first, err: err.message, nextInMs: Math.round(this.wait()) };
          if (this.failures === 1) this.o.log.warn(fields, 'LDAP failback: the first URL does not answer a lookup yet; staying where we are');
          else this.o.log.debug(fields, 'LDAP failback: the first URL still fails');
          this.pool.rest(first);
          conn.failbackAt = performance.now() + this.wait();
        },
      );
  }

  private wait(): number {
    return this.o.failbackMs * Math.min(MAX_BACKOFF, 2 ** this.failures);
  }
}
