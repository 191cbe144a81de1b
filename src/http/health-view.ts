import { redactUrlCredentials } from '../config/exposure.js';
import type { HealthReport } from '../recipient/types.js';

/**
 * The health report as strangers see it (/readyz, the status page): state and a stable reason
 * code, never the directory's error text, which names servers, bind DNs and filters.
 * The admin token gets the full report.
 */
export type ReasonCode = 'draining' | 'waiting_for_directory' | 'directory_down' | 'canary_missing' | (string & {});

export interface PublicHealth {
  ready: boolean;
  draining: boolean;
  reasonCode?: ReasonCode;
  directory: { kind: HealthReport['directory']['kind']; up: boolean; lastSuccessAt: string | null };
  snapshot: HealthReport['snapshot'];
  cache: HealthReport['cache'];
  uptimeSeconds: number;
  version: string;
}

/** The engine's code when it gives one; otherwise derived from the report's state. */
export function reasonCode(report: HealthReport): ReasonCode | undefined {
  const given = (report as HealthReport & { reasonCode?: unknown }).reasonCode;
  if (typeof given === 'string' && /^[a-z][a-z0-9_]*$/.test(given)) return given;
  if (report.draining) return 'draining';
  if (!report.ready) return 'waiting_for_directory';
  if (!report.directory.up) return 'directory_down';
  return undefined;
}

export function publicHealth(report: HealthReport): PublicHealth {
  const code = reasonCode(report);
  return {
    ready: report.ready,
    draining: report.draining,
    ...(code ? { reasonCode: code } : {}),
    directory: { kind: report.directory.kind, up: report.directory.up, lastSuccessAt: report.directory.lastSuccessAt },
    snapshot: { loaded: report.snapshot.loaded, entries: report.snapshot.entries, ageSeconds: report.snapshot.ageSeconds },
    cache: { entries: report.cache.entries },
    uptimeSeconds: report.uptimeSeconds,
    version: report.version,
  };
}

/**
 * The admin's view: everything, with a reason code added when the engine gives none. URL
 * credentials are refused by the config, and redacted here too should one ever get through.
 */
export function adminHealth(report: HealthReport): HealthReport & { reasonCode?: ReasonCode } {
  const code = reasonCode(report);
  const { reason, directory } = report;
  return {
    ...report,
    ...(reason !== undefined ? { reason: redactUrlCredentials(reason) } : {}),
    ...(code ? { reasonCode: code } : {}),
    directory: { ...directory, lastError: directory.lastError === null ? null : redactUrlCredentials(directory.lastError) },
  };
}
