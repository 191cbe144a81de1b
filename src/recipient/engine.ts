import { ms } from '../config/duration.js';
import type { Config } from '../config/schema.js';
import { DirectoryError } from '../errors.js';
import type { Directory } from '../directory/types.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { SnapshotView } from '../snapshot/view.js';
import { AnswerCache } from './answer-cache.js';
import { canaryKeys, parseAddress } from './address.js';
import { steadyNow } from './clock.js';
import { DirectoryHealth, type DirectoryState } from './health.js';
import type { Overrides } from './overrides.js';
import { Resolver, settled, type KeyAnswer } from './resolver.js';
import { Pending, StaticRules } from './rules.js';
import { forgetListedOut } from './superseded.js';
import type { LookupOptions, LookupResult, RecipientValidator, Verdict } from './types.js';

export type { DirectoryState, SnapshotView };
export { parseServedAddress } from './rules.js';

export interface ValidatorDeps {
  config: Readonly<Config>;
  directory: Directory;
  metrics: Metrics;
  logger: Logger;
  overrides?: Overrides;
  snapshot?: SnapshotView | null;
  /** Directory up/down state; passed on across config reloads so readiness carries over. */
  health?: DirectoryHealth;
  /** An answer cache to keep (a reload that cannot have changed its answers). */
  cache?: AnswerCache | null;
  /** Clock in ms (tests; default steadyNow: answer lifetimes are real time). */
  now?: () => number;
}

/**
 * The recipient engine, one pass per lookup: static rules → snapshot → cache → directory.
 * Every front end asks it; it never throws and never turns a directory failure into `unknown`.
 */
export class RecipientValidatorImpl implements RecipientValidator {
  private readonly directory: Directory;
  private readonly metrics: Metrics;
  private readonly logger: Logger;
  private readonly now: () => number;
  private readonly rules: StaticRules;
  private readonly negativeTtl: number;
  private readonly cache: AnswerCache | null;
  private readonly resolver: Resolver;
  private readonly confirmMisses: boolean;
  private snapshot: SnapshotView | null;
  readonly health: DirectoryHealth;
  /** lookupNow()'s unfinished step, for the lookup() that follows it in the same tick. */
  private handoff: { pending: Pending; started: number } | null = null;

  constructor(deps: ValidatorDeps) {
    const config = deps.config;
    this.directory = deps.directory;
    this.metrics = deps.metrics;
    this.logger = deps.logger;
    this.now = deps.now ?? steadyNow;
    this.snapshot = deps.snapshot ?? null;
    this.health = deps.health ?? new DirectoryHealth({ metrics: deps.metrics, logger: deps.logger, now: this.now });
    this.confirmMisses = config.sync.confirmMisses;
    const positiveTtl = ms(config.cache.positiveTtl);
    this.negativeTtl = ms(config.cache.negativeTtl);
    this.rules = new StaticRules(deps, positiveTtl);
    const max = config.cache.maxEntries;
    const kept = deps.cache;
    this.cache = kept && kept.max === max ? kept : max > 0 ? new AnswerCache(max, () => this.metrics.cacheEvent('evict')) : null;
    if (this.cache) this.cache.shortestPositiveTtlMs = Math.min(this.cache.shortestPositiveTtlMs, positiveTtl);
    // The newest engine is the live one (a reload installs the engine it has just built).
    deps.metrics.cacheSize = () => this.cache?.size ?? 0;
    this.resolver = new Resolver({
      directory: deps.directory,
      cache: this.cache,
      health: this.health,
      metrics: deps.metrics,
      now: this.now,
      positiveTtlMs: positiveTtl,
      negativeTtlMs: this.negativeTtl,
      staleMs: ms(config.cache.staleIfError),
      backstopMs: ms(config.directory.ldap.timeout) + 500,
      canaries: canaryKeys(config.directory.canaries),
    });
  }

  servedDomain = (domain: string): string | null => this.rules.servedDomain(domain);

  isServedDomain(domain: string): boolean {
    return this.rules.servedDomain(domain) !== null;
  }

  isShadowDomain(domain: string): boolean {
    return this.rules.isShadowDomain(domain);
  }

  servedDomains(): string[] {
    return this.rules.servedDomains();
  }

  setOverrides(overrides: Overrides): void {
    this.rules.overrides = overrides;
  }

  setSnapshot(snapshot: SnapshotView | null): void {
    this.snapshot = snapshot;
  }

  get state(): DirectoryState {
    return this.health.state;
  }

  /** The cache, to hand on to the engine a config reload builds. */
  get answerCache(): AnswerCache | null {
    return this.cache;
  }

  get cacheSize(): number {
    return this.cache?.size ?? 0;
  }

  /** Looks up `directory.canaries` (readiness probe). Throws DirectoryError when the directory fails. */
  checkCanaries(): Promise<void> {
    return this.resolver.checkCanaries();
  }

  flush(address?: string): number {
    if (!this.cache) return 0;
    if (address === undefined) {
      const n = this.cache.size;
      this.cache.clear();
      return n;
    }
    const parsed = parseAddress(address);
    return parsed.ok && this.cache.delete(parsed.value.address) ? 1 : 0;
  }

  async lookup(address: string, options: LookupOptions): Promise<LookupResult> {
    const wantExplain = options.explain === true;
    const handed = this.handoff;
    this.handoff = null;
    // A miss lookupNow() just ruled is not parsed, ruled and probed again.
    const reuse = handed !== null && handed.pending.input === address && handed.pending.wantExplain === wantExplain;
    const started = reuse ? handed.started : performance.now();
    const step = reuse ? handed.pending : this.step(address, wantExplain);
    if (!(step instanceof Pending)) return this.finish(step, options, started);
    let result: LookupResult;
    try {
      result = await this.fromDirectory(step, started);
    } catch (err) {
      result = this.internalError(address, err);
    }
    return this.finish(result, options, started);
  }

  /**
   * The answer when it needs no directory request (static rules, snapshot, fresh cache), without
   * a promise; undefined when the caller must use lookup(), which then continues this step.
   */
  lookupNow(address: string, options: LookupOptions): LookupResult | undefined {
    const started = performance.now();
    const step = this.step(address, options.explain === true);
    if (!(step instanceof Pending)) return this.finish(step, options, started);
    if (this.handoff === null) queueMicrotask(() => (this.handoff = null));
    this.handoff = { pending: step, started };
    return undefined;
  }

  /** A verdict reached without waiting, or what is left to ask the directory. Never throws. */
  private step(address: string, wantExplain: boolean): LookupResult | Pending {
    try {
      const p = this.rules.decide(address, wantExplain);
      if (!(p instanceof Pending)) return p;
      return this.fromSnapshot(p) ?? this.fromCache(p) ?? p;
    } catch (err) {
      return this.internalError(address, err);
    }
  }

  private internalError(address: string, err: unknown): LookupResult {
    // Defensive: a bug must defer mail, never reject it.
    this.logger.error({ err, address }, 'lookup failed unexpectedly');
    return { address, verdict: 'tempfail', source: 'directory', ttlSeconds: 0, reason: 'internal error' };
  }

  private finish(result: LookupResult, options: LookupOptions, started: number): LookupResult {
    const seconds = (performance.now() - started) / 1000;
    this.metrics.recordLookup(options.frontend, result.verdict, seconds);
    if (this.logger.isLevelEnabled('debug')) {
      this.logger.debug({ frontend: options.frontend, address: result.address, verdict: result.verdict, source: result.source, ms: seconds * 1000 }, 'lookup');
    }
    if (!options.explain && result.explain !== undefined) delete result.explain;
    return result;
  }

  /** A hit of a fresh snapshot; a miss only when misses are not confirmed live. */
  private fromSnapshot(p: Pending): LookupResult | undefined {
    const snap = this.snapshot;
    if (snap === null || !snap.isFresh()) return undefined;
    const { candidates } = p;
    for (let i = 0; i < candidates.length; i++) {
      const canonical = snap.get(candidates[i]!);
      if (canonical !== undefined) {
        const result: LookupResult = { address: p.input, verdict: 'valid', canonical, source: 'snapshot', ttlSeconds: this.rules.positiveTtlSeconds };
        if (p.wantExplain) result.explain = { normalized: p.address, tried: candidates.slice(0, i + 1), rule: 'snapshot' };
        return this.rules.applyMode(p, result);
      }
    }
    // Added since the last sync? Ask the directory (the answer is cached), unless cached since (superseded.ts).
    if (this.confirmMisses) return forgetListedOut(this.cache, candidates, snap);
    // A snapshot miss is negative knowledge: only trusted while the directory answers.
    if (!this.health.state.up) return this.directoryError(p, [...candidates], 'snapshot miss while the directory is down');
    const result: LookupResult = { address: p.input, verdict: 'unknown', source: 'snapshot', ttlSeconds: Math.round(this.negativeTtl / 1000) };
    if (p.wantExplain) result.explain = { normalized: p.address, tried: [...candidates], rule: 'snapshot' };
    return this.rules.applyMode(p, this.guardNegative(result));
  }

  /**
   * The answer when every key it needs is fresh in the cache, else undefined, with the keys the
   * cache did answer recorded in `p.cachedMisses` for fromDirectory() to skip.
   */
  private fromCache(p: Pending): LookupResult | undefined {
    const cache = this.cache;
    if (cache === null) return undefined;
    const now = this.now();
    const { candidates } = p;
    let slot = -1;
    let used = 0;
    while (used < candidates.length) {
      slot = this.resolver.slot(candidates[used]!, now);
      if (slot < 0 || now >= cache.freshUntil(slot)) {
        p.cachedMisses = used;
        return undefined;
      }
      used++;
      if (cache.canonical(slot) !== null) break;
    }
    for (let i = 0; i < used; i++) this.metrics.cacheEvent('hit');
    return this.directoryResult(p, this.resolver.cached(slot, now, p.wantExplain), used === candidates.length ? candidates : candidates.slice(0, used));
  }

  /** `since`: when the lookup began (performance.now()); one timeout bounds all its keys. */
  private async fromDirectory(p: Pending, since: number): Promise<LookupResult> {
    const { candidates } = p;
    const tried = candidates.slice(0, p.cachedMisses);
    for (let i = 0; i < p.cachedMisses; i++) this.metrics.cacheEvent('hit');
    let last: KeyAnswer | null = null, first: KeyAnswer | null = null;
    try {
      for (let i = p.cachedMisses; i < candidates.length; i++) {
        tried.push(candidates[i]!);
        last = await this.resolver.resolve(candidates[i]!, i === p.cachedMisses, first === null ? undefined : since); // the cache step found no fresh answer for the first key left
        first ??= last;
        if (last.canonical !== null) break;
      }
    } catch (err) {
      const known = this.resolver.knownValid(candidates, tried.length);
      return known ? this.directoryResult(p, known.answer, candidates.slice(0, known.index + 1)) : this.directoryError(p, tried, err instanceof DirectoryError ? err.message : 'directory error');
    }
    return this.directoryResult(p, settled(first!, last!), tried);
  }

  /** The verdict when the directory cannot answer: `onDirectoryError` of the domain (tempfail by default). */
  private directoryError(p: Pending, tried: string[], detail: string): LookupResult {
    const verdict: Verdict = p.rule.onDirectoryError === 'accept' ? 'valid' : p.rule.onDirectoryError === 'reject' ? 'unknown' : 'tempfail';
    const result: LookupResult = { address: p.input, verdict, source: 'directory', ttlSeconds: 0, reason: 'directory unavailable' };
    if (p.wantExplain) result.explain = { normalized: p.address, tried, rule: 'directory_error', detail };
    return this.rules.applyMode(p, result);
  }

  /**
   * While a canary address is missing the directory may be hiding entries (lost read rights):
   * a negative answer from it, cached or fresh, is not knowledge. Defer instead.
   */
  private guardNegative(result: LookupResult): LookupResult {
    if (result.verdict !== 'unknown' || !this.health.canaryMissing) return result;
    result.verdict = 'tempfail';
    result.ttlSeconds = 0;
    result.reason = 'directory unavailable';
    if (result.explain) result.explain.detail = `canary address not found: ${this.health.state.missingCanaries.join(', ')}`;
    return result;
  }

  private directoryResult(p: Pending, answer: KeyAnswer, tried: readonly string[]): LookupResult {
    const ttlSeconds = Math.round(answer.ttlMs / 1000);
    const result: LookupResult =
      answer.canonical !== null
        ? { address: p.input, verdict: 'valid', canonical: answer.canonical, source: answer.source, ttlSeconds }
        : { address: p.input, verdict: 'unknown', source: answer.source, ttlSeconds };
    if (p.wantExplain) {
      // A cached answer's filter: the one the directory would send for that key.
      const filter = answer.answer?.filter ?? this.directory.filterFor?.(tried[tried.length - 1]!);
      result.explain = {
        normalized: p.address,
        tried: [...tried],
        rule: answer.source === 'directory' ? 'directory' : answer.source === 'stale' ? 'stale' : 'cache',
        cache: answer.source === 'directory' ? 'miss' : answer.source === 'stale' ? 'stale' : 'hit',
        ...(filter !== undefined ? { filter } : {}),
        ...(answer.dn !== null ? { dn: answer.dn } : {}),
      };
    }
    return this.rules.applyMode(p, this.guardNegative(result));
  }
}
