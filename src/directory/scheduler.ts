import type { Entry } from 'ldapts';
import { DirectoryError, ErrorCodes } from '../errors.js';
import type { Logger } from '../log.js';
import { abortError, type LdapConnection } from './connection.js';
import { batchable, hidesValues, matchBatch } from './answers.js';
import { NO_SUCH_OBJECT, UNAVAILABLE, failsEverySearch, foundDespite, isConnectionFailure, partialWhenLimited, toDirectoryError } from './ldap-errors.js';
import { closedError, type ConnectionPool } from './pool.js';
import type { LdapSearchPlan } from './presets.js';
import { resultError, sendLookupSearch, type RawSearchResult } from './raw-search.js';
import { LookupEncoder } from './search-encoder.js';
import { referredError } from './references.js';
import { InFlightSearches, expiryError, type InFlight } from './in-flight.js';
import { LookupQueue, pending, type Pending } from './lookup-queue.js';
import { LimitCheck, everySearchRefused } from './limit-check.js';

/**
 * Turns lookups into searches. A lookup waits in a FIFO queue until a search slot is free or its deadline (the
 * configured timeout) passes; only then is it refused. Lookups that wait together leave together: up to `batchSize`
 * keys in one search with an OR filter, matched back to each key (answers.ts). So under load one search answers many
 * keys, while a lone lookup still goes out at once, alone. A search whose connection dies is retried once, on another
 * connection; a batch the server did not answer in full (a limit, an error) is asked again key by key: no key reads a
 * failed batch, or one referred elsewhere for part of its scope (references.ts), as "no such entry". Once the directory
 * has shown that it returns entries without the value that matched (search without read rights), keys a batch left
 * unanswered beside entries are "no such entry" only once a batch of just those keys finds nothing.
 */

export interface SchedulerOptions {
  pool: ConnectionPool;
  plan: LdapSearchPlan;
  baseDN: string;
  scope: 'base' | 'one' | 'sub';
  timeoutMs: number;
  timeoutText: string;
  /** Keys per search at most; 1 = never batch. */
  batchSize: number;
  /** Lookups accepted at once (queued or searching); more are refused at once. */
  maxAccepted: number;
  log: Logger;
  /** Called once per search sent (metrics). */
  onSearch?: (keys: number) => void;
  /** A missing base DN: the error every lookup then gets. */
  noSuchBase: (url: string, cause: unknown) => DirectoryError;
  overloaded: () => DirectoryError;
}

/** Enough to tell two matches apart in a log line, not so many that a bad filter floods us. */
const ENTRIES_PER_KEY = 16;

export class LookupScheduler {
  private readonly queue: LookupQueue;
  /** Writes each search's bytes from the lookup filter, compiled once. */
  private readonly encoder: LookupEncoder;
  private accepted = 0;
  private pumpScheduled = false;
  private asking = false; // askElsewhere()'s search is on the wire
  private waitingForSlot = false;
  private closed = false;
  /** An entry came back matching its key by no value it holds: the directory hides values (search
   * without read rights). Learned, not assumed: confirming every mixed batch doubles the searches. */
  private valuesHidden = false;
  /** Searches sent and not yet answered, and their deadlines. */
  private readonly inFlight: InFlightSearches;
  private readonly limits: LimitCheck;

  constructor(private readonly o: SchedulerOptions) {
    this.queue = new LookupQueue(o.batchSize);
    this.limits = new LimitCheck(o);
    this.inFlight = new InFlightSearches({
      timeoutMs: o.timeoutMs,
      expire: (p, search) => this.fail(p, expiryError(p, search, o.timeoutMs, o.timeoutText)),
      hung: (search) => o.pool.discardHung(search.conn, search.sentAt),
      slow: (search) => o.pool.dropIfSilent(search.conn, search.sentAt),
      behind: (search) => this.askAgain(search),
      unproven: (search) => this.askElsewhere(search),
    });
    this.encoder = new LookupEncoder(o.plan.lookupFilter, {
      baseDN: o.baseDN, scope: o.scope, attributes: o.plan.attributes,
      // The server gives up by itself too, so a slow search frees its message ID.
      timeLimit: Math.max(1, Math.ceil(o.timeoutMs / 1000)),
    });
  }

  /** Lookups accepted and not yet answered. */
  get pending(): number {
    return this.accepted;
  }

  /** Entries the directory holds for `key` (the search's own answer, not yet picked), and the server that said so. */
  lookup(key: string, signal?: AbortSignal): Promise<{ entries: Entry[]; server: string }> {
    if (this.closed) return Promise.reject(closedError());
    if (signal?.aborted) return Promise.reject(abortError(signal));
    if (this.accepted >= this.o.maxAccepted) return Promise.reject(this.o.overloaded());
    return new Promise<{ entries: Entry[]; server: string }>((resolve, reject) => {
      const single = this.o.batchSize <= 1 || this.o.plan.matchValues === null || !batchable(key);
      const p = pending(key, performance.now() + this.o.timeoutMs, single, signal, (entries, server) => resolve({ entries, server }), reject);
      if (signal) {
        p.onAbort = () => this.fail(p, abortError(signal));
        signal.addEventListener('abort', p.onAbort, { once: true });
      }
      this.accepted++;
      this.queue.push(p);
      // A lookup alone (nothing else queued or on the wire) has nothing to wait for: it goes out
      // now, sparing a turn of the event loop. Under load lookups meet in the queue and batch.
      if (this.accepted === 1 && !this.pumpScheduled) this.pump();
      else this.schedulePump();
    });
  }

  close(): void {
    this.closed = true;
    // Nothing watches or retries a search once closed: its lookups fail now, not at the backstop.
    for (const search of this.inFlight.close()) for (const p of search.batch) this.fail(p, closedError());
    for (let p = this.queue.shift(); p; p = this.queue.shift()) this.fail(p, closedError());
  }

  /** Dispatch at the next turn of the event loop, so lookups that arrive together leave together. */
  private schedulePump(): void {
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    setImmediate(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  private pump(): void {
    // The first search of a turn goes out at once (a lone lookup pays for no corking); the
    // connections that get more are corked, so those leave in one system call each.
    let first: LdapConnection | undefined;
    const corked: LdapConnection[] = [];
    while (!this.closed && this.queue.peek()) {
      const conn = this.o.pool.tryAcquire();
      if (!conn) break;
      if (first === undefined) first = conn;
      else if (!corked.includes(conn)) {
        corked.push(conn);
        conn.cork();
      }
      this.dispatch(conn);
    }
    for (const conn of corked) conn.uncork();
    if (!this.closed && !this.waitingForSlot && this.queue.peek()) this.waitForSlot();
  }

  /** All slots are taken: wait for one until the oldest lookup's deadline. */
  private waitForSlot(): void {
    this.waitingForSlot = true;
    this.o.pool.acquire(this.queue.peek()!.deadline).then(
      (conn) => {
        this.waitingForSlot = false;
        this.dispatch(conn);
        this.pump();
      },
      (err: DirectoryError) => {
        this.waitingForSlot = false;
        if (err.code === ErrorCodes.DIRECTORY_TIMEOUT || err.code === ErrorCodes.DIRECTORY_OVERLOADED) {
          // Our own queue ran out of time: only the lookups whose deadline passed fail.
          const now = performance.now();
          for (let p = this.queue.peek(); p && p.deadline <= now; p = this.queue.peek()) this.fail(this.queue.shift()!, err);
        } else {
          // Nothing could connect: every waiting lookup would fail the same way.
          for (let p = this.queue.shift(); p; p = this.queue.shift()) this.fail(p, err);
        }
        this.pump();
      },
    );
  }

  private retry(batch: Pending[], singly: boolean): void {
    if (this.closed) {
      for (const p of batch) this.fail(p, closedError());
      return;
    }
    for (const p of batch) if (!p.done) this.queue.pushUrgent(p, singly);
    this.schedulePump();
  }

  private answer(p: Pending, entries: Entry[], conn: LdapConnection): void {
    if (this.settle(p)) p.resolve(entries, conn.url);
  }

  private fail(p: Pending, err: DirectoryError): void {
    if (this.settle(p)) p.reject(err);
  }

  /** Marks `p` answered; false when it already was. */
  private settle(p: Pending): boolean {
    if (p.done) return false;
    p.done = true;
    this.accepted--;
    if (p.onAbort) p.signal?.removeEventListener('abort', p.onAbort);
    return true;
  }

  private dispatch(conn: LdapConnection): void {
    const batch = this.queue.takeBatch();
    if (batch.length === 0) {
      this.o.pool.release(conn);
      return;
    }
    this.send(conn, batch);
  }

  private send(conn: LdapConnection, batch: Pending[]): void {
    const keys = batch.length === 1 ? [batch[0]!.key] : [...new Set(batch.map((p) => p.key))];
    this.o.onSearch?.(keys.length);
    const search = this.inFlight.add(conn, batch);
    const answered = (r: RawSearchResult) => this.settled(search, true, () => (batch.length === 1 ? this.settleSingle(batch[0]!, r, conn) : this.settleBatch(batch, r, conn)));
    const failed = (err: unknown) => this.settled(search, false, () => this.searchFailed(batch, toDirectoryError(err, { operation: 'search', url: conn.url })));
    try {
      sendLookupSearch(conn.client, this.encoder, keys, ENTRIES_PER_KEY * keys.length, answered, failed);
    } catch (err) {
      failed(err); // sent from a timer callback: a throw (encoding, a missing ldapts internal) fails the search
    }
  }

  /**
   * `search`'s connection receives but finishes no message (its answer waits behind a large or
   * trickling one) while others answer: its lookups are asked on another connection too, once,
   * and the first answer counts. The connection is left to finish what it is reading.
   */
  private askAgain(search: InFlight): void {
    const open = search.batch.filter((p) => !p.done);
    if (open.length === 0 || this.closed) return;
    let conn = this.o.pool.tryAcquire();
    if (conn === search.conn) {
      const other = this.o.pool.tryAcquire();
      this.o.pool.release(conn);
      conn = other;
    }
    if (conn === undefined || conn === search.conn) return conn && this.o.pool.release(conn);
    this.o.log.debug({ keys: open.length, url: search.conn.url }, 'an LDAP answer is arriving slowly on its connection; asking its lookups on another too');
    this.send(conn, open);
  }

  /** `suspect`'s connection went silent at a quiet time: its first key asked on another shows it cut off, or the directory slow (in-flight.ts). One at a time. */
  private askElsewhere(suspect: InFlight): void {
    const conn = this.asking || this.closed ? undefined : this.o.pool.tryAcquire();
    if (conn === undefined || conn === suspect.conn) return conn && this.o.pool.release(conn);
    this.asking = true;
    this.o.onSearch?.(1);
    const search = this.inFlight.add(conn, []);
    const done = (answered: boolean) => {
      this.asking = false;
      this.settled(search, answered, () => undefined);
    };
    try {
      sendLookupSearch(conn.client, this.encoder, [suspect.batch[0]!.key], ENTRIES_PER_KEY, () => done(true), () => done(false));
    } catch {
      done(false);
    }
  }

  /** A search ended: its slot is freed, then its lookups settled. This runs inside the socket's
   * data event (lookup-reader.ts), which a throw must not escape: a fault of ours fails them. */
  private settled(search: InFlight, answered: boolean, settle: () => void): void {
    try {
      this.inFlight.delete(search, answered);
      this.o.pool.release(search.conn);
      settle();
    } catch (err) {
      this.o.log.error({ err }, 'settling an LDAP search failed unexpectedly');
      for (const p of search.batch) this.fail(p, new DirectoryError(ErrorCodes.DIRECTORY_PROTOCOL, 'internal error while reading an LDAP answer'));
    }
  }

  private settleSingle(p: Pending, result: RawSearchResult, conn: LdapConnection): void {
    if (foundDespite(result.status, result.entries.length)) {
      if (result.referral !== undefined && result.entries.length === 0) return this.fail(p, referredError(result.referral, conn.url));
      if (!this.valuesHidden && hidesValues(this.o.plan, p.key, result.entries)) this.learnHiddenValues();
      this.answer(p, result.entries, conn);
      return;
    }
    // Any other result, a limit hit with no entry included, is no answer: tempfail, never "no such entry"
    // (unless a server that cannot serve any search now, its base missing, busy, or a limit on every search, leaves another to answer).
    const everySearch = this.limits.refusesEverySearch(conn, result.status);
    if (this.o.pool.refusedBy(conn, everySearch || failsEverySearch(result.status) ? UNAVAILABLE : result.status)) this.retryOnce([p], this.resultFailure(result, conn.url, everySearch));
    else this.fail(p, this.resultFailure(result, conn.url, everySearch));
  }

  private settleBatch(batch: Pending[], result: RawSearchResult, conn: LdapConnection): void {
    if (result.status !== 0) {
      if (this.o.pool.refusedBy(conn, failsEverySearch(result.status) ? UNAVAILABLE : result.status)) this.retryOnce(batch, this.resultFailure(result, conn.url));
      else if (result.status === NO_SUCH_OBJECT) for (const p of batch) this.fail(p, this.resultFailure(result, conn.url));
      else this.retry(batch, true);
      return;
    }
    const folded = batch.map((p) => p.key.toLowerCase());
    const { byKey, unaccounted } = matchBatch(this.o.plan.matchValues!, result.entries, new Set(folded));
    if (unaccounted && !this.valuesHidden) this.learnHiddenValues();
    const unsure: Pending[] = [];
    const unanswered: Pending[] = [];
    for (let i = 0; i < batch.length; i++) {
      const p = batch[i]!;
      const entries = byKey.get(folded[i]!);
      if (entries) this.answer(p, entries, conn);
      else if (result.referral !== undefined && !this.valuesHidden) this.fail(p, referredError(result.referral, conn.url));
      else (unaccounted || result.referral !== undefined ? unsure : unanswered).push(p);
    }
    // Where values are hidden, a key left unanswered beside entries is "no such entry" only once a batch of
    // just such keys finds nothing; a confirming batch that still finds entries sends those keys singly.
    if (result.entries.length === 0 || !this.valuesHidden) for (const p of unanswered) this.answer(p, [], conn);
    else if (batch[0]!.confirming) unsure.push(...unanswered);
    else if (unanswered.length > 0) this.confirm(unanswered);
    if (unsure.length > 0) {
      this.o.log.debug({ keys: unsure.length }, 'a batched search returned an entry matching no key by our rules; asking its keys singly');
      this.retry(unsure, true);
    }
  }

  private learnHiddenValues(): void {
    this.valuesHidden = true;
    this.o.log.info('the directory returned an entry without the value that matched (search rights without read, or values that cannot be compared): keys a batch leaves unanswered beside found entries are confirmed from now on');
  }

  /** Asks `keys` again in batches of such keys only (from any batch: under load they fill up). */
  private confirm(keys: Pending[]): void {
    for (const p of keys) p.confirming = true;
    this.retry(keys, false);
  }

  /** A dead connection fails only its own searches, and each is retried once elsewhere. */
  private searchFailed(batch: Pending[], error: DirectoryError): void {
    if (isConnectionFailure(error)) this.retryOnce(batch, error);
    else if (batch.length > 1) this.retry(batch, true);
    else this.fail(batch[0]!, error);
  }

  private retryOnce(batch: Pending[], error: DirectoryError): void {
    const again = batch.filter((p) => !p.done && !p.retried);
    for (const p of batch) if (p.retried) this.fail(p, error);
    for (const p of again) p.retried = true;
    if (again.length > 0) this.o.log.debug({ keys: again.length, err: error.message }, 'LDAP search failed with its connection or server; retrying on another');
    // A batch's keys go singly: the answer that cost the connection (over 32 MB of entries, an
    // entry the reader refused) may be one key's, and asked together again it would fail them all.
    this.retry(again, again.length > 1);
  }

  private resultFailure(result: RawSearchResult, url: string, everySearch = false): DirectoryError {
    const cause = resultError(result);
    if (result.status === NO_SUCH_OBJECT) return this.o.noSuchBase(url, cause);
    const error = toDirectoryError(cause, { operation: 'search', url });
    return everySearch ? everySearchRefused(error) : partialWhenLimited(result.status, error);
  }
}
