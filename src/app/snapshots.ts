import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { SnapshotStore } from '../snapshot/store.js';
import { createChangeFeed, type ChangeFeed } from '../snapshot/changes.js';
import type { SyncProgress } from '../snapshot/progress.js';
import { SnapshotSync, snapshotSource } from '../snapshot/sync.js';
import type { EngineHolder } from './engines.js';

/**
 * Snapshot mode for the app: at most one syncer, feeding whichever engine is current. A reload
 * that changes `sync.*` (or the directory a snapshot comes from) replaces the syncer, or drops it.
 */
export class SnapshotHolder {
  private syncer: SnapshotSync | null;
  private running = false;

  constructor(
    config: Readonly<Config>,
    private readonly engines: EngineHolder,
    private readonly deps: { metrics: Metrics; logger: Logger; env: NodeJS.ProcessEnv },
  ) {
    this.syncer = this.create(config);
  }

  private create(config: Readonly<Config>): SnapshotSync | null {
    if (!config.sync.enabled) return null;
    const { metrics, logger, env } = this.deps;
    const changes = createChangeFeed(config, env, logger);
    // A syncer being replaced publishes nothing more: its sync may end while it stops.
    const syncer: SnapshotSync = new SnapshotSync({ config, directory: this.engines.current.directory, metrics, logger, onSnapshot: (s) => this.syncer === syncer && this.engines.current.validator.setSnapshot(s), changes });
    return syncer;
  }

  /** The reload has already read the password once; a file gone since only costs removals until the full sync. */
  private changeFeed(config: Readonly<Config>): ChangeFeed | null {
    try {
      return createChangeFeed(config, this.deps.env, this.deps.logger);
    } catch (err) {
      this.deps.logger.warn({ err: { message: (err as Error).message } }, 'change-driven removals off until the next reload: cannot read the bind password');
      return null;
    }
  }

  get current(): SnapshotStore | null {
    return this.syncer?.current ?? null;
  }

  /** Loads the snapshot file, if snapshot mode is on (before any listener opens). */
  async load(): Promise<void> {
    await this.syncer?.load();
  }

  /** Settles once the sync running now (if any) has ended. */
  idle(): Promise<void> {
    return this.syncer?.idle() ?? Promise.resolve();
  }

  /** Starts the periodic syncs (serve). */
  start(): void {
    this.running = true;
    this.syncer?.start();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.syncer?.stop();
  }

  /** One full sync (`rcptgate sync`); the report line it prints. */
  async syncOnce(onProgress?: (p: SyncProgress) => void): Promise<string> {
    if (!this.syncer) throw new Error('sync.enabled is false: set sync.enabled and sync.snapshotPath');
    // The snapshot on disk is what the listing is vetted against (sync.maxShrink), as in serve:
    // without it a directory that suddenly lists far fewer entries would replace it unchecked.
    if (!this.syncer.current) await this.syncer.load();
    const r = await this.syncer.full(onProgress, true);
    return `entries=${r.entries} addresses=${r.addresses} seconds=${r.seconds.toFixed(2)} path=${this.engines.current.config.sync.snapshotPath}`;
  }

  /** After the engines were replaced for `next`: keep the syncer (on the new directory) or rebuild it. */
  async reload(before: Readonly<Config>, next: Readonly<Config>): Promise<void> {
    if (JSON.stringify(before.sync) === JSON.stringify(next.sync) && snapshotSource(before) === snapshotSource(next)) {
      // The change feed too: it binds on its own, with the URLs and password of `next`.
      this.syncer?.setDirectory(this.engines.current.directory, this.changeFeed(next));
      // A sync that ended while the reload checked the new directory published to the engine it
      // replaced: the new one would serve an older snapshot, or none, until the next sync succeeds.
      if (this.syncer?.current) this.engines.current.validator.setSnapshot(this.syncer.current);
      return;
    }
    const previous = this.syncer;
    const sameSource = snapshotSource(before) === snapshotSource(next);
    if (!sameSource) {
      // The new engine serves another directory (base, filter...) from now on: the old listing must
      // not answer for it while a running sync stops (with confirmMisses off, its misses are 550).
      this.syncer = null;
      this.engines.current.validator.setSnapshot(null);
    }
    await previous?.stop();
    this.syncer = this.create(next);
    this.engines.current.validator.setSnapshot(null);
    if (this.syncer) {
      // The same directory's snapshot goes on serving (a new sync.snapshotPath has no file yet;
      // the old one may lag what a disk refused): read from the file, an outage deferred everyone.
      if (previous?.current && sameSource) this.syncer.adopt(previous);
      else await this.syncer.load();
      if (this.running) this.syncer.start();
    }
  }
}
