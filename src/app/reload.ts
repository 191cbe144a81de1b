import { loadConfigForReload } from '../config/load-off-thread.js';
import { resolveConfig, type ResolvedConfig } from '../config/resolve.js';
import { dataFilesSettled, settled } from '../config/settled.js';
import { isExampleDirectory } from '../directory/index.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { EngineHolder } from './engines.js';
import { checkNewDirectory } from './preflight.js';
import type { ProbeLoop } from './probe.js';
import type { SnapshotHolder } from './snapshots.js';

export interface ReloadDeps {
  /** The config file given at start (null: built-in defaults). */
  file: string | null;
  /** The config the listeners were opened with. */
  startConfig: Readonly<Config>;
  env: NodeJS.ProcessEnv;
  engines: EngineHolder;
  snapshots: SnapshotHolder;
  probes: ProbeLoop;
  metrics: Metrics;
  logger: Logger;
  /** How long the replaced directory stays open for lookups begun on it (default 30 s). */
  retireAfterMs?: number | undefined;
  /** True once the service drains: a reload then installs nothing. */
  stopping?: () => boolean;
  /** Locks the data files `next` writes that are not locked yet; throws when another instance holds one. */
  lockFiles?: (next: Readonly<Config>) => Promise<void>;
}

/**
 * SIGHUP: re-read and resolve the config, build the next engine (health carries over; the cache
 * too unless directory or domain settings changed), check that its directory still finds what
 * the running one found (preflight.ts), apply `sync.*`, probe once. A config that fails keeps
 * the running one. What the listeners and the answer persistence read at start
 * (listen, server, policy, http, admin, statusPage, cache.persist*) changes only on restart: a
 * reload that changes it says so.
 */
export function createReload(deps: ReloadDeps): (file?: string, secretsOnly?: boolean) => Promise<boolean> {
  const once = reloadOnce(deps);
  // One reload at a time. Two side by side both replaced the syncer (after a change of sync.*)
  // and both started the second one, so every sync ran twice; each also judged the new config
  // against an engine the other was about to replace. SIGHUPs that arrive while a reload runs
  // make one more reload after it, which reads the file as it is then.
  let tail: Promise<unknown> = Promise.resolve();
  type Entry = { file: string | undefined; secretsOnly: boolean; result: Promise<boolean> };
  let waiting: Entry | null = null;
  return (file?: string, secretsOnly = false): Promise<boolean> => {
    if (waiting !== null && waiting.file === file && waiting.secretsOnly === secretsOnly) return waiting.result;
    const entry: Entry = { file, secretsOnly, result: Promise.resolve(false) };
    entry.result = tail.then(() => {
      if (waiting === entry) waiting = null;
      return once(file, secretsOnly);
    });
    waiting = entry;
    tail = entry.result.catch(() => undefined);
    return entry.result;
  };
}

/**
 * One reload. `secretsOnly` (a rotated bind password or CA file, secret-files.ts): the running
 * configuration with its secret files read again, not the config file, which may be mid-edit.
 */
function reloadOnce(deps: ReloadDeps): (file: string | undefined, secretsOnly: boolean) => Promise<boolean> {
  const { env, engines, snapshots, probes, metrics, logger } = deps;
  return async (file, secretsOnly): Promise<boolean> => {
    try {
      if (!secretsOnly) await settled(file ?? deps.file);
      // A large file is parsed off the main thread: it takes seconds, and the front ends answer meanwhile.
      const loaded = secretsOnly ? { config: engines.current.config, file: deps.file } : await loadConfigForReload(file ?? deps.file, env);
      // The LDIF file and the override lists are read as they stand once the config is resolved.
      if (!secretsOnly) await dataFilesSettled(loaded.config);
      const before = engines.current.config;
      // Without a directory section a config means the bundled example directory, meant for a
      // first run without any config. Reached by a reload, it is a file cut short (read while
      // being rewritten): every real address would become `unknown`.
      if (isExampleDirectory(loaded.config) && !isExampleDirectory(before)) {
        throw new Error(`${loaded.file ?? 'the configuration'} has no directory section: it would switch to the bundled example directory (a file cut short while being rewritten?)`);
      }
      const resolved = resolveConfig(loaded.config, env, loaded.file);
      const next = engines.prepare(resolved, snapshots.current);
      try {
        await checkNewDirectory(engines.current, next);
        // SIGTERM came while the new directory was checked: the engine being drained stays, or
        // the answer file would be saved from the new one's cache (emptied by a domain change).
        if (deps.stopping?.()) throw new Error('the service is stopping');
        await deps.lockFiles?.(loaded.config);
      } catch (err) {
        engines.discard(next);
        throw err;
      }
      const { old, cacheKept } = engines.install(next);
      await snapshots.reload(before, loaded.config);
      logger.level = loaded.config.log.level;
      for (const key of restartOnlyChanges(deps, loaded.config)) {
        logger.warn({ key }, `${key} changes only on restart: the running value stays`);
      }
      // Requests in flight on the old directory finish before it closes, and so does a sync
      // running on it (a full sync of a large directory takes longer than the grace period).
      if (old.directory !== engines.current.directory) {
        engines.retire(old.directory, () => snapshots.idle(), deps.retireAfterMs ?? 30_000);
      }
      probes.poke();
      metrics.configReloads.inc({ outcome: 'success' });
      if (secretsOnly) logger.info({ cacheKept }, 'the bind password or CA file changed: the directory now binds with what it holds');
      else logger.info({ file: loaded.file, cacheKept }, cacheKept ? 'configuration reloaded, cache kept' : 'configuration reloaded, cache flushed');
      return true;
    } catch (err) {
      metrics.configReloads.inc({ outcome: 'failure' });
      logger.error({ err: { message: (err as Error).message } }, 'reload failed; keeping the running configuration');
      return false;
    }
  };
}

/** Keys read once at start (listeners, HTTP access, answer persistence) that `next` changes. */
function restartOnlyChanges(deps: ReloadDeps, next: Readonly<Config>): string[] {
  const start = deps.startConfig;
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  const changed: string[] = [];
  for (const key of Object.keys(start.listen) as Array<keyof Config['listen']>) if (start.listen[key] !== next.listen[key]) changed.push(`listen.${key}`);
  for (const key of ['server', 'policy', 'statusPage'] as const) if (!same(start[key], next[key])) changed.push(key);
  if (!same(start.http.lookupAllowFrom, next.http.lookupAllowFrom)) changed.push('http.lookupAllowFrom');
  // A token file rewritten in place is followed while serving (http/access.ts); another path is not.
  if (start.http.lookupTokenFile !== next.http.lookupTokenFile) changed.push('http.lookupTokenFile');
  if (start.admin.tokenFile !== next.admin.tokenFile) changed.push('admin.tokenFile');
  for (const key of ['persistPath', 'persistInterval'] as const) if (start.cache[key] !== next.cache[key]) changed.push(`cache.${key}`);
  return changed;
}
