import { AnswerCache } from './answer-cache.js';
import { foldLocal, parseAddress, stripSubaddress, normalizeDomain, type ParseResult } from './address.js';
import { domainRules } from '../config/load.js';
import { ms } from '../config/duration.js';
import type { Config, DomainRule } from '../config/schema.js';
import { DirectoryError, ErrorCodes } from '../errors.js';
import type { Directory, DirectoryAnswer } from '../directory/types.js';
import { expandFilter } from '../directory/filter.js';
import { searchPlan } from '../directory/presets.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { NO_OVERRIDES, type Overrides } from './overrides.js';
import { DirectoryHealth, type DirectoryState } from './health.js';
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
  /** Directory up/down state; passed on across config reloads so readiness carries over. */
  health?: DirectoryHealth;
  /** An answer cache to keep (a reload that cannot have changed its answers). */
  cache?: AnswerCache | null;
  /** Clock in ms (tests). */
  now?: () => number;
}

interface KeyAnswer {
  canonical: string | null;
  dn: string | null;
  source: Extract<Source, 'cache' | 'directory' | 'stale'>;
  /** The filter the directory was sent (directory answers only; rebuilt for the others). */
  filter: string | undefined;
  ttlMs: number;
}

/** A lookup past the static rules: the keys to try in the cache, then in the directory. */
class Pending {
  constructor(
    readonly input: string,
    /** Normalized address. */
    readonly address: string,
    readonly domain: string,
    readonly rule: EffectiveRule,
    /** The exact address, then the one without sub-address. */
    readonly candidates: readonly string[],
    readonly wantExplain: boolean,
  ) {}
}

/** RFC 5321 limits, as address.ts applies them. */
const MAX_LOCAL_OCTETS = 64;
const MAX_ADDRESS_OCTETS = 254;
/** A lowercase ASCII dot-atom (RFC 5322 atext): parseAddress() leaves such a local part as it is. */
const PLAIN_LOCAL = /^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*$/;

/**
 * parseAddress(), with a shortcut for the common case already in normal form: a lowercase ASCII
 * dot-atom local part at one of `plainDomains` (domains that normalize to themselves). Same
 * answer as parseAddress() for every input, without the full parse for those.
 */
export function parseServedAddress(input: string, plainDomains: ReadonlySet<string>): ParseResult {
  const at = input.lastIndexOf('@');
  if (at > 0 && input.length <= MAX_ADDRESS_OCTETS) {
    const domain = input.slice(at + 1);
    if (plainDomains.has(domain)) {
      const local = input.slice(0, at);
      if (local.length <= MAX_LOCAL_OCTETS && PLAIN_LOCAL.test(local)) return { ok: true, value: { local, domain, address: input } };
    }
  }
  return parseAddress(input);
}

const noop = (): void => undefined;

/** True when any of `keys` is in `set`. */
function anyIn(set: ReadonlySet<string>, keys: readonly string[]): boolean {
  for (let i = 0; i < keys.length; i++) if (set.has(keys[i]!)) return true;
  return false;
}

export type { DirectoryState };

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
  /** Served domains already in normal form (lowercase A-labels), for parseServedAddress(). */
  private readonly plainDomains = new Set<string>();
  /** Domains served when `domains` is empty and the directory is an LDIF file. */
  private readonly positiveTtl: number;
  private readonly negativeTtl: number;
  private readonly staleMs: number;
  private readonly backstopMs: number;
  private readonly cache: AnswerCache | null;
  private readonly inflight = new Map<string, Promise<DirectoryAnswer>>();
  /** LDAP lookup filter template, to show the filter of a cached answer in explanations. */
  private filterTemplate: string | null = null;
  private overrides: Overrides;
  private snapshot: SnapshotView | null;
  readonly health: DirectoryHealth;
  private readonly confirmMisses: boolean;
  /** `directory.canaries`, normalized: addresses that must always be found. */
  private readonly canaries: readonly string[];
  /** The canary check in flight and when it started (negative answers wait for one started after them). */
  private canaryCheck: { seq: number; done: Promise<void> } | null = null;
  private nextCanaryCheck: Promise<void> | null = null;

  constructor(deps: ValidatorDeps) {
    this.config = deps.config;
    this.directory = deps.directory;
    this.metrics = deps.metrics;
    this.logger = deps.logger;
    this.now = deps.now ?? Date.now;
    this.overrides = deps.overrides ?? NO_OVERRIDES;
    this.snapshot = deps.snapshot ?? null;
    this.health = deps.health ?? new DirectoryHealth({ metrics: deps.metrics, logger: deps.logger, now: this.now });
    this.confirmMisses = this.config.sync.confirmMisses;
    this.canaries = this.config.directory.canaries.map((c) => {
      const parsed = parseAddress(c);
      return parsed.ok ? parsed.value.address : c;
    });
    this.positiveTtl = ms(this.config.cache.positiveTtl);
    this.negativeTtl = ms(this.config.cache.negativeTtl);
    this.staleMs = ms(this.config.cache.staleIfError);
    this.backstopMs = ms(this.config.directory.ldap.timeout) + 500;
    this.rules = this.buildRules();
    for (const d of this.rules.keys()) if (normalizeDomain(d) === d) this.plainDomains.add(d);
    const max = this.config.cache.maxEntries;
    const kept = deps.cache;
    this.cache = kept && kept.max === max ? kept : max > 0 ? new AnswerCache(max, () => this.metrics.cacheEvent('evict')) : null;
    if (this.directory.kind === 'ldap' && this.config.directory.kind === 'ldap') {
      try {
        this.filterTemplate = searchPlan(this.config.directory.ldap).lookupFilter;
      } catch {
        // An unusable filter fails the directory itself; explanations then just omit it.
      }
    }
  }

  private buildRules(): Map<string, EffectiveRule> {
    const c = this.config;
    const rules = new Map<string, EffectiveRule>();
    const make = (r: DomainRule, catchAll: boolean): EffectiveRule => ({
      mode: r.mode ?? c.mode,
      onDirectoryError: r.onDirectoryError ?? c.onDirectoryError,
      catchAll: r.catchAll ?? catchAll,
      alwaysValid: new Set((r.alwaysValid ?? c.alwaysValid).map(foldLocal)),
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
    const started = performance.now();
    const step = this.step(address, options.explain === true);
    if (!(step instanceof Pending)) return this.finish(step, options, started);
    let result: LookupResult;
    try {
      result = await this.fromDirectory(step);
    } catch (err) {
      result = this.internalError(address, err);
    }
    return this.finish(result, options, started);
  }

  /**
   * The answer when it needs no directory request (static rules, snapshot, fresh cache), without
   * a promise; undefined when the caller must use lookup(). Front ends on the hot path use it.
   */
  lookupNow(address: string, options: LookupOptions): LookupResult | undefined {
    const started = performance.now();
    const step = this.step(address, options.explain === true);
    return step instanceof Pending ? undefined : this.finish(step, options, started);
  }

  /** A verdict reached without waiting, or what is left to ask the directory. Never throws. */
  private step(address: string, wantExplain: boolean): LookupResult | Pending {
    try {
      const step = this.decideStatic(address, wantExplain);
      return step instanceof Pending ? (this.fromCache(step) ?? step) : step;
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

  /** Cheap pre-check for stripSubaddress(): most local parts hold no delimiter at all. */
  private hasDelimiter(local: string): boolean {
    const delimiters = this.config.recipientDelimiter;
    for (let i = 0; i < delimiters.length; i++) if (local.includes(delimiters[i]!)) return true;
    return false;
  }

  /** Syntax, served domain, overrides, always-valid, catch-all and snapshot: all without I/O. */
  private decideStatic(input: string, wantExplain: boolean): LookupResult | Pending {
    const parsed = parseServedAddress(input, this.plainDomains);
    if (!parsed.ok) {
      const result: LookupResult = { address: input, verdict: 'invalid', source: 'static', ttlSeconds: 0, reason: parsed.reason };
      if (wantExplain) result.explain = { tried: [], rule: 'syntax', detail: parsed.reason };
      return result;
    }
    const { local, domain, address } = parsed.value;
    const rule = this.rules.get(domain);
    const staticTtl = Math.round(this.positiveTtl / 1000);
    if (!rule) {
      const result: LookupResult = { address: input, verdict: 'not_ours', source: 'static', ttlSeconds: staticTtl };
      if (wantExplain) result.explain = { normalized: address, tried: [], rule: 'not_served' };
      return result;
    }
    const base = this.hasDelimiter(local) ? stripSubaddress(local, this.config.recipientDelimiter) : null;
    const candidates = base === null ? [address] : [address, `${base}@${domain}`];
    const { deny, allow } = this.overrides;
    if (deny.size > 0 && anyIn(deny, candidates)) return this.staticResult(input, address, domain, rule, 'unknown', 'deny', wantExplain);
    if (allow.size > 0 && anyIn(allow, candidates)) return this.staticResult(input, address, domain, rule, 'valid', 'allow', wantExplain);
    if (rule.alwaysValid.has(local) || (base !== null && rule.alwaysValid.has(base))) return this.staticResult(input, address, domain, rule, 'valid', 'always_valid', wantExplain);
    if (rule.catchAll) return this.staticResult(input, address, domain, rule, 'valid', 'catch_all', wantExplain);

    const snap = this.snapshot;
    if (snap && snap.isFresh()) {
      for (let i = 0; i < candidates.length; i++) {
        const canonical = snap.get(candidates[i]!);
        if (canonical !== undefined) {
          const result: LookupResult = { address: input, verdict: 'valid', canonical, source: 'snapshot', ttlSeconds: staticTtl };
          if (wantExplain) result.explain = { normalized: address, tried: candidates.slice(0, i + 1), rule: 'snapshot' };
          return this.applyMode(input, domain, rule, result);
        }
      }
      // The address may have been added since the last sync: ask the directory (the answer is cached).
      if (this.confirmMisses) return new Pending(input, address, domain, rule, candidates, wantExplain);
      // A snapshot miss is negative knowledge: only trusted while the directory answers.
      if (!this.health.state.up) return this.directoryError(new Pending(input, address, domain, rule, candidates, wantExplain), [...candidates], 'snapshot miss while the directory is down');
      const result: LookupResult = { address: input, verdict: 'unknown', source: 'snapshot', ttlSeconds: Math.round(this.negativeTtl / 1000) };
      if (wantExplain) result.explain = { normalized: address, tried: [...candidates], rule: 'snapshot' };
      return this.applyMode(input, domain, rule, this.guardNegative(result));
    }
    return new Pending(input, address, domain, rule, candidates, wantExplain);
  }

  private staticResult(input: string, address: string, domain: string, rule: EffectiveRule, verdict: Verdict, r: Rule, wantExplain: boolean): LookupResult {
    const result: LookupResult = { address: input, verdict, source: 'static', ttlSeconds: Math.round(this.positiveTtl / 1000) };
    if (wantExplain) result.explain = { normalized: address, tried: [], rule: r };
    return this.applyMode(input, domain, rule, result);
  }

  /**
   * The answer when every key it needs is fresh in the cache, else undefined (nothing counted:
   * fromDirectory() then walks the same keys and counts them).
   */
  private fromCache(p: Pending): LookupResult | undefined {
    const cache = this.cache;
    if (cache === null) return undefined;
    const now = this.now();
    const { candidates } = p;
    let slot = -1;
    let canonical: string | null = null;
    let used = 0;
    while (used < candidates.length) {
      slot = this.cachedSlot(candidates[used]!, now);
      if (slot < 0 || now >= cache.freshUntil(slot)) return undefined;
      used++;
      canonical = cache.canonical(slot);
      if (canonical !== null) break;
    }
    for (let i = 0; i < used; i++) this.metrics.cacheEvent('hit');
    const dn = p.wantExplain ? cache.dn(slot) : null;
    const answer: KeyAnswer = { canonical, dn, source: 'cache', filter: undefined, ttlMs: cache.freshUntil(slot) - now };
    return this.directoryResult(p, answer, used === candidates.length ? candidates : candidates.slice(0, used));
  }

  /** The cache slot of `key` (-1 when absent), dropping an answer past its stale-if-error window. */
  private cachedSlot(key: string, now: number): number {
    const cache = this.cache!;
    const slot = cache.find(key);
    if (slot >= 0 && now >= cache.freshUntil(slot) + this.staleMs) {
      cache.delete(key);
      this.metrics.cacheEntries.set(cache.size);
      return -1;
    }
    return slot;
  }

  private async fromDirectory(p: Pending): Promise<LookupResult> {
    const tried: string[] = [];
    let last: KeyAnswer | null = null;
    try {
      for (const key of p.candidates) {
        tried.push(key);
        last = await this.resolve(key);
        if (last.canonical !== null) break;
      }
    } catch (err) {
      return this.directoryError(p, tried, err instanceof DirectoryError ? err.message : 'directory error');
    }
    return this.directoryResult(p, last!, tried);
  }

  /** The verdict when the directory cannot answer: `onDirectoryError` of the domain (tempfail by default). */
  private directoryError(p: Pending, tried: string[], detail: string): LookupResult {
    const verdict: Verdict = p.rule.onDirectoryError === 'accept' ? 'valid' : p.rule.onDirectoryError === 'reject' ? 'unknown' : 'tempfail';
    const result: LookupResult = { address: p.input, verdict, source: 'directory', ttlSeconds: 0, reason: 'directory unavailable' };
    if (p.wantExplain) result.explain = { normalized: p.address, tried, rule: 'directory_error', detail };
    return this.applyMode(p.input, p.domain, p.rule, result);
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
      const filter = answer.filter ?? this.filterFor(tried[tried.length - 1]!);
      result.explain = {
        normalized: p.address,
        tried: [...tried],
        rule: answer.source === 'directory' ? 'directory' : answer.source === 'stale' ? 'stale' : 'cache',
        cache: answer.source === 'directory' ? 'miss' : answer.source === 'stale' ? 'stale' : 'hit',
        ...(filter !== undefined ? { filter } : {}),
        ...(answer.dn !== null ? { dn: answer.dn } : {}),
      };
    }
    return this.applyMode(p.input, p.domain, p.rule, this.guardNegative(result));
  }

  /** The filter a lookup of `key` sends (LDAP only), for explaining a cached answer. */
  private filterFor(key: string): string | undefined {
    if (this.filterTemplate === null) return undefined;
    try {
      return expandFilter(this.filterTemplate, key);
    } catch {
      return undefined;
    }
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
  private async resolve(key: string): Promise<KeyAnswer> {
    const now = this.now();
    const cache = this.cache;
    const slot = cache === null ? -1 : this.cachedSlot(key, now);
    if (slot >= 0 && now < cache!.freshUntil(slot)) {
      this.metrics.cacheEvent('hit');
      return { canonical: cache!.canonical(slot), dn: cache!.dn(slot), source: 'cache', filter: undefined, ttlMs: cache!.freshUntil(slot) - now };
    }
    this.metrics.cacheEvent('miss');
    let answer: DirectoryAnswer;
    try {
      answer = await this.fetch(key);
    } catch (err) {
      const again = this.cache?.get(key);
      if (again && this.now() < again.freshUntil) {
        // Another request refreshed it meanwhile.
        return { canonical: again.canonical, dn: again.dn, source: 'cache', filter: undefined, ttlMs: again.freshUntil - this.now() };
      }
      // Positive knowledge may be served stale; negative knowledge may not.
      if (again && again.canonical !== null && this.now() < again.freshUntil + this.staleMs) {
        this.metrics.cacheEvent('stale');
        return { canonical: again.canonical, dn: again.dn, source: 'stale', filter: undefined, ttlMs: 0 };
      }
      throw err;
    }
    const entry = answer.entry;
    const ttl = entry ? this.positiveTtl : this.negativeTtl;
    if (this.cache && ttl > 0 && (entry !== null || !this.health.canaryMissing)) {
      this.cache.set(key, entry, this.now() + ttl);
      this.metrics.cacheEntries.set(this.cache.size);
    }
    return { canonical: entry ? entry.canonical : null, dn: entry ? entry.dn : null, source: 'directory', filter: answer.filter, ttlMs: ttl };
  }

  /**
   * Exactly one directory request per key at a time; concurrent askers share it. With canaries,
   * a "no such entry" counts only once a canary check sent after it found every canary.
   */
  private fetch(key: string): Promise<DirectoryAnswer> {
    const pending = this.inflight.get(key);
    if (pending) return pending;
    let p = this.request(key);
    if (this.canaries.length > 0) p = p.then((a) => (a.entry === null ? this.confirmNegative(++this.seq).then(() => a) : a));
    this.inflight.set(key, p);
    const done = (): void => {
      if (this.inflight.get(key) === p) this.inflight.delete(key);
    };
    p.then(done, done);
    return p;
  }

  /** Orders negative answers and canary checks: a check with a higher number was sent after. */
  private seq = 0;

  /**
   * Resolves once a canary check sent after negative answer number `arrival` is done. Negatives
   * arriving while a check runs share the one queued after it: at most two checks at a time.
   */
  private confirmNegative(arrival: number): Promise<void> {
    const current = this.canaryCheck;
    if (current === null) return this.startCanaryCheck();
    if (current.seq > arrival) return current.done;
    this.nextCanaryCheck ??= current.done
      .then(noop, noop)
      .then(() => {
        this.nextCanaryCheck = null;
        return this.startCanaryCheck();
      });
    return this.nextCanaryCheck;
  }

  private startCanaryCheck(): Promise<void> {
    const check = { seq: ++this.seq, done: this.checkCanaries() };
    this.canaryCheck = check;
    const clear = (): void => {
      if (this.canaryCheck === check) this.canaryCheck = null;
    };
    check.done.then(clear, clear);
    return check.done;
  }

  /**
   * Looks up every `directory.canaries` address (readiness probe, and before trusting a
   * negative answer). Throws DirectoryError when the directory fails.
   */
  async checkCanaries(): Promise<void> {
    if (this.canaries.length === 0) return;
    const answers = await Promise.all(this.canaries.map((c) => this.request(c)));
    const missing = this.canaries.filter((_, i) => answers[i]!.entry === null);
    const wasMissing = this.health.canaryMissing;
    this.health.canaries(missing);
    if (missing.length > 0 && !wasMissing && this.cache) {
      // Negatives cached just before were likely served by the same broken directory.
      this.cache.deleteNegatives();
      this.metrics.cacheEntries.set(this.cache.size);
    }
  }

  /**
   * One directory request. The directory bounds its own requests; the backstop timer guarantees
   * a front end never waits longer than the configured timeout plus a margin, whatever the
   * directory does. (One promise and one timer per request: this runs for every cache miss.)
   */
  private request(key: string): Promise<DirectoryAnswer> {
    return new Promise<DirectoryAnswer>((resolve, reject) => {
      let settled = false;
      const fail = (err: unknown): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        const e = err instanceof DirectoryError ? err : new DirectoryError(ErrorCodes.DIRECTORY_PROTOCOL, `directory failed: ${(err as Error)?.message ?? String(err)}`, { cause: err });
        this.health.failed(e);
        reject(e);
      };
      const timer = setTimeout(() => fail(new DirectoryError(ErrorCodes.DIRECTORY_TIMEOUT, `no directory answer within ${this.backstopMs} ms`)), this.backstopMs);
      let answer: Promise<DirectoryAnswer>;
      try {
        answer = this.directory.lookup(key);
      } catch (err) {
        fail(err);
        return;
      }
      answer.then((value) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.health.answered();
        resolve(value);
      }, fail);
    });
  }
}
