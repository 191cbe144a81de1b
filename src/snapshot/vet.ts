import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { SnapshotStore } from './store.js';

export interface VetDeps {
  config: Readonly<Config>;
  metrics: Metrics;
  logger: Logger;
  /** `directory.canaries` as snapshot keys. */
  canaries: string[];
  /** The snapshot the listing would replace (or the entry count of a file refused as another directory's). */
  previous: Pick<SnapshotStore, 'entries'> | null;
}

/**
 * Refuses a full listing that sees much less than before: a directory that suddenly shows fewer
 * entries (lost read rights, a size limit, a wrong base) is broken, not emptied. Published,
 * it would turn every missing address into `unknown`. Throws the reason; counts and logs it.
 */
export function vetListing(deps: VetDeps, store: SnapshotStore, listed: number): void {
  const refuse = (reason: 'empty' | 'shrink' | 'canary', message: string): never => {
    deps.metrics.syncRefused.inc({ reason });
    deps.logger.warn({ reason, entries: store.entries, previous: deps.previous?.entries ?? null }, `full sync refused: ${message}`);
    throw new Error(message);
  };
  // An empty listing is far likelier a wrong base DN or filter than a directory without recipients.
  if (listed === 0) refuse('empty', 'the directory listed no entries; refusing an empty snapshot (check directory.ldap.baseDN and filter)');
  const previous = deps.previous?.entries ?? 0;
  const maxShrink = deps.config.sync.maxShrink;
  if (previous > 0 && store.entries < previous * (1 - maxShrink)) {
    refuse('shrink', `the listing has ${store.entries} entries, down from ${previous} (more than sync.maxShrink ${maxShrink}); keeping the current snapshot (raise sync.maxShrink and reload if the shrink is real)`);
  }
  const missing = deps.canaries.filter((c) => store.get(c) === undefined);
  if (missing.length > 0) refuse('canary', `the listing lacks the canary address(es) ${missing.join(', ')}; keeping the current snapshot`);
}
