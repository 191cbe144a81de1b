/** What every socket front end (socketmap, policy, milter) is built from. */
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { LogLimiter } from '../net/log-limiter.js';
import type { RecipientValidator } from '../recipient/types.js';
import type { Gate } from './gate.js';
import type { HarvestGuard } from './harvest.js';

export interface FrontendServerOptions {
  validator: RecipientValidator;
  metrics: Metrics;
  logger: Logger;
  /** The gate to ask; built from `validator` and `harvest` when absent. */
  gate?: Gate;
  /** Directory harvest protection (policy, milter); null or absent disables it. */
  harvest?: HarvestGuard | null;
  /** Open connections allowed at once; more are refused at accept. */
  maxConnections: number;
  /** A connection with no complete request for this long is closed (ms; 0 disables). */
  idleTimeoutMs: number;
  /** Connections one client address may hold (README "Limits per client address"). */
  maxConnectionsPerClient?: number;
  /** Requests of one client address waiting for the engine at once. */
  maxOutstandingPerClient?: number;
  /** Requests of all clients waiting for the engine at once; beyond it, clients take turns. */
  maxOutstanding?: number;
  /** Requests answered or in progress on one connection before reading pauses. */
  maxPipeline?: number;
  /** A request begun must arrive whole within this (ms). */
  requestTimeoutMs?: number;
  logLimiter?: LogLimiter;
}
