import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { loadConfig, type LoadedConfig } from '../config/load.js';
import { ms } from '../config/duration.js';
import type { Config } from '../config/schema.js';
import { isExampleDirectory } from '../directory/index.js';
import { resolveConfig } from '../config/resolve.js';
import type { Logger } from '../log.js';
import { Metrics } from '../metrics.js';
import type { HealthReport, RecipientValidator } from '../recipient/types.js';
import { VERSION } from '../version.js';
import { createHttpApp } from '../http/app.js';
import { parseHostPort, type TcpServer } from '../net/tcp-server.js';
import { createSocketmapServer } from '../socketmap/server.js';
import { SnapshotSync, snapshotSource } from '../snapshot/sync.js';
import { EngineHolder } from './engines.js';
import { healthReport } from './health-report.js';
import { ProbeLoop } from './probe.js';
import { createPolicyServer } from '../policy/server.js';
import { createMilterServer } from '../milter/server.js';
import { HarvestGuard } from '../gate/harvest.js';
import { exposureWarnings, loopbackNotice } from '../config/exposure.js';

export interface AppOptions {
  loaded: LoadedConfig;
  logger: Logger;
  /** false for one-shot commands (check, sync): no listeners, no probe loop. */
  listen: boolean;
  env?: NodeJS.ProcessEnv;
}

export interface App {
  /** The validator front ends use; survives reloads (it always asks the current engine). */
  readonly validator: RecipientValidator;
  readonly metrics: Metrics;
  /** Bound addresses after start(), by front end. */
  readonly addresses: Partial<Record<'http' | 'socketmap' | 'policy' | 'milter', AddressInfo>>;
  /** One-shot commands: load the snapshot if configured. */
  prepare(): Promise<void>;
  start(): Promise<void>;
  /** SIGHUP: re-read config (file given at start), flush the cache; connections stay open. */
  reload(file?: string): Promise<boolean>;
  health(): HealthReport;
  syncOnce(): Promise<string>;
  close(): Promise<void>;
}

/** Composition root: everything is built here from one frozen config; nothing is module state. */
export async function createApp(options: AppOptions): Promise<App> {
  const { logger } = options;
  const env = options.env ?? process.env;
  const metrics = new Metrics();
  const startedAt = Date.now();
  let draining = false;
  let closed = false;

  const config = options.loaded.config;
  // Secrets and files are read once, here: a problem is a ConfigError listing every one.
  const resolved = resolveConfig(config, env);
  const engines = new EngineHolder(resolved, { logger, metrics, env });
  const validator = engines.validator;

  // Snapshot mode: one syncer at a time; a reload swaps the engine it feeds, or the syncer itself
  // when sync.* or the directory changed.
  const newSyncer = (c: Readonly<Config>): SnapshotSync | null =>
    c.sync.enabled
      ? new SnapshotSync({ config: c, directory: engines.current.directory, metrics, logger, onSnapshot: (s) => engines.current.validator.setSnapshot(s) })
      : null;
  let syncer = newSyncer(config);
  const { adminToken, lookupToken } = resolved;

  const health = (): HealthReport => healthReport({ engine: engines.current, snapshot: syncer?.current ?? null, draining, startedAt });
  const probes = new ProbeLoop(() => engines.current, engines.health);

  // --- listeners -------------------------------------------------------------------------
  const addresses: App['addresses'] = {};
  const tcpServers: Array<{ name: 'socketmap' | 'policy' | 'milter'; server: TcpServer }> = [];
  let httpServer: http.Server | null = null;
  const drainMs = ms(config.server.drainTimeout);

  const startHttp = async (hostPort: string): Promise<void> => {
    const app = createHttpApp({
      validator,
      metrics,
      logger,
      health,
      adminToken,
      lookupAccess: { token: lookupToken, allowFrom: config.http.lookupAllowFrom },
      version: VERSION,
      statusPage: config.statusPage,
    });
    // Node checks the header/request timeouts only every connectionsCheckingInterval (30 s by
    // default): a slow client would hold its socket far longer than headersTimeout says.
    const server = http.createServer({ connectionsCheckingInterval: 1_000 }, app);
    server.maxConnections = config.server.maxConnections;
    server.keepAliveTimeout = 5_000;
    server.requestTimeout = 30_000;
    server.headersTimeout = 10_000;
    const { host, port } = parseHostPort(hostPort);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('connection', (socket) => {
      metrics.connections.inc({ frontend: 'http' });
      socket.once('close', () => metrics.connections.dec({ frontend: 'http' }));
    });
    httpServer = server;
    addresses.http = server.address() as AddressInfo;
    logger.info({ frontend: 'http', address: `${addresses.http.address}:${addresses.http.port}` }, 'listening');
  };

  const common = {
    validator,
    metrics,
    logger,
    maxConnections: config.server.maxConnections,
    idleTimeoutMs: ms(config.server.idleTimeout),
  };
  // One guard for policy and milter: a harvester is counted whichever door it knocks on.
  const harvest =
    config.policy.harvest.maxUnknown > 0
      ? new HarvestGuard({ maxUnknown: config.policy.harvest.maxUnknown, windowMs: ms(config.policy.harvest.window) })
      : null;

  const start = async (): Promise<void> => {
    if (isExampleDirectory(config)) {
      logger.info(
        { domains: engines.current.validator.servedDomains() },
        'serving the bundled example directory (examples/directory.ldif); to use LDAP set directory.kind: ldap, directory.ldap.urls, baseDN and domains in a config file (rcptgate serve --config FILE)',
      );
    }
    const notice = loopbackNotice(config);
    if (notice) logger.info(notice);
    for (const w of exposureWarnings(config)) logger[w.level === 'warning' ? 'warn' : 'info']({ key: w.path }, w.message);
    // The snapshot is loaded before any listener opens, so the first answers already use it.
    if (syncer) await syncer.load();
    try {
      if (config.listen.socketmap) {
        const server = createSocketmapServer(common);
        tcpServers.push({ name: 'socketmap', server });
        addresses.socketmap = await server.listen(config.listen.socketmap);
      }
      if (config.listen.policy) {
        const server = createPolicyServer({ ...common, harvest });
        tcpServers.push({ name: 'policy', server });
        addresses.policy = await server.listen(config.listen.policy);
      }
      if (config.listen.milter) {
        const server = createMilterServer({ ...common, harvest });
        tcpServers.push({ name: 'milter', server });
        addresses.milter = await server.listen(config.listen.milter);
      }
      if (config.listen.http) await startHttp(config.listen.http);
    } catch (err) {
      await close();
      throw err;
    }
    probes.poke();
    syncer?.start();
  };

  const close = async (): Promise<void> => {
    if (closed) return;
    draining = true;
    closed = true;
    probes.stop();
    await syncer?.stop();
    const httpDone = httpServer
      ? new Promise<void>((resolve) => {
          const s = httpServer!;
          const force = setTimeout(() => s.closeAllConnections(), drainMs);
          force.unref();
          s.close(() => {
            clearTimeout(force);
            resolve();
          });
          s.closeIdleConnections();
        })
      : Promise.resolve();
    await Promise.all([httpDone, ...tcpServers.map((t) => t.server.close(drainMs))]);
    await engines.current.directory.close().catch((err: unknown) => logger.warn({ err }, 'closing the directory failed'));
  };

  const reload = async (file?: string): Promise<boolean> => {
    try {
      const loaded = loadConfig(file ?? options.loaded.file, env);
      const before = engines.current.config;
      const { old, cacheKept } = engines.replace(resolveConfig(loaded.config, env), syncer?.current ?? null);
      await reloadSync(before, loaded.config);
      logger.level = loaded.config.log.level;
      for (const key of ['http', 'socketmap', 'policy', 'milter'] as const) {
        if (loaded.config.listen[key] !== config.listen[key]) logger.warn({ listener: key }, 'listen addresses change only on restart');
      }
      // Requests in flight on the old directory finish before it closes.
      setTimeout(() => void old.directory.close().catch(() => undefined), 30_000).unref();
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

  /** sync.* (or the directory a snapshot comes from) changed: a new syncer, or none. */
  const reloadSync = async (before: Readonly<Config>, next: Readonly<Config>): Promise<void> => {
    if (JSON.stringify(before.sync) === JSON.stringify(next.sync) && snapshotSource(before) === snapshotSource(next)) {
      syncer?.setDirectory(engines.current.directory);
      return;
    }
    await syncer?.stop();
    syncer = newSyncer(next);
    engines.current.validator.setSnapshot(null);
    if (syncer) {
      await syncer.load();
      if (!closed && options.listen) syncer.start();
    }
  };

  return {
    validator,
    metrics,
    addresses,
    prepare: async () => {
      if (syncer) await syncer.load();
    },
    start,
    reload,
    health,
    syncOnce: async () => {
      if (!syncer) throw new Error('sync.enabled is false: set sync.enabled and sync.snapshotPath');
      const r = await syncer.full();
      return `entries=${r.entries} addresses=${r.addresses} seconds=${r.seconds.toFixed(2)} path=${config.sync.snapshotPath}`;
    },
    close,
  };
}
