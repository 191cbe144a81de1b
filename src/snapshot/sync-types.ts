import type { Config } from '../config/schema.js';
import type { Directory } from '../directory/types.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { ChangeFeed } from './changes.js';
import type { SnapshotStore } from './store.js';

/** What one sync did (sync.ts). */
export interface SyncReport { kind: 'full' | 'incremental'; entries: number; addresses: number; changed: number; seconds: number }

export interface SnapshotSyncDeps {
  config: Readonly<Config>;
  directory: Directory;
  metrics: Metrics;
  logger: Logger;
  /** Called with every new or updated snapshot. */
  onSnapshot: (store: SnapshotStore) => void;
  /** `sync.detectRemovals`: drops disabled, renamed and deleted entries between full syncs. */
  changes?: ChangeFeed | null;
  now?: () => number;
  /** A clock that never steps, in ms (default: the monotonic clock): `sync.maxAge` runs on it. */
  steadyNow?: () => number;
  maxIncrementalChanges?: number; // tests
}
