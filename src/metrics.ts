import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics, type LabelValues } from 'prom-client';
import type { Frontend, Verdict } from './recipient/types.js';

/** A counter series as prom-client stores it in `hashMap` (prom-client 15). */
interface CounterSeries {
  value: number;
}

/** A histogram series as prom-client stores it in `hashMap` (prom-client 15). */
interface HistogramSeries {
  labels: LabelValues<string>;
  bucketValues: Record<number, number>;
  sum: number;
  count: number;
}

type SeriesMap<S> = Record<string, S | undefined>;
const seriesMap = <S>(metric: object): SeriesMap<S> => (metric as { hashMap: SeriesMap<S> }).hashMap;

/**
 * One labelled counter series for the hot path. prom-client hashes and validates the labels on
 * every `inc(labels)` (about a third of a cached lookup's cost); this resolves the series once
 * and then adds to it directly. A registry reset (new `hashMap`) is noticed and resolved again.
 */
class CounterCell {
  private hash = '';
  private series: CounterSeries | undefined;
  constructor(
    private readonly counter: Counter<string>,
    private readonly labels: LabelValues<string>,
  ) {}

  inc(): void {
    const series = this.series;
    if (series !== undefined && seriesMap<CounterSeries>(this.counter)[this.hash] === series) {
      series.value += 1;
      return;
    }
    // First use (or after a reset): the ordinary path creates the series and tells its key.
    const { labelHash } = this.counter.inc(this.labels, 1) as unknown as { labelHash: string };
    this.hash = labelHash;
    this.series = seriesMap<CounterSeries>(this.counter)[labelHash];
  }
}

/** One labelled histogram series for the hot path; see CounterCell. */
class HistogramCell {
  private series: HistogramSeries | undefined;
  private map: SeriesMap<HistogramSeries> | undefined;
  private readonly bounds: readonly number[];
  /** prom-client keys buckets by bound; as strings once, not a number-to-string per observation. */
  private readonly keys: readonly string[];
  constructor(
    private readonly histogram: Histogram<string>,
    private readonly labels: LabelValues<string>,
  ) {
    this.bounds = (histogram as unknown as { upperBounds: readonly number[] }).upperBounds;
    this.keys = this.bounds.map(String);
  }

  observe(value: number): void {
    const series = this.series;
    if (series !== undefined && seriesMap(this.histogram) === this.map && Number.isFinite(value)) {
      series.sum += value;
      series.count += 1;
      const bounds = this.bounds;
      for (let i = 0; i < bounds.length; i++) {
        const bound = bounds[i]!;
        if (value <= bound) {
          (series.bucketValues as Record<string, number>)[this.keys[i]!]! += 1;
          break;
        }
      }
      return;
    }
    this.histogram.observe(this.labels, value);
    this.map = seriesMap<HistogramSeries>(this.histogram);
    this.series = Object.values(this.map).find((s) => s !== undefined && sameLabels(s.labels, this.labels));
  }
}

function sameLabels(a: LabelValues<string>, b: LabelValues<string>): boolean {
  const keys = Object.keys(b);
  return Object.keys(a).length === keys.length && keys.every((k) => String(a[k]) === String(b[k]));
}

/**
 * Every metric rcptgate exports, in a private registry (never prom-client's global one),
 * so tests and several instances in one process do not collide.
 */
export class Metrics {
  readonly registry = new Registry();

  readonly lookups = new Counter<'frontend' | 'verdict'>({
    name: 'rcptgate_lookups_total',
    help: 'Recipient lookups answered, by front end and verdict.',
    labelNames: ['frontend', 'verdict'],
    registers: [this.registry],
  });
  readonly lookupDuration = new Histogram<'frontend'>({
    name: 'rcptgate_lookup_duration_seconds',
    help: 'Time to answer one lookup, by front end.',
    labelNames: ['frontend'],
    buckets: [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });
  readonly cacheEvents = new Counter<'event'>({
    name: 'rcptgate_cache_events_total',
    help: 'Cache events: hit, miss, stale (expired answer served while the directory fails), evict.',
    labelNames: ['event'],
    registers: [this.registry],
  });
  /** The live engine's cache size; the engine sets it, and it is read at scrape time only. */
  cacheSize: () => number = () => 0;
  readonly cacheEntries: Gauge = new Gauge({
    name: 'rcptgate_cache_entries',
    help: 'Answers held in the cache.',
    registers: [this.registry],
    // Read when scraped: a set() per cached answer cost a few per cent of a cold lookup.
    collect: (): void => this.cacheEntries.set(this.cacheSize()),
  });
  readonly directoryRequests = new Counter<'outcome'>({
    name: 'rcptgate_directory_requests_total',
    help: 'Directory requests by outcome: found, not_found, error, timeout, overloaded, partial (nothing found beside a continuation reference, or a server limit refused that address).',
    labelNames: ['outcome'],
    registers: [this.registry],
  });
  readonly directorySearches = new Counter<'kind'>({
    name: 'rcptgate_directory_searches_total',
    help: 'LDAP searches sent for lookups: single (one address) or batch (one OR filter for several).',
    labelNames: ['kind'],
    registers: [this.registry],
  });
  readonly directoryDuration = new Histogram({
    name: 'rcptgate_directory_request_duration_seconds',
    help: 'Time of one directory request.',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });
  readonly directoryUp = new Gauge({
    name: 'rcptgate_directory_up',
    help: '1 when the last directory request or probe succeeded, 0 otherwise.',
    registers: [this.registry],
  });
  readonly directoryAuthRefused = new Counter<'server'>({
    name: 'rcptgate_directory_auth_refused_total',
    help: 'Times a directory server refused the service account (wrong password; a locked, expired or missing account), by the server\'s position in directory.ldap.urls (1 = first).',
    labelNames: ['server'],
    registers: [this.registry],
  });
  readonly snapshotEntries = new Gauge({
    name: 'rcptgate_snapshot_entries',
    help: 'Addresses in the loaded snapshot (0 without snapshot).',
    registers: [this.registry],
  });
  readonly snapshotAge = new Gauge({
    name: 'rcptgate_snapshot_age_seconds',
    help: 'Age of the loaded snapshot (0 without snapshot).',
    registers: [this.registry],
  });
  readonly syncDuration = new Histogram<'kind'>({
    name: 'rcptgate_sync_duration_seconds',
    help: 'Duration of directory syncs, by kind (full, incremental).',
    labelNames: ['kind'],
    buckets: [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600],
    registers: [this.registry],
  });
  readonly syncFailures = new Counter<'kind'>({
    name: 'rcptgate_sync_failures_total',
    help: 'Failed directory syncs, by kind (full, incremental).',
    labelNames: ['kind'],
    registers: [this.registry],
  });
  readonly syncRefused = new Counter<'reason'>({
    name: 'rcptgate_sync_refused_total',
    help: 'Full syncs whose listing was refused and not published, by reason: empty, shrink, canary.',
    labelNames: ['reason'],
    registers: [this.registry],
  });
  readonly connections = new Gauge<'frontend'>({
    name: 'rcptgate_connections',
    help: 'Open client connections, by front end.',
    labelNames: ['frontend'],
    registers: [this.registry],
  });
  readonly connectionsRejected = new Counter<'frontend'>({
    name: 'rcptgate_connections_rejected_total',
    help: 'Connections refused at accept: the listener or the client address was at its connection limit.',
    labelNames: ['frontend'],
    registers: [this.registry],
  });
  readonly protocolErrors = new Counter<'frontend'>({
    name: 'rcptgate_protocol_errors_total',
    help: 'Malformed requests, by front end.',
    labelNames: ['frontend'],
    registers: [this.registry],
  });
  readonly shadowRejections = new Counter<'domain'>({
    name: 'rcptgate_shadow_rejections_total',
    help: 'Lookups answered valid in shadow mode that enforce mode would have rejected or deferred.',
    labelNames: ['domain'],
    registers: [this.registry],
  });
  readonly harvestBlocked = new Counter<'frontend'>({
    name: 'rcptgate_harvest_blocked_total',
    help: 'Recipients refused by directory-harvest protection.',
    labelNames: ['frontend'],
    registers: [this.registry],
  });
  readonly harvestDelayed = new Counter<'frontend'>({
    name: 'rcptgate_harvest_delayed_total',
    help: 'Answers held back by the harvest tarpit (the client is flagged), by front end.',
    labelNames: ['frontend'],
    registers: [this.registry],
  });
  readonly connectionsClosed = new Counter<'frontend' | 'reason'>({
    name: 'rcptgate_connections_closed_total',
    help: 'Connections we closed on our own, by reason: idle, request_timeout (a request did not arrive whole in time), pipeline (an HTTP client more than server.maxPipeline requests ahead), write_timeout (replies unread for server.requestTimeout), write_stalled (too many connections of the listener with replies unread).',
    labelNames: ['frontend', 'reason'],
    registers: [this.registry],
  });
  readonly logSuppressed = new Counter<'event'>({
    name: 'rcptgate_log_suppressed_total',
    help: 'Warning log lines left out by rate limiting, by event.',
    labelNames: ['event'],
    registers: [this.registry],
  });
  readonly configReloads = new Counter<'outcome'>({
    name: 'rcptgate_config_reloads_total',
    help: 'Configuration reloads (SIGHUP), by outcome: success, failure.',
    labelNames: ['outcome'],
    registers: [this.registry],
  });

  constructor(options: { defaultMetrics?: boolean } = {}) {
    if (options.defaultMetrics ?? true) {
      collectDefaultMetrics({ register: this.registry });
      // prom-client 15 names these gauges *_total, which promtool rejects.
      for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
        this.registry.removeSingleMetric(name);
      }
    }
    this.directoryUp.set(0);
    this.snapshotEntries.set(0);
    this.snapshotAge.set(0);
  }

  private rendering: Promise<string> | null = null;

  /**
   * The exposition text for a scrape. Scrapes that arrive while one is being rendered share it:
   * a render costs about a millisecond of the one event loop every front end shares, so a client
   * pipelining GET /metrics on many connections held MTAs' lookups for seconds (the lookup port
   * serves /metrics to anyone who reaches it). A shared render began before the scrape arrived.
   */
  render(): Promise<string> {
    this.rendering ??= this.registry.metrics().finally(() => (this.rendering = null));
    return this.rendering;
  }

  private readonly lookupCells = new Map<Frontend, Map<Verdict, CounterCell>>();
  private readonly durationCells = new Map<string, HistogramCell>();
  private readonly cacheCells = new Map<string, CounterCell>();

  /** Counts one answered lookup and its duration (hot path: every request calls it). */
  recordLookup(frontend: Frontend, verdict: Verdict, seconds: number): void {
    let byVerdict = this.lookupCells.get(frontend);
    if (byVerdict === undefined) this.lookupCells.set(frontend, (byVerdict = new Map()));
    let count = byVerdict.get(verdict);
    if (count === undefined) byVerdict.set(verdict, (count = new CounterCell(this.lookups, { frontend, verdict })));
    count.inc();
    let duration = this.durationCells.get(frontend);
    if (duration === undefined) this.durationCells.set(frontend, (duration = new HistogramCell(this.lookupDuration, { frontend })));
    duration.observe(seconds);
  }

  /** A hot-path handle on one series of `counter` (label hashing done once, not per increment). */
  counterCell<L extends string>(counter: Counter<L>, labels: LabelValues<L>): { inc(): void } {
    return new CounterCell(counter as Counter<string>, labels);
  }

  /** A hot-path handle on one series of `histogram`; see counterCell(). */
  histogramCell<L extends string>(histogram: Histogram<L>, labels: LabelValues<L>): { observe(value: number): void } {
    return new HistogramCell(histogram as Histogram<string>, labels);
  }

  /** Counts one cache event (`rcptgate_cache_events_total{event}`), on the hot path. */
  cacheEvent(event: 'hit' | 'miss' | 'stale' | 'evict'): void {
    let cell = this.cacheCells.get(event);
    if (cell === undefined) this.cacheCells.set(event, (cell = new CounterCell(this.cacheEvents, { event })));
    cell.inc();
  }
}
