import { LRUCache } from 'lru-cache';
import { parseAddress, stripSubaddress, normalizeDomain } from './address.js';
import { domainRules } from './config/load.js';
import { ms } from './config/duration.js';
import type { Config, DomainRule } from './config/schema.js';
import { DirectoryError, ErrorCodes } from './errors.js';
import type { Directory, DirectoryAnswer, DirectoryEntry } from './directory/types.js';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';
import { NO_OVERRIDES, type Overrides } from './overrides.js';
import type { Explanation, LookupOptions, LookupResult, RecipientValidator, Rule, Source, Verdict } from './types.js';

/** A loaded snapshot as the engine sees it (see src/snapshot). */
export interface SnapshotView {
  /** Canonical address for a normalized address, or undefined. */
  get(address: string): string | undefined;
  /** False when older than `sync.maxAge`: then live lookups decide. */
  isFresh(): boolean;
}

export interface ValidatorDeps {
  config: Readonly<Config>;
  directory: Directory;
  metrics: Metrics;
  logger: Logger;
  overrides?: Overrides;
  snapshot?: SnapshotView | null;
  /** Clock in ms (tests). */
  now?: () => number;
}

interface CachedAnswer {
  entry: DirectoryEntry | null;
  filter: string | undefined;
  /** Answer may be served as fresh until then; afterwards only while the directory fails. */
  freshUntil: number;
}

interface KeyAnswer {
  entry: DirectoryEntry | null;
  source: Extract<Source, 'cache' | 'directory' | 'stale'>;
  filter: string | undefined;
  ttlMs: number;
}

export interface DirectoryState {
  up: boolean;
  /** The directory answered at least once since start. */
  answeredOnce: boolean;
  lastSuccessAt: number | null;
  lastError: string | null;
}

type EffectiveRule = Required<Pick<DomainRule, 'mode' | 'onDirectoryError'>> & { catchAll: boolean; alwaysValid: ReadonlySet<string> };

/**
 * The recipient engine: normalization → static rules → snapshot → cache → directory.
 * Every front end asks it; it never throws and never turns a directory failure into `unknown`.
 */
export class RecipientValidatorImpl implements RecipientValidator {
  private readonly config: Readonly<Config>;
  private readonly directory: Directory;
  private readonly metrics: Metrics;
  private readonly logger: Logger;
  private readonly now: () => number;
  private readonly rules: Map<string, EffectiveRule>;
  /** Domains served when `domains` is empty and the directory is an LDIF file. */
  private readonly positiveTtl: number;
  private readonly negativeTtl: number;
  private readonly staleMs: number;
  private readonly backstopMs: number;
  private readonly cache: LRUCache<string, CachedAnswer> | null;
  private readonly inflight = new Map<string, Promise<DirectoryAnswer>>();
  private overrides: Overrides;
  private snapshot: SnapshotView | null;
  readonly state: DirectoryState = { up: false, answeredOnce: false, lastSuccessAt: null, lastError: null };

  constructor(deps: ValidatorDeps) {
    this.config = deps.config;
    this.directory = deps.directory;
    this.metrics = deps.metrics;
    this.logger = deps.logger;
    this.now = deps.now ?? Date.now;
    this.overrides = deps.overrides ?? NO_OVERRIDES;
    this.snapshot = deps.snapshot ?? null;
    this.positiveTtl = ms(this.config.cache.positiveTtl);
    this.negativeTtl = ms(this.config.cache.negativeTtl);
    this.staleMs = ms(this.config.cache.staleIfError);
    this.backstopMs = ms(this.config.directory.ldap.timeout) + 500;
    this.rules = this.buildRules();
    const max = this.config.cache.maxEntries;
    this.cache =
      max > 0
        ? new LRUCache<string, CachedAnswer>({
            max,
            // Entries live past their freshness for the stale-if-error window.
            ttl: Math.max(this.positiveTtl, this.negativeTtl) + this.staleMs || 1,
            ttlAutopurge: false,
            updateAgeOnGet: false,
            perf: { now: () => this.now() },
            dispose: (_v, _k, reason) => {
              if (reason === 'evict') this.metrics.cacheEvents.inc({ event: 'evict' });
            },
          })
        : null;
  }

  private buildRules(): Map<string, EffectiveRule> {
    const c = this.config;
    const rules = new Map<string, EffectiveRule>();
    const make = (r: DomainRule, catchAll: boolean): EffectiveRule => ({
      mode: r.mode ?? c.mode,
      onDirectoryError: r.onDirectoryError ?? c.onDirectoryError,
      catchAll: r.catchAll ?? catchAll,
      alwaysValid: new Set((r.alwaysValid ?? c.alwaysValid).map((l) => l.toLowerCase())),
    });
    let served = domainRules(c);
    if (served.size === 0 && this.directory.knownDomains) {
      // LDIF with `domains: []`: every domain in the file is served.
      served = new Map(this.directory.knownDomains().map((d) => [d, {}]));
    }
    for (const [d, r] of served) rules.set(d, make(r, false));
    for (const d of c.catchAllDomains) {
      const n = normalizeDomain(d);
      if (n) rules.set(n, make(served.get(n) ?? {}, true));
    }
    return rules;
  }

  servedDomain(domain: string): string | null {
    const n = normalizeDomain(domain.startsWith('@') ? domain.slice(1) : domain);
    return n !== null && this.rules.has(n) ? n : null;
  }

  isServedDomain(domain: string): boolean {
    return this.servedDomain(domain) !== null;
  }

  servedDomains(): string[] {
    return [...this.rules.keys()].sort();
  }

  setOverrides(overrides: Overrides): void {
    this.overrides = overrides;
  }

  setSnapshot(snapshot: SnapshotView | null): void {
    this.snapshot = snapshot;
  }

  get cacheSize(): number {
    return this.cache?.size ?? 0;
  }

  flush(address?: string): number {
    if (!this.cache) return 0;
    if (address === undefined) {
      const n = this.cache.size;
      this.cache.clear();
      this.metrics.cacheEntries.set(0);
      return n;
    }
    const parsed = parseAddress(address);
    if (!parsed.ok) return 0;
    const removed = this.cache.delete(parsed.value.address) ? 1 : 0;
    this.metrics.cacheEntries.set(this.cache.size);
    return removed;
  }

  async lookup(address: string, options: LookupOptions): Promise<LookupResult> {
    const started = process.hrtime.bigint();
    let result: LookupResult;
    try {
      result = await this.decide(address, options.explain === true);
    } catch (err) {
      // Defensive: a bug must defer mail, never reject it.
      this.logger.error({ err, address }, 'lookup failed unexpectedly');
      result = { address, verdict: 'tempfail', source: 'directory', ttlSeconds: 0, reason: 'internal error' };
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    this.metrics.recordLookup(options.frontend, result.verdict, seconds);
    if (this.cache) this.metrics.cacheEntries.set(this.cache.size);
    if (this.logger.isLevelEnabled('debug')) {
      this.logger.debug({ frontend: options.frontend, address, verdict: result.verdict, source: result.source, ms: seconds * 1000 }, 'lookup');
    }
    if (!options.explain) delete result.explain;
    return result;
  }

  private async decide(input: string, wantExplain: boolean): Promise<LookupResult> {
    const parsed = parseAddress(input);
    if (!parsed.ok) {
      return { address: input, verdict: 'invalid', source: 'static', ttlSeconds: 0, reason: parsed.reason, explain: { tried: [], rule: 'syntax', detail: parsed.reason } };
    }
    const { local, domain, address } = parsed.value;
    const rule = this.rules.get(domain);
    const staticTtl = Math.round(this.positiveTtl / 1000);
    if (!rule) {
      return { address: input, verdict: 'not_ours', source: 'static', ttlSeconds: staticTtl, explain: { normalized: address, tried: [], rule: 'not_served' } };
    }
    const base = stripSubaddress(local, this.config.recipientDelimiter);
    const baseAddress = base === null ? null : `${base}@${domain}`;
    const candidates = baseAddress ? [address, baseAddress] : [address];
    const stat = (verdict: Verdict, r: Rule): LookupResult =>
      this.applyMode(input, domain, rule, { address: input, verdict, source: 'static', ttlSeconds: staticTtl, explain: { normalized: address, tried: [], rule: r } });

    if (candidates.some((a) => this.overrides.deny.has(a))) return stat('unknown', 'deny');
    if (candidates.some((a) => this.overrides.allow.has(a))) return stat('valid', 'allow');
    if (rule.alwaysValid.has(local) || (base !== null && rule.alwaysValid.has(base))) return stat('valid', 'always_valid');
    if (rule.catchAll) return stat('valid', 'catch_all');

    const snap = this.snapshot;
    if (snap && snap.isFresh()) {
      for (const key of candidates) {
        const canonical = snap.get(key);
        if (canonical !== undefined) {
          return this.applyMode(input, domain, rule, { address: input, verdict: 'valid', canonical, source: 'snapshot', ttlSeconds: staticTtl, explain: { normalized: address, tried: candidates.slice(0, candidates.indexOf(key) + 1), rule: 'snapshot' } });
        }
      }
      return this.applyMode(input, domain, rule, { address: input, verdict: 'unknown', source: 'snapshot', ttlSeconds: Math.round(this.negativeTtl / 1000), explain: { normalized: address, tried: candidates, rule: 'snapshot' } });
    }

    const tried: string[] = [];
    let last: KeyAnswer | null = null;
    try {
      for (const key of candidates) {
        tried.push(key);
        last = await this.resolve(key, wantExplain);
        if (last.entry) break;
      }
    } catch (err) {
      const reason = err instanceof DirectoryError ? err.message : 'directory error';
      const explain: Explanation = { normalized: address, tried, rule: 'directory_error', detail: reason };
      const verdict: Verdict = rule.onDirectoryError === 'accept' ? 'valid' : rule.onDirectoryError === 'reject' ? 'unknown' : 'tempfail';
      return this.applyMode(input, domain, rule, { address: input, verdict, source: 'directory', ttlSeconds: 0, reason: 'directory unavailable', explain });
    }
    const answer = last!;
    const explain: Explanation = {
      normalized: address,
      tried,
      rule: answer.source === 'directory' ? 'directory' : answer.source === 'stale' ? 'stale' : 'cache',
      cache: answer.source === 'directory' ? 'miss' : answer.source === 'stale' ? 'stale' : 'hit',
      ...(answer.filter !== undefined ? { filter: answer.filter } : {}),
      ...(answer.entry ? { dn: answer.entry.dn } : {}),
    };
    const result: LookupResult = answer.entry
      ? { address: input, verdict: 'valid', canonical: answer.entry.canonical, source: answer.source, ttlSeconds: Math.round(answer.ttlMs / 1000), explain }
      : { address: input, verdict: 'unknown', source: answer.source, ttlSeconds: Math.round(answer.ttlMs / 1000), explain };
    return this.applyMode(input, domain, rule, result);
  }

  /** Shadow mode: answer valid, keep what enforce mode would have said, log and count it. */
  private applyMode(input: string, domain: string, rule: EffectiveRule, result: LookupResult): LookupResult {
    if (rule.mode !== 'shadow') return result;
    const enforced = result.verdict;
    if (enforced === 'unknown' || enforced === 'tempfail') {
      this.metrics.shadowRejections.inc({ domain });
      this.logger.info({ address: input, domain, enforcedVerdict: enforced, source: result.source }, 'shadow mode: would have refused');
    }
    return { ...result, verdict: 'valid', shadow: true, enforcedVerdict: enforced };
  }

  /** One key through the cache and the directory, with stale-if-error and request coalescing. */
  private async resolve(key: string, _wantExplain: boolean): Promise<KeyAnswer> {
    const now = this.now();
    const cached = this.cache?.get(key);
    if (cached && now < cached.freshUntil) {
      this.metrics.cacheEvents.inc({ event: 'hit' });
      return { entry: cached.entry, source: 'cache', filter: cached.filter, ttlMs: cached.freshUntil - now };
    }
    this.metrics.cacheEvents.inc({ event: 'miss' });
    let answer: DirectoryAnswer;
    try {
      answer = await this.fetch(key);
    } catch (err) {
      const again = this.cache?.get(key);
      if (again && this.now() < again.freshUntil) {
        // Another request refreshed it meanwhile.
        return { entry: again.entry, source: 'cache', filter: again.filter, ttlMs: again.freshUntil - this.now() };
      }
      if (again && this.now() < again.freshUntil + this.staleMs) {
        this.metrics.cacheEvents.inc({ event: 'stale' });
        return { entry: again.entry, source: 'stale', filter: again.filter, ttlMs: 0 };
      }
      throw err;
    }
    const ttl = answer.entry ? this.positiveTtl : this.negativeTtl;
    if (this.cache && ttl > 0) {
      this.cache.set(key, { entry: answer.entry, filter: answer.filter, freshUntil: this.now() + ttl }, { ttl: ttl + this.staleMs });
    }
    return { entry: answer.entry, source: 'directory', filter: answer.filter, ttlMs: ttl };
  }

  /** Exactly one directory request per key at a time; concurrent askers share it. */
  private fetch(key: string): Promise<DirectoryAnswer> {
    const pending = this.inflight.get(key);
    if (pending) return pending;
    const p = this.request(key).finally(() => this.inflight.delete(key));
    this.inflight.set(key, p);
    return p;
  }

  private async request(key: string): Promise<DirectoryAnswer> {
    let timer: NodeJS.Timeout | undefined;
    try {
      // The directory bounds its own requests; this backstop guarantees a front end never waits
      // longer than the configured timeout plus a margin, whatever the directory does.
      const backstop = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new DirectoryError(ErrorCodes.DIRECTORY_TIMEOUT, `no directory answer within ${this.backstopMs} ms`)),
          this.backstopMs,
        );
      });
      const answer = await Promise.race([this.directory.lookup(key), backstop]);
      this.markUp();
      return answer;
    } catch (err) {
      const e = err instanceof DirectoryError ? err : new DirectoryError(ErrorCodes.DIRECTORY_PROTOCOL, `directory failed: ${(err as Error)?.message ?? String(err)}`, { cause: err });
      this.markDown(e);
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }

  markUp(): void {
    if (!this.state.up) this.logger.info({ directory: this.directory.kind }, 'directory is answering');
    this.state.up = true;
    this.state.answeredOnce = true;
    this.state.lastSuccessAt = this.now();
    this.state.lastError = null;
    this.metrics.directoryUp.set(1);
  }

  markDown(err: Error): void {
    if (this.state.up || this.state.lastError === null) this.logger.warn({ err: { message: err.message, code: (err as DirectoryError).code } }, 'directory is failing');
    this.state.up = false;
    this.state.lastError = err.message;
    this.metrics.directoryUp.set(0);
  }
}
