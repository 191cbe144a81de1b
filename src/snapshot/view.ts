/** A loaded snapshot as the engine sees it (SnapshotStore implements it). */
export interface SnapshotView {
  /** Canonical address for a normalized address, or undefined. */
  get(address: string): string | undefined;
  /** False when the last full sync is older than `sync.maxAge`: then live lookups decide. */
  isFresh(): boolean;
  /** When the listing it reflects began (engine clock): a valid answer cached before it, whose entry it lacks, is superseded. */
  readonly listedAt: number;
  /** Whether it holds the entry of this DN (any case). */
  hasDn(dn: string): boolean;
}
