import type { DirectoryRecord } from '../directory/types.js';
import { SnapshotStore, snapshotKey } from './store.js';

/**
 * How the address keys of a snapshot file were made; written in its header. Files without it
 * were keyed by an older case folding (ς kept apart from σ, the ohm sign read as ω): a user
 * stored as οδος@ keyed there is missed by a lookup keyed οδοσ@, an unknown with
 * sync.confirmMisses off until the next full sync.
 */
export const SNAPSHOT_KEYS = 2;

/** Keys every entry of `store` whose keys another folding made as lookups key them now; returns how many changed. */
export function rekey(store: SnapshotStore): number {
  const stale: DirectoryRecord[] = [];
  for (const r of store.records()) if (r.addresses.some((a) => snapshotKey(a) !== a)) stale.push(r);
  // upsert() keys the addresses again (snapshotKey) and drops the old keys.
  for (const r of stale) store.upsert(r);
  return stale.length;
}
