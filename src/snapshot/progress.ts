import type { Logger } from '../log.js';

/** Where a long full sync stands: for the log line and the `rcptgate sync` progress bar. */
export interface SyncProgress {
  listed: number;
  /** Entries the previous snapshot had (the best guess of the total); null on the first sync. */
  expected: number | null;
  seconds: number;
  /** Entries per second so far. */
  rate: number;
  /** Seconds left at the current rate; null without an expected total. */
  etaSeconds: number | null;
}

/** A log line every `logEveryMs`, a callback every `reportEveryMs`; cheap enough to call per entry. */
export class SyncProgressTicker {
  private readonly t0 = process.hrtime.bigint();
  private lastLog = 0;
  private lastReport = 0;

  constructor(
    private readonly expected: number | null,
    private readonly logger: Logger,
    private readonly onProgress?: (p: SyncProgress) => void,
    private readonly logEveryMs = 5_000,
    private readonly reportEveryMs = 250,
  ) {}

  tick(listed: number): void {
    // Reading the clock per entry would cost more than the entry itself.
    if ((listed & 1023) !== 0) return;
    const ms = Number(process.hrtime.bigint() - this.t0) / 1e6;
    if (this.onProgress && ms - this.lastReport >= this.reportEveryMs) {
      this.lastReport = ms;
      this.onProgress(this.at(listed, ms));
    }
    if (ms - this.lastLog >= this.logEveryMs) {
      this.lastLog = ms;
      const p = this.at(listed, ms);
      this.logger.info({ listed, expected: p.expected, perSecond: Math.round(p.rate), etaSeconds: p.etaSeconds }, 'full sync in progress');
    }
  }

  at(listed: number, ms = Number(process.hrtime.bigint() - this.t0) / 1e6): SyncProgress {
    const seconds = ms / 1000;
    const rate = seconds > 0 ? listed / seconds : 0;
    const left = this.expected === null ? null : Math.max(0, this.expected - listed);
    return { listed, expected: this.expected, seconds, rate, etaSeconds: left === null || rate === 0 ? null : Math.round(left / rate) };
  }
}

/** One line for a terminal: `[#####.....] 512,000 / 1,000,000 entries  42,000/s  ETA 12s`. */
export function progressBar(p: SyncProgress, width = 30): string {
  const n = (v: number) => Math.round(v).toLocaleString('en-US');
  const fraction = p.expected ? Math.min(1, p.listed / p.expected) : null;
  const bar = fraction === null ? '' : `[${'#'.repeat(Math.round(fraction * width)).padEnd(width, '.')}] `;
  const total = p.expected ? ` / ${n(p.expected)}` : '';
  const eta = p.etaSeconds === null ? '' : `  ETA ${p.etaSeconds}s`;
  return `${bar}${n(p.listed)}${total} entries  ${n(p.rate)}/s${eta}`;
}
