import type { SnapshotStore } from '../snapshot/store.js';
import type { HealthReasonCode, HealthReport } from '../recipient/types.js';
import { VERSION } from '../version.js';
import type { Engine } from './engines.js';

export interface HealthInputs {
  engine: Engine;
  snapshot: SnapshotStore | null;
  draining: boolean;
  /** Answers the directory gave before a restart were loaded (cache.persistPath). */
  answersLoaded?: boolean;
  startedAt: number;
  now?: number;
}

/** What /readyz and the status page show: readiness, and why not (a stable code plus words). */
export function healthReport({ engine, snapshot: snap, draining, answersLoaded = false, startedAt, now = Date.now() }: HealthInputs): HealthReport {
  const s = engine.validator.state;
  const ldap = engine.directory.kind === 'ldap';
  // A snapshot past sync.maxAge is not used for answers, so it does not make us ready either.
  // Answers loaded from the answer file are served as before the restart: the same state as a
  // process that stayed up through the outage, which stays ready.
  const ready = !draining && (s.answeredOnce || answersLoaded || !ldap || (snap !== null && snap.isFresh()));
  let reasonCode: HealthReasonCode | undefined;
  let reason: string | undefined;
  if (draining) {
    reasonCode = 'draining';
    reason = 'draining';
  } else if (!ready) {
    reasonCode = 'waiting_for_directory';
    reason = `waiting for the directory to answer${s.lastError ? ` (last error: ${s.lastError})` : ''}`;
  } else if (ldap && s.missingCanaries.length > 0) {
    reasonCode = 'canary_missing';
    reason = `degraded: ${s.lastError ?? 'canary address not found'}; deferring every recipient the directory does not find`;
  } else if (ldap && !s.up) {
    reasonCode = 'directory_down';
    reason = `degraded: directory failing (${s.lastError ?? 'unknown error'}); serving cached answers, deferring the rest`;
  }
  return {
    ready,
    draining,
    ...(reasonCode ? { reasonCode, reason } : {}),
    directory: {
      kind: engine.directory.kind,
      up: ldap ? s.up : true,
      lastSuccessAt: s.lastSuccessAt ? new Date(s.lastSuccessAt).toISOString() : null,
      lastError: s.lastError,
    },
    snapshot: { loaded: snap !== null, entries: snap?.size ?? 0, ageSeconds: snap ? snap.ageSeconds() : null },
    cache: { entries: engine.validator.cacheSize },
    uptimeSeconds: Math.round((now - startedAt) / 1000),
    version: VERSION,
  };
}
