import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { Client, ResultCodeError, type Entry } from 'ldapts';
import type { Config } from '../config/schema.js';
import { ms } from '../config/duration.js';
import { ConfigError, DirectoryError, ErrorCodes } from '../errors.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { Directory, DirectoryAnswer, DirectoryEntry, DirectoryRecord } from './types.js';
import { checkFilterTemplate, expandFilter, parseFilter } from './filter.js';
import { NO_SUCH_OBJECT, isConnectionFailure, toDirectoryError } from './ldap-errors.js';
import { searchPlan, type LdapEntry, type LdapSearchPlan } from './presets.js';

/**
 * The LDAP / Active Directory directory, through ldapts.
 *
 * Requests borrow one of `poolSize` connections exclusively (a dead connection then hurts one
 * request only); connections open lazily, trying `urls` in order, and are discarded on any
 * transport failure, so a restarted server is picked up by the next request. `timeout` bounds
 * the whole answer: waiting for a free connection, connecting, StartTLS, bind and search. At
 * most `maxInFlight` requests are accepted at once (running or waiting); more fail at once
 * with OVERLOADED rather than queueing without bound. Referrals are never chased.
 */

type LdapConfig = Config['directory']['ldap'];

export interface LdapDirectoryOptions {
  /** The `directory.ldap` config section. */
  config: LdapConfig;
  /** Simple bind password; null with `bindDN: null` = anonymous. */
  bindPassword: string | null;
  metrics: Metrics;
  logger: Logger;
}

/** Enough to tell two matches apart in a log line, not so many that a bad filter floods us. */
const LOOKUP_SIZE_LIMIT = 16;
/** TCP keepalive so a silently vanished server is noticed on idle pooled connections. */
const KEEPALIVE_MS = 30_000;
/** An unbind never waits longer than this (the peer may be paused or gone). */
const UNBIND_GRACE_MS = 1_000;

/** One LDAP connection (one ldapts Client) and every socket it opened, so it can be torn down hard. */
class LdapConnection {
  private readonly sockets = new Set<net.Socket>();
  private destroyed = false;
  /** False once a request has used it: failures on a reused connection earn one retry. */
  fresh = true;

  readonly client: Client;
  /** A socket of this connection closed or ended. */
  private dead = false;

  constructor(
    readonly url: string,
    connectTimeout: number,
    tlsOptions: tls.ConnectionOptions | undefined,
  ) {
    const track = <S extends net.Socket>(socket: S): S => {
      this.sockets.add(socket);
      socket.setKeepAlive(true, KEEPALIVE_MS);
      socket.once('close', () => {
        this.sockets.delete(socket);
        // ldapts keeps its handlers on the pre-TLS socket after StartTLS, so `isConnected`
        // can stay true for a dead TLS socket: our own flag catches it.
        this.dead = true;
      });
      socket.once('end', () => {
        this.dead = true;
      });
      if (this.destroyed) socket.destroy();
      return socket;
    };
    const connect = net.connect as (...args: unknown[]) => net.Socket;
    const secureConnect = tls.connect as (...args: unknown[]) => tls.TLSSocket;
    this.client = new Client({
      url,
      connectTimeout: Math.max(1, Math.round(connectTimeout)),
      // Only for ldaps://: ldapts would otherwise speak TLS at once on an ldap:// URL.
      ...(url.startsWith('ldaps:') && tlsOptions ? { tlsOptions } : {}),
      createConnection: ((...args: unknown[]) => track(connect(...args))) as typeof net.connect,
      createSecureConnection: ((...args: unknown[]) => track(secureConnect(...args))) as typeof tls.connect,
    });
  }

  get alive(): boolean {
    return !this.destroyed && !this.dead && this.client.isConnected;
  }

  /** Tears the sockets down now; pending requests on them reject. */
  destroy(): void {
    this.destroyed = true;
    for (const socket of this.sockets) socket.destroy();
  }

  /** Polite goodbye, bounded; always ends destroyed. */
  async unbind(): Promise<void> {
    if (!this.destroyed && this.client.isConnected) {
      await deadlineRace(this.client.unbind(), UNBIND_GRACE_MS, () => new Error('unbind timed out')).catch(() => undefined);
    }
    this.destroy();
  }
}

/** Resolves or rejects like `work`, unless the time runs out or the signal aborts first. */
function deadlineRace<T>(work: Promise<T>, remainingMs: number, onTimeout: () => Error, signal?: AbortSignal): Promise<T> {
  work.catch(() => undefined); // the loser of the race may still reject
  return new Promise<T>((resolve, reject) => {
    if (signal?.aborted) return reject(abortError(signal));
    const timer = setTimeout(() => finish(() => reject(onTimeout())), Math.max(0, remainingMs));
    const onAbort = (): void => finish(() => reject(abortError(signal!)));
    signal?.addEventListener('abort', onAbort, { once: true });
    function finish(settle: () => void): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      settle();
    }
    work.then(
      (value) => finish(() => resolve(value)),
      (err: unknown) => finish(() => reject(err)),
    );
  });
}

function abortError(signal: AbortSignal): DirectoryError {
  return new DirectoryError(ErrorCodes.DIRECTORY_TIMEOUT, 'LDAP request aborted by the caller', { cause: signal.reason });
}

/** FIFO permits for the pool; waiting is bounded by the request's deadline. */
class Permits {
  private readonly waiters: Array<{ grant: () => void }> = [];
  constructor(private available: number) {}

  acquire(remainingMs: number, onTimeout: () => Error, signal?: AbortSignal): Promise<void> {
    if (this.available > 0) {
      this.available--;
      return Promise.resolve();
    }
    let waiter: { grant: () => void } | undefined;
    const granted = new Promise<void>((resolve) => {
      waiter = { grant: resolve };
      this.waiters.push(waiter);
    });
    return deadlineRace(granted, remainingMs, onTimeout, signal).catch((err: unknown) => {
      const i = this.waiters.indexOf(waiter!);
      if (i >= 0) this.waiters.splice(i, 1);
      else this.release(); // granted in the same tick the timer fired: hand it on
      throw err;
    });
  }

  release(): void {
    const next = this.waiters.shift();
    if (next) next.grant();
    else this.available++;
  }
}

export class LdapDirectory implements Directory {
  readonly kind = 'ldap' as const;
  private readonly config: LdapConfig;
  private readonly bindPassword: string | null;
  private readonly metrics: Metrics;
  private readonly log: Logger;
  private readonly plan: LdapSearchPlan;
  private readonly timeoutMs: number;
  private readonly tlsOptions: tls.ConnectionOptions | undefined;
  private readonly permits: Permits;
  private readonly idle: LdapConnection[] = [];
  private readonly open = new Set<LdapConnection>();
  private inFlight = 0;
  private closed = false;
  /** null until the first answer; logged on every change. */
  private up: boolean | null = null;
  private warnedNoSuchBase = false;

  constructor(options: LdapDirectoryOptions) {
    const { config } = options;
    const issues: { path: string; message: string }[] = [];
    if (config.urls.length === 0) issues.push({ path: 'directory.ldap.urls', message: 'at least one ldap:// or ldaps:// URL is required' });
    if (config.bindDN !== null && options.bindPassword === null) {
      issues.push({ path: 'directory.ldap.bindPasswordFile', message: 'bindDN is set but no bind password was given (bindPasswordFile or RCPTGATE_LDAP_BIND_PASSWORD)' });
    }
    const filterProblem = config.filter === null ? null : checkFilterTemplate(config.filter);
    if (filterProblem) issues.push({ path: 'directory.ldap.filter', message: filterProblem });
    let ca: Buffer | undefined;
    if (config.tls.caFile !== null) {
      try {
        ca = readFileSync(config.tls.caFile);
      } catch (err) {
        issues.push({ path: 'directory.ldap.tls.caFile', message: `cannot read ${config.tls.caFile}: ${(err as Error).message}` });
      }
    }
    if (issues.length) throw new ConfigError(issues);
    this.config = config;
    this.bindPassword = options.bindPassword;
    this.metrics = options.metrics;
    this.log = options.logger.child({ component: 'ldap' });
    this.plan = searchPlan(config);
    this.timeoutMs = ms(config.timeout);
    this.permits = new Permits(config.poolSize);
    this.tlsOptions = ca || !config.tls.rejectUnauthorized ? { ...(ca ? { ca: [ca] } : {}), rejectUnauthorized: config.tls.rejectUnauthorized } : undefined;
  }

  /** The filter template in use (preset or configured). */
  get lookupFilter(): string {
    return this.plan.lookupFilter;
  }

  async lookup(address: string, signal?: AbortSignal): Promise<DirectoryAnswer> {
    const filter = expandFilter(this.plan.lookupFilter, address);
    if (this.inFlight >= this.config.maxInFlight) throw this.overloaded();
    const started = process.hrtime.bigint();
    try {
      const entries = await this.request('search', signal, async (conn) => {
        try {
          const result = await conn.client.search(this.config.baseDN, {
            scope: this.config.scope,
            filter: parseFilter(filter),
            attributes: this.plan.attributes,
            sizeLimit: LOOKUP_SIZE_LIMIT,
            derefAliases: 'never',
          });
          return result.searchEntries;
        } catch (err) {
          if (err instanceof ResultCodeError && err.code === NO_SUCH_OBJECT) throw this.noSuchBase(conn.url, err);
          throw err;
        }
      });
      const entry = this.pick(address, entries);
      this.record(entry ? 'found' : 'not_found', started);
      return { entry, filter };
    } catch (err) {
      const error = toDirectoryError(err, { operation: 'search' });
      this.record(error.code === ErrorCodes.DIRECTORY_TIMEOUT ? 'timeout' : 'error', started, error);
      throw error;
    }
  }

  async probe(signal?: AbortSignal): Promise<void> {
    if (this.inFlight >= this.config.maxInFlight) throw this.overloaded();
    try {
      await this.request('probe', signal, async (conn) => {
        try {
          await conn.client.search(this.config.baseDN, { scope: 'base', filter: '(objectClass=*)', attributes: ['1.1'] });
        } catch (err) {
          if (err instanceof ResultCodeError && err.code === NO_SUCH_OBJECT) {
            throw new DirectoryError(
              ErrorCodes.DIRECTORY_PROTOCOL,
              `LDAP base DN "${this.config.baseDN}" does not exist on ${conn.url}: check directory.ldap.baseDN`,
              { cause: err },
            );
          }
          throw err;
        }
      });
      this.setUp(true);
    } catch (err) {
      const error = toDirectoryError(err, { operation: 'probe' });
      this.setUp(false, error);
      throw error;
    }
  }

  async *listAll(options: { changedSince?: Date; signal?: AbortSignal } = {}): AsyncIterable<DirectoryRecord> {
    const { changedSince, signal } = options;
    if (this.closed) throw this.closedError();
    const filter = changedSince ? `(&${this.plan.listFilter}${this.plan.changedSinceClause(changedSince)})` : this.plan.listFilter;
    // A dedicated connection: paging cookies belong to one connection, and a long sync must not hold a pool slot.
    const conn = await this.connect(Date.now() + this.timeoutMs, signal);
    this.open.add(conn);
    let count = 0;
    try {
      const pages = conn.client
        .searchPaginated(this.config.baseDN, {
          scope: this.config.scope,
          filter: parseFilter(filter),
          attributes: this.plan.attributes,
          paged: { pageSize: this.config.pageSize },
          derefAliases: 'never',
        })
        [Symbol.asyncIterator]();
      for (;;) {
        let page: IteratorResult<{ searchEntries: Entry[] }>;
        try {
          page = await deadlineRace(pages.next(), this.timeoutMs, () => this.timeoutError('paged search', conn.url), signal);
        } catch (err) {
          // A missing base must fail the sync: an empty listing would make every address unknown.
          throw toDirectoryError(err, { operation: 'paged search', url: conn.url });
        }
        if (page.done) break;
        for (const raw of page.value.searchEntries) {
          const entry = raw as LdapEntry;
          const addresses = this.plan.addresses(entry);
          if (addresses.length === 0) continue;
          count++;
          yield { dn: entry.dn, canonical: this.plan.canonical(entry) ?? addresses[0]!, addresses };
        }
      }
      this.log.info({ entries: count, incremental: changedSince !== undefined }, 'LDAP listing complete');
    } finally {
      this.open.delete(conn);
      await conn.unbind();
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.open];
    this.idle.length = 0;
    this.open.clear();
    await Promise.all(all.map((c) => c.unbind()));
  }

  // --- requests on pooled connections ---

  /**
   * Runs `work` on a pooled connection within the deadline. Transport failures discard the
   * connection; one failing on a reused connection (the server restarted since) is retried
   * once on a fresh one.
   */
  private async request<T>(operation: string, signal: AbortSignal | undefined, work: (conn: LdapConnection) => Promise<T>): Promise<T> {
    if (this.closed) throw this.closedError();
    const deadline = Date.now() + this.timeoutMs;
    this.inFlight++;
    try {
      await this.permits.acquire(
        deadline - Date.now(),
        () => new DirectoryError(ErrorCodes.DIRECTORY_TIMEOUT, `no LDAP connection became free within ${this.config.timeout} (all ${this.config.poolSize} busy)`),
        signal,
      );
      try {
        for (let attempt = 0; ; attempt++) {
          if (this.closed) throw this.closedError();
          const conn = this.takeIdle() ?? (await this.connect(deadline, signal));
          const reused = !conn.fresh;
          conn.fresh = false;
          try {
            const result = await deadlineRace(work(conn), deadline - Date.now(), () => this.timeoutError(operation, conn.url), signal);
            this.giveBack(conn);
            return result;
          } catch (err) {
            // An LDAP result (e.g. a refused search) leaves the connection usable; anything else does not.
            if (err instanceof ResultCodeError) this.giveBack(conn);
            else this.discard(conn);
            const error = toDirectoryError(err, { operation, url: conn.url });
            if (attempt === 0 && reused && isConnectionFailure(error) && Date.now() < deadline) {
              this.log.debug({ url: conn.url, err: error.message }, 'pooled LDAP connection was dead; retrying on a new one');
              continue;
            }
            throw error;
          }
        }
      } finally {
        this.permits.release();
      }
    } finally {
      this.inFlight--;
    }
  }

  private takeIdle(): LdapConnection | undefined {
    for (let conn = this.idle.pop(); conn; conn = this.idle.pop()) {
      if (conn.alive) return conn;
      this.discard(conn);
    }
    return undefined;
  }

  private giveBack(conn: LdapConnection): void {
    if (this.closed || !conn.alive) this.discard(conn);
    else this.idle.push(conn);
  }

  private discard(conn: LdapConnection): void {
    this.open.delete(conn);
    conn.destroy();
  }

  /**
   * Opens and binds a connection, trying each URL in order; each gets an equal share of the
   * time left so a hanging first server still leaves time for the next. Auth errors stop the
   * search: the next replica would refuse the same credentials.
   */
  private async connect(deadline: number, signal?: AbortSignal): Promise<LdapConnection> {
    const failures: DirectoryError[] = [];
    const urls = this.config.urls;
    for (let i = 0; i < urls.length; i++) {
      const url = urls[i]!;
      const remaining = deadline - Date.now();
      if (remaining <= 0) break;
      const share = remaining / (urls.length - i);
      const conn = new LdapConnection(url, share, this.tlsOptions);
      this.open.add(conn);
      let step = 'connect';
      try {
        await deadlineRace(this.handshake(conn, (s) => (step = s)), share, () => this.timeoutError(step, url), signal);
        if (this.closed) throw this.closedError();
        return conn;
      } catch (err) {
        this.discard(conn);
        const error = toDirectoryError(err, { operation: step, url, bindDN: this.config.bindDN });
        if (error.code === ErrorCodes.DIRECTORY_AUTH || signal?.aborted || this.closed) throw error;
        failures.push(error);
        this.log.debug({ url, err: error.message }, 'LDAP server failed; trying the next URL');
      }
    }
    if (failures.length === 0) throw this.timeoutError('connect', urls.join(', '));
    if (failures.length === 1) throw failures[0]!;
    const last = failures[failures.length - 1]!;
    throw new DirectoryError(last.code as ConstructorParameters<typeof DirectoryError>[0], `no LDAP server answered: ${failures.map((f) => f.message).join('; ')}`, { cause: last });
  }

  private async handshake(conn: LdapConnection, step: (name: string) => void): Promise<void> {
    const { hostname } = new URL(conn.url);
    if (this.config.startTLS && conn.url.startsWith('ldap:')) {
      step('StartTLS');
      const host = hostname.replace(/^\[|\]$/g, '');
      await conn.client.startTLS({ ...this.tlsOptions, host, ...(net.isIP(host) ? {} : { servername: host }) });
    }
    step('bind');
    // An explicit anonymous bind opens the connection now, so failover happens here and not mid-search.
    if (this.config.bindDN === null) await conn.client.bind('', '');
    else await conn.client.bind(this.config.bindDN, this.bindPassword ?? '');
  }

  // --- answers, metrics, state ---

  /** Several entries: prefer the one whose primary address is the one asked for, then the lowest DN. */
  private pick(address: string, entries: Entry[]): DirectoryEntry | null {
    if (entries.length === 0) return null;
    const wanted = address.toLowerCase();
    const candidates = entries.map((raw) => {
      const entry = raw as LdapEntry;
      const canonical = this.plan.canonical(entry) ?? address;
      return { dn: entry.dn, canonical, exact: canonical.toLowerCase() === wanted ? 0 : 1, key: entry.dn.toLowerCase() };
    });
    candidates.sort((a, b) => a.exact - b.exact || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    const chosen = candidates[0]!;
    if (candidates.length > 1) {
      this.log.warn({ address, dns: candidates.map((c) => c.dn), chosen: chosen.dn }, 'several LDAP entries match one address; using the first');
    }
    return { dn: chosen.dn, canonical: chosen.canonical };
  }

  /**
   * A missing base DN is a configuration error, not "no such recipient": answering unknown would
   * reject every address (reject-all), so it is a directory error and lookups defer.
   */
  private noSuchBase(url: string, cause: unknown): DirectoryError {
    if (!this.warnedNoSuchBase) {
      this.warnedNoSuchBase = true;
      this.log.error({ baseDN: this.config.baseDN }, 'LDAP base DN does not exist: every lookup defers (check directory.ldap.baseDN)');
    }
    return new DirectoryError(ErrorCodes.DIRECTORY_PROTOCOL, `LDAP base DN "${this.config.baseDN}" does not exist on ${url}: check directory.ldap.baseDN`, { cause });
  }

  private record(outcome: 'found' | 'not_found' | 'error' | 'timeout', started: bigint, err?: DirectoryError): void {
    this.metrics.directoryRequests.inc({ outcome });
    this.metrics.directoryDuration.observe(Number(process.hrtime.bigint() - started) / 1e9);
    this.setUp(outcome === 'found' || outcome === 'not_found', err);
  }

  private setUp(up: boolean, err?: DirectoryError): void {
    this.metrics.directoryUp.set(up ? 1 : 0);
    if (up === this.up) return;
    const was = this.up;
    this.up = up;
    if (up && was === false) this.log.info('LDAP directory answers again');
    if (!up) this.log.warn({ code: err?.code, err: err?.message }, 'LDAP directory is failing');
  }

  private overloaded(): DirectoryError {
    this.metrics.directoryRequests.inc({ outcome: 'overloaded' });
    return new DirectoryError(
      ErrorCodes.DIRECTORY_OVERLOADED,
      `too many LDAP requests in flight (maxInFlight ${this.config.maxInFlight}): refusing instead of queueing`,
    );
  }

  private timeoutError(operation: string, url: string): DirectoryError {
    return new DirectoryError(ErrorCodes.DIRECTORY_TIMEOUT, `LDAP ${operation} on ${url} got no answer within ${this.config.timeout}`);
  }

  private closedError(): DirectoryError {
    return new DirectoryError(ErrorCodes.DIRECTORY_UNAVAILABLE, 'LDAP directory is closed');
  }
}
