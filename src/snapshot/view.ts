/** A loaded snapshot as the engine sees it (SnapshotStore implements it). */
export interface SnapshotView {
  /** Canonical address for a normalized address, or undefined. */
  get(address: string): string | undefined;
  /** False when the last full sync is older than `sync.maxAge`: then live lookups decide. */
  isFresh(): boolean;
}
