import type { SnapshotView } from '../snapshot/view.js';
import type { AnswerCache } from './answer-cache.js';

/**
 * A fresh snapshot lacks every key of an address. A valid answer cached for one of them before the
 * snapshot's listing began, for an entry the listing no longer holds (disabled, deleted, renamed or
 * moved out since), is superseded: it is dropped, so the directory is asked again, and while it
 * cannot answer the address is tempfail, not valid from the cache for the rest of the answer's
 * lifetime. An entry the snapshot still holds keeps its answers: a lookup filter may match keys
 * the listing does not index (`%u`). An answer cached after the listing began may be newer than it.
 */
export function forgetListedOut(cache: AnswerCache | null, keys: readonly string[], snapshot: SnapshotView): undefined {
  if (cache === null || snapshot.listedAt === -Infinity) return undefined;
  for (const key of keys) {
    const slot = cache.find(key);
    // Stored at freshUntil less the positive lifetime, the shortest one this cache has had: a
    // reload raising it must not make an answer cached after the listing look older than it.
    if (slot < 0 || cache.canonical(slot) === null || cache.freshUntil(slot) - cache.shortestPositiveTtlMs >= snapshot.listedAt) continue;
    const dn = cache.dn(slot);
    if (dn !== null && !snapshot.hasDn(dn)) cache.delete(key);
  }
  return undefined;
}
