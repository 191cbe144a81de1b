import type { AddressInfo } from 'node:net';
import { ms } from '../config/duration.js';
import type { Config } from '../config/schema.js';
import type { ResolvedConfig } from '../config/resolve.js';
import { Gate } from '../gate/gate.js';
import { HarvestGuard } from '../gate/harvest.js';
import { createHttpApp } from '../http/app.js';
import { PROBE_LISTENER_LIMITS, probeHandler, startHttpListener, type HttpListener } from '../http/server.js';
import { tokenFile, type Token } from '../http/token-file.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { createMilterServer } from '../milter/server.js';
import { LogLimiter } from '../net/log-limiter.js';
import type { TcpServer } from '../net/tcp-server.js';
import { createPolicyServer } from '../policy/server.js';
import type { HealthReport, RecipientValidator } from '../recipient/types.js';
import { createSocketmapServer } from '../socketmap/server.js';
import { VERSION } from '../version.js';

export type ListenerName = 'http' | 'socketmap' | 'policy' | 'milter' | 'metrics';

export interface ListenerDeps {
  resolved: ResolvedConfig;
  validator: RecipientValidator;
  metrics: Metrics;
  logger: Logger;
  health: () => HealthReport;
}

/** One guard for policy and milter: a harvester is counted whichever door it knocks on. */
function harvestGuard(config: Readonly<Config>): HarvestGuard | null {
  const h = config.policy.harvest;
  if (h.maxUnknown <= 0) return null;
  return new HarvestGuard({ maxUnknown: h.maxUnknown, windowMs: ms(h.window), action: h.action, delayStepMs: ms(h.delayStep), maxDelayMs: ms(h.maxDelay), ipv6PrefixBits: h.ipv6Prefix, maxHeld: h.maxHeld });
}

/** A token read from a file follows the file (rotation, revocation); one from the environment is fixed. */
function liveToken(file: string | null, token: string | null, key: string, logger: Logger): Token {
  return file === null || token === null ? token : tokenFile(file, token, key, logger);
}

/** Every listener of `serve`, opened in one go and closed (drained) in one go. */
export class Listeners {
  readonly addresses: Partial<Record<ListenerName, AddressInfo>> = {};
  private readonly tcp: TcpServer[] = [];
  private readonly http: HttpListener[] = [];
  /** One limiter for every listener: warnings a peer can trigger at will are rate-limited. */
  private readonly logLimiter: LogLimiter;

  constructor(private readonly deps: ListenerDeps) {
    this.logLimiter = new LogLimiter(deps.metrics);
  }

  async start(): Promise<void> {
    const { validator, metrics, logger } = this.deps;
    const { config } = this.deps.resolved;
    const s = config.server;
    const common = {
      validator,
      metrics,
      logger,
      gate: new Gate({ validator, metrics, logger, harvest: harvestGuard(config) }),
      logLimiter: this.logLimiter,
      maxConnections: s.maxConnections,
      maxConnectionsPerClient: s.maxConnectionsPerClient,
      maxOutstandingPerClient: s.maxOutstandingPerClient,
      maxOutstanding: s.maxOutstanding,
      maxPipeline: s.maxPipeline,
      idleTimeoutMs: ms(s.idleTimeout),
      requestTimeoutMs: ms(s.requestTimeout),
    };
    const sockets = [
      ['socketmap', createSocketmapServer],
      ['policy', createPolicyServer],
      ['milter', createMilterServer],
    ] as const;
    for (const [name, create] of sockets) {
      const hostPort = config.listen[name];
      if (!hostPort) continue;
      const server = create(common);
      this.tcp.push(server);
      this.addresses[name] = await server.listen(hostPort);
    }
    if (config.listen.http) await this.startHttp(config.listen.http);
    if (config.listen.metrics) await this.startMetrics(config.listen.metrics);
  }

  private async startHttp(hostPort: string): Promise<void> {
    const { validator, metrics, logger, health, resolved } = this.deps;
    const { config } = resolved;
    const app = createHttpApp({
      validator,
      metrics,
      logger,
      health,
      adminToken: liveToken(config.admin.tokenFile, resolved.adminToken, 'admin.tokenFile', logger),
      lookupAccess: { token: liveToken(config.http.lookupTokenFile, resolved.lookupToken, 'http.lookupTokenFile', logger), allowFrom: config.http.lookupAllowFrom },
      version: VERSION,
      statusPage: config.statusPage,
      logLimiter: this.logLimiter,
      lookupTurns: { maxOutstanding: config.server.maxOutstanding, maxOutstandingPerClient: config.server.maxOutstandingPerClient },
      // An IPv6 client is its network, as for harvest protection (policy.harvest.ipv6Prefix).
      clientIpv6PrefixBits: config.policy.harvest.ipv6Prefix,
    });
    const s = config.server;
    const listener = await startHttpListener(hostPort, {
      handler: app, metrics, logger, maxConnections: s.maxConnections, maxConnectionsPerClient: s.maxConnectionsPerClient, maxPipeline: s.maxPipeline, logLimiter: this.logLimiter,
      clientIpv6PrefixBits: config.policy.harvest.ipv6Prefix,
    });
    this.http.push(listener);
    this.addresses.http = listener.address;
  }

  /** Probes and scrapes on their own listener: they answer however busy the lookup port is. */
  private async startMetrics(hostPort: string): Promise<void> {
    const { metrics, logger, health } = this.deps;
    const listener = await startHttpListener(hostPort, { handler: probeHandler(metrics, health), metrics, logger, logLimiter: this.logLimiter, name: 'metrics', ...PROBE_LISTENER_LIMITS });
    this.http.push(listener);
    this.addresses.metrics = listener.address;
  }

  /** Stops accepting; in-flight answers finish within `drainMs`, then connections are forced. */
  async close(drainMs: number): Promise<void> {
    await Promise.all([...this.http.map((l) => l.close(drainMs)), ...this.tcp.map((t) => t.close(drainMs))]);
  }
}
