import { DirectoryError, ErrorCodes } from '../errors.js';
import { sharedFailure } from './breaker.js';
import type { LdapConnection } from './connection.js';
import type { Pending } from './lookup-queue.js';

/**
 * The searches on the wire and their deadlines, watched by one timer for them all rather than
 * one per search (a cold lookup is one search when it goes alone, so a timer per search was a
 * timer per lookup). Each lookup fails at its own deadline. A search still unanswered a full
 * timeout after its last lookup gave up means a hung connection: the server's own time limit
 * would have ended it.
 *
 * A search unanswered after half the timeout, on a connection silent since it was sent, is `slow`
 * (its connection may be cut off) only once the server has answered a search sent after it:
 * answers to older searches arriving meanwhile prove nothing, as a directory slow on every
 * connection (a round trip between half the timeout and the timeout) delivers exactly those.
 * Counting them dropped its healthy connections, and each retried lookup then missed its deadline
 * (tempfail, the breaker opened). With no such search on the wire (a quiet time) the scheduler
 * sends one (`unproven`), rather than let the lookup wait out its timeout on a dead connection.
 */

/** A search on the wire and the lookups it answers. */
export interface InFlight {
  conn: LdapConnection;
  batch: Pending[];
  /** When it was sent (performance.now()). */
  sentAt: number;
  /** When it counts as hung, once none of its lookups waits any more (0: not yet known). */
  hungAt: number;
  /** Half the timeout after it was sent: when to ask whether its connection went silent (0: asked). */
  checkAt: number;
  /** The server has answered a search sent after this one (set as its lookups expire). */
  answeredAfter?: boolean;
  /** The timeout its lookups failed with, once answeredAfter (expiryError). */
  timedOut?: DirectoryError;
}

export interface InFlightOptions {
  timeoutMs: number;
  /** A lookup of `search` reached its deadline. */
  expire: (p: Pending, search: InFlight) => void;
  /** `search` is hung (already forgotten here). */
  hung: (search: InFlight) => void;
  /** Half the timeout passed, lookups of `search` still wait, and a search sent after it was answered (once per search). */
  slow: (search: InFlight) => void;
  /** Half the timeout passed with bytes but no whole message on `search`'s connection, and a search sent after it was answered (once per search). */
  behind: (search: InFlight) => void;
  /** Half the timeout passed with no whole message back on `search`'s connection, and nothing sent since answered yet: ask elsewhere. */
  unproven: (search: InFlight) => void;
}

export class InFlightSearches {
  private readonly searches = new Set<InFlight>();
  private timer: NodeJS.Timeout | null = null;
  /** When the timer fires (Infinity: not armed). */
  private timerAt = Infinity;
  /** When the most recently sent search that got its answer was sent (0: none yet). */
  private freshestAnswered = 0;
  /** Searches past half the timeout, waiting for a later one to be answered. */
  private readonly suspects = new Set<InFlight>();

  constructor(private readonly o: InFlightOptions) {}

  add(conn: LdapConnection, batch: Pending[]): InFlight {
    const sentAt = performance.now();
    const search: InFlight = { conn, batch, sentAt, hungAt: 0, checkAt: sentAt + this.o.timeoutMs / 2 };
    this.searches.add(search);
    let first = search.checkAt;
    for (let i = 0; i < batch.length; i++) {
      const p = batch[i]!;
      if (p.sentAt === 0) p.sentAt = sentAt;
      first = Math.min(first, p.deadline);
    }
    this.arm(first);
    return search;
  }

  /** The search got its answer (`answered`), or its connection failed. */
  delete(search: InFlight, answered = false): void {
    this.searches.delete(search);
    this.suspects.delete(search);
    if (!answered) return;
    if (search.sentAt > this.freshestAnswered) this.freshestAnswered = search.sentAt;
    for (const suspect of this.suspects) {
      if (suspect.sentAt > search.sentAt) continue;
      this.suspects.delete(suspect);
      if (suspect.batch.some((p) => !p.done) && suspect.conn.lastMessageAt < suspect.sentAt) this.stuck(suspect);
    }
  }

  /**
   * `search` waits with no whole message back on its connection since it was sent, while a search
   * sent after it was answered. Nothing at all back: cut off (`slow`). Bytes but no message: its
   * answer waits behind a large or trickling one; the connection is left to finish (`behind`).
   */
  private stuck(search: InFlight): void {
    if (search.conn.lastBytesAt >= search.sentAt) this.o.behind(search);
    else this.o.slow(search);
  }

  /** Stops watching; returns the searches still on the wire. */
  close(): InFlight[] {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.timerAt = Infinity;
    const left = [...this.searches];
    this.searches.clear();
    this.suspects.clear();
    return left;
  }

  /** Makes sure the timer fires by `at`; a timer left armed when nothing is in flight just finds nothing to do. */
  private arm(at: number): void {
    if (at >= this.timerAt) return;
    if (this.timer) clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => this.sweep(), Math.max(0, at - performance.now()));
    // A search in flight holds its socket open; this timer alone must not hold the process.
    this.timer.unref();
  }

  private sweep(): void {
    this.timer = null;
    this.timerAt = Infinity;
    const now = performance.now();
    let next = Infinity;
    for (const search of this.searches) {
      let open = false;
      for (const p of search.batch) {
        if (p.done) continue;
        if (p.deadline <= now) {
          search.answeredAfter = this.freshestAnswered >= search.sentAt;
          this.o.expire(p, search);
        } else {
          open = true;
          next = Math.min(next, p.deadline);
        }
      }
      if (open) {
        if (search.checkAt > now) next = Math.min(next, search.checkAt);
        else if (search.checkAt > 0) {
          search.checkAt = 0;
          if (search.conn.lastMessageAt >= search.sentAt) continue; // a whole message since: not cut off
          if (this.freshestAnswered >= search.sentAt) this.stuck(search);
          else {
            this.suspects.add(search);
            this.o.unproven(search);
          }
        }
        continue;
      }
      if (search.hungAt === 0) search.hungAt = now + this.o.timeoutMs;
      if (search.hungAt > now) {
        next = Math.min(next, search.hungAt);
        continue;
      }
      this.searches.delete(search);
      this.suspects.delete(search);
      this.o.hung(search);
    }
    if (next < Infinity) this.arm(next);
  }
}

/**
 * Why lookup `p` of `search` ran out of time. When our queue took most of its time the directory
 * had no fair chance: that is our overload, which must not count against the directory (breaker,
 * directory state), however healthy it is. Half the timeout on the wire without an answer is the
 * directory's slowness, a first search on a connection that failed (hung, silent) included.
 */
export function expiryError(p: Pending, search: InFlight, timeoutMs: number, timeoutText: string): DirectoryError {
  const url = search.conn.url;
  const onWire = Math.round(p.deadline - (p.retried ? p.sentAt : search.sentAt));
  if (onWire >= timeoutMs / 2) {
    const timedOut = () => new DirectoryError(ErrorCodes.DIRECTORY_TIMEOUT, `LDAP search on ${url} got no answer within ${timeoutText}`);
    // The server answers searches sent after it: this search is stuck, not the directory. One
    // failure for all its lookups (breaker.ts); with nothing answered since, one per lookup.
    return search.answeredAfter ? (search.timedOut ??= sharedFailure(timedOut())) : timedOut();
  }
  return new DirectoryError(
    ErrorCodes.DIRECTORY_OVERLOADED,
    `LDAP lookup waited ${timeoutMs - onWire} ms of its ${timeoutText} for a search slot; its search on ${url} got no answer in the ${onWire} ms left`,
  );
}
