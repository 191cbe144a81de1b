import { DirectoryError, ErrorCodes } from '../errors.js';
import { LdapConnection, abortError } from './connection.js';
import { closedError } from './connect.js';
import { Dialer, type DialerOptions } from './dialer.js';
import { Failback } from './failback.js';
import { isAuthResult, isUnavailableResult } from './ldap-errors.js';

export { closedError } from './connect.js';

/**
 * Up to `poolSize` LDAP connections, each carrying up to `perConnection` searches at once
 * (LDAP is asynchronous: answers are told apart by message ID). A slot is one message ID on one
 * connection; a slow search holds its slot, not the connection. Connections open lazily, trying
 * `urls` in order (a server that lately said busy or hung, last), and a dead one is dropped at once,
 * so a restarted server is picked up by the next request. A connection that reached a later URL
 * fails back to the first once that answers again (failback.ts). Waiters are served first come, first
 * served, each until its own deadline.
 */

export interface PoolOptions extends DialerOptions {
  poolSize: number;
  perConnection: number;
  timeoutMs: number;
  /** How long a connection on a later URL serves before the first is tried again; 0: never. */
  failbackMs: number;
  /** A lookup's search on a fresh connection (failback.ts). */
  verify?: (conn: LdapConnection, deadline: number) => Promise<void>;
}

interface Waiter {
  resolve: (conn: LdapConnection) => void;
  reject: (err: DirectoryError) => void;
  timer: NodeJS.Timeout;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

export class ConnectionPool {
  private readonly ready: LdapConnection[] = [];
  private readonly waiters: Waiter[] = [];
  private connecting = 0;
  private closed = false;
  /** Connections taken out of service by a failback, closing once their searches settle. */
  private readonly retiring = new Set<LdapConnection>();
  /** Opens and binds connections: URL order, servers resting, binds paused (dialer.ts). */
  private readonly dialer: Dialer;
  private readonly failback: Failback;

  constructor(private readonly o: PoolOptions) {
    this.failback = new Failback(o, this);
    this.dialer = new Dialer(o, () => this.closed, () => this.ready.length > 0);
  }

  /** Connections open or opening (for tests and metrics). */
  get size(): number {
    return this.ready.length + this.connecting;
  }

  /** Reserves a slot now, or returns undefined (and starts opening a connection if allowed). */
  tryAcquire(): LdapConnection | undefined {
    const conn = this.freest();
    if (conn) {
      conn.inFlight++;
      return conn;
    }
    if (!this.closed && this.ready.length + this.connecting < this.o.poolSize) this.grow();
    return undefined;
  }

  /** Reserves a slot, waiting until `deadline` (performance.now() ms) at most. */
  acquire(deadline: number, signal?: AbortSignal): Promise<LdapConnection> {
    if (this.closed) return Promise.reject(closedError());
    if (signal?.aborted) return Promise.reject(abortError(signal));
    const now = this.waiters.length === 0 ? this.tryAcquire() : undefined;
    if (now) return Promise.resolve(now);
    return new Promise<LdapConnection>((resolve, reject) => {
      const waiter: Waiter = {
        resolve,
        reject,
        signal,
        onAbort: undefined,
        timer: setTimeout(() => this.drop(waiter, this.waitTimeout()), Math.max(0, deadline - performance.now())),
      };
      if (signal) {
        waiter.onAbort = () => this.drop(waiter, abortError(signal));
        signal.addEventListener('abort', waiter.onAbort, { once: true });
      }
      this.waiters.push(waiter);
      // Another connection only for waiters the ones opening will not take (tryAcquire above started one).
      if (this.ready.length + this.connecting < this.o.poolSize && this.waiters.length > this.connecting * this.o.perConnection) this.grow();
    });
  }

  /** Gives a slot back once its search has settled. */
  release(conn: LdapConnection): void {
    conn.inFlight--;
    if (!conn.alive) this.discard(conn);
    else if (conn.retired) {
      if (conn.inFlight === 0) this.closeRetired(conn);
    } else if (conn.failbackAt !== Infinity && performance.now() >= conn.failbackAt) this.failback.attempt(conn);
    this.grant();
  }

  /** Drops a connection now; every search on it fails (and is retried elsewhere by its owner). */
  discard(conn: LdapConnection): void {
    const i = this.ready.indexOf(conn);
    this.retiring.delete(conn);
    conn.destroy();
    if (i < 0) return;
    this.ready.splice(i, 1);
    if (!this.closed && this.waiters.length > 0 && this.ready.length + this.connecting < this.o.poolSize) this.grow();
  }

  /**
   * `conn`'s server answered busy (51) or unavailable (52): while another URL has not said so too,
   * every connection to it is dropped (a retry must not land on a sibling), new ones try the others
   * first, and true says: worth asking again. A refusal of what `conn` is bound as (ppolicy keeps a
   * connection bound with a reset password restricted while it lives) drops it: only a new bind
   * sees the account fixed.
   */
  refusedBy(conn: LdapConnection, status: number): boolean {
    if (isAuthResult(status)) this.discard(conn);
    if (!isUnavailableResult(status) || !this.rest(conn.url)) return false;
    this.discard(conn);
    for (const other of [...this.ready]) if (other.url === conn.url) this.discard(other);
    this.dialer.abandon(conn.url);
    return true;
  }

  /** The URLs a new connection would bind to now, in order, and how a bind outside the pool reports a refusal (dialer.ts). */
  get binding(): { urls: readonly string[]; refused(url: string, err: DirectoryError): void } {
    return { urls: this.dialer.bindable(), refused: (url, err) => this.dialer.bindRefused(url, err) };
  }

  /** New connections try `url` last for a while; returns whether some other URL is not resting. */
  rest(url: string): boolean {
    return this.dialer.rest(url);
  }

  /**
   * A search on `conn` has waited half the timeout. Nothing at all back on `conn` since `since`,
   * while another connection heard from the server: this connection is what is broken (a flow
   * dropped in the network, no FIN, no RST). Dropping it retries its searches once elsewhere,
   * within their deadline. A server slow everywhere is left alone.
   */
  dropIfSilent(conn: LdapConnection, since: number): void {
    if (conn.lastBytesAt >= since || !this.ready.some((other) => other !== conn && other.lastMessageAt >= since)) return;
    this.o.log.warn({ url: conn.url }, 'LDAP connection silent for half the timeout while others answer; dropping it and retrying its searches');
    this.discard(conn);
  }

  /**
   * `conn` is hung: a search (a lookup's, a probe's) got no answer in time. Idle connections silent
   * since it left are likely cut off the same way (a partition, a firewall that lost its state): only
   * a lookup, trial or probe failing on each, one timeout at a time, would show it, so they are
   * replaced too. The server may be what hangs: new connections try other URLs first for a while.
   */
  discardHung(conn: LdapConnection, since: number): void {
    this.o.log.warn({ url: conn.url }, 'LDAP connection hung (a search got no answer in time); dropping it');
    this.rest(conn.url);
    this.discard(conn);
    for (const other of [...this.ready]) if (other.inFlight === 0 && other.lastBytesAt < since) this.discard(other);
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const w of this.waiters.splice(0)) this.settle(w, () => w.reject(closedError()));
    this.dialer.close();
    const all = [...this.ready.splice(0), ...this.retiring];
    this.retiring.clear();
    await Promise.all(all.map((c) => c.unbind()));
  }

  /** The live connection with the fewest searches in flight and a free slot. */
  private freest(): LdapConnection | undefined {
    let best: LdapConnection | undefined;
    for (let i = 0; i < this.ready.length; i++) {
      const conn = this.ready[i]!;
      if (!conn.alive) {
        // Its outstanding searches fail through ldapts; release() accounts for them.
        this.ready.splice(i--, 1);
        conn.destroy();
        continue;
      }
      if (conn.inFlight < this.o.perConnection && (!best || conn.inFlight < best.inFlight)) best = conn;
    }
    return best;
  }

  private grant(): void {
    while (this.waiters.length > 0) {
      const conn = this.freest();
      if (!conn) return;
      const waiter = this.waiters.shift()!;
      conn.inFlight++;
      this.settle(waiter, () => waiter.resolve(conn));
    }
  }

  private drop(waiter: Waiter, err: DirectoryError): void {
    const i = this.waiters.indexOf(waiter);
    if (i < 0) return;
    this.waiters.splice(i, 1);
    this.settle(waiter, () => waiter.reject(err));
  }

  private settle(waiter: Waiter, action: () => void): void {
    clearTimeout(waiter.timer);
    if (waiter.onAbort) waiter.signal?.removeEventListener('abort', waiter.onAbort);
    action();
  }

  /** Waiting ran out: the server is not answering (still connecting), or every slot is taken. */
  private waitTimeout(): DirectoryError {
    if (this.ready.length === 0) {
      return new DirectoryError(ErrorCodes.DIRECTORY_TIMEOUT, `LDAP connect to ${this.o.urls.join(', ')} got no answer within ${this.o.timeoutText}`);
    }
    return new DirectoryError(
      ErrorCodes.DIRECTORY_OVERLOADED,
      `no LDAP search slot became free within ${this.o.timeoutText} (${this.ready.length} connections × ${this.o.perConnection} searches in flight)`,
    );
  }

  private grow(): void {
    this.connecting++;
    this.connect(performance.now() + this.o.timeoutMs).then(
      (conn) => {
        this.connecting--;
        if (this.closed) {
          void conn.unbind();
          return;
        }
        this.ready.push(conn);
        conn.failbackAt = this.failback.dueAt(conn.url);
        this.grant();
      },
      (err: DirectoryError) => {
        this.connecting--;
        // With nothing open and nothing else opening, waiting is pointless: fail the waiters with the cause.
        if (this.ready.length === 0 && this.connecting === 0) {
          for (const w of this.waiters.splice(0)) this.settle(w, () => w.reject(err));
        }
      },
    );
  }

  /** Failback's way in (failback.ts): `fresh`, to the first URL, takes the place of `old`. */
  swap(fresh: LdapConnection, old: LdapConnection): void {
    const i = this.ready.indexOf(old);
    // `old` died meanwhile and was replaced: the pool is full without this one.
    if (i < 0 && this.ready.length + this.connecting >= this.o.poolSize) return void fresh.unbind();
    this.ready.push(fresh);
    if (i >= 0) {
      this.ready.splice(i, 1);
      old.retired = true;
      this.retiring.add(old);
      if (old.inFlight === 0) this.closeRetired(old);
    }
    this.grant();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  isResting(url: string): boolean {
    return this.dialer.isResting(url);
  }

  private closeRetired(conn: LdapConnection): void {
    this.retiring.delete(conn);
    void conn.unbind();
  }

  /** A connection outside the pool (paged listings: cookies belong to one connection). */
  async openDedicated(deadline: number): Promise<LdapConnection> {
    if (this.closed) throw closedError();
    return this.connect(deadline);
  }

  connect(deadline: number, urls?: readonly string[]): Promise<LdapConnection> {
    return this.dialer.connect(deadline, urls);
  }
}
