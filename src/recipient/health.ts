import { isSharedFailure } from '../directory/breaker.js';
import { ErrorCodes, isPartialAnswer } from '../errors.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { LogLimiter } from '../net/log-limiter.js';

export interface DirectoryState {
  /** The last request or probe got an answer and no canary is missing. */
  up: boolean;
  /** The directory answered at least once since start. */
  answeredOnce: boolean;
  lastSuccessAt: number | null;
  lastError: string | null;
  /** Canary addresses the last check did not find (see `directory.canaries`). */
  missingCanaries: readonly string[];
}

export interface DirectoryHealthDeps {
  metrics: Metrics;
  logger: Logger;
  now?: () => number;
}

/** Transition lines a minute: a directory failing one request in a few flips the state each time. */
const TRANSITION_LINES = 10;

/**
 * The one owner of "is the directory up": the `rcptgate_directory_up` gauge and the
 * "directory is failing" / "directory is answering" log lines. Lookups, the readiness probe and
 * canary checks report here; it outlives config reloads so readiness carries over.
 */
export class DirectoryHealth {
  readonly state: DirectoryState = { up: false, answeredOnce: false, lastSuccessAt: null, lastError: null, missingCanaries: [] };
  private readonly now: () => number;
  private readonly lines: LogLimiter;

  constructor(private readonly deps: DirectoryHealthDeps) {
    this.now = deps.now ?? Date.now;
    // lastSuccessAt is a wall-clock time; the log window keeps the limiter's monotonic default.
    this.lines = new LogLimiter(deps.metrics, { burst: TRANSITION_LINES, now: deps.now });
  }

  get canaryMissing(): boolean {
    return this.state.missingCanaries.length > 0;
  }

  /** A request got an answer from the directory (found or not found). */
  answered(): void {
    const s = this.state;
    s.answeredOnce = true;
    s.lastSuccessAt = this.now();
    if (s.missingCanaries.length > 0) return;
    s.lastError = null;
    if (!s.up) this.set(true);
  }

  /**
   * A request failed. Our own refusals (DIRECTORY_OVERLOADED: too many requests in flight) say
   * nothing about the directory, so they never mark it down; a partial answer marks it up.
   */
  failed(err: Error): void {
    if ((err as { code?: unknown }).code === ErrorCodes.DIRECTORY_OVERLOADED) return;
    // The directory answered, only not completely for one key (that key is deferred): it is up.
    if (isPartialAnswer(err)) return this.answered();
    // One search stuck while the directory answered searches sent after it: the directory is up
    // (its lookups are deferred, the breaker counts it once). Reported down, readiness and the
    // directory-up gauge flapped with every stuck search and logged the directory failing.
    if (isSharedFailure(err)) return;
    const s = this.state;
    const first = s.up || s.lastError === null;
    s.lastError = err.message;
    if (first) this.lines.warn(this.deps.logger, 'directory_failing', { err: { message: err.message, code: (err as { code?: unknown }).code } }, 'directory is failing');
    if (s.up || first) this.set(false);
  }

  /** Result of a canary check: the canaries the directory did not find (empty: all found). */
  canaries(missing: readonly string[]): void {
    const s = this.state;
    const was = s.missingCanaries.length > 0;
    s.missingCanaries = [...missing];
    if (missing.length > 0) {
      s.lastError = `canary address not found: ${missing.join(', ')} (has the bind account lost read rights?)`;
      if (!was) this.deps.logger.warn({ missing }, 'directory is failing: canary addresses not found; answering tempfail instead of unknown');
      if (s.up || !was) this.set(false);
    } else if (was) {
      this.deps.logger.info('canary addresses found again');
      // The canary lookups were answers: the directory is up again.
      this.answered();
    }
  }

  private set(up: boolean): void {
    if (up) this.lines.info(this.deps.logger, 'directory_answering', {}, 'directory is answering');
    this.state.up = up;
    this.deps.metrics.directoryUp.set(up ? 1 : 0);
  }
}
