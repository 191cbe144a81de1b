import { loadConfig } from '../config/load.js';
import { resolveConfig } from '../config/resolve.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { EngineHolder } from './engines.js';
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
}

/**
 * SIGHUP: re-read and resolve the config, build the next engine (health carries over; the cache
 * too unless directory or domain settings changed), apply `sync.*`, probe once. A config that
 * fails keeps the running one. Listen addresses change only on restart.
 */
export function createReload(deps: ReloadDeps): (file?: string) => Promise<boolean> {
  const { env, engines, snapshots, probes, metrics, logger } = deps;
  return async (file?: string): Promise<boolean> => {
    try {
      const loaded = loadConfig(file ?? deps.file, env);
      const before = engines.current.config;
      const { old, cacheKept } = engines.replace(resolveConfig(loaded.config, env), snapshots.current);
      await snapshots.reload(before, loaded.config);
      logger.level = loaded.config.log.level;
      for (const key of ['http', 'socketmap', 'policy', 'milter', 'metrics'] as const) {
        if (loaded.config.listen[key] !== deps.startConfig.listen[key]) logger.warn({ listener: key }, 'listen addresses change only on restart');
      }
      // Requests in flight on the old directory finish before it closes, and so does a sync
      // running on it (a full sync of a large directory takes longer than the grace period).
      setTimeout(() => void snapshots.idle().then(() => old.directory.close()).catch(() => undefined), deps.retireAfterMs ?? 30_000).unref();
      probes.poke();
      metrics.configReloads.inc({ outcome: 'success' });
      logger.info({ file: loaded.file, cacheKept }, cacheKept ? 'configuration reloaded, cache kept' : 'configuration reloaded, cache flushed');
      return true;
    } catch (err) {
      metrics.configReloads.inc({ outcome: 'failure' });
      logger.error({ err: { message: (err as Error).message } }, 'reload failed; keeping the running configuration');
      return false;
    }
  };
}
