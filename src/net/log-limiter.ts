/**
 * Rate-limited warnings for events a peer can trigger at will (refused connections, wrong
 * tokens, bad frames): without a limit, 6,000 wrong tokens make 6,000 log lines. Each event
 * kind may log `burst` lines per `intervalMs`; the rest are counted in
 * `rcptgate_log_suppressed_total{event}` and reported as `suppressed` on the next line logged,
 * or, when none comes (the flood stopped), on a line of their own as the interval ends: the
 * count was otherwise never logged, and the log showed 10 lines of an attack of thousands.
 */
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';

interface Window {
  startedAt: number;
  logged: number;
  suppressed: number;
  /** Reports the lines left out at the end of the interval, unless a line logged first does. */
  summary: NodeJS.Timeout | null;
  /** The last line left out: the summary repeats it, with the count. */
  last: Line | null;
}

type Level = 'warn' | 'info';

interface Line {
  level: Level;
  logger: Logger;
  fields: Record<string, unknown>;
  msg: string;
}

export interface LogLimiterOptions {
  /** Lines per event kind per interval (default 10). */
  burst?: number;
  /** ms (default 60,000). */
  intervalMs?: number;
  now?: () => number;
}

export class LogLimiter {
  private readonly windows = new Map<string, Window>();
  private readonly burst: number;
  private readonly intervalMs: number;
  private readonly now: () => number;

  constructor(
    private readonly metrics: Metrics,
    options: LogLimiterOptions = {},
  ) {
    this.burst = options.burst ?? 10;
    this.intervalMs = options.intervalMs ?? 60_000;
    // Only intervals are measured: the monotonic clock, so a wall clock stepped back does not
    // hold a window open (and every line back) for the size of the step.
    this.now = options.now ?? (() => performance.now());
  }

  /** Logs `msg` at warn level unless `event` has used up its lines for this interval. */
  warn(logger: Logger, event: string, fields: Record<string, unknown>, msg: string): void {
    this.emit('warn', logger, event, fields, msg);
  }

  /** The same at info level (the other half of a warning that may flap: "answering again"). */
  info(logger: Logger, event: string, fields: Record<string, unknown>, msg: string): void {
    this.emit('info', logger, event, fields, msg);
  }

  private emit(level: Level, logger: Logger, event: string, fields: Record<string, unknown>, msg: string): void {
    const now = this.now();
    let w = this.windows.get(event);
    if (w === undefined) this.windows.set(event, (w = { startedAt: now, logged: 0, suppressed: 0, summary: null, last: null }));
    if (now - w.startedAt >= this.intervalMs) {
      w.startedAt = now;
      w.logged = 0;
    }
    if (w.logged >= this.burst) {
      w.suppressed++;
      this.metrics.logSuppressed.inc({ event });
      w.last = { level, logger, fields, msg };
      const win = w;
      w.summary ??= setTimeout(() => this.summarize(win, event), Math.max(0, w.startedAt + this.intervalMs - now)).unref();
      return;
    }
    w.logged++;
    this.write(w, level, logger, event, fields, msg);
  }

  private write(w: Window, level: Level, logger: Logger, event: string, fields: Record<string, unknown>, msg: string): void {
    if (w.summary !== null) clearTimeout(w.summary);
    w.summary = null;
    w.last = null;
    if (w.suppressed > 0) {
      logger[level]({ ...fields, event, suppressed: w.suppressed }, msg);
      w.suppressed = 0;
    } else {
      logger[level]({ ...fields, event }, msg);
    }
  }

  /** The interval ended with lines left out and none logged since: one line says how many. */
  private summarize(w: Window, event: string): void {
    w.summary = null;
    const last = w.last;
    if (w.suppressed === 0 || last === null) return;
    // The summary is the first line of the next interval.
    w.startedAt = this.now();
    w.logged = 1;
    this.write(w, last.level, last.logger, event, last.fields, last.msg);
  }
}
