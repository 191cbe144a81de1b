import type { DirectoryHealth } from '../recipient/health.js';
import type { Engine } from './engines.js';

/** Probe interval while the directory answers and every canary is found. */
const UP_INTERVAL_MS = 30_000;
/** While down after having answered once: notice the recovery soon. */
const DOWN_INTERVAL_MS = 2_000;

/**
 * The readiness probe: one loop per process, so readiness never waits for traffic. Each round
 * probes the current engine's directory and looks up `directory.canaries`. poke() runs a round
 * now (start, reload) without starting a second loop.
 */
export class ProbeLoop {
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  private again = false;
  private stopped = false;
  private delay = 500;

  constructor(
    private readonly engine: () => Engine,
    private readonly health: DirectoryHealth,
  ) {}

  poke(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    void this.round();
  }

  /** Resolves after one round (tests and one-shot commands). */
  async once(): Promise<void> {
    const { directory, validator } = this.engine();
    try {
      await directory.probe();
      await validator.checkCanaries();
      this.health.answered();
    } catch (err) {
      this.health.failed(err as Error);
    }
  }

  private async round(): Promise<void> {
    this.running = true;
    try {
      await this.once();
    } finally {
      this.running = false;
    }
    if (this.stopped) return;
    const s = this.health.state;
    this.delay = s.up ? UP_INTERVAL_MS : s.answeredOnce ? DOWN_INTERVAL_MS : Math.min(Math.max(this.delay * 2, 500), 10_000);
    if (this.again) {
      this.again = false;
      this.poke();
      return;
    }
    this.timer = setTimeout(() => this.poke(), this.delay).unref();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** Pending rounds (0 or 1): what a test checks to see that reloads start no extra loops. */
  get scheduled(): number {
    return this.timer === null ? 0 : 1;
  }
}
