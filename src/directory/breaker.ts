/**
 * A circuit breaker in front of a Directory. While the directory hangs, every lookup would hold a
 * pooled connection (or an in-flight slot) for the full timeout before failing; after
 * `failureThreshold` consecutive failures the breaker opens and lookups fail at once with
 * DIRECTORY_UNAVAILABLE (the engine turns that into stale answers or `tempfail`), so a hung
 * directory costs one timeout, not one per request.
 *
 * Recovery is probed, never guessed: after `cooldownMs` one lookup (or probe()) goes through as a
 * trial (half-open); success closes the breaker, failure reopens it with the cooldown doubled up
 * to `maxCooldownMs`. probe() always reaches the directory (it is the periodic readiness check),
 * so the app's probe loop closes the breaker too. Our own OVERLOADED refusals and caller aborts
 * say nothing about the directory's health and are not counted. The lookups one fault fails
 * together (every lookup batched in one search that timed out while the server answered later
 * ones) count as one failure (sharedFailure).
 */
import { DirectoryError, ErrorCodes, isPartialAnswer } from '../errors.js';
import type { BindingPlan, Directory, DirectoryAnswer, DirectoryRecord } from './types.js';

export type BreakerState = 'closed' | 'open' | 'half_open';

export interface BreakerOptions {
  /** Consecutive failures that open the breaker (default 5). */
  failureThreshold?: number;
  /** First wait before a trial request (ms, default 500). */
  cooldownMs?: number;
  /** Longest wait between trials (ms, default 2000): bounds how late a recovery is noticed. */
  maxCooldownMs?: number;
  /** Clock in ms (tests). */
  now?: () => number;
  /** Called on every state change (logs, metrics). */
  onStateChange?: (state: BreakerState, reason: string | null) => void;
}

/** Errors that fail several lookups for one fault: see sharedFailure(). */
const sharedFailures = new WeakSet<object>();

/**
 * Marks `err` as the one failure of every lookup it fails: counted once. Batched, one stuck search
 * failed 16 lookups, each counted, so it opened the breaker (5 consecutive failures) and every cold
 * lookup was TEMP at once though the directory answered all other searches.
 */
export function sharedFailure<E extends object>(err: E): E {
  sharedFailures.add(err);
  return err;
}

/** Whether `err` failed several lookups while the directory answered searches sent after them (sharedFailure). */
export function isSharedFailure(err: unknown): boolean {
  return typeof err === 'object' && err !== null && sharedFailures.has(err);
}

export const BREAKER_DEFAULTS = Object.freeze({ failureThreshold: 5, cooldownMs: 500, maxCooldownMs: 2_000 });

/** Failures that say the directory itself is unhealthy. */
function countsAsFailure(err: unknown): boolean {
  if (!(err instanceof DirectoryError)) return true;
  return err.code !== ErrorCodes.DIRECTORY_OVERLOADED;
}

export class BreakerDirectory implements Directory {
  readonly kind: Directory['kind'];
  private readonly inner: Directory;
  private readonly threshold: number;
  private readonly baseCooldown: number;
  private readonly maxCooldown: number;
  private readonly now: () => number;
  private readonly onStateChange: BreakerOptions['onStateChange'];
  private current: BreakerState = 'closed';
  private failures = 0;
  private cooldown: number;
  private openedAt = 0;
  private trialRunning = false;
  private lastReason: string | null = null;
  /** Shared failures counted already. */
  private readonly counted = new WeakSet<object>();

  constructor(inner: Directory, options: BreakerOptions = {}) {
    this.inner = inner;
    this.kind = inner.kind;
    this.threshold = Math.max(1, options.failureThreshold ?? BREAKER_DEFAULTS.failureThreshold);
    this.baseCooldown = Math.max(0, options.cooldownMs ?? BREAKER_DEFAULTS.cooldownMs);
    this.maxCooldown = Math.max(this.baseCooldown, options.maxCooldownMs ?? BREAKER_DEFAULTS.maxCooldownMs);
    this.cooldown = this.baseCooldown;
    // Monotonic: a wall clock stepped back must not hold the breaker open for the size of the step.
    this.now = options.now ?? (() => performance.now());
    this.onStateChange = options.onStateChange;
    if (inner.knownDomains) this.knownDomains = () => inner.knownDomains!();
    if (inner.filterFor) this.filterFor = (address) => inner.filterFor!(address);
    if (inner.binding) this.binding = () => inner.binding!();
  }

  knownDomains?: () => string[];
  filterFor?: (address: string) => string | undefined;
  binding?: () => BindingPlan;

  get state(): BreakerState {
    return this.current;
  }

  async lookup(address: string, signal?: AbortSignal): Promise<DirectoryAnswer> {
    const trial = this.admit();
    try {
      const answer = await this.inner.lookup(address, signal);
      this.succeeded();
      return answer;
    } catch (err) {
      this.failed(err, trial, signal);
      throw err;
    } finally {
      if (trial) this.trialRunning = false;
    }
  }

  async probe(signal?: AbortSignal): Promise<void> {
    const trial = this.current !== 'closed' && !this.trialRunning;
    if (trial) this.trialRunning = true;
    try {
      await this.inner.probe(signal);
      this.succeeded();
    } catch (err) {
      this.failed(err, trial, signal);
      throw err;
    } finally {
      if (trial) this.trialRunning = false;
    }
  }

  /** Full listings (snapshot sync) have their own deadlines and retries: not gated. */
  listAll(options?: { changedSince?: Date; signal?: AbortSignal }): AsyncIterable<DirectoryRecord> {
    return this.inner.listAll(options);
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  /** Lets a request through (returns whether it is the trial) or throws while open. */
  private admit(): boolean {
    if (this.current === 'closed') return false;
    if (this.current === 'open' && this.now() - this.openedAt >= this.cooldown) this.transition('half_open', this.lastReason);
    if (this.current === 'half_open' && !this.trialRunning) {
      this.trialRunning = true;
      return true;
    }
    throw new DirectoryError(
      ErrorCodes.DIRECTORY_UNAVAILABLE,
      `directory circuit open after ${this.threshold} consecutive failures${this.lastReason ? ` (last: ${this.lastReason})` : ''}; next trial within ${this.cooldown} ms`,
    );
  }

  private succeeded(): void {
    this.failures = 0;
    this.cooldown = this.baseCooldown;
    if (this.current !== 'closed') this.transition('closed', null);
  }

  private failed(err: unknown, trial: boolean, signal: AbortSignal | undefined): void {
    // A partial answer is an answer: one key's scope referred elsewhere says the directory works.
    if (isPartialAnswer(err)) return this.succeeded();
    if (!countsAsFailure(err) || signal?.aborted) return;
    if (isSharedFailure(err)) {
      if (this.counted.has(err as object) && !trial) return;
      this.counted.add(err as object);
    }
    this.lastReason = (err as Error)?.message ?? String(err);
    if (trial) {
      this.cooldown = Math.min(this.cooldown * 2 || this.maxCooldown, this.maxCooldown);
      this.open();
      return;
    }
    if (this.current === 'closed' && ++this.failures >= this.threshold) this.open();
  }

  private open(): void {
    this.openedAt = this.now();
    this.transition('open', this.lastReason);
  }

  private transition(state: BreakerState, reason: string | null): void {
    if (state === this.current) return;
    this.current = state;
    this.onStateChange?.(state, reason);
  }
}
