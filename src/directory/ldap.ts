import type tls from 'node:tls';
import type { Config } from '../config/schema.js';
import { ms } from '../config/duration.js';
import { readRegularFileSync } from '../config/regular-file.js';
import { ConfigError, DirectoryError, ErrorCodes } from '../errors.js';
import { withUnicodeDomain } from '../recipient/address.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { BindingPlan, Directory, DirectoryAnswer, DirectoryEntry, DirectoryRecord } from './types.js';
import { checkFilterTemplate, expandFilter, parseFilter } from './filter.js';
import { NO_SUCH_OBJECT, foundDespite, toDirectoryError } from './ldap-errors.js';
import { searchPlan, type LdapEntry, type LdapSearchPlan } from './presets.js';
import { AuthHold } from './auth-hold.js';
import { ConnectionPool, closedError } from './pool.js';
import { LookupScheduler } from './scheduler.js';
import { pick } from './answers.js';
import { deadlineRace, type LdapConnection } from './connection.js';
import { pagedSearch } from './paged.js';
import { rawSearch, resultError } from './raw-search.js';

/**
 * The LDAP / Active Directory directory, through ldapts.
 *
 * `poolSize` connections each carry up to `maxInFlightPerConnection` searches at once (pool.ts);
 * lookups queue for a search slot until their deadline, `timeout`, and concurrent lookups share
 * batched searches (scheduler.ts). At most `maxInFlight` lookups are accepted at once (queued or
 * searching): a cap far above real load that keeps memory bounded under a flood; beyond it
 * lookups fail at once with OVERLOADED, a refusal of our own that says nothing about the
 * directory's health. Whether the directory is up is the engine's call, not ours. Referrals are
 * never chased.
 */

type LdapConfig = Config['directory']['ldap'];

export interface LdapDirectoryOptions {
  /** The `directory.ldap` config section. */
  config: LdapConfig;
  /** Simple bind password; null with `bindDN: null` = anonymous. */
  bindPassword: string | null;
  metrics: Metrics;
  logger: Logger;
  /** `directory.canaries`: failback asks the first server for one and must find it. */
  canaries?: readonly string[];
}

function checkConfig(config: LdapConfig, bindPassword: string | null): Buffer | undefined {
  const issues: { path: string; message: string }[] = [];
  if (config.urls.length === 0) issues.push({ path: 'directory.ldap.urls', message: 'at least one ldap:// or ldaps:// URL is required' });
  if (config.bindDN !== null && bindPassword === null) {
    issues.push({ path: 'directory.ldap.bindPasswordFile', message: 'bindDN is set but no bind password was given (bindPasswordFile or RCPTGATE_LDAP_BIND_PASSWORD)' });
  }
  const filterProblem = config.filter === null ? null : checkFilterTemplate(config.filter);
  if (filterProblem) issues.push({ path: 'directory.ldap.filter', message: filterProblem });
  let ca: Buffer | undefined;
  if (config.tls.caFile !== null) {
    try {
      ca = readRegularFileSync(config.tls.caFile);
    } catch (err) {
      issues.push({ path: 'directory.ldap.tls.caFile', message: `cannot read ${config.tls.caFile}: ${(err as Error).message}` });
    }
  }
  if (issues.length) throw new ConfigError(issues);
  return ca;
}

/** rcptgate_directory_requests_total{outcome}. */
type Outcome = 'found' | 'not_found' | 'error' | 'timeout' | 'overloaded' | 'partial';
/** The outcome of a failed request, by error code (any other: error). */
const FAILURE_OUTCOMES: Partial<Record<string, Exclude<Outcome, 'overloaded'>>> = { [ErrorCodes.DIRECTORY_TIMEOUT]: 'timeout', [ErrorCodes.DIRECTORY_PARTIAL]: 'partial' };

/** Without canaries, the address failback and the probe search for: the lookup filter's shape, no entry (RFC 2606 .invalid). */
const FAILBACK_CHECK = 'failback-check@rcptgate.invalid';

export class LdapDirectory implements Directory {
  readonly kind = 'ldap' as const;
  private readonly config: LdapConfig;
  private readonly metrics: Metrics;
  private readonly log: Logger;
  private readonly plan: LdapSearchPlan;
  private readonly timeoutMs: number;
  private readonly pool: ConnectionPool;
  private readonly scheduler: LookupScheduler;
  /** Dedicated listing connections (not pooled), closed with the directory. */
  private readonly listings = new Set<{ unbind(): Promise<void> }>();
  private closed = false;
  private warnedNoSuchBase = false;
  /** Metric series resolved once: label lookups per request cost more than the increments. */
  private readonly counted: Record<Outcome, { inc(): void }>;
  private readonly duration: { observe(seconds: number): void };

  constructor(options: LdapDirectoryOptions) {
    const { config } = options;
    const ca = checkConfig(config, options.bindPassword);
    this.config = config;
    this.metrics = options.metrics;
    const outcome = (o: string): { inc(): void } => this.metrics.counterCell(this.metrics.directoryRequests, { outcome: o });
    this.counted = { found: outcome('found'), not_found: outcome('not_found'), error: outcome('error'), timeout: outcome('timeout'), overloaded: outcome('overloaded'), partial: outcome('partial') };
    this.duration = this.metrics.histogramCell(this.metrics.directoryDuration, {});
    const single = this.metrics.counterCell(this.metrics.directorySearches, { kind: 'single' });
    const batch = this.metrics.counterCell(this.metrics.directorySearches, { kind: 'batch' });
    this.log = options.logger.child({ component: 'ldap' });
    this.plan = searchPlan(config);
    this.timeoutMs = ms(config.timeout);
    const tlsOptions: tls.ConnectionOptions | undefined =
      ca || !config.tls.rejectUnauthorized ? { ...(ca ? { ca: [ca] } : {}), rejectUnauthorized: config.tls.rejectUnauthorized } : undefined;
    this.pool = new ConnectionPool({
      urls: config.urls,
      poolSize: config.poolSize,
      perConnection: config.maxInFlightPerConnection,
      timeoutMs: this.timeoutMs,
      timeoutText: config.timeout,
      failbackMs: ms(config.failbackAfter),
      verify: (conn, deadline) => this.answersLookups(conn, deadline, options.canaries?.[0]),
      startTLS: config.startTLS,
      tlsOptions,
      bindDN: config.bindDN,
      bindPassword: options.bindPassword,
      authHold: new AuthHold(),
      log: this.log,
      // By position in directory.ldap.urls: /metrics is unauthenticated and names no server.
      onBindRefused: (url) => this.metrics.directoryAuthRefused.inc({ server: String(config.urls.indexOf(url) + 1) }),
    });
    this.scheduler = new LookupScheduler({
      pool: this.pool,
      plan: this.plan,
      baseDN: config.baseDN,
      scope: config.scope,
      timeoutMs: this.timeoutMs,
      timeoutText: config.timeout,
      batchSize: config.batchSize,
      maxAccepted: config.maxInFlight,
      log: this.log,
      onSearch: (keys) => (keys > 1 ? batch : single).inc(),
      noSuchBase: (url, cause) => this.noSuchBase(url, cause),
      overloaded: () => this.overloaded(),
    });
  }

  /**
   * A lookup's own search answered on `conn` by `deadline`: what failback asks of a server before
   * moving connections back to it, more than a bind. For the first canary, which must be found;
   * without canaries, for an address no directory holds.
   */
  private async answersLookups(conn: LdapConnection, deadline: number, canary: string | undefined): Promise<void> {
    let found = await this.findsOn(conn, deadline, canary ?? FAILBACK_CHECK);
    // At an IDN domain the directory may hold either form of the domain; lookups ask for both.
    const unicode = canary === undefined || found ? null : withUnicodeDomain(canary);
    if (unicode !== null) found = await this.findsOn(conn, deadline, unicode);
    // A server that answers success with nothing (lost read rights) must not take the lookups over.
    if (canary !== undefined && !found) throw new DirectoryError(ErrorCodes.DIRECTORY_UNAVAILABLE, `canary address ${canary} not found on ${conn.url}`);
  }

  /** Whether a lookup's own search for `address` on `conn` finds an entry by `deadline`; throws when it gets no answer. */
  private async findsOn(conn: LdapConnection, deadline: number, address: string): Promise<boolean> {
    const filter = parseFilter(this.filterFor(address));
    const search = rawSearch(conn.client, { baseDN: this.config.baseDN, scope: this.config.scope, filter, attributes: this.plan.attributes, sizeLimit: 1, timeLimit: 0 });
    const timeout = () => new DirectoryError(ErrorCodes.DIRECTORY_TIMEOUT, `LDAP search on ${conn.url} got no answer within half of ${this.config.timeout}`);
    const result = await deadlineRace(search, deadline - performance.now(), timeout);
    // A limit hit after an entry was found is an answer, as for a lookup (scheduler.ts).
    if (!foundDespite(result.status, result.entries.length)) throw toDirectoryError(resultError(result), { operation: 'search', url: conn.url });
    return result.entries.length > 0;
  }

  /** The filter a lookup of `address` sends on its own (values escaped), for explanations. */
  filterFor(address: string): string {
    return expandFilter(this.plan.lookupFilter, address);
  }

  async lookup(address: string, signal?: AbortSignal): Promise<DirectoryAnswer> {
    const started = performance.now();
    try {
      const { entries, server } = await this.scheduler.lookup(address, signal);
      const picked = pick(this.plan, address, entries);
      if (picked.ambiguous) {
        this.log.warn({ address, dns: picked.ambiguous, chosen: picked.entry?.dn }, 'several LDAP entries match one address; using the first');
      }
      this.record(picked.entry ? 'found' : 'not_found', started);
      return new LdapAnswer(picked.entry, this, address, server);
    } catch (err) {
      const error = toDirectoryError(err, { operation: 'search' });
      if (error.code === ErrorCodes.DIRECTORY_OVERLOADED) this.counted.overloaded.inc();
      else this.record(FAILURE_OUTCOMES[error.code] ?? 'error', started);
      throw error;
    }
  }

  async probe(signal?: AbortSignal): Promise<void> {
    if (this.closed) throw closedError();
    const deadline = performance.now() + this.timeoutMs;
    const conn = await this.pool.acquire(deadline, signal);
    try {
      // A lookup's own search (for an address no entry holds), not the base alone: a server that answers the base
      // but refuses every lookup (a limit on unindexed searches, a missing index) is not up.
      const filter = parseFilter(this.filterFor(FAILBACK_CHECK));
      const search = rawSearch(conn.client, { baseDN: this.config.baseDN, scope: this.config.scope, filter, attributes: ['1.1'], sizeLimit: 1, timeLimit: 0 });
      const result = await deadlineRace(
        search,
        deadline - performance.now(),
        () => new DirectoryError(ErrorCodes.DIRECTORY_TIMEOUT, `LDAP probe on ${conn.url} got no answer within ${this.config.timeout}`),
        signal,
      );
      if (result.status === NO_SUCH_OBJECT) {
        throw new DirectoryError(ErrorCodes.DIRECTORY_PROTOCOL, `LDAP base DN "${this.config.baseDN}" does not exist on ${conn.url}: check directory.ldap.baseDN`, {
          cause: resultError(result),
        });
      }
      if (result.status !== 0) throw resultError(result);
    } catch (err) {
      const error = toDirectoryError(err, { operation: 'probe', url: conn.url });
      // A base search unanswered for the whole timeout: this connection (or its server) is hung. Lookups
      // would show it too, but in a quiet time only probes come, and each would wait on it again.
      if (error.code === ErrorCodes.DIRECTORY_TIMEOUT && !signal?.aborted) this.pool.discardHung(conn, deadline - this.timeoutMs);
      // Refused for what this connection is bound as: only a new bind tells whether that still holds.
      else if (error.code === ErrorCodes.DIRECTORY_AUTH) this.pool.discard(conn);
      throw error;
    } finally {
      this.pool.release(conn);
    }
  }

  async *listAll(options: { changedSince?: Date; signal?: AbortSignal } = {}): AsyncIterable<DirectoryRecord> {
    const { changedSince, signal } = options;
    if (this.closed) throw closedError();
    const filter = changedSince ? `(&${this.plan.listFilter}${this.plan.changedSinceClause(changedSince)})` : this.plan.listFilter;
    // A dedicated connection: paging cookies belong to one connection, and a long sync must not hold pooled slots.
    const conn = await this.pool.openDedicated(performance.now() + this.timeoutMs);
    this.listings.add(conn);
    let count = 0;
    try {
      const pages = pagedSearch(conn, {
        baseDN: this.config.baseDN,
        scope: this.config.scope,
        filter: parseFilter(filter),
        attributes: this.plan.attributes,
        pageSize: this.config.pageSize,
        pageTimeoutMs: this.timeoutMs,
        timeoutText: this.config.timeout,
        signal,
      });
      // A missing base must fail the sync (pagedSearch throws): an empty listing would make every address unknown.
      for await (const page of pages) {
        for (const raw of page) {
          const entry = raw as LdapEntry;
          const addresses = this.plan.addresses(entry);
          if (addresses.length === 0) continue;
          count++;
          yield { dn: entry.dn, canonical: this.plan.canonical(entry) ?? addresses[0]!, addresses };
        }
      }
      this.log.info({ entries: count, incremental: changedSince !== undefined }, 'LDAP listing complete');
    } finally {
      this.listings.delete(conn);
      await conn.unbind();
    }
  }

  binding(): BindingPlan {
    return this.pool.binding;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.scheduler.close();
    const listings = [...this.listings];
    this.listings.clear();
    await Promise.all([this.pool.close(), ...listings.map((c) => c.unbind())]);
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

  private record(outcome: Exclude<Outcome, 'overloaded'>, started: number): void {
    this.counted[outcome].inc();
    this.duration.observe((performance.now() - started) / 1000);
  }

  private overloaded(): DirectoryError {
    return new DirectoryError(
      ErrorCodes.DIRECTORY_OVERLOADED,
      `too many LDAP lookups waiting (maxInFlight ${this.config.maxInFlight}): refusing instead of queueing without bound`,
    );
  }
}

/** An answer whose filter text is built only when read (explanations): most answers never need it. */
class LdapAnswer implements DirectoryAnswer {
  constructor(
    readonly entry: DirectoryEntry | null,
    private readonly directory: LdapDirectory,
    private readonly address: string,
    readonly server: string,
  ) {}

  get filter(): string {
    return this.directory.filterFor(this.address);
  }
}
