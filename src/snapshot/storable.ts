import type { DirectoryRecord } from '../directory/types.js';
import type { SnapshotStore } from './store.js';

/**
 * Longest address a lookup can ask for, as UTF-8, with room to spare: 254 octets (RFC 5321),
 * whose domain the U-label form a lookup also asks for may spell longer than its A-label.
 */
export const MAX_KEY_OCTETS = 4096;

function fits(value: string): boolean {
  // 1024 UTF-16 units are at most 3072 octets: only longer values are measured.
  return value.length <= 1024 || Buffer.byteLength(value, 'utf8') <= MAX_KEY_OCTETS;
}

/**
 * The record as the snapshot holds it: without values no lookup can ask for (far longer than any
 * address), the primary address replaced by the first value kept when it is one of them; null
 * when none is left. A value pasted by mistake (a certificate, a whole list) made the store refuse
 * the entry, and every full and incremental sync failed with it: users added meanwhile stayed
 * `unknown` in the snapshot until `sync.maxAge`.
 */
export function storable(record: DirectoryRecord): DirectoryRecord | null {
  if (fits(record.canonical) && record.addresses.every(fits)) return record;
  const addresses = record.addresses.filter(fits);
  if (addresses.length === 0) return null;
  return { dn: record.dn, canonical: fits(record.canonical) ? record.canonical : addresses[0]!, addresses };
}

/**
 * Puts a listed entry into `store` as storable() leaves it (an entry left without addresses is
 * removed); true when the store changed. An entry the store still cannot hold (more addresses
 * than it takes) fails the sync naming its DN: the admin must find it to fix it.
 */
export function put(store: SnapshotStore, record: DirectoryRecord): boolean {
  const kept = storable(record);
  if (kept === null) return store.remove(record.dn);
  try {
    return store.upsert(kept);
  } catch (err) {
    throw new Error(`directory entry ${record.dn}: ${(err as Error).message}`, { cause: err });
  }
}
