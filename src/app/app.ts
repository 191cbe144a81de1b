import type { AddressInfo } from 'node:net';
import type { LoadedConfig } from '../config/load.js';
import { ms } from '../config/duration.js';
import { isExampleDirectory } from '../directory/index.js';
import { resolveConfig } from '../config/resolve.js';
import type { Logger } from '../log.js';
import { Metrics } from '../metrics.js';
import type { HealthReport, RecipientValidator } from '../recipient/types.js';
import { VERSION } from '../version.js';
import { createHttpApp } from '../http/app.js';
import { PROBE_LISTENER_LIMITS, probeHandler, startHttpListener, type HttpListener } from '../http/server.js';
import { type TcpServer } from '../net/tcp-server.js';
import { createSocketmapServer } from '../socketmap/server.js';
import { createReload } from './reload.js';
import { SnapshotHolder } from './snapshots.js';
import { answerPersistence } from '../snapshot/answer-persistence.js';
import type { SyncProgress } from '../snapshot/progress.js';
import { EngineHolder } from './engines.js';
import { healthReport } from './health-report.js';
import { ProbeLoop } from './probe.js';
import { createPolicyServer } from '../policy/server.js';
import { createMilterServer } from '../milter/server.js';
import { HarvestGuard } from '../gate/harvest.js';
import { Gate } from '../gate/gate.js';
import { LogLimiter } from '../net/log-limiter.js';
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
  readonly addresses: Partial<Record<'http' | 'socketmap' | 'policy' | 'milter' | 'metrics', AddressInfo>>;
  /** One-shot commands: load the snapshot if configured. */
  prepare(): Promise<void>;
  start(): Promise<void>;
  /** SIGHUP: re-read config (file given at start), flush the cache; connections stay open. */
  reload(file?: string): Promise<boolean>;
  health(): HealthReport;
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
  let closed = false;

  const config = options.loaded.config;
  // Secrets and files are read once, here: a problem is a ConfigError listing every one.
  const resolved = resolveConfig(config, env);
  const engines = new EngineHolder(resolved, { logger, metrics, env });
  const validator = engines.validator;

  const snapshots = new SnapshotHolder(config, engines, { metrics, logger, env });
  // cache.persistPath: valid answers survive a restart (follows the current engine's cache).
  const persistence = answerPersistence(config, () => engines.current.validator.answerCache, logger);
  const { adminToken, lookupToken } = resolved;

  const health = (): HealthReport => healthReport({ engine: engines.current, snapshot: snapshots.current, draining, startedAt });
  const probes = new ProbeLoop(() => engines.current, engines.health);
  const reload = createReload({ file: options.loaded.file, startConfig: config, env, engines, snapshots, probes, metrics, logger });

  // --- listeners -------------------------------------------------------------------------
  const addresses: App['addresses'] = {};
  const tcpServers: Array<{ name: 'socketmap' | 'policy' | 'milter'; server: TcpServer }> = [];
  const httpListeners: HttpListener[] = [];
  // One limiter for every listener: warnings a peer can trigger at will are rate-limited.
  const logLimiter = new LogLimiter(metrics);
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
      logLimiter,
    });
    const perClient = config.server.maxConnectionsPerClient;
    const listener = await startHttpListener(hostPort, { handler: app, metrics, logger, maxConnections: config.server.maxConnections, maxConnectionsPerClient: perClient, logLimiter });
    httpListeners.push(listener);
    addresses.http = listener.address;
  };

  // Probes and scrapes on their own listener: they answer however busy the lookup port is.
  const startMetrics = async (hostPort: string): Promise<void> => {
    const listener = await startHttpListener(hostPort, { handler: probeHandler(metrics, health), metrics, logger, logLimiter, name: 'metrics', ...PROBE_LISTENER_LIMITS });
    httpListeners.push(listener);
    addresses.metrics = listener.address;
  };

  // One guard for policy and milter: a harvester is counted whichever door it knocks on.
  const h = config.policy.harvest;
  const harvest =
    h.maxUnknown > 0
      ? new HarvestGuard({ maxUnknown: h.maxUnknown, windowMs: ms(h.window), action: h.action, delayStepMs: ms(h.delayStep), maxDelayMs: ms(h.maxDelay) })
      : null;
  const s = config.server;
  const common = {
    validator,
    metrics,
    logger,
    gate: new Gate({ validator, metrics, logger, harvest }),
    logLimiter,
    maxConnections: s.maxConnections,
    maxConnectionsPerClient: s.maxConnectionsPerClient,
    maxOutstandingPerClient: s.maxOutstandingPerClient,
    maxPipeline: s.maxPipeline,
    idleTimeoutMs: ms(s.idleTimeout),
    requestTimeoutMs: ms(s.requestTimeout),
  };

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
    await snapshots.load();
    await persistence?.load();
    try {
      if (config.listen.socketmap) {
        const server = createSocketmapServer(common);
        tcpServers.push({ name: 'socketmap', server });
        addresses.socketmap = await server.listen(config.listen.socketmap);
      }
      if (config.listen.policy) {
        const server = createPolicyServer(common);
        tcpServers.push({ name: 'policy', server });
        addresses.policy = await server.listen(config.listen.policy);
      }
      if (config.listen.milter) {
        const server = createMilterServer(common);
        tcpServers.push({ name: 'milter', server });
        addresses.milter = await server.listen(config.listen.milter);
      }
      if (config.listen.http) await startHttp(config.listen.http);
      if (config.listen.metrics) await startMetrics(config.listen.metrics);
    } catch (err) {
      await close();
      throw err;
    }
    probes.poke();
    snapshots.start();
    persistence?.start();
  };

  const close = async (): Promise<void> => {
    if (closed) return;
    draining = true;
    closed = true;
    probes.stop();
    await snapshots.stop();
    await Promise.all([...httpListeners.map((l) => l.close(drainMs)), ...tcpServers.map((t) => t.server.close(drainMs))]);
    await persistence?.stop();
    await engines.current.directory.close().catch((err: unknown) => logger.warn({ err }, 'closing the directory failed'));
  };

  return {
    validator,
    metrics,
    addresses,
    prepare: () => snapshots.load(),
    start,
    reload,
    health,
    syncOnce: (onProgress?: (p: SyncProgress) => void) => snapshots.syncOnce(onProgress),
    close,
  };
}
