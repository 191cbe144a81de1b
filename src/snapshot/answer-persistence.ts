import { ms } from '../config/duration.js';
import type { Config } from '../config/schema.js';
import type { AnswerCache } from '../recipient/answer-cache.js';
import { steadyNow } from '../recipient/clock.js';
import type { Logger } from '../log.js';
import { loadAnswers, saveAnswers } from './answer-file.js';
import { snapshotSource } from './sync.js';

export interface AnswerPersistenceDeps {
  /** `cache.persistPath`. */
  path: string;
  /**
   * Identifies the directory now in use (as for snapshots): answers from another one are not
   * loaded. Read at every save: a reload may have changed the directory the answers come from.
   */
  source: () => string;
  /** The current engine's cache (a config reload builds a new engine). */
  cache: () => AnswerCache | null;
  /** `cache.staleIfError`: answers past it are worth nothing and are neither saved nor loaded. */
  staleMs: number;
  /** `cache.persistInterval`. */
  intervalMs: number;
  logger: Logger;
  now?: () => number;
}

/** Loads the answer file at start, saves it every `cache.persistInterval` and at shutdown. */
export class AnswerPersistence {
  private timer: NodeJS.Timeout | null = null;
  private saving: Promise<void> | null = null;
  /** Saving before the file was read would replace it with whatever little the cache holds. */
  private loaded = false;
  private readonly now: () => number;

  constructor(private readonly deps: AnswerPersistenceDeps) {
    // The cache's own clock: its expiry times are on that scale.
    this.now = deps.now ?? steadyNow;
  }

  /** A missing, foreign or corrupt file is logged and ignored: the cache starts empty. */
  async load(): Promise<number> {
    const cache = this.deps.cache();
    this.loaded = true;
    if (!cache) return 0;
    const t0 = process.hrtime.bigint();
    try {
      const n = await loadAnswers(this.deps.path, this.deps.source(), cache, this.now(), this.deps.staleMs);
      this.deps.logger.info({ path: this.deps.path, answers: n, seconds: Number(process.hrtime.bigint() - t0) / 1e9 }, 'cached answers loaded');
      return n;
    } catch (err) {
      this.deps.logger.warn({ path: this.deps.path, err: { message: (err as Error).message } }, 'cached answers not loaded; starting with an empty cache');
      return 0;
    }
  }

  start(): void {
    this.timer = setInterval(() => void this.save(), this.deps.intervalMs).unref();
  }

  /** One save at a time; a failure is logged and the previous file stays. */
  save(): Promise<void> {
    if (this.saving) return this.saving;
    const cache = this.deps.cache();
    if (!cache || !this.loaded) return Promise.resolve();
    this.saving = saveAnswers(this.deps.path, this.deps.source(), cache, this.now(), this.deps.staleMs)
      .then((n) => this.deps.logger.debug({ path: this.deps.path, answers: n }, 'cached answers saved'))
      .catch((err: unknown) => this.deps.logger.warn({ path: this.deps.path, err: { message: (err as Error).message } }, 'saving cached answers failed; the previous file stays'))
      .finally(() => (this.saving = null));
    return this.saving;
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.saving;
    await this.save();
  }
}

/**
 * The persistence `cache.persistPath` asks for, or null (not set, or no cache). `current` is the
 * config in use (it changes on reload); path and intervals are read once, at start.
 */
export function answerPersistence(config: Readonly<Config>, current: () => Readonly<Config>, cache: () => AnswerCache | null, logger: Logger): AnswerPersistence | null {
  const path = config.cache.persistPath;
  if (!path || config.cache.maxEntries === 0) return null;
  const source = () => snapshotSource(current());
  return new AnswerPersistence({ path, source, cache, staleMs: ms(config.cache.staleIfError), intervalMs: ms(config.cache.persistInterval), logger });
}
