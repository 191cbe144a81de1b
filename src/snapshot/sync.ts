import { ms } from '../config/duration.js';
import type { Directory, DirectoryRecord } from '../directory/types.js';
import type { ChangeFeed } from './changes.js';
import { steadyNow } from '../recipient/clock.js';
import { ourLastStart, windowStart } from './directory-clock.js';
import { readSnapshotStore, writeSnapshot } from './file.js';
import { checkDirectoryId, directoryIdWithin } from './identity.js';
import { FileStamp } from './file-stamp.js';
import { SyncProgressTicker, type SyncProgress } from './progress.js';
import { snapshotSource } from './source.js';
import { put } from './storable.js';
import { SnapshotStore, snapshotKey } from './store.js';
import { vetListing } from './vet.js';
import type { SnapshotSyncDeps, SyncReport } from './sync-types.js';
/** Changed entries an incremental sync holds (plain objects) before a full sync, streamed into the
 * compact store, takes over: a bulk change of a large directory must not sit in memory whole. */
const MAX_INCREMENTAL_CHANGES = 1_000_000;
export { snapshotSource };
export type { SnapshotSyncDeps, SyncReport } from './sync-types.js';

/** Snapshot mode: full syncs every `sync.interval`, incremental ones every `sync.incrementalInterval`, persisted to `sync.snapshotPath`. */
export class SnapshotSync {
  private store: SnapshotStore | null = null;
  private lastSyncStartedAt = 0;
  /** performance.now() at that start (null: known only from the file). */
  private lastSyncStartedMono: number | null = null;
  /** That start by the directory's clock (null: not known, estimated at the next sync). */
  private lastDirStart: number | null = null;
  /** Start of the last full sync (from the file after a restart); schedules the next one. */
  private lastFullAt = 0;
  /** The base entry's identifier the snapshot was listed from (identity.ts), written to the file. */
  private directoryId: string | null = null;
  /** A file listed from another directory is not served, but the next full listing is vetted against it (sync.maxShrink). */
  private refused: { readonly entries: number } | null = null;
  /** The file as this process last wrote or read it: one `rcptgate sync` wrote since is read before the next sync. */
  private file: FileStamp;
  private fullTimer: NodeJS.Timeout | null = null;
  private incTimer: NodeJS.Timeout | null = null;
  private running: Promise<unknown> | null = null;
  private stopped = false;
  /** Aborts a listing in progress when the process shuts down. */
  private readonly abort = new AbortController();
  private readonly now: () => number;
  private readonly steady: () => number;
  private readonly maxAgeMs: number;
  private readonly path: string;
  private readonly ageTimer: NodeJS.Timeout;
  /** `directory.canaries` as snapshot keys: a full listing without one of them is refused. */
  private readonly canaries: string[];

  constructor(private readonly deps: SnapshotSyncDeps) {
    this.now = deps.now ?? Date.now;
    this.steady = deps.steadyNow ?? (() => performance.now());
    this.canaries = deps.config.directory.canaries.map(snapshotKey);
    this.maxAgeMs = ms(deps.config.sync.maxAge);
    this.path = deps.config.sync.snapshotPath!;
    this.file = new FileStamp(this.path);
    this.ageTimer = setInterval(() => this.updateGauges(), 5_000).unref();
  }

  /** After a reload the new directory serves the syncs and the new change feed reads removals (not the old URLs, password). */
  setDirectory(directory: Directory, changes: ChangeFeed | null): void {
    this.deps.directory = directory;
    this.deps.changes = changes;
  }

  get current(): SnapshotStore | null { return this.store; }

  private updateGauges(): void {
    this.deps.metrics.snapshotEntries.set(this.store?.size ?? 0);
    this.deps.metrics.snapshotAge.set(this.store ? this.store.ageSeconds() : 0);
  }

  private publish(store: SnapshotStore): void {
    this.store = store;
    this.updateGauges();
    this.deps.onSnapshot(store);
  }

  /** A reload that keeps the directory hands over the snapshot served so far: the file may be older
   * (a disk that refused it). A new path gets it written at once, so a restart finds it there. */
  adopt(from: SnapshotSync): void {
    ({ lastSyncStartedAt: this.lastSyncStartedAt, lastSyncStartedMono: this.lastSyncStartedMono, lastFullAt: this.lastFullAt, lastDirStart: this.lastDirStart, directoryId: this.directoryId } = from);
    from.store!.maxAgeMs = this.maxAgeMs;
    if (from.path === this.path) this.file = from.file; // the file it wrote is ours: not read again
    this.publish(from.store!);
    if (from.path !== this.path) void this.exclusive(() => this.persist('full', from.store!, this.lastSyncStartedAt, this.lastFullAt));
  }

  /** Loads the file from disk (with `newerThan`, only one whose full sync is newer); a missing, corrupt or foreign file is logged and ignored. */
  async load(newerThan = -Infinity): Promise<boolean> {
    const t0 = performance.now();
    try {
      await this.file.mark();
      // Asked while the file is read: a directory that does not answer costs the start no more than the read.
      const current = directoryIdWithin(this.deps.changes, this.deps.directory.binding?.(), ms(this.deps.config.directory.ldap.timeout));
      const { header, store } = await readSnapshotStore(this.path, snapshotSource(this.deps.config), this.maxAgeMs, this.steady);
      if (!(header.fullAt > newerThan)) return false;
      await checkDirectoryId(current, header.directoryId, () => (this.refused = { entries: store.entries }));
      this.directoryId = header.directoryId ?? null;
      // A header from the future (clock set back, another host's file) proves no freshness: stale, synced in full.
      const trusted = header.createdAt <= this.now() && header.fullAt <= this.now();
      // Its age as the wall clock tells it now, then on the steady clock (a later step changes nothing).
      store.createdAt = this.steady() - (this.now() - (trusted ? header.fullAt : 0));
      this.lastSyncStartedAt = trusted ? header.createdAt : 0;
      if (trusted) store.listedAt = steadyNow() - (this.now() - header.createdAt);
      this.lastFullAt = trusted ? header.fullAt : 0;
      this.publish(store);
      if (!trusted) this.deps.logger.warn({ path: this.path, createdAt: header.createdAt, fullAt: header.fullAt }, 'snapshot header lies in the future; not trusted as fresh');
      const loadMs = Math.round(performance.now() - t0);
      this.deps.logger.info({ path: this.path, entries: header.entries, addresses: store.size, ageSeconds: store.ageSeconds(), fresh: store.isFresh(), loadMs }, 'snapshot loaded');
      return true;
    } catch (err) {
      this.deps.logger.warn({ path: this.path, err: { message: (err as Error).message } }, `snapshot not loaded; ${this.store ? 'the one in memory serves' : 'answering from live lookups until the first sync'}`);
      return false;
    }
  }

  /** One full sync: read every entry (paged), write the file, replace the snapshot. `mustWrite`
   * (`rcptgate sync`, whose point is the file): a file not written fails the sync. */
  async full(onProgress?: (p: SyncProgress) => void, mustWrite = false): Promise<SyncReport> {
    return this.exclusive(async () => {
      const started = this.now();
      const startedMono = performance.now();
      const startedSteady = this.steady();
      const listedAt = steadyNow();
      const t0 = process.hrtime.bigint();
      const end = this.deps.metrics.syncDuration.startTimer({ kind: 'full' });
      try {
        // Straight into a new store (not published until complete): one copy of the data in memory.
        // Its age runs on the steady clock: a wall clock stepped back must not extend sync.maxAge.
        const store = new SnapshotStore(startedSteady, this.maxAgeMs, this.steady);
        const dirStart = (await this.deps.changes?.now(this.deps.directory.binding?.(), started)) ?? null;
        const directoryId = (await this.deps.changes?.directoryId(this.deps.directory.binding?.())) ?? null;
        let listed = 0;
        const progress = new SyncProgressTicker(this.store?.entries ?? null, this.deps.logger, onProgress);
        for await (const r of this.deps.directory.listAll({ signal: this.abort.signal })) {
          put(store, r);
          progress.tick(++listed);
        }
        vetListing({ ...this.deps, canaries: this.canaries, previous: this.store ?? this.refused }, store, listed);
        await store.settle();
        this.directoryId = directoryId ?? this.directoryId;
        await this.persist('full', store, started, started, mustWrite);
        this.lastSyncStartedAt = started;
        this.lastSyncStartedMono = startedMono;
        this.lastFullAt = started;
        this.lastDirStart = dirStart;
        store.listedAt = listedAt;
        this.publish(store);
        end();
        const report: SyncReport = { kind: 'full', entries: store.entries, addresses: store.size, changed: listed, seconds: Number(process.hrtime.bigint() - t0) / 1e9 };
        this.deps.logger.info(report, 'full sync done');
        return report;
      } catch (err) {
        return this.failed('full', err);
      }
    });
  }

  /** A disk that refuses the file (read-only, full) costs the next restart its snapshot, not this one: the listing
   * is complete, so it is served (thrown away, it would age past `sync.maxAge` while every sync succeeded). */
  private async persist(kind: SyncReport['kind'], store: SnapshotStore, started: number, fullAt: number, mustWrite = false): Promise<void> {
    // `rcptgate sync` wrote the file during this incremental sync (a full listing, a shrink applied
    // with RCPTGATE_SYNC_MAX_SHRINK): not overwritten with the older snapshot; the next sync serves it.
    if (kind === 'incremental' && (await this.file.replaced())) return;
    try {
      await writeSnapshot(this.path, snapshotSource(this.deps.config), started, store, fullAt, this.directoryId);
      await this.file.mark();
    } catch (err) {
      if (mustWrite) throw err;
      this.deps.metrics.syncFailures.inc({ kind });
      this.deps.logger.error({ path: this.path, err: { message: (err as Error).message } }, `snapshot file not written; serving the ${kind} sync from memory (a restart would load an older file)`);
    }
  }

  /** Entries changed since the last sync are merged in; deletions wait for the next full sync.
   * It does not make the snapshot fresher: `sync.maxAge` counts from the last full sync. */
  async incremental(): Promise<SyncReport> {
    if (!this.store) return this.full();
    const report = await this.exclusive(() => this.merge());
    if (report === null) this.deps.logger.info('incremental sync saw more changed entries than it holds; running a full sync instead');
    return report ?? this.full();
  }

  /** The incremental sync itself; null when more entries changed than it holds. */
  private async merge(): Promise<SyncReport | null> {
    const limit = this.deps.maxIncrementalChanges ?? MAX_INCREMENTAL_CHANGES;
    const store = this.store!;
    const started = this.now();
    const startedMono = performance.now();
    const listedAt = steadyNow();
    const t0 = process.hrtime.bigint();
    const end = this.deps.metrics.syncDuration.startTimer({ kind: 'incremental' });
    try {
      let changed = 0;
      const dirNow = (await this.deps.changes?.now(this.deps.directory.binding?.(), started)) ?? null;
      const ours = ourLastStart(this.lastSyncStartedAt, this.lastSyncStartedMono, started, startedMono);
      const since = windowStart(ours, this.lastDirStart, started, dirNow);
      const updates: DirectoryRecord[] = [];
      for await (const r of this.deps.directory.listAll({ changedSince: since, signal: this.abort.signal })) {
        if (updates.push(r) > limit) return null; // ends the listing
      }
      // The skew margin re-lists recent changes every time: only real changes are written.
      for (const r of updates) if (put(store, r)) changed++;
      if (this.deps.changes?.removals) {
        const removals = await this.deps.changes.apply(store, updates, since, this.deps.directory.binding?.());
        changed += removals.removed + removals.refreshed;
      }
      await store.settle();
      if (changed > 0) await this.persist('incremental', store, started, this.lastFullAt);
      this.lastSyncStartedAt = started;
      this.lastSyncStartedMono = startedMono;
      this.lastDirStart = dirNow;
      store.listedAt = listedAt;
      this.publish(store);
      end();
      const report: SyncReport = { kind: 'incremental', entries: store.entries, addresses: store.size, changed, seconds: Number(process.hrtime.bigint() - t0) / 1e9 };
      this.deps.logger.debug(report, 'incremental sync done');
      return report;
    } catch (err) {
      return this.failed('incremental', err);
    }
  }

  /** A sync that failed (not one stopped at shutdown): counted, logged, and its error thrown on. */
  private failed(kind: SyncReport['kind'], err: unknown): never {
    if (!this.stopped) {
      this.deps.metrics.syncFailures.inc({ kind });
      this.deps.logger.warn({ err: { message: (err as Error).message } }, `${kind} sync failed; keeping the current snapshot`);
    }
    throw err;
  }

  /** Settles once the sync running now (if any) has ended, however it ends. */
  idle(): Promise<void> { return (this.running ?? Promise.resolve()).then(() => undefined, () => undefined); }

  private async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    while (this.running) await this.running.catch(() => undefined);
    // `rcptgate sync` beside the service (a shrink applied with RCPTGATE_SYNC_MAX_SHRINK): served, not overwritten.
    const p = (async () => this.store && (await this.file.replaced()) && (await this.load(this.lastFullAt)))().then(fn);
    this.running = p;
    try {
      return await p;
    } finally {
      if (this.running === p) this.running = null;
    }
  }

  /**
   * Starts the periodic syncs, in the background. The first full sync runs at once, unless the
   * loaded snapshot had one within `sync.interval`: then it waits for the rest of the interval
   * and an incremental sync catches up at once, so a restart does not re-list the directory.
   */
  start(): void {
    const full = ms(this.deps.config.sync.interval);
    const inc = ms(this.deps.config.sync.incrementalInterval);
    const runFull = () => {
      if (this.stopped) return;
      this.full()
        .catch(() => undefined)
        .finally(() => {
          if (!this.stopped) this.fullTimer = setTimeout(runFull, this.store ? full : Math.min(full, 30_000)).unref();
        });
    };
    const runInc = () => {
      if (this.stopped) return;
      const job = this.store ? this.incremental() : Promise.resolve();
      job.catch(() => undefined).finally(() => {
        if (!this.stopped) this.incTimer = setTimeout(runInc, inc).unref();
      });
    };
    // Without incremental syncs (interval not shorter than the full one) nothing would catch up.
    const fullDueIn = this.store && inc < full ? Math.max(0, this.lastFullAt + full - this.now()) : 0;
    if (fullDueIn === 0) {
      runFull();
      if (inc < full) this.incTimer = setTimeout(runInc, inc).unref();
    } else {
      this.fullTimer = setTimeout(runFull, fullDueIn).unref();
      runInc();
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.fullTimer) clearTimeout(this.fullTimer);
    if (this.incTimer) clearTimeout(this.incTimer);
    clearInterval(this.ageTimer);
    this.abort.abort();
    await this.running?.catch(() => undefined);
  }
}
