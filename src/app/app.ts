import type { AddressInfo } from 'node:net';
import type { LoadedConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { ms } from '../config/duration.js';
import { isExampleDirectory } from '../directory/index.js';
import { resolveConfig } from '../config/resolve.js';
import type { Logger } from '../log.js';
import { Metrics } from '../metrics.js';
import type { HealthReport, RecipientValidator } from '../recipient/types.js';
import { createReload } from './reload.js';
import { SnapshotHolder } from './snapshots.js';
import { answerPersistence } from '../snapshot/answer-persistence.js';
import type { SyncProgress } from '../snapshot/progress.js';
import { EngineHolder } from './engines.js';
import { bindRefused, currentSecretFilesDigest, watchSecretFiles } from './secret-files.js';
import { healthReport } from './health-report.js';
import { ProbeLoop } from './probe.js';
import { Listeners, type ListenerName } from './listeners.js';
import { exposureWarnings, loopbackNotice } from '../config/exposure.js';
import { lockDataFiles, type DataLock, type LockedFile } from './data-lock.js';

export interface AppOptions {
  loaded: LoadedConfig;
  logger: Logger;
  env?: NodeJS.ProcessEnv;
  /** How long a directory a reload replaced stays open for work begun on it (default 30 s; tests). */
  retireAfterMs?: number;
}

export interface App {
  /** The validator front ends use; survives reloads (it always asks the current engine). */
  readonly validator: RecipientValidator;
  readonly metrics: Metrics;
  /** Bound addresses after start(), by front end. */
  readonly addresses: Partial<Record<ListenerName, AddressInfo>>;
  /** One-shot commands: load the snapshot if configured. */
  prepare(): Promise<void>;
  start(): Promise<void>;
  /** SIGHUP: re-read config (file given at start), flush the cache; connections stay open. */
  reload(file?: string): Promise<boolean>;
  health(): HealthReport;
  /** The directory refused the bind account (a wrong password or bindDN): a configuration problem. */
  bindRefused(): boolean;
  syncOnce(onProgress?: (p: SyncProgress) => void): Promise<string>;
  close(): Promise<void>;
}

/** Composition root: everything is built here from one frozen config; nothing is module state. */
export async function createApp(options: AppOptions): Promise<App> {
  const { logger } = options;
  const env = options.env ?? process.env;
  const metrics = new Metrics();
  const startedAt = Date.now();
  let draining = false;
  const config = options.loaded.config;
  // Secrets and files are read once, here: a problem is a ConfigError listing every one.
  const resolved = resolveConfig(config, env, options.loaded.file);
  const engines = new EngineHolder(resolved, { logger, metrics, env });
  const validator = engines.validator;
  const snapshots = new SnapshotHolder(config, engines, { metrics, logger, env });
  // cache.persistPath: valid answers survive a restart (follows the current engine's cache).
  const persistence = answerPersistence(config, () => engines.current.config, () => engines.current.validator.answerCache, logger);
  let answersLoaded = false;
  const health = (): HealthReport => healthReport({ engine: engines.current, snapshot: snapshots.current, draining, answersLoaded, startedAt });
  const probes = new ProbeLoop(() => engines.current, engines.health);
  // A reload naming another snapshot file locks it before a syncer writes there (cache.persistPath: restart only).
  const lockFiles = async (next: Readonly<Config>) => void (await lock?.add(writtenFiles({ ...next, cache: config.cache }, persistence !== null)));
  const reload = createReload({ file: options.loaded.file, startConfig: config, env, engines, snapshots, probes, metrics, logger, retireAfterMs: options.retireAfterMs, stopping: () => draining, lockFiles });
  const listeners = new Listeners({ resolved, validator, metrics, logger, health });
  // Answers are saved only by a process that served: one whose listeners could not bind (a second instance on
  // the same ports) would replace the running one's answer file with what it loaded, or nothing at all.
  let served = false, lock: DataLock | null = null, secretWatch: NodeJS.Timeout | undefined;

  const start = async (): Promise<void> => {
    startupNotices(config, engines.current.validator.servedDomains(), logger);
    for (const w of resolved.warnings ?? []) logger.error({ key: w.path }, w.message);
    // The snapshot is loaded before any listener opens, so the first answers already use it.
    await snapshots.load();
    answersLoaded = ((await persistence?.load()) ?? 0) > 0;
    try {
      await listeners.start();
      // Before anything is written: a second instance given the same files stops here (data-lock.ts),
      // after the bind, so one on the same ports still says so.
      lock = await lockDataFiles(writtenFiles(config, persistence !== null), logger);
    } catch (err) {
      await close();
      throw err;
    }
    served = true;
    probes.poke();
    snapshots.start();
    persistence?.start();
    secretWatch = watchSecretFiles({
      digestNow: () => currentSecretFilesDigest(engines.current.config),
      installed: () => engines.current.secretFiles,
      refusedNow: () => bindRefused(engines.current),
      refresh: () => reload(undefined, true),
    });
  };

  const close = async (): Promise<void> => {
    if (draining) return;
    draining = true;
    clearInterval(secretWatch);
    probes.stop();
    await shutdown({ snapshots, listeners, persistence: served ? persistence : null, engines, drainMs: ms(config.server.drainTimeout), logger });
    await lock?.release();
  };

  const syncOnce = (onProgress?: (p: SyncProgress) => void): Promise<string> => snapshots.syncOnce(onProgress);
  return { validator, metrics, addresses: listeners.addresses, prepare: () => snapshots.load(), start, reload, health, bindRefused: () => bindRefused(engines.current), syncOnce, close };
}

/** The files the service writes (a snapshot only with sync on: without, `rcptgate sync` writes it). */
function writtenFiles(config: Readonly<Config>, persists: boolean): LockedFile[] {
  const files: LockedFile[] = [];
  if (persists && config.cache.persistPath) files.push({ key: 'cache.persistPath', path: config.cache.persistPath });
  if (config.sync.enabled && config.sync.snapshotPath) files.push({ key: 'sync.snapshotPath', path: config.sync.snapshotPath });
  return files;
}

/** How long before the drain's end the directory closes: its pending lookups answered tempfail, written before the cut. */
const ANSWER_LATE_MS = 200;

/** Stops serving: listeners drained, answers saved (by a process that served), sync and directory closed. */
async function shutdown(o: {
  snapshots: SnapshotHolder;
  listeners: Listeners;
  persistence: { stop(): Promise<void> } | null;
  engines: EngineHolder;
  drainMs: number;
  logger: Logger;
}): Promise<void> {
  // The drain starts at once. A sync can be stuck where its stop signal does not reach (the
  // removal checks' own bind to a directory that stopped answering waits out the timeout per
  // URL): awaited first, it kept the listeners accepting for that long, answer file unsaved.
  const syncStopped = o.snapshots.stop();
  // A lookup still waiting on the directory when the drain ends (its timeout longer than the
  // drain, a server that stopped answering) had its connection cut unanswered. Closing the
  // directory just before answers it tempfail, and the answer goes out before the cut. Only
  // just: closed a second early, a slow directory's answers due in that second were deferred.
  const answerLate = setTimeout(() => void closeDirectory(o), Math.max(0, o.drainMs - Math.min(ANSWER_LATE_MS, o.drainMs / 10)));
  await o.listeners.close(o.drainMs);
  clearTimeout(answerLate);
  await o.persistence?.stop();
  // It gets the drain time once more; a snapshot write cut short leaves the previous file.
  if (!(await settlesWithin(syncStopped, o.drainMs))) o.logger.warn({ waitedMs: o.drainMs }, 'a directory sync did not stop in time; exiting without it');
  await closeDirectory(o);
}

/** Closes the directory and those a reload replaced that are still open: lookups hanging on one were cut unanswered at the drain's end. */
async function closeDirectory(o: { engines: EngineHolder; logger: Logger }): Promise<void> {
  const closing = o.engines.openDirectories().map((d) => d.close().catch((err: unknown) => o.logger.warn({ err }, 'closing the directory failed')));
  await Promise.all(closing);
}

/** True once `work` settles, false if `ms` pass first. */
function settlesWithin(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  const done = work.then(() => true, () => true);
  return Promise.race([done, late]).finally(() => clearTimeout(timer));
}

/** What an operator should read at start: the example directory, loopback binds, exposure. */
function startupNotices(config: Readonly<Config>, servedDomains: string[], logger: Logger): void {
  if (isExampleDirectory(config)) {
    logger.info(
      { domains: servedDomains },
      'serving the bundled example directory (examples/directory.ldif); to use LDAP set directory.kind: ldap, directory.ldap.urls, baseDN and domains in a config file (rcptgate serve --config FILE)',
    );
  }
  const notice = loopbackNotice(config);
  if (notice) logger.info(notice);
  for (const w of exposureWarnings(config)) logger[w.level === 'warning' ? 'warn' : 'info']({ key: w.path }, w.message);
}
