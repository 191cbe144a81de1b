import { deadlineRace } from '../directory/connection.js';
import type { Directory, DirectoryAnswer } from '../directory/types.js';
import { DirectoryError, ErrorCodes, isPartialAnswer } from '../errors.js';
import type { Metrics } from '../metrics.js';
import { withUnicodeDomain } from './address.js';
import type { AnswerCache } from './answer-cache.js';
import type { DirectoryHealth } from './health.js';
import type { Source } from './types.js';

/** One key's answer, wherever it came from. */
export interface KeyAnswer {
  canonical: string | null;
  dn: string | null;
  source: Extract<Source, 'cache' | 'directory' | 'stale'>;
  /** The directory's own answer (directory answers only); its filter is read only to explain. */
  answer: DirectoryAnswer | undefined;
  ttlMs: number;
}

/**
 * The answer of a lookup from the answers of its keys, `first` to `last`: the last one, except that
 * an unknown the directory was asked for stays the directory's answer when later keys (the base,
 * `@domain`) came from the cache, and holds only while all of them do.
 */
export function settled(first: KeyAnswer, last: KeyAnswer): KeyAnswer {
  if (last === first || last.canonical !== null || first.source !== 'directory') return last;
  return { ...first, ttlMs: Math.min(first.ttlMs, last.ttlMs) };
}

export interface ResolverDeps {
  directory: Directory;
  cache: AnswerCache | null;
  health: DirectoryHealth;
  metrics: Metrics;
  now: () => number;
  positiveTtlMs: number;
  negativeTtlMs: number;
  staleMs: number;
  /** The engine-side bound on one directory request. */
  backstopMs: number;
  /** `directory.canaries`, normalized. */
  canaries: readonly string[];
}

const noop = (): void => undefined;

/**
 * One key through the cache and the directory: request coalescing, the backstop deadline,
 * stale-if-error for positive answers only, and canary checks before a negative answer counts.
 */
export class Resolver {
  private readonly inflight = new Map<string, Promise<DirectoryAnswer>>();
  /** Orders negative answers and canary checks: a check with a higher number was sent after. */
  private seq = 0;
  private canaryCheck: { seq: number; done: Promise<Vouched> } | null = null;
  private nextCanaryCheck: Promise<Vouched> | null = null;
  /** Directory requests not yet answered, oldest (= earliest backstop) first. */
  private readonly outstanding = new Set<Outstanding>();
  private backstop: NodeJS.Timeout | null = null;

  constructor(private readonly deps: ResolverDeps) {}

  /** The cache slot of `key` (-1 when absent), dropping an answer past its stale-if-error window. */
  slot(key: string, now: number): number {
    const cache = this.deps.cache;
    if (cache === null) return -1;
    const slot = cache.find(key);
    if (slot >= 0 && now >= cache.freshUntil(slot) + this.deps.staleMs) {
      cache.delete(key);
      return -1;
    }
    return slot;
  }

  /** A fresh cached answer of `slot`. */
  cached(slot: number, now: number, withDn: boolean): KeyAnswer {
    const cache = this.deps.cache!;
    return { canonical: cache.canonical(slot), dn: withDn ? cache.dn(slot) : null, source: 'cache', answer: undefined, ttlMs: cache.freshUntil(slot) - now };
  }

  /**
   * The first of `keys[from…]` the cache knows valid, fresh or within stale-if-error, with its index;
   * null when none is. When the directory cannot answer a key, a later key known valid still makes
   * the address valid (a sub-address of a known user, an address under a catch-all entry).
   */
  knownValid(keys: readonly string[], from: number): { answer: KeyAnswer; index: number } | null {
    const cache = this.deps.cache;
    if (cache === null) return null;
    const now = this.deps.now();
    for (let index = from; index < keys.length; index++) {
      const slot = this.slot(keys[index]!, now);
      if (slot < 0 || cache.canonical(slot) === null) continue;
      const fresh = now < cache.freshUntil(slot);
      this.deps.metrics.cacheEvent(fresh ? 'hit' : 'stale');
      const answer = this.cached(slot, now, true);
      return { answer: fresh ? answer : { ...answer, source: 'stale', ttlMs: 0 }, index };
    }
    return null;
  }

  /**
   * The answer for `key`. `knownMiss`: the caller just found no fresh cached answer for it, so the
   * cache is not asked again before the directory. `since`: when the lookup asked its first key.
   */
  async resolve(key: string, knownMiss: boolean, since?: number): Promise<KeyAnswer> {
    const { cache, metrics } = this.deps;
    if (!knownMiss && cache !== null) {
      const now = this.deps.now();
      const slot = this.slot(key, now);
      if (slot >= 0 && now < cache.freshUntil(slot)) {
        metrics.cacheEvent('hit');
        return this.cached(slot, now, true);
      }
    }
    metrics.cacheEvent('miss');
    let answer: DirectoryAnswer;
    try {
      answer = await this.bounded(this.fetch(key), since);
    } catch (err) {
      return this.afterError(key, err);
    }
    const entry = answer.entry;
    const ttl = entry ? this.deps.positiveTtlMs : this.deps.negativeTtlMs;
    // While a canary is missing a "no such entry" is no knowledge: never keep it.
    if (cache && ttl > 0 && (entry !== null || !this.deps.health.canaryMissing)) {
      cache.set(key, entry, this.deps.now() + ttl);
    }
    return { canonical: entry ? entry.canonical : null, dn: entry ? entry.dn : null, source: 'directory', answer, ttlMs: ttl };
  }

  /** `answer`, unless the lookup's one timeout (its keys in turn, a negative's canary check) runs out; the request goes on, cached for the retry. */
  private bounded(answer: Promise<DirectoryAnswer>, since: number | undefined): Promise<DirectoryAnswer> {
    if (since === undefined && this.deps.canaries.length === 0) return answer;
    const left = (since ?? performance.now()) + this.deps.backstopMs - performance.now();
    return deadlineRace(answer, left, () => new DirectoryError(ErrorCodes.DIRECTORY_TIMEOUT, `no directory answer for every key of the address within ${this.deps.backstopMs} ms`));
  }

  /** The directory failed: a fresh answer another request stored meanwhile, a stale positive one, or the error. */
  private afterError(key: string, err: unknown): KeyAnswer {
    const again = this.deps.cache?.get(key);
    const now = this.deps.now();
    if (again && now < again.freshUntil) return { canonical: again.canonical, dn: again.dn, source: 'cache', answer: undefined, ttlMs: again.freshUntil - now };
    // Positive knowledge may be served stale while the directory fails; negative knowledge may not.
    // A partial answer is no outage: the user may have been deleted, so it is not served stale.
    const outage = !isPartialAnswer(err);
    if (outage && again && again.canonical !== null && now < again.freshUntil + this.deps.staleMs) {
      this.deps.metrics.cacheEvent('stale');
      return { canonical: again.canonical, dn: again.dn, source: 'stale', answer: undefined, ttlMs: 0 };
    }
    throw err;
  }

  /**
   * Exactly one directory request per key at a time; concurrent askers share it. With canaries,
   * a "no such entry" counts only once a canary check sent after it found every canary.
   */
  private fetch(key: string): Promise<DirectoryAnswer> {
    const pending = this.inflight.get(key);
    if (pending) return pending;
    // A "no such entry" asked while a canary was missing was likely answered under the same lost
    // rights, even when a later check (after the rights came back) finds every canary.
    const askedBlind = this.deps.health.canaryMissing;
    let p = this.request(key);
    if (this.deps.canaries.length > 0) p = p.then((a) => (a.entry === null ? this.confirmNegative(++this.seq).then((found) => this.unlessBlind(a, askedBlind, found)) : a));
    this.inflight.set(key, p);
    const done = (): void => {
      if (this.inflight.get(key) === p) this.inflight.delete(key);
    };
    p.then(done, done);
    return p;
  }

  /**
   * `a`, a "no such entry", unless it was asked while a canary was missing, or the server that gave
   * it is not one the check found the canaries on: the pool may hold connections to two servers
   * (one opened while the first URL was down, one after), and a canary found on one says nothing
   * of what the other can read.
   */
  private unlessBlind(a: DirectoryAnswer, askedBlind: boolean, found: Vouched): DirectoryAnswer {
    if (askedBlind) throw new DirectoryError(ErrorCodes.DIRECTORY_UNAVAILABLE, 'no entry found while a canary address was missing: not trusted');
    if (a.server === undefined || found.has(a.server)) return a;
    throw new DirectoryError(ErrorCodes.DIRECTORY_UNAVAILABLE, `no entry found on ${a.server}, whose canaries the check after it did not see: not trusted`);
  }

  /**
   * Resolves once a canary check sent after negative answer number `arrival` is done. Negatives
   * arriving while a check runs share the one queued after it: at most two checks at a time.
   */
  private confirmNegative(arrival: number): Promise<Vouched> {
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

  private startCanaryCheck(): Promise<Vouched> {
    const check = { seq: ++this.seq, done: this.lookUpCanaries() };
    this.canaryCheck = check;
    const clear = (): void => {
      if (this.canaryCheck === check) this.canaryCheck = null;
    };
    check.done.then(clear, clear);
    return check.done;
  }

  /** Looks up every canary; reports to the health; throws DirectoryError when the directory fails. */
  async checkCanaries(): Promise<void> {
    await this.lookUpCanaries();
  }

  /** checkCanaries(), returning the servers that answered a canary found. */
  private async lookUpCanaries(): Promise<Vouched> {
    const { canaries, health, cache } = this.deps;
    if (canaries.length === 0) return new Set();
    const answers = await Promise.all(canaries.map((c) => this.requestCanary(c)));
    const missing = canaries.filter((_, i) => answers[i]!.entry === null);
    const wasMissing = health.canaryMissing;
    health.canaries(missing);
    if (missing.length > 0 && !wasMissing && cache) {
      // Negatives cached just before were likely served by the same broken directory.
      cache.deleteNegatives();
    }
    return new Set(answers.flatMap((a) => (a.entry !== null && a.server !== undefined ? [a.server] : [])));
  }

  /** A canary at an IDN domain counts as found under either form of the domain, as lookups try both. */
  private async requestCanary(canary: string): Promise<DirectoryAnswer> {
    const answer = await this.request(canary);
    const other = answer.entry === null ? withUnicodeDomain(canary) : null;
    return other === null ? answer : this.request(other);
  }

  /**
   * One directory request. The directory bounds its own requests; the backstop guarantees a front
   * end never waits longer than the configured timeout plus a margin, whatever the directory does.
   * This runs for every cache miss, so there is no timer per request: every request has the same
   * backstop, so the set of outstanding ones is in deadline order, and one timer, armed for the
   * oldest, fails what is overdue.
   */
  private request(key: string): Promise<DirectoryAnswer> {
    let waiting!: Outstanding;
    const promise = new Promise<DirectoryAnswer>((resolve, reject) => {
      waiting = { deadline: performance.now() + this.deps.backstopMs, resolve, reject };
    });
    let answer: Promise<DirectoryAnswer>;
    try {
      answer = this.deps.directory.lookup(key);
    } catch (err) {
      this.fail(waiting, err);
      return promise;
    }
    this.outstanding.add(waiting);
    if (this.backstop === null) this.armBackstop(waiting.deadline);
    answer.then(
      (value) => {
        if (!this.outstanding.delete(waiting)) return;
        this.deps.health.answered();
        waiting.resolve(value);
      },
      (err: unknown) => {
        if (this.outstanding.delete(waiting)) this.fail(waiting, err);
      },
    );
    return promise;
  }

  private fail(waiting: Outstanding, err: unknown): void {
    const e = err instanceof DirectoryError ? err : new DirectoryError(ErrorCodes.DIRECTORY_PROTOCOL, `directory failed: ${(err as Error)?.message ?? String(err)}`, { cause: err });
    this.deps.health.failed(e);
    waiting.reject(e);
  }

  private armBackstop(deadline: number): void {
    this.backstop = setTimeout(() => this.sweepBackstop(), Math.max(0, deadline - performance.now()));
    // Outstanding requests keep their own sockets busy; this timer alone must not hold the process.
    this.backstop.unref();
  }

  private sweepBackstop(): void {
    this.backstop = null;
    const now = performance.now();
    for (const waiting of this.outstanding) {
      if (waiting.deadline > now) {
        this.armBackstop(waiting.deadline);
        return;
      }
      this.outstanding.delete(waiting);
      this.fail(waiting, new DirectoryError(ErrorCodes.DIRECTORY_TIMEOUT, `no directory answer within ${this.deps.backstopMs} ms`));
    }
  }
}

/** The servers a canary check found a canary on. */
type Vouched = ReadonlySet<string>;

/** A directory request the backstop watches. */
interface Outstanding {
  deadline: number;
  resolve: (answer: DirectoryAnswer) => void;
  reject: (err: DirectoryError) => void;
}
