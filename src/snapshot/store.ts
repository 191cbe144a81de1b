import type { DirectoryRecord } from '../directory/types.js';
import type { SnapshotView } from '../validator.js';

/**
 * A full copy of every valid address: address → its entry. Records are shared between the
 * address index and the DN index so an incremental refresh can replace an entry's addresses.
 */
export class SnapshotStore implements SnapshotView {
  private readonly byAddress = new Map<string, DirectoryRecord>();
  private readonly byDn = new Map<string, DirectoryRecord>();

  constructor(
    /** When the directory data was read (ms since epoch). */
    public createdAt: number,
    private readonly maxAgeMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  static from(records: Iterable<DirectoryRecord>, createdAt: number, maxAgeMs: number, now?: () => number): SnapshotStore {
    const s = new SnapshotStore(createdAt, maxAgeMs, now);
    for (const r of records) s.upsert(r);
    return s;
  }

  get size(): number {
    return this.byAddress.size;
  }

  get entries(): number {
    return this.byDn.size;
  }

  get(address: string): string | undefined {
    return this.byAddress.get(address)?.canonical;
  }

  isFresh(): boolean {
    return this.now() - this.createdAt <= this.maxAgeMs;
  }

  ageSeconds(): number {
    return Math.max(0, Math.round((this.now() - this.createdAt) / 1000));
  }

  /** Adds or replaces an entry (by DN); addresses it no longer has are dropped. */
  upsert(record: DirectoryRecord): void {
    const key = record.dn.toLowerCase();
    const old = this.byDn.get(key);
    if (old) for (const a of old.addresses) if (this.byAddress.get(a) === old) this.byAddress.delete(a);
    const rec: DirectoryRecord = { dn: record.dn, canonical: record.canonical, addresses: record.addresses.map((a) => a.toLowerCase()) };
    this.byDn.set(key, rec);
    for (const a of rec.addresses) this.byAddress.set(a, rec);
  }

  remove(dn: string): boolean {
    const key = dn.toLowerCase();
    const old = this.byDn.get(key);
    if (!old) return false;
    for (const a of old.addresses) if (this.byAddress.get(a) === old) this.byAddress.delete(a);
    this.byDn.delete(key);
    return true;
  }

  *records(): IterableIterator<DirectoryRecord> {
    yield* this.byDn.values();
  }
}
